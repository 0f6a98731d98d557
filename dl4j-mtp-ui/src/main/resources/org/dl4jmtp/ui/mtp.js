/*
 * dl4j-mtp: the MTP page of the DL4J training UI. Plain JavaScript and hand-written SVG (nothing is downloaded).
 * Polls /mtp/data every 2 s for the records newer than the last one seen and redraws the charts.
 *
 * Test hooks: each chart container has data-points (points drawn), each chart <svg class="mtp-chart"> too, each series
 * <path class="series" data-series=NAME data-points=N>, and (up to MAX_MARKERS points per chart) one <circle class="point">
 * per point. The expert-load panel has one <svg class="expert-load-chart" data-layer=NAME> per MoE layer with one
 * <rect class="bar"> per expert.
 */
(function () {
    'use strict';

    var POLL_MS = 2000;
    var MAX_MARKERS = 1500;
    var SVGNS = 'http://www.w3.org/2000/svg';
    var COLORS = ['#23282c', '#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#be185d'];

    var state = newState(null);

    function newState(session) {
        return {session: session, after: -1, steps: [], validations: [], description: '', depths: 0, sessions: []};
    }

    // ---------------------------------------------------------------- data

    function poll() {
        var requested = state;
        var url = '/mtp/data?after=' + encodeURIComponent(state.after)
            + (state.session ? '&session=' + encodeURIComponent(state.session) : '');
        fetch(url, {cache: 'no-store'})
            .then(function (r) {
                if (!r.ok) {
                    throw new Error('HTTP ' + r.status);
                }
                return r.json();
            })
            .then(function (data) {
                if (state !== requested) {
                    return;   // the session was switched meanwhile: the next poll asks for the new one
                }
                if (data.session && data.session !== state.session) {
                    state = newState(data.session);   // an answer without 'after' holds the whole session
                }
                state.sessions = data.sessions || [];
                if (data.session) {
                    state.description = data.description || '';
                    state.depths = data.depths || 0;
                    state.after = data.lastTimestamp;
                    Array.prototype.push.apply(state.steps, data.steps || []);
                    Array.prototype.push.apply(state.validations, data.validations || []);
                }
                updateSessionSelect();
                render();
                setStatus();
            })
            .catch(function (e) {
                setStatus('UI server unreachable (' + e.message + '): the run may have ended; showing the last data.'
                    + ' A stored run can be reopened with: ui --stats <run dir>/stats.dl4j', 'error');
            })
            .then(function () {
                setTimeout(poll, POLL_MS);
            });
    }

    function setStatus(message, cls) {
        var status = document.getElementById('status');
        document.getElementById('run-description').textContent = state.description
            ? state.description : (state.session ? 'session ' + state.session : '');
        if (message) {
            status.textContent = message;
            status.className = 'status ' + (cls || '');
            return;
        }
        if (!state.session) {
            status.textContent = 'No MTP records yet: waiting for the first training step…';
            status.className = 'status stale';
            return;
        }
        var last = state.steps.length ? state.steps[state.steps.length - 1].step : 0;
        var age = state.after > 0 ? Math.max(0, Math.round((Date.now() - state.after) / 1000)) : null;
        status.textContent = 'step ' + last + ' · ' + state.validations.length + ' validation'
            + (state.validations.length === 1 ? '' : 's') + (age !== null ? ' · last record ' + formatAge(age) + ' ago' : '')
            + ' · updates every ' + (POLL_MS / 1000) + ' s';
        status.className = 'status';
    }

    function formatAge(s) {
        if (s < 90) {
            return s + ' s';
        }
        if (s < 5400) {
            return Math.round(s / 60) + ' min';
        }
        return Math.round(s / 3600) + ' h';
    }

    function updateSessionSelect() {
        var select = document.getElementById('session-select');
        var ids = state.sessions.slice();
        if (select.getAttribute('data-ids') === ids.join(',') && select.value === (state.session || '')) {
            return;
        }
        select.innerHTML = '';
        ids.forEach(function (id) {
            var o = document.createElement('option');
            o.value = id;
            o.textContent = id.length > 12 ? id.substring(0, 8) + '…' : id;
            o.title = id;
            select.appendChild(o);
        });
        select.value = state.session || '';
        select.setAttribute('data-ids', ids.join(','));
    }

    document.getElementById('session-select').addEventListener('change', function (e) {
        state = newState(e.target.value);
        render();
    });

    // ---------------------------------------------------------------- charts

    function headName(d) {
        return d === 0 ? 'main' : 'depth ' + d;
    }

    function depthsOf() {
        var d = state.depths;
        state.steps.forEach(function (s) { d = Math.max(d, (s.heads || []).length - 1); });
        state.validations.forEach(function (v) { d = Math.max(d, (v.loss || []).length - 1); });
        return d;
    }

    function render() {
        var D = depthsOf();
        var steps = state.steps, vals = state.validations;
        var d, series;

        series = [];
        for (d = 0; d <= D; d++) {
            series.push({name: headName(d), color: COLORS[d % COLORS.length],
                points: steps.map(pick('heads', d))});
        }
        lineChart('chart-train-loss', series, {xLabel: 'training step', yLabel: 'loss (nats / token)'});

        series = [];
        for (d = 0; d <= D; d++) {
            series.push({name: headName(d), color: COLORS[d % COLORS.length], points: vals.map(pick('loss', d))});
        }
        lineChart('chart-val-loss', series, {xLabel: 'training step', yLabel: 'validation loss (nats / token)'});

        series = [{name: 'main vs labels', color: COLORS[0], points: vals.map(pick('accuracyVsLabels', 0))}];
        for (d = 1; d <= D; d++) {
            series.push({name: 'depth ' + d + ' vs labels', color: COLORS[d % COLORS.length],
                points: vals.map(pick('accuracyVsLabels', d))});
            series.push({name: 'depth ' + d + ' vs main head', color: COLORS[d % COLORS.length], dash: '5 3',
                points: vals.map(pick('accuracyVsMain', d))});
        }
        lineChart('chart-accuracy', series, {xLabel: 'training step', yLabel: 'top-1 accuracy', yFloor: 0, yCeil: 1});

        lineChart('chart-acceptance', [{name: 'acceptance length (D = ' + D + ')', color: COLORS[1],
            points: vals.map(function (v) { return [v.step, v.acceptanceLength]; })}],
        {xLabel: 'training step', yLabel: 'tokens per verification step', yFloor: 1, yCeil: D + 1});

        lineChart('chart-throughput', [{name: 'tokens / s', color: COLORS[3],
            points: steps.map(function (s) { return [s.step, s.tokensPerSecond]; })}],
        {xLabel: 'training step', yLabel: 'training tokens / s', yFloor: 0});

        var layers = [];
        vals.forEach(function (v) {
            Object.keys(v.expertLoad || {}).forEach(function (l) {
                if (layers.indexOf(l) < 0) {
                    layers.push(l);
                }
            });
        });
        var range = [];
        layers.forEach(function (l, i) {
            var color = COLORS[(i + 1) % COLORS.length];
            var share = function (which) {
                return function (v) {
                    var f = (v.expertLoad || {})[l];
                    return [v.step, f ? minMax(f)[which] : null];
                };
            };
            range.push({name: shortLayer(l) + ' max', color: color, points: vals.map(share('max'))});
            range.push({name: shortLayer(l) + ' min', color: color, dash: '5 3', points: vals.map(share('min'))});
        });
        lineChart('chart-imbalance', range, {xLabel: 'training step', yLabel: 'share of routed tokens', yFloor: 0,
            empty: layers.length ? 'no data yet' : 'no MoE layer (or no validation yet)'});

        expertLoad(vals.length ? vals[vals.length - 1] : null);
    }

    function pick(field, d) {
        return function (r) {
            var a = r[field];
            return [r.step, a && a.length > d ? a[d] : null];
        };
    }

    function shortLayer(name) {
        var m = /layers?[._](\d+)/.exec(name);
        var prefix = name.indexOf('mtp') >= 0 ? 'MTP ' : '';
        return m ? prefix + 'layer ' + m[1] : name;
    }

    function minMax(values) {
        var min = Infinity, max = -Infinity, iMin = -1, iMax = -1;
        values.forEach(function (v, i) {
            if (v === null) {
                return;
            }
            if (v < min) { min = v; iMin = i; }
            if (v > max) { max = v; iMax = i; }
        });
        return {min: min, max: max, iMin: iMin, iMax: iMax};
    }

    function node(tag, attrs, parent, text) {
        var e = document.createElementNS(SVGNS, tag);
        Object.keys(attrs || {}).forEach(function (k) {
            e.setAttribute(k, attrs[k]);
        });
        if (text !== undefined) {
            e.textContent = text;
        }
        if (parent) {
            parent.appendChild(e);
        }
        return e;
    }

    function ticks(min, max, n, integer) {
        var span = max - min;
        if (!(span > 0)) {
            var pad = Math.abs(max) > 0 ? Math.abs(max) * 0.1 : 1;
            min -= pad;
            max += pad;
            span = max - min;
        }
        var step = Math.pow(10, Math.floor(Math.log10(span / n)));
        var err = span / n / step;
        step *= err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1;
        if (integer) {
            step = Math.max(1, Math.round(step));
        }
        var lo = Math.floor(min / step + 1e-9) * step, hi = Math.ceil(max / step - 1e-9) * step;
        var out = [];
        for (var v = lo; v <= hi + step * 1e-6; v += step) {
            out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
        }
        return {lo: lo, hi: hi, step: step, values: out};
    }

    function format(v, step) {
        if (Math.abs(v) >= 10000) {
            return (v / 1000).toFixed(step >= 1000 ? 0 : 1) + 'k';
        }
        var decimals = step >= 1 ? 0 : Math.min(4, Math.ceil(-Math.log10(step) - 1e-9));
        return v.toFixed(decimals);
    }

    /**
     * A line chart in the container with id {@code id}. series: [{name, color, dash, points: [[x, y|null], ...]}];
     * opts: xLabel, yLabel, yFloor/yCeil (limits the y range never goes beyond), empty (message without data).
     */
    function lineChart(id, series, opts) {
        var box = document.getElementById(id);
        var W = Math.max(320, box.clientWidth || 560), H = 260;
        var m = {l: 62, r: 14, t: 12 + 16 * Math.ceil(series.length / 4), b: 42};
        var xs = [], ys = [];
        series.forEach(function (s) {
            s.points.forEach(function (p) {
                if (p[1] !== null && p[1] !== undefined && isFinite(p[1])) {
                    xs.push(p[0]);
                    ys.push(p[1]);
                }
            });
        });
        box.innerHTML = '';
        var svg = node('svg', {width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, 'class': 'mtp-chart',
            'data-points': ys.length}, box);
        box.setAttribute('data-points', ys.length);
        var pw = W - m.l - m.r, ph = H - m.t - m.b;
        var xMin = xs.length ? Math.min.apply(null, xs) : 0, xMax = xs.length ? Math.max.apply(null, xs) : 1;
        var yMin = ys.length ? Math.min.apply(null, ys) : 0, yMax = ys.length ? Math.max.apply(null, ys) : 1;
        if (yMax > yMin) {
            var pad = (yMax - yMin) * 0.06;
            yMin -= pad;
            yMax += pad;
        }
        if (opts.yFloor !== undefined) {
            yMin = Math.max(yMin, opts.yFloor);
        }
        if (opts.yCeil !== undefined) {
            yMax = Math.min(yMax, opts.yCeil);
        }
        if (!(yMax > yMin)) {
            yMax = yMin + 1;
        }
        var tx = ticks(xMin, xMax === xMin ? xMin + 1 : xMax, Math.max(2, Math.floor(pw / 80)), true);
        var ty = ticks(yMin, yMax, 5, false);
        var sx = function (x) { return m.l + (x - tx.lo) / (tx.hi - tx.lo) * pw; };
        var sy = function (y) { return m.t + ph - (y - ty.lo) / (ty.hi - ty.lo) * ph; };

        ty.values.forEach(function (v) {
            node('line', {x1: m.l, x2: m.l + pw, y1: sy(v), y2: sy(v), 'class': 'grid-line'}, svg);
            node('text', {x: m.l - 6, y: sy(v) + 4, 'text-anchor': 'end', 'class': 'tick y-tick'}, svg, format(v, ty.step));
        });
        tx.values.forEach(function (v) {
            node('line', {x1: sx(v), x2: sx(v), y1: m.t + ph, y2: m.t + ph + 4, 'class': 'axis'}, svg);
            node('text', {x: sx(v), y: m.t + ph + 16, 'text-anchor': 'middle', 'class': 'tick x-tick'}, svg, format(v, tx.step));
        });
        node('line', {x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph, 'class': 'axis'}, svg);
        node('line', {x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph, 'class': 'axis'}, svg);
        node('text', {x: m.l + pw / 2, y: H - 6, 'text-anchor': 'middle', 'class': 'axis-label x-label'}, svg, opts.xLabel);
        node('text', {x: 0, y: 0, 'text-anchor': 'middle', 'class': 'axis-label y-label',
            transform: 'translate(14,' + (m.t + ph / 2) + ') rotate(-90)'}, svg, opts.yLabel);

        if (!ys.length) {
            node('text', {x: m.l + pw / 2, y: m.t + ph / 2, 'text-anchor': 'middle', 'class': 'empty'}, svg,
                opts.empty || 'waiting for data…');
        }
        var markers = ys.length <= MAX_MARKERS;
        var clip = 'clip-' + id;
        var defs = node('defs', {}, svg);
        node('rect', {x: m.l, y: m.t - 3, width: pw, height: ph + 6}, node('clipPath', {id: clip}, defs));
        series.forEach(function (s, i) {
            var d = '', n = 0, pen = 'M';
            var g = node('g', {'class': 'series-group', 'clip-path': 'url(#' + clip + ')'}, svg);
            s.points.forEach(function (p) {
                if (p[1] === null || p[1] === undefined || !isFinite(p[1])) {
                    pen = 'M';
                    return;
                }
                d += pen + sx(p[0]).toFixed(1) + ',' + sy(p[1]).toFixed(1);
                pen = 'L';
                n++;
            });
            var path = node('path', {d: d || 'M0,0', 'class': 'series', stroke: s.color, 'data-series': s.name,
                'data-points': n}, g);
            if (s.dash) {
                path.setAttribute('stroke-dasharray', s.dash);
            }
            if (markers) {
                s.points.forEach(function (p) {
                    if (p[1] === null || p[1] === undefined || !isFinite(p[1])) {
                        return;
                    }
                    var c = node('circle', {cx: sx(p[0]), cy: sy(p[1]), r: n > 200 ? 1.4 : 2.6, fill: s.color,
                        'class': 'point', 'data-series': s.name}, g);
                    node('title', {}, c, s.name + ' · step ' + p[0] + ': ' + (+p[1]).toPrecision(4));
                });
            }
            // legend, four entries per row
            var lx = m.l + (i % 4) * Math.min(150, pw / 4), ly = 10 + 16 * Math.floor(i / 4);
            var line = node('line', {x1: lx, x2: lx + 18, y1: ly, y2: ly, stroke: s.color, 'stroke-width': 2.5,
                'class': 'legend-swatch'}, svg);
            if (s.dash) {
                line.setAttribute('stroke-dasharray', s.dash);
            }
            node('text', {x: lx + 22, y: ly + 4, 'class': 'legend'}, svg, s.name);
        });
    }

    /** One bar chart per MoE layer: the share of routed tokens per expert at the latest validation. */
    function expertLoad(v) {
        var box = document.getElementById('expert-load');
        var layers = v ? Object.keys(v.expertLoad || {}) : [];
        document.getElementById('expert-load-step').textContent = v ? '(validation at step ' + v.step + ')' : '';
        box.innerHTML = '';
        box.setAttribute('data-layers', layers.length);
        if (!layers.length) {
            var svg0 = node('svg', {width: 420, height: 40}, box);
            node('text', {x: 8, y: 24, 'class': 'empty'}, svg0,
                v ? 'This model has no MoE layer.' : 'waiting for the first validation…');
            return;
        }
        layers.forEach(function (layer) {
            var f = v.expertLoad[layer];
            var E = f.length, mm = minMax(f);
            var W = 420, H = 210, m = {l: 58, r: 10, t: 30, b: 40};
            var pw = W - m.l - m.r, ph = H - m.t - m.b;
            var div = document.createElement('div');
            div.className = 'layer';
            box.appendChild(div);
            var svg = node('svg', {width: W, height: H, 'class': 'expert-load-chart', 'data-layer': layer,
                'data-experts': E}, div);
            var ratio = mm.min > 0 ? (mm.max / mm.min).toFixed(2) + '×' : '∞ (an expert got no token)';
            node('text', {x: m.l, y: 12, 'class': 'title'}, svg, shortLayer(layer) + ' · ' + layer);
            node('text', {x: m.l, y: 25, 'class': 'imbalance'}, svg, 'max/min ' + ratio + ' · max e' + mm.iMax + ' '
                + (100 * mm.max).toFixed(1) + '%, min e' + mm.iMin + ' ' + (100 * mm.min).toFixed(1) + '%');
            var ty = ticks(0, Math.max(mm.max * 1.1, 1.5 / E), 4, false);
            var sy = function (y) { return m.t + ph - y / ty.hi * ph; };
            ty.values.forEach(function (t) {
                node('line', {x1: m.l, x2: m.l + pw, y1: sy(t), y2: sy(t), 'class': 'grid-line'}, svg);
                node('text', {x: m.l - 6, y: sy(t) + 4, 'text-anchor': 'end', 'class': 'tick y-tick'}, svg,
                    (100 * t).toFixed(t * 100 < 10 && ty.step < 0.05 ? 1 : 0) + '%');
            });
            var bw = pw / E;
            f.forEach(function (x, e) {
                var over = Math.max(-1, Math.min(1, (x * E - 1)));   // -1 underloaded .. +1 twice the uniform share
                var color = over >= 0 ? 'rgb(' + Math.round(220) + ',' + Math.round(120 - 80 * over) + ',' + Math.round(60 - 20 * over) + ')'
                    : 'rgb(' + Math.round(90 + 60 * (1 + over)) + ',' + Math.round(130 + 40 * (1 + over)) + ',220)';
                var r = node('rect', {x: m.l + e * bw + bw * 0.12, y: sy(x), width: bw * 0.76, height: m.t + ph - sy(x),
                    fill: color, 'class': 'bar', 'data-expert': e, 'data-value': x}, svg);
                node('title', {}, r, 'expert ' + e + ': ' + (100 * x).toFixed(2) + '% of routed tokens');
                node('text', {x: m.l + (e + 0.5) * bw, y: m.t + ph + 14, 'text-anchor': 'middle', 'class': 'tick x-tick'},
                    svg, E <= 32 || e % Math.ceil(E / 32) === 0 ? 'e' + e : '');
            });
            node('line', {x1: m.l, x2: m.l + pw, y1: sy(1 / E), y2: sy(1 / E), 'class': 'uniform'}, svg);
            node('text', {x: m.l + pw - 2, y: sy(1 / E) - 4, 'text-anchor': 'end', 'class': 'tick'}, svg, 'uniform 1/' + E);
            node('line', {x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph, 'class': 'axis'}, svg);
            node('line', {x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph, 'class': 'axis'}, svg);
            node('text', {x: m.l + pw / 2, y: H - 6, 'text-anchor': 'middle', 'class': 'axis-label x-label'}, svg, 'expert');
            node('text', {x: 0, y: 0, 'text-anchor': 'middle', 'class': 'axis-label y-label',
                transform: 'translate(14,' + (m.t + ph / 2) + ') rotate(-90)'}, svg, 'share of routed tokens');
        });
    }

    var resizeTimer = null;
    window.addEventListener('resize', function () {
        clearTimeout(resizeTimer);
        resizeTimer = setTimeout(render, 200);
    });

    render();
    poll();
})();

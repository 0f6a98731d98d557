/* dl4j-mtp: an "MTP" entry in the stock sidebar (appended to train.js by MtpUiServer). */
(function () {
    var nav = document.querySelector('.sidebar-nav ul.nav');
    if (!nav || document.getElementById('mtp-nav-link')) {
        return;
    }
    var li = document.createElement('li');
    li.className = 'nav-item';
    li.innerHTML = '<a class="nav-link" id="mtp-nav-link" href="/mtp"><i class="nav-icon cui-layers"></i>MTP</a>';
    var items = nav.children;
    nav.insertBefore(li, items.length > 3 ? items[3] : null);
})();

"""Independent reference for group-limited MoE routing (GroupLimitedRoutingTest).

Implements the router semantics of HF transformers' NemotronH MoE (route_tokens_to_experts) in float64 torch:
  p = sigmoid(logits); c = p + e_score_correction_bias
  group score = sum of the two largest c in each of n_group groups of consecutive experts
  keep the topk_group best groups; experts of the other groups get -inf
  top-k experts on the masked c; weights = p of those experts, / (sum + 1e-20) if norm_topk_prob, * routed_scaling_factor
Also records what plain top-k (no groups) would choose, and whether a 0.0 fill for the excluded experts (DeepSeek-V3's
router) would pick an excluded expert, so the test can show what each case tells apart. Cases are hand-made without near ties (checked below).

Run: /usr/bin/python3 reference.py > expected.json
"""
import json

import torch

torch.set_default_dtype(torch.float64)
MIN_MARGIN = 1e-6


def route(logits, bias, n_group, topk_group, k, norm, scale, fill):
    p = torch.sigmoid(logits)
    c = p + bias
    n, e = c.shape
    grouped = c.view(n, n_group, e // n_group)
    top2 = grouped.topk(2, dim=-1).values
    group_scores = top2.sum(dim=-1)
    check_margin(group_scores, topk_group, "group scores")
    groups = group_scores.topk(topk_group, dim=-1).indices
    keep = torch.zeros(n, n_group, dtype=torch.bool)
    keep.scatter_(1, groups, True)
    keep = keep.unsqueeze(-1).expand(n, n_group, e // n_group).reshape(n, e)
    masked = c.masked_fill(~keep, fill)
    if fill == float("-inf"):
        check_margin(masked, k, "masked choice values")   # a 0.0 fill ties the excluded experts among themselves
    idx = masked.topk(k, dim=-1).indices.sort(dim=-1).values
    w = p.gather(1, idx)
    if norm:
        w = w / (w.sum(dim=-1, keepdim=True) + 1e-20)
    return idx, w * scale


def check_margin(values, k, what):
    """The k-th and (k+1)-th largest of each row must differ clearly: no tie decides the reference."""
    if k >= values.shape[1]:
        return
    s = values.sort(dim=-1, descending=True).values
    gap = (s[:, k - 1] - s[:, k]).min().item()
    if not gap > MIN_MARGIN:
        raise SystemExit(f"{what}: near tie at place {k} (gap {gap})")


CASES = [
    {
        "name": "groups of two, the best single expert's group is left out",
        "n_group": 4, "topk_group": 2, "k": 2, "norm_topk_prob": True, "routed_scaling_factor": 2.5,
        "logits": [[3.0, -3.0, 1.0, 0.9, 0.5, 0.4, -1.0, -2.0],
                   [-0.5, 0.2, 2.5, -2.5, 0.8, 0.7, 0.6, 0.3],
                   [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]],
        "bias": [0.0] * 8,
    },
    {
        "name": "negative biased scores: excluded experts must not win (HF fills -inf, not 0)",
        "n_group": 2, "topk_group": 1, "k": 3, "norm_topk_prob": True, "routed_scaling_factor": 1.0,
        "logits": [[0.3, -0.2, 0.9, 0.1, 2.0, -1.5, -1.2, -0.7],
                   [-1.0, -0.4, -0.8, 0.2, 0.6, 0.5, 0.1, -0.3]],
        "bias": [-1.0] * 8,
    },
    {
        "name": "four groups of two, three kept, top-4, unnormalised, mixed bias",
        "n_group": 4, "topk_group": 3, "k": 4, "norm_topk_prob": False, "routed_scaling_factor": 1.5,
        "logits": [[1.2, -0.3, 0.4, 0.45, -0.9, 2.1, 0.05, -0.6],
                   [-0.2, 0.9, 1.4, -1.1, 0.3, 0.35, 1.9, -2.0],
                   [0.7, 0.6, -0.5, -0.4, 1.1, -1.3, 0.2, 0.25],
                   [-1.6, 2.2, 0.15, 0.1, -0.05, 0.5, 0.95, -0.85]],
        "bias": [0.05, -0.1, 0.2, 0.0, -0.15, 0.1, -0.05, 0.3],
    },
]


def main():
    out = []
    for case in CASES:
        logits = torch.tensor(case["logits"])
        bias = torch.tensor(case["bias"])
        args = (case["n_group"], case["topk_group"], case["k"], case["norm_topk_prob"], case["routed_scaling_factor"])
        idx, w = route(logits, bias, *args, fill=float("-inf"))
        plain_idx, _ = route(logits, bias, 1, 1, *args[2:], fill=float("-inf"))
        zero_idx, _ = route(logits, bias, *args, fill=0.0)
        out.append(dict(case, expected_experts=idx.tolist(), expected_weights=w.tolist(),
                        plain_topk_experts=plain_idx.tolist(),
                        zero_fill_picks_excluded_expert=not torch.equal(zero_idx, idx)))
    print(json.dumps({"generator": "reference.py", "cases": out}, indent=1))


if __name__ == "__main__":
    main()

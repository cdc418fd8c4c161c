"""Chapter 08c (privacy), measured: the accuracy-privacy table of DP-SGD per user, the
membership attack against each model, over three seeds and two datasets; and what Opacus's ghost
clipping saves against per-user gradient hooks.

    .venv/bin/python benchmarks/privacy_benchmark.py        # ~4 minutes on 2 CPU cores

Protocol, per dataset (ShopWorld's clicks, carts and purchases; MovieLens-100K's ratings, every
rating an interaction): each user's last interaction held out; the users split at random (by the
seed) into members and others, half each. ``privacy.HistoryModel`` (64 dimensions) trained on the
members' histories for 20 epochs (Adam, lr 3e-3, expected batch 64, Poisson sampling, input
dropout 0.5), with DP-SGD through Opacus for epsilon in {8, 3, 1} (delta 1e-4, flat clipping at 1,
PRV accountant, ghost clipping) or without (inf). Reported: NDCG@10 of the others' held-out items
(users never trained on) and of the members', the loss-threshold attack's ROC AUC, the noise
multiplier; mean and standard deviation over seeds 0, 1, 2 (the seed draws the split, the
initialisation, the sampling and the noise). The most-popular list (counts over members) is the
floor. Timing: one seed's training at each epsilon with ghost clipping and with per-user hooks
(``grad_sample_mode="hooks"``), the same steps and noise (the two give identical weights:
tests/test_privacy.py).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers.data import loaders, preprocess as pp
from helpers.models import privacy as P  # noqa: E402

EPSILONS = [None, 8.0, 3.0, 1.0]


def split(inter, items, seed):
    im = pp.build_id_map(items)
    train, _, test = pp.leave_last_out(inter)
    s = P.member_split(train, test, im, seed)
    return im, s.x_members, s.x_others, s.t_members, s.t_others


def run(name, inter, items):
    rows, times = [], {}
    for seed in (0, 1, 2):
        im, xm, xo, tm, to = split(inter, items, seed)
        rows.append({"seed": seed, "epsilon": "popular",
                     "NDCG@10 others": P.evaluate(xm.sum(0), xo, to)["ndcg@10"].mean()})
        for eps in EPSILONS:
            modes = ("ghost", "hooks") if seed == 0 and eps is not None else ("ghost",)
            for mode in modes:
                m = P.HistoryModel(len(im), 64, seed=seed)
                t0 = time.perf_counter()
                rep = P.train(m, xm, epsilon=eps, epochs=20, seed=seed, grad_sample_mode=mode,
                              progress=False)
                times[(eps, mode)] = time.perf_counter() - t0
            rows.append({"seed": seed, "epsilon": "inf" if eps is None else eps,
                         "NDCG@10 others": P.evaluate(m, xo, to)["ndcg@10"].mean(),
                         "NDCG@10 members": P.evaluate(m, xm, tm)["ndcg@10"].mean(),
                         "attack AUC": P.membership_auc(m, xm, xo),
                         "noise multiplier": rep.noise_multiplier})
    df = pd.DataFrame(rows)
    agg = df.groupby("epsilon", sort=False).agg(["mean", "std"])
    print(f"\n## {name}: {len(xm)} members, {len(xo)} others, {len(im):,} items\n")
    cols = ["NDCG@10 others", "NDCG@10 members", "attack AUC", "noise multiplier"]
    print("| epsilon | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    for eps, r in agg.iterrows():
        cells = [f"{r[(c, 'mean')]:.4f} ± {r[(c, 'std')]:.4f}" if (c, "mean") in r
                 and not np.isnan(r[(c, "mean")]) else "" for c in cols]
        print(f"| {eps} | " + " | ".join(cells) + " |")
    print("\nSeconds for one training run (seed 0):\n\n| epsilon | ghost clipping | per-user "
          "hooks | ratio |\n|---|---|---|---|")
    for eps in EPSILONS[1:]:
        g, h = times[(eps, "ghost")], times[(eps, "hooks")]
        print(f"| {eps} | {g:.1f} | {h:.1f} | {h / g:.1f}x |")
    print(f"| inf (no DP) | {times[(None, 'ghost')]:.1f} | | |")


def main() -> None:
    torch.set_num_threads(2)
    sw = pp.clean_shopworld(write=False)
    run("ShopWorld", sw["events"][sw["events"]["event_type"] != "view"],
        sw["catalogue"]["item_id"])
    ml = loaders.load_movielens()
    run("MovieLens-100K", ml["ratings"], ml["items"]["item_id"])


if __name__ == "__main__":
    main()

"""Benchmark: collaborative filtering on MovieLens-100K and ShopWorld (issue 4 targets).

    .venv/bin/python benchmarks/cf_benchmark.py            # everything (~3 minutes on 2 cores)

Protocols (state them with the numbers):
- Ratings: 5-fold random cross-validation (sklearn KFold, shuffle, seed 0) over all rated pairs;
  RMSE/MAE of the held-out fold; fit time = wall time of .fit() per fold, 2 CPU threads.
- Top-10, random split: 80/10/10 (seed 0) of all interactions as implicit feedback; every
  user with a test item is ranked over ALL items not in their training set (full ranking);
  relevant = their test items; the validation part is unused here.
- Top-10, leave-last-out: each user's last interaction (timestamp, ties by item id) is the
  test item, the one before validation (unused); full ranking as above.
- ShopWorld: implicit interactions = clicks, carts and purchases of the clean log; ratings =
  purchase ratings (one per user-item pair, the last).
"""
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import KFold

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from helpers.data import loaders, preprocess as pp
from helpers.metrics import ranking as RM
from helpers.models import cf

warnings.filterwarnings("ignore")
torch.set_num_threads(2)

RATING_MODELS = {
    "global mean": lambda: cf.GlobalMean(),
    "user/item biases": lambda: cf.Biases(),
    "item-kNN (pearson-baseline, k=40)": lambda: cf.KNN("item", 40, "pearson", 100, explicit=True),
    "user-kNN (pearson-baseline, k=40)": lambda: cf.KNN("user", 40, "pearson", 100, explicit=True),
    "biased MF, ALS (k=32, λ=0.13, 8 sweeps)": lambda: cf.BiasedMF(32, 0.13, "als", 8),
    "biased MF, Adam (k=64, λ=0.1, 200 steps)": lambda: cf.BiasedMF(64, 0.1, "adam", 200, 0.05),
}
RANKING_MODELS = {
    "most popular": lambda: cf.MostPopular(),
    "item-kNN (cosine, k=100)": lambda: cf.KNN("item", 100, "cosine", 0),
    "BPR (k=64, 60 epochs)": lambda: cf.BPR(64, 1e-3, 60, 0.01),
}


def rating_cv(r, models, folds=5):
    rows = []
    splits = list(KFold(folds, shuffle=True, random_state=0).split(r))
    for name, make in models.items():
        rm, ma, ts = [], [], []
        for tr, te in splits:
            t0 = time.perf_counter()
            m = make().fit(r.iloc[tr])
            ts.append(time.perf_counter() - t0)
            pred = m.predict(r["user_id"].iloc[te], r["item_id"].iloc[te])
            rm.append(RM.rmse(r["rating"].iloc[te], pred))
            ma.append(RM.mae(r["rating"].iloc[te], pred))
        rows.append((name, np.mean(rm), np.std(rm), np.mean(ma), np.mean(ts)))
    return rows


def ranking(inter, models):
    um, im = pp.build_id_map(inter["user_id"]), pp.build_id_map(inter["item_id"])
    tr, _, te = pp.random_split(inter, (0.8, 0.1, 0.1), seed=0)
    tl, _, tel = pp.leave_last_out(inter)
    rows = []
    for name, make in models.items():
        t0 = time.perf_counter()
        a = make().fit(tr, um, im).evaluate(te, k=10)
        fit_s = time.perf_counter() - t0
        b = make().fit(tl, um, im).evaluate(tel, k=10)
        rows.append((name, a["ndcg@10"], a["recall@10"], a["coverage"], b["hr@10"],
                     b["ndcg@10"], fit_s))
    return rows


def print_tables(title, rating_rows, ranking_rows):
    print(f"\n## {title}\n")
    if rating_rows:
        print("| model | RMSE (5-fold) | ± sd | MAE | fit s/fold |\n|---|---:|---:|---:|---:|")
        for name, rm, sd, ma, t in rating_rows:
            print(f"| {name} | {rm:.4f} | {sd:.4f} | {ma:.4f} | {t:.2f} |")
    print("\n| model | NDCG@10 (random) | recall@10 (random) | coverage | HR@10 (LOO) | "
          "NDCG@10 (LOO) | fit+eval s |\n|---|---:|---:|---:|---:|---:|---:|")
    for name, nd, rc, cov, hr, ndl, t in ranking_rows:
        print(f"| {name} | {nd:.4f} | {rc:.4f} | {cov:.3f} | {hr:.4f} | {ndl:.4f} | {t:.1f} |")
    sys.stdout.flush()


def main():
    ml = loaders.load_movielens()["ratings"]
    print_tables("MovieLens-100K (100,000 ratings, 943 users, 1,682 items)",
                 rating_cv(ml, RATING_MODELS), ranking(ml, RANKING_MODELS))
    events = pp.clean_shopworld(write=False)["events"]
    inter = events[events["event_type"] != "view"]
    buys = (events[events["event_type"] == "purchase"]
            .drop_duplicates(["user_id", "item_id"], keep="last"))
    print_tables(f"ShopWorld default world ({len(inter)} interactions, {len(buys)} ratings)",
                 rating_cv(buys, {k: v for k, v in RATING_MODELS.items() if "Adam" not in k}),
                 ranking(inter, RANKING_MODELS))


if __name__ == "__main__":
    main()

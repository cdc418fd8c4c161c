"""Benchmark: SASRec (chapter 03) against chapter 02's models under leave-last-out, on
MovieLens-100K and ShopWorld (issue 5 target: SASRec beats BPR on MovieLens-100K).

    .venv/bin/python benchmarks/sequential_benchmark.py     # ~12 minutes on 2 cores

Protocol: each user's last interaction (timestamp, ties by item id) is the test item, the one
before it validation (unused); models train on the rest; every user is ranked over ALL items
not in their training history (full ranking, no sampled negatives); HR@10, NDCG@10, MRR@10 via
``Recommender.evaluate``. MovieLens: every rating is an interaction. ShopWorld: clicks, carts
and purchases of the cleaned log. Seed 0, 2 CPU threads; "fit s" is the wall time of .fit().
"""
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from helpers.data import loaders, preprocess as pp
from helpers.models import cf
from helpers.models.sequential import SASRecRecommender  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(2)


def models(max_len):
    return {
        "most popular": lambda: cf.MostPopular(),
        "item-kNN (cosine, k=100)": lambda: cf.KNN("item", 100, "cosine", 0),
        "BPR (k=64, 60 epochs)": lambda: cf.BPR(64, 1e-3, 60, 0.01),
        f"SASRec, last {max_len} items, 40 epochs": lambda: SASRecRecommender(
            max_len=max_len, n_epochs=40, lr=3e-3, batch_size=128),
        f"SASRec, whole history in windows of {max_len}, 8 epochs (chapter 03 quick)":
            lambda: SASRecRecommender(max_len=max_len, n_epochs=8, lr=3e-3, batch_size=128,
                                      whole_history=True),
        f"SASRec, whole history in windows of {max_len}, 20 epochs": lambda: SASRecRecommender(
            max_len=max_len, n_epochs=20, lr=1e-3, batch_size=128, whole_history=True),
    }


def table(title, df, max_len):
    um, im = pp.build_id_map(df["user_id"]), pp.build_id_map(df["item_id"])
    train, _, test = pp.leave_last_out(df)
    print(f"\n## {title}\n\n| model | HR@10 | NDCG@10 | MRR@10 | fit s |\n|---|---:|---:|---:|---:|")
    for name, make in models(max_len).items():
        t0 = time.perf_counter()
        m = make().fit(train, um, im)
        fit_s = time.perf_counter() - t0
        r = m.evaluate(test, k=10)
        print(f"| {name} | {r['hr@10']:.4f} | {r['ndcg@10']:.4f} | {r['mrr@10']:.4f} | "
              f"{fit_s:.1f} |", flush=True)


def main():
    ml = loaders.load_movielens()["ratings"]
    table("MovieLens-100K, leave-last-out, full ranking", ml, 50)
    events = pp.clean_shopworld(write=False)["events"]
    table("ShopWorld, leave-last-out, full ranking", events[events["event_type"] != "view"], 20)


if __name__ == "__main__":
    main()

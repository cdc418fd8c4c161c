"""Chapter 08 (diversity), measured: where MMR, a greedy DPP and calibrated re-ranking sit on the
accuracy-diversity frontier, on ShopWorld and on MovieLens-100K.

    .venv/bin/python benchmarks/rerank_benchmark.py        # ~1 minute on 2 CPU cores

Protocol, per dataset: leave-last-out (ShopWorld: its clicks, carts and purchases, as chapters 04
and 07; MovieLens-100K: every rating as an interaction), EASE (lambda 250, chapter 02) fitted on
the rest; each test user's top 100 unseen items are the candidates, re-ranked to 10 by

* MMR (``rerank.mmr``) with lam in {1, 0.9, 0.7, 0.5, 0.3}, similarity = cosine of item vectors;
* greedy DPP (``rerank.dpp_greedy``) with theta in {0.99, 0.9, 0.7, 0.5, 0.3};
* calibration (``rerank.calibrated``) with lam in {0, 0.3, 0.6, 0.9, 0.99}.

Item vectors: ShopWorld — MiniLM text embeddings (chapter 04); MovieLens — one-hot genres.
Categories for calibration: ShopWorld's 8 categories; MovieLens each film's first listed genre.
Reported (``evaluation``): NDCG@10 and HR@10 of the held-out item, intra-list diversity (mean
cosine distance on the same vectors), catalogue coverage, calibration KL (alpha 0.01) against the
user's training mix, and the paired 95 % bootstrap interval of each setting's NDCG@10 change
against EASE's own top 10 (1,000 resamples of the test users, seed 0). All of it is
``rerank.frontier``, the function chapter 08a calls, over ``rerank.FRONTIER_GRID``. One run (EASE
and the greedy loops are deterministic).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers.data import loaders, preprocess as pp
from helpers.models import cf, interest as I
from helpers.serving import rerank as R  # noqa: E402


def frontier(name, inter, items, vectors, category):
    um, im = pp.build_id_map(inter["user_id"]), pp.build_id_map(items)
    train, _, test = pp.leave_last_out(inter)
    users = np.sort(test["user_id"].unique())
    model = cf.EASE(250.0).fit(train, um, im)
    t = R.frontier(model, users, train, test, item_vectors=vectors, item_category=category,
                   n_candidates=100, n_boot=1000, seed=0)
    print(f"\n## {name}: {len(users):,} test users, {len(items):,} items, EASE top-100 -> 10\n\n"
          "| method | knob | NDCG@10 | NDCG change [95 % paired interval] | HR@10 | ILD | "
          "coverage | calibration KL | seconds |\n|---|---|---|---|---|---|---|---|---|")
    for (method, knob), r in t.iterrows():
        print(f"| {method} | {knob} | {r['NDCG@10']:.4f} | {r['diff']:+.4f} "
              f"[{r['diff lo']:+.4f}, {r['diff hi']:+.4f}] | {r['HR@10']:.4f} | {r['ILD']:.3f} | "
              f"{r['coverage']:.3f} | {r['calibration KL']:.3f} | {r['seconds']:.1f} |")
    clear = (t["diff lo"] > 0) | (t["diff hi"] < 0)
    print(f"\nNDCG changes whose interval excludes zero: {int(clear.sum())} of {len(t) - 2} "
          "settings (the two end points that are EASE's own lists left out)")


def main() -> None:
    sw = pp.clean_shopworld(write=False)
    catalogue, events = sw["catalogue"], sw["events"]
    texts = I.item_texts(catalogue)
    emb = pd.DataFrame(I.encode_items(texts).numpy(), index=texts.index)
    frontier("ShopWorld", events[events["event_type"] != "view"], catalogue["item_id"], emb,
             catalogue.set_index("item_id")["category"])
    ml = loaders.load_movielens()
    genres = ml["items"].set_index("item_id")["genres"]
    onehot = genres.str.get_dummies("|").astype(float)
    onehot = onehot.loc[onehot.sum(axis=1) > 0]
    ratings = ml["ratings"][ml["ratings"]["item_id"].isin(onehot.index)]
    frontier("MovieLens-100K", ratings, pd.Series(onehot.index), onehot,
             genres.loc[onehot.index].str.split("|").str[0])


if __name__ == "__main__":
    main()

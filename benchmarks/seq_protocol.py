"""The course's SASRec, BERT4Rec and BPR on the one protocol of issue 38, one run per call
(``benchmarks/peers/seq_protocol_recbole.py`` is RecBole's side; ``benchmarks/peers/
run_seq_protocol.py`` drives both; ``benchmarks/seq_protocol_report.py`` renders the table):

    .venv/bin/python benchmarks/seq_protocol.py --model SASRec --config course --seed 0 \
        --out build/peers-runs/course-SASRec-course-s0.json

* Data and split: MovieLens-100K (RecBole's copy), **RecBole's own leave-one-out split**
  (``loaders.recbole_split("LS")``: the last event of each user is the test item, the one before
  it validation).
* Event order: **RecBole's** (``protocol_common.recbole_event_order``: float32 min-max-scaled
  timestamps, equal ones in file order), handed to the model as its time column, so both
  libraries read the same sequences; checked here against the split (every user's last two
  events in that order are RecBole's validation and test items).
* Early stopping: the course's own (``fit(..., valid=)``): validation MRR@10 with the user's
  training items masked, a strictly better epoch kept, stop after 10 without one, best weights
  restored; at most 300 epochs. RecBole's side runs the same rule.
* Test: the model reads training + validation as its history (``use_history``), and its score
  matrix (``scores``) is ranked twice by ``protocol_common.target_ranks``: ``masked`` (the
  user's training and validation items masked, the course's protocol) and ``padding`` (nothing
  masked: the course's models have no padding column; RecBole's own protocol for sequential
  models). The ``masked`` mean NDCG@10 is checked against the course's ``evaluate``.
* Settings: the tuning grid ``CONFIGS`` — the same two points for both libraries.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks/peers"))
import protocol_common as pc

from helpers.data import loaders, preprocess as pp
from helpers.models import cf
from helpers.models.interest import BERT4RecRecommender
from helpers.models.sequential import SASRecRecommender

warnings.filterwarnings("ignore")
MAX_EPOCHS = 300


def make(model: str, knobs: dict, seed: int, max_epochs: int):
    if model == "SASRec":
        return SASRecRecommender(max_len=50, n_epochs=max_epochs, whole_history=True,
                                 dropout=knobs["dropout"], batch_size=knobs["batch_size"],
                                 lr=knobs["lr"], seed=seed)
    if model == "BERT4Rec":       # 49 history items + [MASK], as RecBole's at length 50
        return BERT4RecRecommender(max_len=50, n_epochs=max_epochs, dropout=knobs["dropout"],
                                   batch_size=knobs["batch_size"], lr=knobs["lr"], seed=seed)
    # BPR: RecBole's settings (lr 1e-3, no regularisation, no item bias, Xavier-scale init)
    return cf.BPR(n_factors=64, lr=knobs["lr"], reg=0.0, item_bias=False, init_std=0.035,
                  n_negatives=knobs["n_negatives"], batch_size=knobs["batch_size"],
                  n_epochs=max_epochs, seed=seed)


def recbole_ordered_ls():
    """Ratings with RecBole's event order as the time column, and RecBole's LS split."""
    ratings = loaders.load_movielens("recbole")["ratings"]
    ordered = ratings.assign(timestamp=pc.recbole_event_order(ratings["user_id"],
                                                              ratings["timestamp"]))
    train, valid, test = loaders.recbole_split("LS", ordered)
    last_two = ordered.sort_values("timestamp").groupby("user_id").tail(2)
    got = last_two.groupby("user_id")["item_id"].apply(list)
    want = pd.concat([valid, test]).sort_values("timestamp").groupby("user_id")["item_id"].apply(list)
    if not got.equals(want):
        raise SystemExit("RecBole's validation/test items are not each user's last two events "
                         "in RecBole's order")
    return ordered, train, valid, test


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=sorted(pc.CONFIGS), required=True)
    ap.add_argument("--config", choices=["course", "recbole"], required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--max-epochs", type=int, default=MAX_EPOCHS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    if out.is_file():
        print(f"{out} exists: nothing to do")
        return
    torch.set_num_threads(args.threads)
    knobs = pc.CONFIGS[args.model][args.config]
    ordered, train, valid, test = recbole_ordered_ls()
    users, items = pp.build_id_map(ordered["user_id"]), pp.build_id_map(ordered["item_id"])
    model = make(args.model, knobs, args.seed, args.max_epochs)
    t0 = time.perf_counter()
    model.fit(train, users, items, valid=valid, patience=pc.PATIENCE)
    fit_s = time.perf_counter() - t0

    def score_rows(part: pd.DataFrame):
        part = part.sort_values("user_id")
        idx = model.user_map.encode(part["user_id"], "user")
        target = model.item_map.encode(part["item_id"], "item")
        return part["user_id"].to_numpy(), model.scores(idx), target

    def mask_of(user_ids, *parts) -> np.ndarray:
        row = {int(u): k for k, u in enumerate(user_ids)}
        m = np.zeros((len(user_ids), len(model.item_map)), dtype=bool)
        for p in parts:
            m[[row[int(u)] for u in p["user_id"]], model.item_map.encode(p["item_id"], "item")] = True
        return m

    result = {"library": "course", "model": args.model, "config": args.config,
              "settings": knobs, "seed": args.seed, "max_epochs": args.max_epochs,
              "epochs_run": len(model.history), "patience": pc.PATIENCE,
              "valid_mrr_history": list(map(float, getattr(model, "history_valid", []))),
              "train_loss_history": list(map(float, model.history)),
              "fit_seconds": round(fit_s, 1), "threads": args.threads, "ranks": {},
              "summary": {}, "held_out": {}}
    hv = result["valid_mrr_history"]
    result["best_epoch"] = int(np.argmax(hv)) + 1 if hv else None
    sequential = args.model != "BPR"
    for name, part, history in (("valid", valid, [train]), ("test", test, [train, valid])):
        if sequential and name == "test":
            model.use_history(pd.concat([train, valid]))   # the validation item: newest input
        u, s, target = score_rows(part)
        masks = {"masked": mask_of(u, *history), "padding": np.zeros(s.shape, dtype=bool)}
        for cand, m in masks.items():
            r = pc.target_ranks(s, target, m)
            result["ranks"][f"{name}/{cand}"] = r.astype(int).tolist()
            result["summary"][f"{name}/{cand}"] = pc.summary(r)
        result["users"] = u.astype(int).tolist()
        result["held_out"][name] = part.sort_values("user_id")["item_id"].astype(int).tolist()
    # the course's own evaluation must agree on the masked candidate set
    own = model.evaluate(test, 10, exclude=valid)
    result["course_own_test"] = {k: float(v) for k, v in own.items()}
    if abs(own["ndcg@10"] - result["summary"]["test/masked"]["ndcg@10"]) > 1e-9:
        raise SystemExit(f"masked NDCG@10 {result['summary']['test/masked']['ndcg@10']} differs "
                         f"from the course's evaluate {own['ndcg@10']}")
    result["environment"] = {"torch": torch.__version__, "numpy": np.__version__,
                             "python": platform.python_version(),
                             "machine": platform.processor() or platform.machine(),
                             "threads": args.threads}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=0) + "\n")
    print(json.dumps(result["summary"]), flush=True)


if __name__ == "__main__":
    main()

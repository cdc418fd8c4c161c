"""Issue 38's "two models hitting the same HR@10 under both protocols": run the course's SASRec
and BERT4Rec exactly as ``benchmarks/toolkit_protocols.py`` does (one process, SASRec first,
the course's item-id tie order, its settings, RecBole's LS split), and store each model's
per-user test rank on both candidate sets (history masked; nothing masked), so the users each
model hits can be compared, not only their number. A shared state between the two models would
show as the same hit users; the in-process order is the old script's.

    .venv/bin/python benchmarks/seq_protocol_hr_probe.py --out build/peers-runs/hr-probe.json
"""
from __future__ import annotations

import argparse
import json
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
from helpers.models.interest import BERT4RecRecommender
from helpers.models.sequential import SASRecRecommender

warnings.filterwarnings("ignore")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-epochs", type=int, default=300, help="the old script's 300")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.is_file():
        print(f"{out} exists: nothing to do")
        return
    torch.set_num_threads(args.threads)
    ml = loaders.load_movielens("recbole")["ratings"]
    users, items = pp.build_id_map(ml["user_id"]), pp.build_id_map(ml["item_id"])
    train, valid, test = loaders.recbole_split("LS", ml)
    test = test.sort_values("user_id")
    result = {"threads": args.threads, "max_epochs": args.max_epochs, "models": {}}
    for name, make in (("SASRec (whole history)",
                        lambda: SASRecRecommender(n_epochs=args.max_epochs, whole_history=True)),
                       ("BERT4Rec", lambda: BERT4RecRecommender(n_epochs=args.max_epochs))):
        model = make()
        t0 = time.perf_counter()
        model.fit(train, users, items, valid=valid)
        model.use_history(pd.concat([train, valid]))
        own = model.evaluate(test, 10, exclude=valid)
        idx = model.user_map.encode(test["user_id"], "user")
        target = model.item_map.encode(test["item_id"], "item")
        scores = model.scores(idx)
        row = {u: k for k, u in enumerate(test["user_id"])}
        hist = np.zeros(scores.shape, dtype=bool)
        for part in (train, valid):
            keep = part[part["user_id"].isin(row)]
            hist[[row[u] for u in keep["user_id"]],
                 model.item_map.encode(keep["item_id"], "item")] = True
        ranks = {"masked": pc.target_ranks(scores, target, hist),
                 "padding": pc.target_ranks(scores, target, np.zeros_like(hist))}
        result["models"][name] = {
            "epochs": len(model.history), "fit_seconds": round(time.perf_counter() - t0, 1),
            "evaluate": {k: float(v) for k, v in own.items()},
            "summary": {c: pc.summary(r) for c, r in ranks.items()},
            "ranks": {c: r.astype(int).tolist() for c, r in ranks.items()}}
        print(name, result["models"][name]["summary"], flush=True)
    a, b = (result["models"][m]["ranks"] for m in result["models"])
    for cand in ("masked", "padding"):
        ha, hb = np.array(a[cand]) <= 10, np.array(b[cand]) <= 10
        result[f"hits {cand}"] = {"SASRec": int(ha.sum()), "BERT4Rec": int(hb.sum()),
                                  "both": int((ha & hb).sum()),
                                  "identical ranks": int((np.array(a[cand]) ==
                                                          np.array(b[cand])).sum())}
    result["users"] = test["user_id"].astype(int).tolist()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=0) + "\n")
    print({k: v for k, v in result.items() if k.startswith("hits")}, flush=True)


if __name__ == "__main__":
    main()

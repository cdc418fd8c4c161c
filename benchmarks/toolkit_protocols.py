"""The course's recommenders on the field's toolkits' own protocols, beside the toolkits.

    .venv/bin/python benchmarks/toolkit_protocols.py          # ~20 minutes on 2 CPU cores
    .venv/bin/python benchmarks/toolkit_protocols.py 2>/dev/null   # tables only, no epoch bars

Reads what ``make peers`` wrote (``benchmarks/results/peers_ml100k.json``: RecBole 1.2.1 and
Surprise 1.1.5 on this machine) and prints one Markdown table per protocol, the course's rows
next to the toolkits'. MovieLens-100K, every rating an interaction, full ranking, k = 10.

* ``RO_RS`` (RecBole's default): each user's interactions in random order, 8:1:1 per user.
* ``LS`` (RecBole's leave-one-out): each user's last interaction by time is the test item,
  the one before it validation.

The models train and test on **RecBole's own split** (``loaders.recbole_split``: the very rows
its models used). That makes the *split* the same, not the protocol: for SASRec and BERT4Rec
the rows here differ in candidate set, event tie order, early-stopping rule, tuning budget and
seeds as well (below), so they are not a comparison of the models;
``benchmarks/seq_protocol_report.py`` (``benchmarks/results/13_same_protocol_cpu.md``) is, on one
protocol for both libraries. For the general models (BPR, EASE, ALS) the evaluation is the same
on both sides: the course's EASE at RecBole's weight (250) reproduces RecBole's EASE to four
decimals on it (``tests/test_toolkit_parity.py``). The course's own split functions are checked against that
split user by user: ``pp.per_user_split`` draws its own random 8:1:1 with RecBole's per-user
sizes; ``pp.leave_last_out(ties="input")`` picks RecBole's test item for 939 of 943 users (the
other 4: RecBole keeps min-max-normalised timestamps in float32, where events a second apart
tie and go by file order; ``tests/test_toolkit_parity.py`` reproduces all 943 so).

The course's rows: testing masks the user's training and validation items, validation masks
training items — as RecBole does for its *general* models (Pop, BPR, EASE), but not for its
sequential ones: for SASRec and BERT4Rec RecBole 1.2.1 masks only the padding column
(``FullSortEvalDataLoader`` passes no history when the model is sequential;
``Trainer._full_sort_batch_eval``), at validation and at test, so its two rows here rank the
test item against the user's whole history too. Models that train for epochs stop early on
validation MRR@10 after 10 epochs without a strictly better one (RecBole's trainer counts an
equal score as better and stops after 11: ``recbole.utils.early_stopping``); the others'
hyper-parameters are chosen on validation NDCG@10 from the small grids below. SASRec and
BERT4Rec read the validation item as the newest input when they are tested
(``use_history(train + valid)``), as RecBole's sequential models do. The course orders events
of equal time by item id, RecBole by file order after float32 scaling (sequences differ for
most users). The course's SASRec/BERT4Rec settings (dropout 0.2, batch 128, lr 1e-3 / 3e-3) were
chosen while looking at test figures of an earlier split; RecBole's rows are its yaml defaults
(dropout 0.5 for SASRec, batch 2048, lr 1e-3), one run each, seed 2020. BPR runs with
three seeds (its figures are their mean, with the test NDCG's standard deviation): seed to seed
it moves by about 0.006 on RO_RS, more than it differs from RecBole's single run. Fit times are
wall-clock on this machine, 2 threads, like the peers' (unless a peer row says otherwise).
* Ratings: 5-fold cross-validation on the peers' folds (scikit-learn ``KFold``, shuffle,
  seed 0), RMSE of each held-out fold.
"""
from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import KFold

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from helpers.data import loaders, preprocess as pp
from helpers.models import cf
from helpers.models.interest import BERT4RecRecommender  # noqa: E402
from helpers.models.sequential import SASRecRecommender  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(2)
PEERS = ROOT / "benchmarks/results/peers_ml100k.json"
K = 10


def check_split(name: str, parts, peers: dict) -> str:
    """Compare the course's per-user part sizes with RecBole's (written by the peers' run)."""
    sizes = peers.get("recbole_split_sizes", {}).get(name)
    if sizes is None:
        return "not checked (no peers run yet)"
    ours = {}
    for k, part in enumerate(parts):
        for u, n in part.groupby("user_id").size().items():
            ours.setdefault(str(u), [0, 0, 0])[k] = int(n)
    same = sum(ours.get(u) == v for u, v in sizes.items())
    return f"{same} of {len(sizes)} users' train/valid/test sizes equal RecBole's"


BPR_TUNED = dict(n_factors=64, lr=1e-3, reg=0.0, item_bias=False, init_std=0.035,
                 n_negatives=4, n_epochs=300)


def ranking_rows(train, valid, test, users, items, sequential: bool = False) -> list[dict]:
    rows = []
    history = pd.concat([train, valid])

    def run(name, make, fit_kw=None, seeds=None) -> float:
        """Fit and test; with ``seeds``, ``make(seed)`` for each, the mean of each figure and
        the test NDCG's standard deviation across seeds."""
        got = []
        for seed in seeds or (None,):
            model = make() if seed is None else make(seed)
            t0 = time.perf_counter()
            model.fit(train, users, items, **(fit_kw or {}))
            secs = time.perf_counter() - t0
            v = model.evaluate(valid, K)
            if hasattr(model, "use_history"):
                model.use_history(history)
            t = model.evaluate(test, K, exclude=valid)
            got.append({"fit s": secs, "valid NDCG@10": v["ndcg@10"], "NDCG@10": t["ndcg@10"],
                        "HR@10": t["hr@10"], "MRR@10": t["mrr@10"]})
        row = {"model": name, **pd.DataFrame(got).mean().to_dict()}
        row["fit s"] = round(row["fit s"], 1)
        row["NDCG@10 sd"] = pd.Series([g["NDCG@10"] for g in got]).std() if len(got) > 1 else None
        rows.append(row)
        return row["valid NDCG@10"]

    def best_of(grid: dict) -> None:
        """Run every setting of a grid ({name: factory}); keep the row of the best on
        validation NDCG@10 only."""
        scored = {name: run(name, make) for name, make in grid.items()}
        best = max(scored, key=scored.get)
        rows[:] = [r for r in rows if r["model"] == best or r["model"] not in scored]

    run("course: most popular", cf.MostPopular)
    run("course: BPR, RecBole's settings (1 negative), 3 seeds",
        lambda seed: cf.BPR(**{**BPR_TUNED, "n_negatives": 1}, seed=seed), {"valid": valid},
        seeds=(0, 1, 2))
    run("course: BPR, 4 negatives, 3 seeds", lambda seed: cf.BPR(**BPR_TUNED, seed=seed),
        {"valid": valid}, seeds=(0, 1, 2))
    best_of({f"course: EASE (λ={reg})": (lambda reg=reg: cf.EASE(reg))
             for reg in (100.0, 250.0, 500.0, 1000.0)})
    best_of({f"course: implicit ALS (α={a}, λ={r})": (lambda a=a, r=r: cf.ImplicitALS(64, r, a))
             for a in (1.0, 5.0, 20.0) for r in (0.1, 5.0)})
    if sequential:
        run("course: SASRec (whole history)",
            lambda: SASRecRecommender(n_epochs=300, whole_history=True), {"valid": valid})
        run("course: BERT4Rec", lambda: BERT4RecRecommender(n_epochs=300), {"valid": valid})
    return rows


def peer_rows(peers: dict, protocol: str) -> list[dict]:
    out = []
    for key, res in sorted(peers.get("implicit", {}).items()):
        model, proto = key.split("/")
        if proto == protocol:
            t = res["test"]
            out.append({"model": f"implicit: {model} (α=1.0, λ=5.0)", "fit s": res["seconds"],
                        "valid NDCG@10": res["valid"]["ndcg@10"], "NDCG@10": t["ndcg@10"],
                        "HR@10": t["hit@10"], "MRR@10": t["mrr@10"]})
    for key, res in sorted(peers.get("recbole", {}).items()):
        model, proto = key.split("/")
        if proto != protocol:
            continue
        t = res["test"]
        note = ""
        if res.get("device") == "cuda":         # trained on a borrowed GPU: fit s is its time
            gpu = res.get("environment", {}).get("gpu", "a GPU")
            note = f" (on {gpu}, {res.get('threads', 2)} CPU threads)"
        elif res.get("max_epochs", 300) < 300 or res.get("threads", 2) != 2:
            note = f" ({res.get('threads', 2)} thread(s), at most {res['max_epochs']} epochs)"
        if model in ("SASRec", "BERT4Rec"):      # RecBole masks no history for these
            note += " [only padding masked, its defaults, 1 seed]"
        out.append({"model": f"RecBole: {model}{note}", "fit s": res["seconds"],
                    "valid NDCG@10": res["valid"].get("ndcg@10"), "NDCG@10": t.get("ndcg@10"),
                    "HR@10": t.get("hit@10"), "MRR@10": t.get("mrr@10")})
    return out


def rating_rows(ratings: pd.DataFrame, peers: dict) -> list[dict]:
    rows = []
    models = {"course: user/item biases": lambda: cf.Biases(),
              "course: item-kNN (pearson-baseline, k=40)":
                  lambda: cf.KNN("item", 40, "pearson", 100, explicit=True),
              "course: biased MF, ALS (k=32, λ=0.13, 8 sweeps)":
                  lambda: cf.BiasedMF(32, 0.13, "als", 8),
              "course: Bayesian MF, Gibbs (k=10, α=1.5, 100 samples)":
                  lambda: cf.BayesianMF(10, n_samples=100, burn_in=20, alpha=1.5)}
    for name, make in models.items():
        rmse, fit = [], []
        for tr, te in KFold(5, shuffle=True, random_state=0).split(ratings):
            m = make()
            t0 = time.perf_counter()
            m.fit(ratings.iloc[tr])
            fit.append(time.perf_counter() - t0)
            test = ratings.iloc[te]
            pred = m.predict(test["user_id"], test["item_id"])
            rmse.append(float(np.sqrt(np.mean((pred - test["rating"].to_numpy()) ** 2))))
        rows.append({"model": name, "RMSE": np.mean(rmse), "fit s/fold": np.mean(fit)})
    for name, res in sorted(peers.get("surprise", {}).items()):
        rows.append({"model": f"Surprise: {name}", "RMSE": res["rmse"],
                     "fit s/fold": res["fit_seconds_per_fold"]})
    return rows


def main() -> None:
    peers = json.loads(PEERS.read_text()) if PEERS.is_file() else {}
    ml = loaders.load_movielens()["ratings"]
    users, items = pp.build_id_map(ml["user_id"]), pp.build_id_map(ml["item_id"])
    ours = {"RO_RS": pp.per_user_split(ml, seed=0), "LS": pp.leave_last_out(ml, ties="input")}
    for name, parts in ours.items():
        print(f"\n### {name}, on RecBole's own split\n")
        print(f"The course's split function: {check_split(name, parts, peers)}", end="")
        if name == "LS" and "recbole_test_items" in peers:
            want = peers["recbole_test_items"]["LS"]
            got = dict(zip(parts[2]["user_id"].astype(str), parts[2]["item_id"].astype(str)))
            same = sum(got.get(u) == i for u, i in want.items())
            print(f"; test item equal to RecBole's for {same} of {len(want)} users", end="")
        rows = ranking_rows(*loaders.recbole_split(name, ml), users, items,
                            sequential=name == "LS") + peer_rows(peers, name)
        print("\n\n" + pd.DataFrame(rows).round(4).to_markdown(index=False))
    print("\n### Ratings, 5-fold cross-validation (the peers' folds)\n")
    print(pd.DataFrame(rating_rows(ml, peers)).round(4).to_markdown(index=False))
    env = peers.get("environment")
    print(f"\nPeers: {env}" if env else "\nPeers: not run yet (make peers)")


if __name__ == "__main__":
    main()

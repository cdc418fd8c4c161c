"""The field's toolkits on MovieLens-100K, run on their own protocols: the numbers the course's
recommenders are set beside (``benchmarks/toolkit_protocols.py`` reads what this writes).

    make peers                                      # builds build/peers-venv, then runs this
    build/peers-venv/bin/python benchmarks/peers/run_peers.py --only surprise
    build/peers-venv/bin/python benchmarks/peers/run_peers.py --only recbole --models Pop,BPR
    build/peers-venv/bin/python benchmarks/peers/run_peers.py --only recbole --models SASRec \
        --protocols LS --threads 1 --resume      # hours: go on from the last checkpoint
    python3 benchmarks/peers/run_peers.py --only recbole --models SASRec,BERT4Rec --protocols LS \
        --device cuda --out build/peers_gpu.json # minutes on a GPU (tools/gpu/session.sh)

Runs in its own environment (``benchmarks/peers/requirements*.txt``: RecBole 1.2.1 needs numpy<2,
pandas<2.3, scipy<1.14, setuptools<70); the course and its tests never import it. RecBole's
SASRec and BERT4Rec also run beside numpy 2 with pandas 2.2.3 (``numpy2_shim``), as on the GPU
machine, where they gave the committed ``SASRec/LS`` and ``BERT4Rec/LS`` entries (their split
checked identical to the one stored here, user by user). The data is
RecBole's own copy of MovieLens-100K, shipped inside its wheel (``recbole/dataset_example``),
the same file the course loads (``helpers.data.loaders.load_movielens``).

* **RecBole** (Pop, BPR, SASRec, BERT4Rec), each with the toolkit's defaults for the model
  (``recbole/properties/model/*.yaml``), seed 2020, on both protocols:

  - ``RO_RS``: each user's interactions in random order, split 8:1:1 per user (RecBole's
    default: ``split: {RS: [0.8, 0.1, 0.1]}, order: RO, group_by: user``);
  - ``LS``: leave-one-out by time (``split: {LS: valid_and_test}, order: TO``);

  full ranking over every item (``mode: full``); for the general models (Pop, BPR, EASE) the
  user's training items are masked at validation and training + validation items at test, but
  for SASRec and BERT4Rec RecBole 1.2.1 masks only the padding column (its
  ``FullSortEvalDataLoader`` passes no history for sequential models), so they rank the held-out
  item against the user's history too (``seq_protocol_recbole.py`` scores them both ways);
  early stopping on validation MRR@10 (an equal score counts as a gain; stop after 11
  evaluations without one: ``recbole.utils.early_stopping`` with ``stopping_step`` 10), at
  most 300 epochs (``--max-epochs`` caps it, and the cap is recorded); every rating counts as
  an interaction (no threshold). SASRec and BERT4Rec run on ``LS`` only (sequences need time
  order). For each protocol the per-user sizes of
  RecBole's own train/valid/test parts are written too, so the course's split functions are
  checked against them user by user.
* **implicit** 0.7.3: its exact ALS with the course's settings on RecBole's own splits (the
  library peer of ``cf.ImplicitALS``; ``run_implicit``).
* **Surprise** (BaselineOnly, SVD, KNNBaseline; defaults, ``random_state=0`` where there is
  one): 5-fold cross-validation of ratings on the course's folds (scikit-learn ``KFold``,
  shuffle, seed 0, over the rows in file order), RMSE and MAE of each held-out fold, fit time
  per fold.

Writes ``benchmarks/results/peers_ml100k.json`` (merged with an earlier run's entries) and the
toolkits' logs under ``build/peers/``. Wall times are this machine's (2 CPU threads).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # RecBole 1.2.1 predates torch 2.6

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "benchmarks/results/peers_ml100k.json"
SPLITS = ROOT / "datasets/movielens_recbole_splits.json.gz"
WORK = ROOT / "build/peers"
PROTOCOLS = {
    "RO_RS": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user",
              "mode": "full"},
    "LS": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
}
SEQUENTIAL = {"SASRec", "BERT4Rec"}


def numpy2_shim() -> None:
    """RecBole 1.2.1's configurator re-creates numpy's removed aliases from ``np.float_`` and
    ``np.complex_``, which numpy 2 removed too: give them back (the same types) so RecBole runs
    beside a numpy 2 stack (the GPU machine's). Nothing else changes; with numpy 1 it is a no-op."""
    import numpy as np

    for old, new in (("float_", "float64"), ("complex_", "complex128"), ("unicode_", "str_")):
        if not hasattr(np, old):
            setattr(np, old, getattr(np, new))


DEVICE = "cpu"   # --device; RecBole takes it as use_gpu (with gpu_id 0)
GPU_ENVIRONMENT: dict = {}   # a --device cuda run's machine, stored with each of its results


def recbole_config(model: str, protocol: str, max_epochs: int = 300) -> dict:
    import recbole

    numpy2_shim()

    cfg = {
        "data_path": str(Path(recbole.__file__).parent / "dataset_example"),
        "checkpoint_dir": str(WORK / "saved"), "log_wandb": False, "show_progress": False,
        "use_gpu": DEVICE == "cuda", "worker": 0, "seed": 2020, "reproducibility": True,
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
        "eval_args": PROTOCOLS[protocol],
        "metrics": ["Recall", "MRR", "NDCG", "Hit", "Precision"], "topk": [10],
        "valid_metric": "MRR@10", "epochs": max_epochs,
    }
    if model in SEQUENTIAL:
        cfg["train_neg_sample_args"] = None        # SASRec / BERT4Rec train with cross-entropy
    return cfg


def split_sizes(protocol: str) -> tuple[dict[str, list[int]], dict[str, str]]:
    """Per user (MovieLens user id): sizes of RecBole's train, valid and test parts, and the
    test item where the user has exactly one (leave-one-out). Also writes the split itself
    into ``datasets/movielens_recbole_splits.json.gz`` (``helpers.data.loaders.recbole_split`` reads
    it), so the course's models can be trained and tested on RecBole's very split: one digit
    per rating (0 train, 1 valid, 2 test), the ratings in (user_id, item_id) order. Only the
    part labels are stored, never the ratings (MovieLens may not be redistributed)."""
    import pandas as pd
    from recbole.config import Config
    from recbole.data import create_dataset

    config = Config(model="Pop", dataset="ml-100k", config_dict=recbole_config("Pop", protocol))
    from recbole.utils import init_seed
    init_seed(config["seed"], config["reproducibility"])
    ds = create_dataset(config)
    sizes: dict[str, list[int]] = {}
    test: dict[str, list[str]] = {}
    frames = []
    for k, part in enumerate(ds.build()):
        users = ds.id2token(ds.uid_field, part.inter_feat[ds.uid_field].numpy())
        items = ds.id2token(ds.iid_field, part.inter_feat[ds.iid_field].numpy())
        frames.append(pd.DataFrame({"user_id": users.astype(int), "item_id": items.astype(int),
                                    "part": k}))
        for u, i in zip(users, items):
            sizes.setdefault(str(u), [0, 0, 0])[k] += 1
            if k == 2:
                test.setdefault(str(u), []).append(str(i))
    parts = pd.concat(frames).sort_values(["user_id", "item_id"])
    if len(parts) != 100_000 or parts.duplicated(["user_id", "item_id"]).any():
        raise SystemExit(f"RecBole's {protocol} split has {len(parts)} rows, not the 100,000 "
                         "distinct (user, item) pairs of MovieLens-100K")
    stored = json.loads(gzip.decompress(SPLITS.read_bytes())) if SPLITS.is_file() else {
        "about": "RecBole 1.2.1's own splits of MovieLens-100K (seed 2020), written by "
                 "benchmarks/peers/run_peers.py: one digit per rating, 0 train, 1 valid, "
                 "2 test, ratings sorted by (user_id, item_id)."}
    stored[protocol] = "".join(map(str, parts["part"]))
    SPLITS.write_bytes(gzip.compress(json.dumps(stored, indent=0).encode(), mtime=0))
    return sizes, {u: i[0] for u, i in test.items() if len(i) == 1}


def latest_checkpoint(model: str, protocol: str) -> Path | None:
    """The newest checkpoint RecBole saved for this model on this protocol (it saves one at
    every epoch whose validation score is the best so far), or None."""
    import torch

    for path in sorted((WORK / "saved").glob(f"{model}-*.pth"), key=lambda p: p.stat().st_mtime,
                       reverse=True):
        saved = torch.load(path, map_location="cpu", weights_only=False)  # RecBole's own file
        if saved["config"]["eval_args"]["split"] == PROTOCOLS[protocol]["split"]:
            return path
    return None


def train_and_test(model: str, cfg: dict, resume: Path | None = None) -> dict:
    """RecBole's ``quick_start.run_recbole`` step by step (that module imports ray at the top,
    which this environment leaves out): seed, dataset, split, model, trainer; fit with early
    stopping, keeping the best epoch's checkpoint; test that checkpoint.

    ``resume``: a checkpoint of an interrupted run (``latest_checkpoint``); RecBole's
    ``resume_checkpoint`` restores the weights, the optimiser, the epoch and the best score, so
    training goes on from the best epoch so far (epochs after it are run again, with other
    random batches than the interrupted run drew)."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    config = Config(model=model, dataset="ml-100k", config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    net = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    if resume is not None:
        trainer.resume_checkpoint(resume)
    _, valid = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    return {"best_valid_result": valid, "test_result": test}


def run_recbole_models(models: list[str], protocols: list[str], results: dict,
                       max_epochs: int = 300, threads: int = 2, resume: bool = False) -> None:
    import torch

    torch.set_num_threads(threads)
    for protocol in protocols:
        sizes, test_items = split_sizes(protocol)
        results.setdefault("recbole_split_sizes", {})[protocol] = sizes
        if protocol == "LS":
            results.setdefault("recbole_test_items", {})[protocol] = test_items
        for model in models:
            if model in SEQUENTIAL and protocol != "LS":
                continue
            start = latest_checkpoint(model, protocol) if resume else None
            print(f"RecBole {model} on {protocol} ..." + (f" resumed from {start.name}"
                                                          if start else ""), flush=True)
            t0 = time.perf_counter()
            out = train_and_test(model, recbole_config(model, protocol, max_epochs), start)
            secs = time.perf_counter() - t0
            results.setdefault("recbole", {})[f"{model}/{protocol}"] = {
                "test": {k: float(v) for k, v in out["test_result"].items()},
                "valid": {k: float(v) for k, v in out["best_valid_result"].items()},
                "seconds": round(secs, 1), "max_epochs": max_epochs,
                "threads": threads, "device": DEVICE, "resumed_from": start.name if start else None,
                **({"environment": dict(GPU_ENVIRONMENT)} if DEVICE == "cuda" else {})}
            print(f"  {out['test_result']}  ({secs:.0f} s)", flush=True)
            save(results)


def run_surprise(results: dict) -> None:
    import numpy as np
    import pandas as pd
    import recbole
    from sklearn.model_selection import KFold
    from surprise import SVD, BaselineOnly, Dataset, KNNBaseline, Reader, accuracy

    inter = pd.read_csv(Path(recbole.__file__).parent / "dataset_example/ml-100k/ml-100k.inter",
                        sep="\t")
    inter.columns = [c.split(":")[0] for c in inter.columns]
    ratings = inter[["user_id", "item_id", "rating"]]
    data = Dataset.load_from_df(ratings, Reader(rating_scale=(1, 5)))
    rows = [tuple(r) + (None,) for r in ratings.itertuples(index=False)]
    algos = {"BaselineOnly": lambda: BaselineOnly(verbose=False),
             "SVD": lambda: SVD(random_state=0),
             "KNNBaseline": lambda: KNNBaseline(verbose=False)}
    for name, make in algos.items():
        rmse, mae, fit = [], [], []
        for tr, te in KFold(5, shuffle=True, random_state=0).split(ratings):
            trainset = data.construct_trainset([rows[k] for k in tr])
            testset = data.construct_testset([rows[k] for k in te])
            algo = make()
            t0 = time.perf_counter()
            algo.fit(trainset)
            fit.append(time.perf_counter() - t0)
            pred = algo.test(testset)
            rmse.append(accuracy.rmse(pred, verbose=False))
            mae.append(accuracy.mae(pred, verbose=False))
        results.setdefault("surprise", {})[name] = {
            "rmse": float(np.mean(rmse)), "rmse_folds": [float(x) for x in rmse],
            "mae": float(np.mean(mae)), "fit_seconds_per_fold": float(np.mean(fit))}
        print(f"Surprise {name}: RMSE {np.mean(rmse):.4f}, fit {np.mean(fit):.1f} s/fold",
              flush=True)
        save(results)


def save(results: dict) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


def run_implicit(results: dict) -> None:
    """``implicit``'s exact ALS (Hu, Koren & Volinsky; ``use_cg=False``) on RecBole's own splits
    (``datasets/movielens_recbole_splits.json.gz``), with the course's settings (64 factors,
    regularisation 5, alpha 1, 15 iterations): the library peer of ``cf.ImplicitALS``. Ranked
    with the course's own metrics (``helpers.metrics.ranking``: full ranking; training items masked, and
    validation items at test time, as RecBole does for general models): NDCG@10, HR@10,
    MRR@10."""
    import numpy as np
    import pandas as pd
    import recbole
    import scipy.sparse as sp
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    inter = pd.read_csv(Path(recbole.__file__).parent / "dataset_example/ml-100k/ml-100k.inter",
                        sep="\t")
    inter.columns = [c.split(":")[0] for c in inter.columns]
    inter = inter.sort_values(["user_id", "item_id"]).reset_index(drop=True)
    users, u = np.unique(inter["user_id"], return_inverse=True)
    items, i = np.unique(inter["item_id"], return_inverse=True)
    splits = json.loads(gzip.decompress(SPLITS.read_bytes()))

    sys.path.insert(0, str(ROOT))
    from helpers.metrics.ranking import (  # the course's own metrics
        rank_from_scores,
        ranking_metrics,
    )

    def metrics(scores, relevant, masked):
        got = ranking_metrics(rank_from_scores(scores, 10, exclude=masked),
                              [set(np.flatnonzero(r)) for r in relevant], 10)
        return {"ndcg@10": got["ndcg@10"], "hit@10": got["hr@10"], "mrr@10": got["mrr@10"]}

    for protocol in ("RO_RS", "LS"):
        part = np.frombuffer(splits[protocol].encode(), dtype=np.uint8) - ord("0")
        mats = [sp.csr_matrix((np.ones(int((part == k).sum())), (u[part == k], i[part == k])),
                              shape=(len(users), len(items))) for k in range(3)]
        model = AlternatingLeastSquares(factors=64, regularization=5.0, alpha=1.0,
                                        iterations=15, use_cg=False, random_state=0)
        t0 = time.perf_counter()
        with threadpool_limits(2):
            model.fit(mats[0], show_progress=False)
        secs = time.perf_counter() - t0
        scores = model.user_factors @ model.item_factors.T
        train, valid, test = (m.toarray() > 0 for m in mats)
        v_rows, t_rows = valid.any(1), test.any(1)
        results.setdefault("implicit", {})[f"ALS/{protocol}"] = {
            "valid": metrics(scores[v_rows], valid[v_rows], train[v_rows]),
            "test": metrics(scores[t_rows], test[t_rows], (train | valid)[t_rows]),
            "seconds": round(secs, 2), "settings": "factors 64, regularization 5, alpha 1, "
                                                  "15 iterations, exact solver"}
        print(f"implicit ALS on {protocol}: {results['implicit'][f'ALS/{protocol}']}",
              flush=True)


def main(argv=None) -> None:
    global DEVICE, OUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["recbole", "surprise", "implicit"], default=None)
    ap.add_argument("--models", default="Pop,BPR,SASRec,BERT4Rec")
    ap.add_argument("--protocols", default="RO_RS,LS")
    ap.add_argument("--max-epochs", type=int, default=300,
                    help="RecBole's default; a cap below it is recorded with the result")
    ap.add_argument("--resume", action="store_true",
                    help="go on from the newest checkpoint of an interrupted run (long models)")
    ap.add_argument("--splits-only", action="store_true",
                    help="only write RecBole's splits (datasets/movielens_recbole_splits.json.gz)")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads for RecBole (recorded with each result)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="where RecBole trains (cuda: its use_gpu; recorded with each result)")
    ap.add_argument("--out", default=None,
                    help=f"results file (default {OUT.relative_to(ROOT)}); merged if it exists")
    args = ap.parse_args(argv)
    DEVICE = args.device
    if args.out:
        OUT = Path(args.out).resolve()
    WORK.mkdir(parents=True, exist_ok=True)
    os.chdir(WORK)                                 # RecBole writes log/ and saved/ where it runs
    if args.splits_only:
        for protocol in args.protocols.split(","):
            split_sizes(protocol)
        return
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    from importlib.metadata import PackageNotFoundError, version

    import torch

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:   # a run of one toolkit needs only that one
            return None

    env = {"recbole": installed("recbole"), "surprise": installed("scikit-surprise"),
           "implicit": installed("implicit"), "torch": torch.__version__,
           "python": platform.python_version(), "threads": args.threads,
           "machine": platform.processor() or platform.machine()}
    if DEVICE == "cuda":   # another machine than the CPU peers': recorded with each GPU result
        env["gpu"] = torch.cuda.get_device_name(0)
        GPU_ENVIRONMENT.update(env)
    else:
        results["environment"] = env
    if args.only in (None, "surprise"):
        run_surprise(results)
    if args.only in (None, "implicit"):
        run_implicit(results)
    if args.only in (None, "recbole"):
        protocols = args.protocols.split(",")
        unknown = set(protocols) - set(PROTOCOLS)
        if unknown:
            sys.exit(f"unknown protocol(s) {sorted(unknown)}; choose from {sorted(PROTOCOLS)}")
        run_recbole_models(args.models.split(","), protocols, results, args.max_epochs,
                           args.threads, args.resume)
    save(results)


if __name__ == "__main__":
    main()

"""RecBole 1.2.1's SASRec and BERT4Rec (and BPR) on the one protocol of issue 38, one run per
call, in the peers' environment (``make peers`` builds ``build/peers-venv``):

    build/peers-venv/bin/python benchmarks/peers/seq_protocol_recbole.py \
        --model SASRec --config recbole --seed 0 --out build/peers-runs/recbole-SASRec-recbole-s0.json

RecBole builds its own leave-one-out split of MovieLens-100K (``split: {LS: valid_and_test}``,
``order: TO``), its own sequences (``SequentialDataset.data_augmentation``: every prefix of a
user's history, at most ``MAX_ITEM_LIST_LENGTH`` = 50 items, RecBole's tie order) and trains with
its own trainer (``Trainer._train_epoch``). What this script does instead of ``Trainer.fit``:

* **Early stopping, the course's rule**: after every epoch, validation MRR@10 with the user's
  training items masked (and padding); a strictly better epoch is kept, training stops after 10
  epochs without one, the kept weights are restored; at most ``--max-epochs`` (300) epochs.
  (``Trainer.fit`` would instead score validation with only padding masked for sequential models,
  count an equal score as better — ``recbole.utils.early_stopping`` uses ``>=`` — and stop after
  11 evaluations without gain.)
* **Both candidate sets at test time**, from the same trained model's ``full_sort_predict``:
  ``masked`` (the user's training and validation items and padding masked: the course's
  protocol) and ``padding`` (only column 0 masked: what ``Trainer._full_sort_batch_eval`` does
  for sequential models, whose ``FullSortEvalDataLoader`` passes no history). Both are ranked by
  ``protocol_common.target_ranks``, the same code the course's side uses.
* **Resumable**: the state after each epoch (weights, optimiser, early-stopping state, random
  states) goes to ``<out>.ckpt``; a new call with the same ``--out`` goes on from it.

RecBole's own ``Trainer.evaluate`` of the restored model on the test part is stored too
(``recbole_own_test``): it must equal the ``padding`` figures up to ties in score.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # RecBole 1.2.1 predates torch 2.6

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import protocol_common as pc  # noqa: E402
from protocol_common import CONFIGS, PATIENCE  # noqa: E402
from run_peers import WORK, numpy2_shim, recbole_config  # noqa: E402


def config_dict(model: str, knobs: dict, seed: int, max_epochs: int) -> dict:
    cfg = recbole_config(model, "LS", max_epochs)
    cfg.update({"seed": seed, "train_batch_size": knobs["batch_size"],
                "learning_rate": knobs["lr"], "show_progress": False})
    if "dropout" in knobs:
        cfg.update({"hidden_dropout_prob": knobs["dropout"], "attn_dropout_prob": knobs["dropout"]})
    if model == "BPR":
        cfg["train_neg_sample_args"] = {"distribution": "uniform",
                                        "sample_num": knobs["n_negatives"]}
    return cfg


def score_loader(model, loader, sequential: bool):
    """Every user's score row from the model (``full_sort_predict``), with the internal user id
    and, for sequential loaders, the held-out item, in loader order."""
    import torch

    users, targets, rows = [], [], []
    model.eval()
    with torch.no_grad():
        for batch in loader:
            inter, _, _, pos_i = batch
            s = model.full_sort_predict(inter.to(model.device)).view(len(inter), -1)
            users.append(inter["user_id"].cpu().numpy())
            rows.append(s.double().cpu().numpy())
            if sequential:
                targets.append(pos_i.cpu().numpy())
    import numpy as np
    return (np.concatenate(users), np.concatenate(rows),
            np.concatenate(targets) if sequential else None)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=sorted(CONFIGS), required=True)
    ap.add_argument("--config", choices=["course", "recbole"], required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--max-epochs", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cuda: RecBole's use_gpu (recorded with the result)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    import run_peers
    run_peers.DEVICE = args.device                   # recbole_config reads it (use_gpu)
    out = Path(args.out).resolve()
    if out.is_file():
        print(f"{out} exists: nothing to do")
        return
    ckpt = out.with_suffix(".ckpt")

    import numpy as np
    import pandas as pd
    import torch

    numpy2_shim()
    torch.set_num_threads(args.threads)
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    WORK.mkdir(parents=True, exist_ok=True)
    os.chdir(WORK)                                   # RecBole writes log/ where it runs
    knobs = CONFIGS[args.model][args.config]
    t_load = time.perf_counter()
    config = Config(model=args.model, dataset="ml-100k",
                    config_dict=config_dict(args.model, knobs, args.seed, args.max_epochs))
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    net = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    load_s = time.perf_counter() - t_load
    sequential = args.model != "BPR"

    # The split, in raw ids, from RecBole's own loaders; the masks follow from it.
    n_items = dataset.item_num                       # column 0 is padding
    raw = pd.read_csv(Path(config["data_path"]) / "ml-100k.inter", sep="\t")
    raw.columns = [c.split(":")[0] for c in raw.columns]
    uid = dataset.token2id(dataset.uid_field, raw["user_id"].astype(str).to_numpy())
    iid = dataset.token2id(dataset.iid_field, raw["item_id"].astype(str).to_numpy())
    everything = np.zeros((dataset.user_num, n_items), dtype=bool)
    everything[uid, iid] = True

    def held_out(loader):
        """(internal user, internal item) of each user's held-out event of a loader."""
        feat = loader._dataset.inter_feat
        return feat["user_id"].numpy(), feat["item_id"].numpy()

    vu, vi = held_out(valid_data)
    tu, ti = held_out(test_data)
    if len(set(vu)) != len(vu) or len(set(tu)) != len(tu) or len(tu) != dataset.user_num - 1:
        raise SystemExit("expected one validation and one test event per user")
    valid_item = np.zeros(dataset.user_num, dtype=np.int64)
    valid_item[vu] = vi
    test_item = np.zeros(dataset.user_num, dtype=np.int64)
    test_item[tu] = ti
    train_mask = everything.copy()
    train_mask[vu, vi] = False
    train_mask[tu, ti] = False
    train_mask[:, 0] = True                          # padding, always masked
    test_mask = train_mask.copy()
    test_mask[vu, vi] = True
    padding_mask = np.zeros_like(train_mask)
    padding_mask[:, 0] = True

    def ranks(loader, mask, item):
        users, scores, targets = score_loader(trainer.model, loader, sequential)
        if targets is not None and not (targets == item[users]).all():
            raise SystemExit("the loader's held-out items differ from the split's")
        return users, pc.target_ranks(scores, item[users], mask[users])

    def valid_mrr() -> float:
        _, r = ranks(valid_data, train_mask, valid_item)
        return pc.summary(r)["mrr@10"]

    # -- training with the course's early-stopping rule, resumable ---------------------------
    state = {"epoch": 0, "best": -np.inf, "waited": 0, "best_state": None, "history": [],
             "valid_history": [], "epoch_seconds": []}
    if ckpt.is_file():
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)
        if saved.get("device", "cpu") != args.device:
            raise SystemExit(f"{ckpt} was saved on {saved.get('device', 'cpu')}: resume there")
        trainer.model.load_state_dict(saved["model"])
        trainer.optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["torch_rng"])
        np.random.set_state(saved["numpy_rng"])
        random.setstate(saved["python_rng"])
        train_data.generator.set_state(saved["loader_rng"])
        state = saved["state"]
        print(f"resumed after epoch {state['epoch']}", flush=True)
    while state["epoch"] < args.max_epochs and state["waited"] < PATIENCE:
        t0 = time.perf_counter()
        loss = trainer._train_epoch(train_data, state["epoch"], show_progress=False)
        loss = float(sum(loss)) if isinstance(loss, tuple) else float(loss)
        mrr = valid_mrr()
        state["epoch"] += 1
        state["history"].append(loss)
        state["valid_history"].append(mrr)
        if mrr > state["best"]:
            state["best"], state["waited"] = mrr, 0
            state["best_state"] = {k: v.detach().clone()
                                   for k, v in trainer.model.state_dict().items()}
            state["best_epoch"] = state["epoch"]
        else:
            state["waited"] += 1
        state["epoch_seconds"].append(time.perf_counter() - t0)
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": trainer.model.state_dict(),
                    "optimizer": trainer.optimizer.state_dict(),
                    "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
                    "python_rng": random.getstate(),
                    "loader_rng": train_data.generator.get_state(), "state": state,
                    "device": args.device}, tmp)
        tmp.replace(ckpt)
        print(f"epoch {state['epoch']}: loss {loss:.4f}, valid MRR@10 {mrr:.4f}, "
              f"{state['epoch_seconds'][-1]:.0f} s", flush=True)
    trainer.model.load_state_dict(state["best_state"])

    # -- the restored model on both candidate sets -------------------------------------------
    result = {"library": "RecBole", "model": args.model, "config": args.config,
              "settings": knobs, "seed": args.seed, "max_epochs": args.max_epochs,
              "epochs_run": state["epoch"], "best_epoch": state.get("best_epoch"),
              "patience": PATIENCE, "valid_mrr_history": state["valid_history"],
              "train_loss_history": state["history"],
              "fit_seconds": round(sum(state["epoch_seconds"]), 1),
              "load_seconds": round(load_s, 1), "threads": args.threads, "device": args.device,
              "ranks": {}, "summary": {}}
    for part, loader, masks, item in (
            ("valid", valid_data, {"masked": train_mask, "padding": padding_mask}, valid_item),
            ("test", test_data, {"masked": test_mask, "padding": padding_mask}, test_item)):
        for name, mask in masks.items():
            users, r = ranks(loader, mask, item)
            raw_users = dataset.id2token(dataset.uid_field, users).astype(int)
            order = np.argsort(raw_users)
            result["users"] = raw_users[order].tolist()      # the same for every part and set
            result["ranks"][f"{part}/{name}"] = r[order].astype(int).tolist()
            result["summary"][f"{part}/{name}"] = pc.summary(r)
        result.setdefault("held_out", {})[part] = dataset.id2token(
            dataset.iid_field, item[users][order]).astype(int).tolist()
    own = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    result["recbole_own_test"] = {k: float(v) for k, v in own.items()}
    from importlib.metadata import version
    result["environment"] = {"recbole": version("recbole"), "torch": torch.__version__,
                             "device": torch.cuda.get_device_name(0)
                             if args.device == "cuda" else "cpu",
                             "numpy": np.__version__, "python": platform.python_version(),
                             "machine": platform.processor() or platform.machine(),
                             "threads": args.threads}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=0) + "\n")
    ckpt.unlink(missing_ok=True)
    print(json.dumps(result["summary"]), flush=True)


if __name__ == "__main__":
    main()

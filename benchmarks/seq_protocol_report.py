"""The table of issue 38's one protocol, rendered from the runs' JSON (nothing typed):

    .venv/bin/python benchmarks/seq_protocol_report.py            # build/peers-runs -> results
    .venv/bin/python benchmarks/seq_protocol_report.py --runs benchmarks/results/13_same_protocol_runs

Reads every ``<library>-<model>-<config>-s<seed>.json`` written by ``benchmarks/seq_protocol.py``
(the course) and ``benchmarks/peers/seq_protocol_recbole.py`` (RecBole), copies them to
``benchmarks/results/13_same_protocol_runs/``, and writes ``13_same_protocol.json`` (every
figure below, by name) and ``13_same_protocol_cpu.md`` (the tables, rendered from that JSON).

Each row: one library, one model, one grid point, the mean ± sd over its seeds of test NDCG@10,
HR@10 and MRR@10 on each candidate set. Each comparison: the grid point each library chose on
seed 0's validation MRR@10 (the same two-point budget for both), per-user NDCG@10 averaged over
the seeds each side ran, the paired difference course − RecBole and its 95 % paired bootstrap
interval over users (chapter 07's ``paired_bootstrap``, 10,000 resamples). *ahead* / *behind*
only when the interval excludes 0, *level* otherwise; *provisional* while a side has fewer
than 3 seeds.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks/peers"))
# The library's public API, in one place (module paths may move; update them here).
import protocol_common as pc  # noqa: E402

from helpers.course import statements  # noqa: E402
from helpers.metrics.stats import paired_bootstrap  # noqa: E402

RESULTS = ROOT / "benchmarks/results"
COPY = RESULTS / "13_same_protocol_runs"
N_BOOT = 10_000
MIN_SEEDS = 3

PROTOCOL = """\
**The protocol, the same on both sides** (issue 38). MovieLens-100K (RecBole 1.2.1's copy),
every rating an interaction, **RecBole's own leave-one-out split** (`split: {LS: valid_and_test}`,
`order: TO`): each user's last event is the test item, the one before it validation (943 users).
**Event order: RecBole's** — timestamps min-max scaled (`recbole/properties/dataset/ml-100k.yaml`
`normalize_all: True`; `recbole/data/dataset/dataset.py` `Dataset._normalize`), kept in float32
(`Dataset._dataframe_to_interaction`), sorted by user and time with stable sorts
(`recbole/data/dataset/sequential_dataset.py` `data_augmentation`; `recbole/data/interaction.py`
`Interaction.sort`), so equal ones keep the file's order; the course's models get that order as their time
column (`benchmarks/peers/protocol_common.py` `recbole_event_order`), so both read the same
sequences. **Maximum length 50** (SASRec: 50 items; BERT4Rec: 49 items and the [MASK], as
RecBole's `BERT4Rec.reconstruct_test_data` gives at length 50, which also drops a short
history's first item). **Early stopping, one rule for both**: after every epoch, validation
MRR@10 with the user's training items masked; a strictly better epoch is kept, training stops
after 10 epochs without one, the kept weights are restored; at most 300 epochs (the course's
`TorchRecommender._train_epochs`; for RecBole the same loop around its `Trainer._train_epoch`,
in place of `Trainer.fit`, which would score validation with only padding masked, count an
equal score as better and stop after 11). At test time the models read training + validation
as history, and each trained model's full score matrix is ranked on **two candidate sets**:
*masked* — the user's training and validation items (and RecBole's padding column) removed, the
course's protocol; *padding* — only RecBole's padding column removed (the course has none), what
RecBole 1.2.1 does for sequential models (`recbole/data/dataloader/general_dataloader.py`
`FullSortEvalDataLoader`: no history for `ModelType.SEQUENTIAL`; `recbole/trainer/trainer.py`
`Trainer._full_sort_batch_eval`: `scores[:, 0] = -inf`, history masked only when given;
`recbole/config/configurator.py` refuses `repeatable: False` for sequential models). BPR is a
general model, which RecBole masks itself: only *masked* is shown for it. One ranking code for
both sides (`protocol_common.target_ranks`, ties to the lower column); RecBole's own
`Trainer.evaluate` of each trained model is stored beside it: it equals the *padding* figures
for the sequence models and the *masked* ones for BPR.
**Tuning budget, the same for both**: two grid points per model, each library's defaults for
the knobs where they differ (table below); each library keeps the point with the better seed-0
validation MRR@10, then runs seeds 0, 1, 2 of it. The course's point came from looks at test
figures of an earlier split; it is offered to RecBole too. **Machine**: AMD EPYC, 2 cores
shared with other work, CPU only; every run on 1 thread (`OMP_NUM_THREADS=1`, `nice -n 10`),
so fit seconds are comparable only roughly."""


def load_runs(runs: Path) -> pd.DataFrame:
    rows = []
    for path in sorted(runs.glob("*-s[0-9]*.json")):
        if path.name.startswith("probe-"):               # the HR@10 probe, not a run
            continue
        r = json.loads(path.read_text())
        row = {"library": r["library"], "model": r["model"], "config": r["config"],
               "seed": r["seed"], "epochs": r["epochs_run"], "best epoch": r["best_epoch"],
               "fit s": r["fit_seconds"], "max epochs": r["max_epochs"], "file": path.name,
               "valid MRR@10": r["summary"]["valid/masked"]["mrr@10"],
               "users": r["users"], "ranks": r["ranks"]}
        for cand in pc.CANDIDATE_SETS:
            for metric, v in r["summary"][f"test/{cand}"].items():
                row[f"{cand} {metric}"] = v
        if "recbole_own_test" in r:
            row["RecBole evaluate ndcg@10"] = r["recbole_own_test"]["ndcg@10"]
        rows.append(row)
    return pd.DataFrame(rows)


def per_user_ndcg(runs: pd.DataFrame, cand: str) -> pd.Series:
    """Per-user test NDCG@10 averaged over the runs given (seeds), indexed by user id."""
    got = [pd.Series(pc.metrics_from_ranks(r[f"test/{cand}"])["ndcg@10"], index=u)
           for u, r in zip(runs["users"], runs["ranks"])]
    return pd.concat(got, axis=1).mean(axis=1).sort_index()


def chosen(df: pd.DataFrame, library: str, model: str):
    seed0 = df[(df.library == library) & (df.model == model) & (df.seed == 0)]
    if set(seed0.config) != {"course", "recbole"}:
        return None
    return seed0.set_index("config")["valid MRR@10"].idxmax()


def build(df: pd.DataFrame) -> dict:
    out = {"rows": [], "comparisons": [], "configs": pc.CONFIGS}
    for (lib, model, config), g in df.groupby(["library", "model", "config"]):
        row = {"library": lib, "model": model, "config": config, "seeds": sorted(g.seed),
               "valid MRR@10": g["valid MRR@10"].mean(), "epochs": g["epochs"].mean(),
               "fit s": g["fit s"].mean(), "max epochs": int(g["max epochs"].max())}
        for cand in pc.CANDIDATE_SETS:
            for m in ("ndcg@10", "hr@10", "mrr@10"):
                row[f"{cand} {m}"] = g[f"{cand} {m}"].mean()
                row[f"{cand} {m} sd"] = g[f"{cand} {m}"].std() if len(g) > 1 else None
        if "RecBole evaluate ndcg@10" in g:
            row["RecBole evaluate ndcg@10"] = g["RecBole evaluate ndcg@10"].mean()
        row["chosen"] = chosen(df, lib, model) == config
        out["rows"].append(row)
    for model in ("SASRec", "BERT4Rec", "BPR"):
        pick = {lib: chosen(df, lib, model) for lib in ("course", "RecBole")}
        pairs = [("chosen", pick["course"], pick["RecBole"]),
                 ("same settings", "course", "course"), ("same settings", "recbole", "recbole")]
        for n, (kind, c_cfg, r_cfg) in enumerate(pairs):
            if c_cfg is None or r_cfg is None or (n and (c_cfg, r_cfg) == pairs[0][1:]):
                continue
            a = df[(df.library == "course") & (df.model == model) & (df.config == c_cfg)]
            b = df[(df.library == "RecBole") & (df.model == model) & (df.config == r_cfg)]
            if a.empty or b.empty:
                continue
            for cand in pc.CANDIDATE_SETS if model != "BPR" else ("masked",):
                x, y = per_user_ndcg(a, cand), per_user_ndcg(b, cand)
                if not x.index.equals(y.index):
                    raise SystemExit(f"{model}: the two sides' test users differ")
                d = paired_bootstrap(x.to_numpy(), y.to_numpy(), n_boot=N_BOOT, seed=0)
                where = statements.standing("ndcg@10", d["lo"], d["hi"])
                verdict = "level" if where == "level" else f"course {where}"
                if min(len(a), len(b)) < MIN_SEEDS:
                    verdict += f" (provisional: {len(a)} vs {len(b)} seeds)"
                out["comparisons"].append({
                    "model": model, "pairing": kind, "course config": c_cfg,
                    "RecBole config": r_cfg, "candidates": cand, "course seeds": len(a),
                    "RecBole seeds": len(b), "course NDCG@10": float(x.mean()),
                    "RecBole NDCG@10": float(y.mean()), "diff": d["diff"], "lo": d["lo"],
                    "hi": d["hi"], "verdict": verdict})
    return out


def render(res: dict) -> str:
    def fmt(v, sd=None):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        return f"{v:.4f}" + (f" ± {sd:.4f}" if sd is not None and not np.isnan(sd) else "")

    lines = ["# Course vs RecBole 1.2.1 on one protocol: SASRec, BERT4Rec, BPR "
             "(`benchmarks/seq_protocol_report.py`)", "", PROTOCOL, "",
             "### The tuning grid (both libraries run both points)", ""]
    grid = [{"model": m, "point": c, **k} for m, cs in res["configs"].items()
            for c, k in cs.items()]
    lines += [pd.DataFrame(grid).fillna("").to_markdown(index=False), "",
              "### Rows: test figures, mean ± sd over seeds", ""]
    rows = []
    for r in res["rows"]:
        rows.append({"library": r["library"], "model": r["model"], "grid point": r["config"]
                     + (" (chosen)" if r["chosen"] else ""), "seeds": len(r["seeds"]),
                     "epochs": f"{r['epochs']:.0f}", "fit s": f"{r['fit s']:.0f}",
                     "valid MRR@10 (masked)": fmt(r["valid MRR@10"]),
                     "NDCG@10 masked": fmt(r["masked ndcg@10"], r["masked ndcg@10 sd"]),
                     "HR@10 masked": fmt(r["masked hr@10"], r["masked hr@10 sd"]),
                     "NDCG@10 padding": "" if r["model"] == "BPR" else
                     fmt(r["padding ndcg@10"], r["padding ndcg@10 sd"]),
                     "HR@10 padding": "" if r["model"] == "BPR" else
                     fmt(r["padding hr@10"], r["padding hr@10 sd"]),
                     "RecBole's evaluate NDCG@10": fmt(r.get("RecBole evaluate ndcg@10"))})
    lines += [pd.DataFrame(rows).to_markdown(index=False), "",
              "### Paired comparisons: course − RecBole, per-user test NDCG@10, 95 % interval",
              ""]
    comp = [{"model": c["model"], "pairing": c["pairing"],
             "points (course / RecBole)": f"{c['course config']} / {c['RecBole config']}",
             "candidates": c["candidates"],
             "seeds": f"{c['course seeds']} / {c['RecBole seeds']}",
             "course": fmt(c["course NDCG@10"]), "RecBole": fmt(c["RecBole NDCG@10"]),
             "diff [95 % interval]": f"{c['diff']:+.4f} [{c['lo']:+.4f}, {c['hi']:+.4f}]",
             "verdict": c["verdict"]} for c in res["comparisons"]]
    lines += [pd.DataFrame(comp).to_markdown(index=False) if comp else "(none yet)", ""]
    missing = res.get("missing")
    if missing:
        lines += [f"Runs not finished yet ({len(missing)}): " + ", ".join(missing) + ".", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", default=str(ROOT / "build/peers-runs"))
    ap.add_argument("--results", default=str(RESULTS), help="where the JSON, table and copies go")
    args = ap.parse_args(argv)
    runs = Path(args.runs).resolve()
    results = Path(args.results).resolve()
    copy = results / COPY.name
    if runs != copy:
        copy.mkdir(parents=True, exist_ok=True)
        for path in runs.glob("*-s[0-9]*.json"):
            shutil.copy2(path, copy / path.name)
    df = load_runs(copy)
    res = build(df)
    from run_seq_protocol import name, plan  # the driver's list of runs
    res["missing"] = [name(*s) for s in plan(copy) if not (copy / f"{name(*s)}.json").is_file()]
    (results / "13_same_protocol.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    (results / "13_same_protocol_cpu.md").write_text(render(res) + "\n")
    print(render(res))


if __name__ == "__main__":
    main()

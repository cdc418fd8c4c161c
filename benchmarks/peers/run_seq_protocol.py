"""Drive every run of issue 38's one protocol, resumably: the course's side
(``benchmarks/seq_protocol.py``, in ``.venv``) and RecBole's (``seq_protocol_recbole.py``, in
``build/peers-venv``), one process per run, one core each, niced.

    nohup python3 benchmarks/peers/run_seq_protocol.py > build/peers-runs/driver.log 2>&1 &
    python3 benchmarks/peers/run_seq_protocol.py --plan      # what is done, what is left

A run whose ``<runs>/<library>-<model>-<config>-s<seed>.json`` exists is skipped; a RecBole run
that was interrupted goes on from its ``.ckpt`` (saved after every epoch). Stop it with
``kill <pid of this driver>`` and then the pid of the run in flight (``ps``); start it again the
same way. Order (cheap and most informative first):

1. the course: SASRec, BPR and BERT4Rec, both grid points (``protocol_common.CONFIGS``),
   seeds 0, 1, 2; then ``benchmarks/seq_protocol_hr_probe.py`` (``probe-HR-toolkit-s0.json``);
2. RecBole: BPR, both grid points, seeds 0, 1, 2;
3. RecBole's SASRec: seed 0 at its own defaults, then at the course's settings (the grid, on
   validation), then seeds 1 and 2 of the point seed 0 chose on validation MRR@10 (masked);
4. the same for RecBole's BERT4Rec (one epoch takes 10-20 minutes on one shared core);
5. seeds 1 and 2 of the other grid point, SASRec then BERT4Rec.

The tuning budget is the same for both libraries: the two grid points, chosen on seed 0's
validation MRR@10 (the early-stopping figure).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

COURSE_PY = Path(os.environ.get("COURSE_PYTHON", ROOT / ".venv/bin/python"))
PEERS_PY = Path(os.environ.get("PEERS_PYTHON", ROOT / "build/peers-venv/bin/python"))
SEEDS = (0, 1, 2)


def name(library: str, model: str, config: str, seed: int) -> str:
    return f"{library}-{model}-{config}-s{seed}"


def valid_mrr(runs: Path, library: str, model: str, config: str, seed: int = 0):
    path = runs / f"{name(library, model, config, seed)}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())["summary"]["valid/masked"]["mrr@10"]


def chosen(runs: Path, library: str, model: str):
    """The grid point seed 0 chose on validation, or None while a point is missing."""
    got = {c: valid_mrr(runs, library, model, c) for c in ("course", "recbole")}
    if None in got.values():
        return None
    return max(got, key=got.get)


def plan(runs: Path) -> list[tuple[str, str, str, int]]:
    steps = [("course", m, c, s) for m in ("SASRec", "BPR", "BERT4Rec")
             for c in ("course", "recbole") for s in SEEDS]
    steps += [("probe", "HR", "toolkit", 0)]    # benchmarks/seq_protocol_hr_probe.py
    steps += [("RecBole", "BPR", c, s) for c in ("course", "recbole") for s in SEEDS]
    for model in ("SASRec", "BERT4Rec"):        # SASRec complete first: BERT4Rec takes days
        steps += [("RecBole", model, c, 0) for c in ("recbole", "course")]
        best = chosen(runs, "RecBole", model)
        if best is not None:
            steps += [("RecBole", model, best, s) for s in SEEDS[1:]]
    for model in ("SASRec", "BERT4Rec"):
        best = chosen(runs, "RecBole", model)
        if best is not None:
            other = "course" if best == "recbole" else "recbole"
            steps += [("RecBole", model, other, s) for s in SEEDS[1:]]
    return steps


def command(step, out: Path, max_epochs: int) -> list[str]:
    library, model, config, seed = step
    lower = max(0, 10 - os.nice(0))          # niceness 10 in all, however the driver runs
    if library == "probe":
        return ["nice", "-n", str(lower), str(COURSE_PY),
                str(ROOT / "benchmarks/seq_protocol_hr_probe.py"), "--out", str(out)]
    script = ("benchmarks/seq_protocol.py" if library == "course"
              else "benchmarks/peers/seq_protocol_recbole.py")
    py = COURSE_PY if library == "course" else PEERS_PY
    return ["nice", "-n", str(lower), str(py), str(ROOT / script), "--model", model, "--config",
            config, "--seed", str(seed), "--threads", "1", "--max-epochs", str(max_epochs),
            "--out", str(out)]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", default=str(ROOT / "build/peers-runs"))
    ap.add_argument("--max-epochs", type=int, default=300)
    ap.add_argument("--plan", action="store_true", help="list the runs, done or not, and stop")
    ap.add_argument("--only", choices=["course", "RecBole"], default=None)
    args = ap.parse_args(argv)
    runs = Path(args.runs).resolve()
    (runs / "logs").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT),
           "COURSE_CACHE": os.environ.get("COURSE_CACHE", str(ROOT / ".cache"))}
    done: set = set()
    while True:
        todo = [s for s in plan(runs) if s not in done
                and (args.only is None or s[0] == args.only)]
        if args.plan:
            for s in todo:
                out = runs / f"{name(*s)}.json"
                ckpt = out.with_suffix(".ckpt")
                print(f"{name(*s):40s} {'done' if out.is_file() else 'started' if ckpt.is_file() else 'to do'}")
            return
        todo = [s for s in todo if not (runs / f"{name(*s)}.json").is_file()]
        if not todo:
            print("all runs done", flush=True)
            return
        step = todo[0]
        out = runs / f"{name(*step)}.json"
        print(f"{time.strftime('%F %T')} {name(*step)} ...", flush=True)
        t0 = time.perf_counter()
        with open(runs / "logs" / f"{name(*step)}.log", "a") as log:
            rc = subprocess.call(command(step, out, args.max_epochs), cwd=ROOT, env=env,
                                 stdout=log, stderr=subprocess.STDOUT)
        print(f"{time.strftime('%F %T')} {name(*step)} exit {rc} after "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        done.add(step)                     # a failed run is not retried in this call


if __name__ == "__main__":
    main()

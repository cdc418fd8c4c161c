"""Benchmark: the test suite on one worker or two (issue 36), on the same selection, one after
the other on the same machine.

    .venv/bin/python benchmarks/suite_workers.py [--repeat 1]      # ~6 minutes on 2 cores

Protocol: ``tools/test-parts`` (what `make test` runs) narrowed to a fixed, mixed selection —
the unit tests of two modules, two solution notebooks in the quick profile and two student
notebooks in the smoke profile, about 150 worker-seconds — once with
``COURSE_TEST_WORKERS=1`` (one worker, PyTorch's default threads: one per core, as `make test`
ran before) and once with two workers of one thread each (as it runs now), alternating, each
setting ``--repeat`` times; the wall time of each run and its verdict are reported. The text
encodings are cached beforehand (a first run fills them), so both settings do the same work.
Writes benchmarks/results/36_suite_workers_cpu.md.
"""
import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SELECTION = {
    "TEST_UNIT": "tests/test_cf.py tests/test_rerank.py",
    "TEST_SOLUTIONS": "solutions/02a_rating_prediction.ipynb solutions/08a_diversity.ipynb",
    "TEST_STUDENTS": "chapters/04_bert_interest_models.ipynb chapters/08c_privacy.ipynb",
}


def run(workers: int) -> tuple[float, str, str]:
    env = {**os.environ, **SELECTION, "COURSE_TEST_WORKERS": str(workers)}
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.pop(key, None)                         # test-parts sets them for two workers
    t0 = time.perf_counter()
    done = subprocess.run(["tools/test-parts", sys.executable, "-q"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    parts = re.findall(r"^\s+(unit tests|solution notebooks|student notebooks)\s+(\d+) worker-s",
                       done.stdout, re.M)
    return seconds, "passed" if done.returncode == 0 else "FAILED", \
        ", ".join(f"{p} {s} worker-s" for p, s in parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print("[suite] warm-up run (fills the text-encoding cache)", flush=True)
    run(2)
    rows = []
    for i in range(args.repeat):
        for workers in (1, 2):
            seconds, verdict, parts = run(workers)
            rows.append((i + 1, workers, seconds, verdict, parts))
            print(f"[suite] run {i + 1}, {workers} worker(s): {seconds:.0f} s, {verdict}",
                  flush=True)
    best = {w: min(r[2] for r in rows if r[1] == w) for w in (1, 2)}
    lines = ["# The suite on one worker or two (issue 36)", "",
             f"`benchmarks/suite_workers.py`, {time.strftime('%Y-%m-%d')}, "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores. Selection: "
             + "; ".join(f"`{k}={v}`" for k, v in SELECTION.items()) + ".", "",
             "| run | workers | wall (s) | verdict | worker-seconds by part |",
             "|---:|---:|---:|---|---|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]:.0f} | {r[3]} | {r[4]} |" for r in rows]
    lines += ["", f"Fastest of each: one worker {best[1]:.0f} s, two workers {best[2]:.0f} s: "
              f"two workers take {best[2] / best[1]:.2f} of one worker's time."]
    out = ROOT / "benchmarks" / "results" / "36_suite_workers_cpu.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"[suite] table in {out}")
    return 0 if all(r[3] == "passed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

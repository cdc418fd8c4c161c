"""Benchmark: a chapter-sized torch job on a busy 2-core machine, by OpenMP wait policy.

    .venv/bin/python benchmarks/busy_machine.py          # ~4 minutes on 2 cores

Protocol: the job is chapter 02's BPR (64 factors, batch 2,048) for 5 epochs on MovieLens-100K's
80 % random split, in a fresh process (torch's default threads: one per core). It runs alone,
then two copies at once (a second notebook, a test run, or a browser compiling beside it), each
under PyTorch's default OpenMP wait policy (threads spin while waiting) and under
``OMP_WAIT_POLICY=PASSIVE`` (they sleep). The wall time of each copy is reported.

Why it matters (issue 11): spinning threads of two processes fight for the same cores, and a
cell that takes a minute idle was seen to pass the 600 s cell limit on a loaded machine. The
Makefile exports ``OMP_WAIT_POLICY=PASSIVE`` for every target.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOB = """
import time
from helpers import cf, data, preprocess as pp
r = data.load_movielens("recbole")["ratings"]
train, _, _ = pp.random_split(r, (0.8, 0.1, 0.1), seed=0)
um, im = pp.build_id_map(r.user_id), pp.build_id_map(r.item_id)
t0 = time.perf_counter()
cf.BPR(64, reg=1e-3, n_epochs=5, lr=0.01).fit(train, um, im)
print(time.perf_counter() - t0)
"""


def run(copies: int, policy: str | None) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    procs = [subprocess.Popen([sys.executable, "-c", JOB], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for _ in range(copies)]
    return [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def main():
    print(f"| wait policy | copies at once | seconds per copy | ({os.cpu_count()} cores) |")
    print("|---|---:|---|---|")
    for policy in (None, "PASSIVE"):
        for copies in (1, 2):
            t0 = time.perf_counter()
            secs = run(copies, policy)
            print(f"| {policy or 'default (spin)'} | {copies} | "
                  f"{', '.join(f'{s:.1f}' for s in secs)} | wall {time.perf_counter() - t0:.0f} s |",
                  flush=True)


if __name__ == "__main__":
    main()

"""Chapter 10 (scale-out), measured: the nightly job — top 10 unseen items and a checked reason
for every shopper of a 100,000-shopper ShopWorld — in one process and on Ray Data with 1 and 2
workers, on this machine's cores.

    make scale                                              # installs Ray first
    .venv/bin/python benchmarks/scale_benchmark.py          # ~5 minutes on 2 cores
    .venv/bin/python benchmarks/scale_benchmark.py --repeats 3 > benchmarks/results/17_scale_cpu.md

Protocol: ``scale.big_world(100_000)`` (seed 0, cached after its first generation, ~50 s), the
night's model fitted once (implicit ALS, 32 factors, 8 sweeps, on every click, cart and purchase;
the facts and profiles of chapter 05), timed. The peer is the same function in one plain Python
process, ``scale.explain_users`` over every shopper in batches of 2,000 (no Ray at all). Then
``scale.run_on_ray`` over every shopper, batches of 2,000, on an actor pool of 1 and of 2
workers (one CPU each) of a local Ray started with ``scale.local_ray(num_cpus=os.cpu_count())``;
wall time from the dataset's creation to the last row in the driver, actor start-up included,
Ray's own start-up (``ray.init``, ~10 s) not. Each setting ``--repeats`` times; the median is
reported, and every Ray run is checked to return the same (user, rank, item, reason) rows as
the one-process run.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers.serving import scale  # noqa: E402

KEY = ["user_id", "rank", "item_id", "reason", "fallback"]


def one_process(snap, users, batch: int) -> tuple[pd.DataFrame, float]:
    t0 = time.perf_counter()
    parts = [scale.explain_users(snap, users[i:i + batch]) for i in range(0, len(users), batch)]
    return pd.concat(parts, ignore_index=True), time.perf_counter() - t0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch", type=int, default=2_000)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    root = scale.big_world(args.users, progress=False)
    world_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    snap, _ = scale.Snapshot.fit(root, n_factors=32, n_iter=8)
    fit_s = time.perf_counter() - t0
    users = snap.user_ids
    cores = os.cpu_count()
    print(f"# scale_benchmark: {len(users):,} shoppers to explain ({args.users:,}-shopper "
          f"ShopWorld, ready in {world_s:.0f} s), model fitted in {fit_s:.0f} s; {cores} cores; "
          f"batches of {args.batch:,}; median of {args.repeats} run(s)\n")
    times, reference = {}, None
    for _ in range(args.repeats):
        out, s = one_process(snap, users, args.batch)
        times.setdefault("one process (no Ray)", []).append(s)
        reference = out[KEY]
    with scale.local_ray(num_cpus=cores):
        for workers in (1, 2):
            for _ in range(args.repeats):
                out, s = scale.run_on_ray(snap, users, workers=workers, batch_size=args.batch)
                assert out[KEY].equals(reference), "Ray's rows differ from one process's"
                times.setdefault(f"Ray Data, {workers} worker(s)", []).append(s)
    base = statistics.median(times["one process (no Ray)"])
    print("| setting | seconds | shoppers/s | reasons/s | vs one process |\n|---|---:|---:|---:|---:|")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"| {name} | {m:.1f} | {len(users) / m:,.0f} | {len(reference) / m:,.0f} | "
              f"{base / m:.2f}x |")
    two, one = (statistics.median(times[f"Ray Data, {w} worker(s)"]) for w in (2, 1))
    serial = scale.serial_share(one / two, workers=2)
    print(f"\n2 workers vs 1 on Ray: {one / two:.2f}x; Karp-Flatt serial share {serial:.2f}, so "
          f"Amdahl's law caps the speed-up over one Ray worker at {1 / max(serial, 1e-9):.1f}x "
          "on machines like this one. Every Ray run returned the one-process rows "
          f"({len(reference):,}, {float(np.mean(reference['fallback'])):.2%} guard fallbacks).")


if __name__ == "__main__":
    main()

"""Benchmark: ShopWorld generation time and size, default world and the full-profile world.

    .venv/bin/python benchmarks/shopworld_generation.py            # both worlds
    .venv/bin/python benchmarks/shopworld_generation.py --quick    # the default world only

Target (issue 3): the 100k-user x 20k-item world in <= 2 minutes on 2 CPU cores.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from helpers.core import config  # noqa: E402
from helpers.data import shopworld as sw  # noqa: E402


def run(users: int, items: int) -> dict:
    t0 = time.perf_counter()
    world = sw.generate(sw.WorldConfig(n_users=users, n_items=items), progress=False)
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        manifest = sw.write_world(world, out)
        size = sum((Path(out) / f).stat().st_size for f in manifest)
    t2 = time.perf_counter()
    return {"users": users, "items": items, "events": len(world.tables["events"]),
            "reviews": world.tables["reviews"]["review_id"].nunique(),
            "generate_s": t1 - t0, "write_s": t2 - t1, "total_s": t2 - t0, "MiB": size / 2**20,
            "steps": world.timings}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="only the default world")
    args = parser.parse_args()
    sizes = [(2000, 2000)] + ([] if args.quick else [(100_000, 20_000)])
    print("| users | items | events | reviews | generate (s) | write (s) | total (s) | size (MiB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for users, items in sizes:
        r = run(users, items)
        print(f"| {r['users']} | {r['items']} | {r['events']} | {r['reviews']} | "
              f"{r['generate_s']:.1f} | {r['write_s']:.1f} | {r['total_s']:.1f} | {r['MiB']:.1f} |",
              flush=True)
        print(f"  steps: {r['steps']}", file=sys.stderr)
    peak = config.peak_rss_mib()
    print("\npeak RSS " + ("unknown on this platform" if peak is None else f"{peak / 1024:.2f} GiB"))


if __name__ == "__main__":
    main()

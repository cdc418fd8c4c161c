"""Chapter 09 (the capstone app), measured: how long a click takes, from the button to the new
page, on 2 CPU cores.

    .venv/bin/python benchmarks/app_benchmark.py        # ~1 minute

Protocol: ``app.Shop.build()`` (implicit ALS on all of ShopWorld's clicks, carts and purchases,
chapter 05's planner, guard and facts, chapter 04's cached MiniLM vectors), timed once. Then 30
shoppers (every 50th known one, seed-free) each click through 10 actions drawn in turn from
view, click, add_to_cart, purchase on the item at rank 1..10 of their current page, through
``ShopApp``'s real button handlers (widgets built, HTML rendered): 300 clicks per setting, in
three settings: the model's own order; MMR at lam 0.5 (the diversity slider); and with the
guard's panel on after a posted review per shopper. Reported: p50, p95 and max milliseconds of
the whole handler (target p95 <= 300 ms), and the engine's own share (``Page.ms``). The first
page of each shopper is not a click and is not counted. Ten brand-new shoppers' first clicks
are timed separately (the fold-in adds a user row).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers.serving import app as A  # noqa: E402

BUTTON = {0: "click", 1: "click", 2: "add_to_cart", 3: "purchase"}


def clicks(ui, users, review: bool = False):
    total, engine = [], []
    for n, u in enumerate(users):
        ui.user_box.value = int(u)
        if review:
            ui.review_text.value = "Waterproof, made of gold, the best seller of the year."
            ui.review_button.click()
        for k in range(10):
            row = ui.rows[k % 10]
            t0 = time.perf_counter()
            row[BUTTON[(n + k) % 4]].click()
            total.append(1e3 * (time.perf_counter() - t0))
            engine.append(ui.page.ms)
    return np.array(total), np.array(engine)


def main() -> None:
    t0 = time.perf_counter()
    shop = A.Shop.build()
    build_s = time.perf_counter() - t0
    users = shop.users()[::50][:31]
    ui = A.ShopApp(shop, users=[int(u) for u in users])
    print(f"# app_benchmark: Shop.build() {build_s:.1f} s; 30 shoppers x 10 clicks per setting\n")
    print("| setting | clicks | p50 ms | p95 ms | max ms | engine p95 ms |\n|---|---|---|---|---|---|")
    settings = [("model's order", 1.0, False, False), ("MMR lam 0.5", 0.5, False, False),
                ("guard panel on, a review posted", 1.0, True, True)]
    for name, lam, guard, review in settings:
        ui.diversity.value = lam
        ui.show_guard.value = guard
        total, engine = clicks(ui, users[1:], review)
        print(f"| {name} | {len(total)} | {np.percentile(total, 50):.1f} | "
              f"{np.percentile(total, 95):.1f} | {total.max():.1f} | "
              f"{np.percentile(engine, 95):.1f} |")
    ui.diversity.value, ui.show_guard.value = 1.0, False
    first = []
    for _ in range(10):
        ui.new_button.click()
        t0 = time.perf_counter()
        ui.rows[0]["click"].click()
        first.append(1e3 * (time.perf_counter() - t0))
    print(f"\nA brand-new shopper's first click (10 shoppers): p50 {np.percentile(first, 50):.1f} "
          f"ms, max {max(first):.1f} ms.")


if __name__ == "__main__":
    main()

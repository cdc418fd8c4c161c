"""Chapter 08 (real time), measured: folding new events into implicit ALS without retraining —
how much it helps, prequentially, and how fast an event becomes an updated top-10 with a reason.

    .venv/bin/python benchmarks/online_benchmark.py        # ~2 minutes on 2 CPU cores

Protocol: ShopWorld's clean clicks, carts and purchases in time order, cut at the 80 % time
quantile. ``cf.ImplicitALS`` (64 factors, reg 0.05, alpha 10, 15 sweeps, seed 0) is fitted on the
events before the cut (its fit time is the cost of one full retrain). The events after the cut
arrive one at a time, each a batch of one, in time order, for users the model knows:

* **prequential** (predict, then learn): before an event (u, i) is folded in, is i in u's
  top-10 of items u has not met yet? For the *static* model (never updated: its seen items are
  only the training ones) and for the *live* one (``online.FoldIn``: every earlier event folded
  in, so the user's list reflects it and excludes what they just met). HR@10 over events with a
  95 % paired bootstrap interval for the difference (events resampled).
* **latency**, for the first 1,000 events: event -> ``FoldIn.update`` -> ``recommend(k=10)`` ->
  a template reason for the top item (chapter 05's ``TemplateExplainer`` on its stated facts and
  profiles), wall-clock per event; p50, p90, p99 and max in milliseconds (target p99 <= 100 ms).
  The peer: implicit 0.7.3's ``recalculate_user`` (its exact Cholesky solver, alpha + 1 so the
  two confidences match) on the same item factors, the solve alone against the course's
  ``FoldIn.solve`` (and the model's own batch half-step, ``ImplicitALS._solve``, called for one
  user) over the same 1,000 users' final histories.
  The language-model reason is not on this path: at ~100-400 ms per sentence on these cores
  (chapter 05) it would be served from a cache filled in batches, or after the list.
* **river** 0.26.1 as the streaming peer: ``reco.FunkMF`` (32 factors, SGD lr 0.05, l2 1e-3,
  squared loss, seed 0) learns *both* sides online, event by event. Implicit feedback as river
  expects it: each interaction a target 1 with four uniformly drawn items as 0 (seeded). Trained
  for 10 shuffled passes over the events before the cut, then prequential over the same stream:
  ``rank`` the user's unmet items (river's own API), count the hit, then ``learn_one`` the event
  and its four negatives. Not a course dependency: install it beside the venv with
  ``.venv/bin/python -m pip install --target build/river-site river==0.26.1`` (the script looks
  there); without it that row is skipped, with a note.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers.data import preprocess as pp  # noqa: E402
from helpers.metrics import stats  # noqa: E402
from helpers.models import cf
from helpers.reasons import explainers, world as W
from helpers.serving import online  # noqa: E402


def main() -> None:
    sw = pp.clean_shopworld(write=False)
    events = sw["events"]
    inter = events[events["event_type"] != "view"].sort_values("timestamp", kind="stable")
    inter = inter.drop_duplicates(["user_id", "item_id"])        # the first time a user meets it
    cut = inter["timestamp"].quantile(0.8)
    train, stream = inter[inter["timestamp"] < cut], inter[inter["timestamp"] >= cut]
    um, im = pp.build_id_map(train["user_id"]), pp.build_id_map(sw["catalogue"]["item_id"])
    stream = stream[stream["user_id"].isin(um.ids)]
    t0 = time.perf_counter()
    static = cf.ImplicitALS(64, n_iter=15).fit(train, um, im)
    fit_s = time.perf_counter() - t0
    live = online.FoldIn(cf.ImplicitALS(64, n_iter=15).fit(train, um, im))
    world = W.reason_world()
    template = explainers.TemplateExplainer(world.facts, world.profile)
    hit_static, hit_live, ms = [], [], []
    for k, ev in enumerate(stream.itertuples(index=False)):
        u, i = int(ev.user_id), int(ev.item_id)
        hit_static.append(i in static.recommend([u], k=10)["item_id"].to_numpy())
        hit_live.append(i in live.model.recommend([u], k=10)["item_id"].to_numpy())
        t0 = time.perf_counter()
        live.update(pd.DataFrame({"user_id": [u], "item_id": [i], "timestamp": [ev.timestamp]}))
        top = live.model.recommend([u], k=10)
        template.explain_one(u, int(top["item_id"].iloc[0]))
        if k < 1000:
            ms.append(1e3 * (time.perf_counter() - t0))
    a, b = np.array(hit_live, float), np.array(hit_static, float)
    d = stats.paired_bootstrap(a, b)
    q = np.percentile(ms, [50, 90, 99])
    print(f"# online_benchmark: {len(train):,} training interactions, {len(stream):,} streamed "
          f"events of known users; one full retrain {fit_s:.1f} s\n\n"
          "| model | prequential HR@10 |\n|---|---|\n"
          f"| static (trained before the cut) | {b.mean():.4f} |\n"
          f"| fold-in (every earlier event folded in) | {a.mean():.4f} |\n"
          f"| difference | {d['diff']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}] |\n\n"
          f"Latency, event -> fold-in -> top-10 -> template reason, first {len(ms)} events: "
          f"p50 {q[0]:.1f} ms, p90 {q[1]:.1f} ms, p99 {q[2]:.1f} ms, max {max(ms):.1f} ms "
          f"(target p99 <= 100 ms: {'met' if q[2] <= 100 else 'NOT met'}).")
    peer_solve(live, stream["user_id"].to_numpy()[:1000])
    river_peer(train, stream, sw["catalogue"]["item_id"].to_numpy(), a)


def peer_solve(live, users):
    import warnings

    from implicit.cpu.als import AlternatingLeastSquares

    model = live.model
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="OpenBLAS is configured")
        peer = AlternatingLeastSquares(factors=model.Y.shape[1], regularization=model.reg,
                                       alpha=model.alpha + 1, iterations=1, use_cg=False)
    peer.item_factors = model.Y.astype(np.float32)
    rows = model.user_map.encode(users)
    seen32 = model.seen.astype(np.float32).tocsr()
    times = {"course, a full half-step's setup (ImplicitALS._solve)": [],
             "course, per user (FoldIn.solve)": [], "implicit (recalculate_user)": []}
    gap = 0.0
    for r in rows:
        t0 = time.perf_counter()
        cf.ImplicitALS._solve(model.seen[[r]], model.Y, model.reg, model.alpha)
        times["course, a full half-step's setup (ImplicitALS._solve)"].append(
            1e3 * (time.perf_counter() - t0))
        t0 = time.perf_counter()
        ours = live.solve([r])
        times["course, per user (FoldIn.solve)"].append(1e3 * (time.perf_counter() - t0))
        t0 = time.perf_counter()
        theirs = np.asarray(peer.recalculate_user(r, seen32[r]))
        times["implicit (recalculate_user)"].append(1e3 * (time.perf_counter() - t0))
        gap = max(gap, float(np.abs(ours.ravel() - theirs.ravel()).max()))
    print(f"\nOne user's fold-in solve, {len(rows)} users (max difference between the two: "
          f"{gap:.1e}):\n\n| solver | p50 ms | p99 ms |\n|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {np.percentile(t, 50):.3f} | {np.percentile(t, 99):.3f} |")


def river_peer(train, stream, items, hit_live):
    site = ROOT / "build" / "river-site"
    if site.is_dir():
        sys.path.insert(0, str(site))
    try:
        from river import optim, reco
    except ImportError:
        print("\nriver is not installed (see the docstring): its streaming-MF row is skipped.")
        return
    rng = np.random.default_rng(0)
    model = reco.FunkMF(n_factors=32, optimizer=optim.SGD(0.05), l2=1e-3, seed=0,
                        initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=0))

    def learn(u, i):
        model.learn_one(u, i, 1.0)
        for j in rng.choice(items, 4):
            model.learn_one(u, int(j), 0.0)

    pairs = train[["user_id", "item_id"]].to_numpy()
    t0 = time.perf_counter()
    for _ in range(10):
        for u, i in pairs[rng.permutation(len(pairs))]:
            learn(int(u), int(i))
    fit_s = time.perf_counter() - t0
    met = train.groupby("user_id")["item_id"].agg(set).to_dict()
    hits, ms = [], []
    for ev in stream.itertuples(index=False):
        u, i = int(ev.user_id), int(ev.item_id)
        t0 = time.perf_counter()
        top = model.rank(u, {int(j) for j in items} - met.get(u, set()))[:10]
        hits.append(i in top)
        learn(u, i)
        ms.append(1e3 * (time.perf_counter() - t0))
        met.setdefault(u, set()).add(i)
    h = np.array(hits, float)
    d = stats.paired_bootstrap(hit_live, h)
    print(f"\nriver FunkMF (streaming SGD on users and items; {fit_s:.0f} s for 10 passes before "
          f"the cut): prequential HR@10 {h.mean():.4f}; course fold-in minus river "
          f"{d['diff']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}]; per event (rank all unmet items + "
          f"learn) p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms.")


if __name__ == "__main__":
    main()

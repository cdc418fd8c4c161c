"""Chapter 10's nightly job: the same top 10 as chapter 02's ImplicitALS.recommend and the same
reasons as chapter 05's template behind the guard, the same rows from Ray as from one process,
inputs checked; the world cache regenerates what is damaged. The Ray tests need `make scale`.
The same job on a Ray *cluster* (scale.start_cluster, joined by its address) is checked where the
chapter runs it: solutions/10_scale_out.ipynb asserts that the cluster's rows equal one process's
and records it (cluster.same_as_one_process), in the same suite; a copy here cost 70 s more."""
import importlib.util
import os

import numpy as np
import pandas as pd
import pytest

from helpers.core.checks import DataError, ParameterError
from helpers.data import loaders
from helpers.models import cf
from helpers.reasons import explainers, guard as G
from helpers.serving import scale


@pytest.fixture(scope="module")
def fitted():
    return scale.Snapshot.fit(loaders.shopworld_path(), n_factors=16, n_iter=4)


def test_top_ten_is_implicit_als_recommend_and_reasons_are_the_guarded_template(fitted):
    snap, model = fitted
    users = snap.user_ids[::5]
    out = scale.explain_users(snap, users)
    assert list(out.columns) == scale.COLUMNS
    ref = model.recommend(users, k=10)
    np.testing.assert_array_equal(out["user_id"], ref["user_id"])
    np.testing.assert_array_equal(out["item_id"], ref["item_id"])
    np.testing.assert_array_equal(out["rank"], ref["rank"])
    np.testing.assert_allclose(out["score"], ref["score"], rtol=0, atol=1e-12)
    template = explainers.TemplateExplainer(snap.facts, snap.profile)
    guard = G.ClosedWorldGuard(snap.facts, snap.lex, fallback=scale._ClaimFreeFallback())
    for u, i, reason, fb in out[["user_id", "item_id", "reason", "fallback"]].head(300).itertuples(
            index=False):
        assert (reason, fb) == guard.choose([template.explain_one(u, i)], u, i)
        assert fb or guard.passes(reason, u, i)


def test_a_rejected_reason_is_replaced_by_a_marked_one_that_claims_nothing(fitted):
    snap, _ = fitted
    _, guard = scale._make_explainers(snap)

    class Boasting:                                   # a template gone wrong
        def explain_one(self, user, item):
            return "Recommended because it is waterproof and made of gold."

    users = snap.user_ids[:3]
    out = scale.explain_users(snap, users, _explainers=(Boasting(), guard))
    assert out["fallback"].all() and (out["reason"] == scale.FALLBACK_REASON).all()
    assert not out["reason"].str.contains("waterproof|gold").any()
    assert scale.FALLBACK_REASON.startswith("[fallback] ")


def test_a_job_that_forgets_the_seen_items_is_caught(fitted):
    snap, model = fitted
    users = snap.user_ids[:200]
    broken = scale.Snapshot(**{**snap.__dict__, "seen_indptr": np.zeros_like(snap.seen_indptr)})
    bad = scale.explain_users(broken, users)
    ref = model.recommend(users, k=10)
    assert not np.array_equal(bad["item_id"], ref["item_id"])
    seen = model.seen.tocsr()
    rows = model.user_map.encode(bad["user_id"])
    cols = model.item_map.encode(bad["item_id"])
    assert (np.asarray(seen[rows, cols]).ravel() > 0).any()   # offers items already met


def test_a_shopper_with_fewer_unseen_items_than_k_gets_a_shorter_list(fitted):
    snap, _ = fitted
    n_items = len(snap.item_ids)
    left = np.array([5, 9])                                  # all but two items met
    met = np.setdiff1d(np.arange(n_items), left)
    rest = snap.seen_indices[snap.seen_indptr[1]:]
    crowded = scale.Snapshot(**{**snap.__dict__,
                                "seen_indptr": np.r_[0, snap.seen_indptr[1:] - snap.seen_indptr[1]
                                                     + len(met)],
                                "seen_indices": np.r_[met, rest]})
    out = scale.explain_users(crowded, snap.user_ids[:2])
    first = out[out["user_id"] == snap.user_ids[0]]
    assert sorted(first["item_id"]) == sorted(snap.item_ids[left]) and len(first) == 2
    assert list(first["rank"]) == [1, 2]
    assert (out["user_id"] == snap.user_ids[1]).sum() == 10


def test_rows_come_back_in_the_callers_order(fitted):
    snap, _ = fitted
    users = snap.user_ids[[7, 3, 11]]
    out = scale.explain_users(snap, users)
    assert list(pd.unique(out["user_id"])) == users.tolist()


@pytest.mark.parametrize("users,match", [
    (np.array([], dtype=np.int64), "non-empty"),
    (np.array([[1, 2]]), "1-D"),
    (np.array([1.0, 2.0]), "integers"),
    ("not ids", "1-D"),
    (np.array(["a", "b"]), "integers"),
])
def test_bad_user_lists_are_refused(fitted, users, match):
    snap, _ = fitted
    with pytest.raises(DataError, match=match):
        scale.explain_users(snap, users)


def test_unknown_and_repeated_shoppers_are_refused_not_dropped(fitted):
    snap, _ = fitted
    known = snap.user_ids[:3]
    with pytest.raises(DataError, match="repeated"):
        scale.explain_users(snap, np.r_[known, known[:1]])
    with pytest.raises(DataError, match="does not know.*99999999"):
        scale.explain_users(snap, np.r_[known, 99999999])
    with pytest.raises(ValueError, match="k"):
        scale.explain_users(snap, known, k=0)


def test_snapshot_of_an_unfitted_model_is_refused():
    with pytest.raises(DataError, match="not fitted"):
        scale.Snapshot.from_model(cf.ImplicitALS(4), {}, pd.DataFrame(), None)


def test_big_world_is_made_once_and_remade_when_damaged(tmp_path):
    root = tmp_path / "w"
    path = scale.big_world(60, seed=3, progress=False, root=root)
    assert path == root and loaders.verify_shopworld(root)
    users = loaders.load_shopworld("users", root)
    assert len(users) == 60
    stamp = (root / "events.parquet").stat().st_mtime_ns
    assert scale.big_world(60, seed=3, progress=False, root=root) == root
    assert (root / "events.parquet").stat().st_mtime_ns == stamp          # reused
    with open(root / "events.parquet", "ab") as f:                         # damaged
        f.write(b"x")
    scale.big_world(60, seed=3, progress=False, root=root)
    assert loaders.verify_shopworld(root)                                     # made again
    assert not (tmp_path / "w.partial").exists()
    with pytest.raises(ValueError, match="n_users"):
        scale.big_world(0, root=tmp_path / "none")


def test_serial_share_inverts_amdahls_law_and_refuses_what_is_not_a_speed_up():
    # Karp & Flatt (1990) on their own example: a speed-up of 1.6 on 2 processors is s = 0.25
    # (the quiz's trap, 1 - 1.6 / 2 = 0.2, is the efficiency lost)
    assert scale.serial_share(1.6, 2) == pytest.approx(0.25)
    from helpers.course.exercises.ch10 import _amdahl  # the questionnaire's reference Amdahl

    for s in (0.0, 0.05, 0.2, 0.5, 1.0):
        for n in (2, 3, 8, 64):
            assert scale.serial_share(_amdahl(s, n), n) == pytest.approx(s, abs=1e-12)
    assert scale.serial_share(2.5, 2) == 0.0 and scale.serial_share(0.5, 2) == 1.0  # clipped
    for speedup, workers, match in ((0.0, 2, "speedup"), (float("nan"), 2, "finite"),
                                    ("1.6", 2, "number"), (1.6, 1, "workers must be >= 2"),
                                    (1.6, 2.0, "integer")):
        with pytest.raises(ParameterError, match=match):
            scale.serial_share(speedup, workers)


@pytest.mark.parametrize("address, match", [
    ("ray://10.0.0.5:10001", "Ray Client"), ("10.0.0.5", "host:port"), (6379, "host:port")])
def test_local_ray_refuses_a_client_or_malformed_address_before_starting_anything(address, match):
    with pytest.raises(ParameterError, match=match):
        with scale.local_ray(address=address):
            pass


def test_offline_settings_are_put_back_after_ray(monkeypatch):
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "1")
    with scale._env(scale.OFFLINE_ENV):
        assert os.environ["http_proxy"] == "http://127.0.0.1:9"
        assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
    assert "http_proxy" not in os.environ
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "1"
    # Ray's own traffic to this machine's network address must not go to the closed proxy
    env = scale._offline_env("192.0.2.2")
    assert env["no_proxy"] == env["NO_PROXY"] == "127.0.0.1,localhost,192.0.2.2"
    assert env["http_proxy"] == scale.OFFLINE_ENV["http_proxy"]
    assert scale._offline_env("127.0.0.1") == scale._offline_env() == scale.OFFLINE_ENV


# ----------------------------------------------------------------------------- on Ray
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="chapter 10's Ray tests need `make scale` (installs ray)")


@pytest.mark.slow
@needs_ray
def test_ray_returns_exactly_what_one_process_returns(fitted):
    snap, _ = fitted
    users = snap.user_ids[:300]
    one = scale.explain_users(snap, users)
    with pytest.raises(RuntimeError, match="not running"):
        scale.run_on_ray(snap, users, workers=1)
    with scale.local_ray(num_cpus=2):
        with pytest.raises(RuntimeError, match="already running"):
            with scale.local_ray():
                pass
        with pytest.raises(DataError, match="does not know"):
            scale.run_on_ray(snap, np.r_[users[:5], 99999999], workers=1)
        out, seconds = scale.run_on_ray(snap, users, workers=2, batch_size=64)
    import ray

    assert not ray.is_initialized()
    assert seconds > 0
    pd.testing.assert_frame_equal(out.drop(columns="score"), one.drop(columns="score"))
    np.testing.assert_allclose(out["score"], one["score"], rtol=0, atol=1e-9)

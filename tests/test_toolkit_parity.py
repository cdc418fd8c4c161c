"""The course's evaluation is RecBole's: on RecBole's own split (stored by the peers' run), the
course's EASE with RecBole's default weight reproduces RecBole's recorded EASE metrics, valid
and test, on both protocols. Any difference in masking, ties, NDCG's ideal or the split would
show here; a deliberately broken evaluation (the validation items left unmasked at test time)
does."""
import json
from pathlib import Path

import pytest

from helpers.core.checks import DataError
from helpers.data import loaders, preprocess as pp
from helpers.models import cf

PEERS = json.loads((Path(__file__).resolve().parents[1]
                    / "benchmarks/results/peers_ml100k.json").read_text())
NAMES = {"ndcg@10": "ndcg@10", "mrr@10": "mrr@10", "hr@10": "hit@10",
         "recall@10": "recall@10", "precision@10": "precision@10"}


@pytest.fixture(scope="module")
def ratings():
    return loaders.load_movielens("recbole")["ratings"]


@pytest.mark.parametrize("protocol", ["RO_RS", "LS"])
def test_course_ease_on_recboles_split_equals_recboles_ease(ratings, protocol):
    train, valid, test = loaders.recbole_split(protocol, ratings)
    sizes = PEERS["recbole_split_sizes"][protocol]
    assert len(train) + len(valid) + len(test) == len(ratings)
    for k, part in enumerate((train, valid, test)):      # the sizes RecBole's run recorded
        counts = part.groupby("user_id").size()
        assert all(counts.get(int(u), 0) == n[k] for u, n in sizes.items())
    users, items = pp.build_id_map(ratings["user_id"]), pp.build_id_map(ratings["item_id"])
    model = cf.EASE(250.0).fit(train, users, items)       # RecBole's EASE: reg_weight 250
    want = PEERS["recbole"][f"EASE/{protocol}"]
    got_valid, got_test = model.evaluate(valid, 10), model.evaluate(test, 10, exclude=valid)
    for ours, theirs in NAMES.items():
        assert got_valid[ours] == pytest.approx(want["valid"][theirs], abs=1e-4), ours
        assert got_test[ours] == pytest.approx(want["test"][theirs], abs=1e-4), ours
    broken = model.evaluate(test, 10)                     # validation items not masked
    assert abs(broken["ndcg@10"] - want["test"]["ndcg@10"]) > 1e-3


def test_recbole_split_refuses_other_data(ratings):
    with pytest.raises(DataError, match="no RecBole split called 'RS'"):
        loaders.recbole_split("RS", ratings)
    with pytest.raises(DataError, match="99,999 rows"):
        loaders.recbole_split("LS", ratings.iloc[1:])
    twice = ratings.copy()
    twice.loc[twice.index[1], ["user_id", "item_id"]] = twice.iloc[0][["user_id", "item_id"]]
    with pytest.raises(DataError, match="repeated pairs"):
        loaders.recbole_split("LS", twice)


def test_recboles_leave_one_out_test_items_are_the_latest_up_to_its_float32_timestamps(ratings):
    """``pp.leave_last_out(ties="input")`` picks RecBole's test item for 939 of 943 users; the
    other 4 are explained exactly by RecBole's min-max-normalised float32 timestamps, in which
    events about a second apart tie and keep their file order: with that key all 943 agree,
    with the exact times they do not."""
    import numpy as np

    want = {int(u): int(i) for u, i in PEERS["recbole_test_items"]["LS"].items()}
    _, _, test = pp.leave_last_out(ratings, ties="input")
    exact = dict(zip(test["user_id"], test["item_id"]))
    differ = [u for u in want if exact[u] != want[u]]
    assert len(differ) == 4
    ts = ratings["timestamp"].to_numpy(np.float64)
    key = ((ts - ts.min()) / (ts.max() - ts.min())).astype(np.float32)
    last = ratings.iloc[np.argsort(key, kind="stable")].groupby("user_id").tail(1)
    assert dict(zip(last["user_id"], last["item_id"])) == want
    for u in differ:                                       # one second apart, tied in float32
        mine = ratings[(ratings.user_id == u) & (ratings.item_id == exact[u])].timestamp.iloc[0]
        theirs = ratings[(ratings.user_id == u) & (ratings.item_id == want[u])].timestamp.iloc[0]
        assert mine - theirs == 1


# -- issue 38: one protocol for both libraries (benchmarks/peers/protocol_common.py) -----------
def _protocol_common():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks/peers/protocol_common.py"
    spec = importlib.util.spec_from_file_location("protocol_common", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_target_ranks_mask_exactly_what_each_candidate_set_says():
    """RecBole's layout: column 0 is padding. *masked* removes padding and the history, *padding*
    only column 0; a history item scored above the target costs a place only in *padding*;
    ties go to the lower column; a masked target is refused."""
    import numpy as np

    pc = _protocol_common()
    scores = np.array([[9.0, 5.0, 4.0, 3.0, 2.0, 3.0],      # target 3; history 1 (above it)
                       [9.0, 1.0, 2.0, 3.0, 3.0, 0.0]])     # target 4; item 3 ties, lower index
    target = np.array([3, 4])
    padding = np.zeros(scores.shape, dtype=bool)
    padding[:, 0] = True
    masked = padding.copy()
    masked[0, 1] = True                                      # user 0's history: item 1
    masked[1, 2] = True                                      # user 1's history: item 2 (below)
    assert pc.target_ranks(scores, target, masked).tolist() == [2, 2]    # 0: item 2; 1: item 3
    assert pc.target_ranks(scores, target, padding).tolist() == [3, 2]
    assert pc.target_ranks(scores, target, np.zeros_like(padding)).tolist() == [4, 3]
    broken = masked.copy()
    broken[0, 3] = True                                      # the held-out item masked
    with pytest.raises(ValueError, match="held-out items are masked"):
        pc.target_ranks(scores, target, broken)
    m = pc.metrics_from_ranks(np.array([1, 3, 11]), 10)
    assert m["ndcg@10"] == pytest.approx([1.0, 0.5, 0.0])
    assert m["hr@10"].tolist() == [1.0, 1.0, 0.0] and m["mrr@10"] == pytest.approx([1, 1 / 3, 0])


def test_recbole_event_order_gives_recboles_validation_and_test_items(ratings):
    """The key handed to the course's sequence models puts RecBole's validation and test items
    last for all 943 users (the file's order among float32 ties); the exact times do not."""
    pc = _protocol_common()
    _, valid, test = loaders.recbole_split("LS", ratings)
    key = pc.recbole_event_order(ratings["user_id"], ratings["timestamp"])
    assert sorted(key.tolist()) == list(range(len(ratings)))
    last_two = ratings.assign(key=key).sort_values("key").groupby("user_id").tail(2)
    want = {(u, i) for u, i in zip(valid.user_id, valid.item_id)} | {
        (u, i) for u, i in zip(test.user_id, test.item_id)}
    assert set(zip(last_two.user_id, last_two.item_id)) == want
    by_time = ratings.sort_values(["timestamp", "item_id"]).groupby("user_id").tail(2)
    assert set(zip(by_time.user_id, by_time.item_id)) != want


def test_masked_candidate_set_equals_the_courses_evaluate_and_a_broken_mask_does_not(ratings):
    """On RecBole's LS split, ranking a model's score matrix with the training and validation
    items masked reproduces ``evaluate(test, exclude=valid)`` exactly; masking training items
    only (the validation item left in) does not; with nothing masked every rank is at least the
    masked one, and the two differ by the history items scored above the test item."""
    import numpy as np

    pc = _protocol_common()
    train, valid, test = loaders.recbole_split("LS", ratings)
    users, items = pp.build_id_map(ratings["user_id"]), pp.build_id_map(ratings["item_id"])
    model = cf.EASE(250.0).fit(train, users, items)
    test = test.sort_values("user_id")
    idx = model.user_map.encode(test["user_id"], "user")
    target = model.item_map.encode(test["item_id"], "item")
    scores = model.scores(idx)

    def mask(*parts):
        m = np.zeros(scores.shape, dtype=bool)
        row = {u: k for k, u in enumerate(test["user_id"])}
        for p in parts:
            m[[row[u] for u in p["user_id"]], model.item_map.encode(p["item_id"], "item")] = True
        return m

    full = mask(train, valid)
    masked = pc.target_ranks(scores, target, full)
    want = model.evaluate(test, 10, exclude=valid)
    got = pc.summary(masked)
    for name in ("ndcg@10", "hr@10", "mrr@10"):
        assert got[name] == pytest.approx(want[name], abs=1e-12), name
    broken = pc.summary(pc.target_ranks(scores, target, mask(train)))
    assert abs(broken["ndcg@10"] - want["ndcg@10"]) > 1e-4
    unmasked = pc.target_ranks(scores, target, np.zeros_like(full))
    t = scores[np.arange(len(scores)), target][:, None]
    cols = np.arange(scores.shape[1])[None, :]
    above = (full & ((scores > t) | ((scores == t) & (cols < target[:, None])))).sum(1)
    assert (unmasked >= masked).all() and (unmasked - masked == above).all()

"""The course's evaluation is RecBole's: on RecBole's own split (stored by the peers' run), the
course's EASE with RecBole's default weight reproduces RecBole's recorded EASE metrics, valid
and test, on both protocols. Any difference in masking, ties, NDCG's ideal or the split would
show here; a deliberately broken evaluation (the validation items left unmasked at test time)
does."""
import json
from pathlib import Path

import pytest

from helpers import cf, data, preprocess as pp
from helpers.data import DataError

PEERS = json.loads((Path(__file__).resolve().parents[1]
                    / "benchmarks/results/peers_ml100k.json").read_text())
NAMES = {"ndcg@10": "ndcg@10", "mrr@10": "mrr@10", "hr@10": "hit@10",
         "recall@10": "recall@10", "precision@10": "precision@10"}


@pytest.fixture(scope="module")
def ratings():
    return data.load_movielens("recbole")["ratings"]


@pytest.mark.parametrize("protocol", ["RO_RS", "LS"])
def test_course_ease_on_recboles_split_equals_recboles_ease(ratings, protocol):
    train, valid, test = data.recbole_split(protocol, ratings)
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
        data.recbole_split("RS", ratings)
    with pytest.raises(DataError, match="99,999 rows"):
        data.recbole_split("LS", ratings.iloc[1:])
    twice = ratings.copy()
    twice.loc[twice.index[1], ["user_id", "item_id"]] = twice.iloc[0][["user_id", "item_id"]]
    with pytest.raises(DataError, match="repeated pairs"):
        data.recbole_split("LS", twice)


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

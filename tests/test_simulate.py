"""helpers.evaluation.simulate: the utility is ShopWorld's own (purchases score above random pairs; a
favourite colour adds exactly the user's taste), the reader and funnel follow their stated
formulas, the A/B analysis recovers a known effect, and the sample size gives its power."""
import numpy as np
import pandas as pd
import pytest

from helpers.core.checks import DataError
from helpers.data import loaders
from helpers.evaluation import simulate as S


@pytest.fixture(scope="module")
def truth():
    return (loaders.load_shopworld("user_truth"), loaders.load_shopworld("item_truth"),
            loaders.load_shopworld("catalogue"), loaders.load_shopworld("events"))


def test_true_utility_is_shopworlds(truth):
    ut, it, cat, events = truth
    buys = events[events["event_type"] == "purchase"].head(2000)
    u_buy = S.true_utility(buys["user_id"], buys["item_id"], ut, it, cat)
    rng = np.random.default_rng(0)
    rand_items = rng.choice(cat["item_id"], len(buys))
    u_rand = S.true_utility(buys["user_id"], rand_items, ut, it, cat)
    assert u_buy.mean() > u_rand.mean() + 0.5      # people buy what they like
    # a favourite colour adds exactly colour_taste (everything else equal): the same item,
    # two users differing only in fav_colour
    item = int(it["item_id"].iloc[0])
    colour = it.set_index("item_id").loc[item, "colour"]
    two = ut.iloc[[0, 0]].copy()
    two["user_id"] = [10_001, 10_002]
    two["fav_colour"] = [colour, "none"]
    both = pd.concat([ut, two], ignore_index=True)
    du = np.diff(S.true_utility([10_002, 10_001], [item, item], both, it, cat))[0]
    assert du == pytest.approx(two["colour_taste"].iloc[0])
    with pytest.raises(DataError, match="not in the truth"):
        S.true_utility([999_999], [item], ut, it, cat)
    with pytest.raises(DataError, match="pair up"):
        S.true_utility([1, 2], [item], ut, it, cat)


def _pairs(n, cared_true=0, false=0, cared=0, cared_false=0, utility=0.0):
    return pd.DataFrame({"utility": np.full(n, utility), "cared": cared, "cared_true": cared_true,
                         "false": false, "cared_false": cared_false})


def test_reader_follows_its_formula():
    quiet = S.Reader(noise_sd=0.0)
    assert S.rate(_pairs(3), quiet).tolist() == [3, 3, 3]                   # round(3.2)
    assert S.rate(_pairs(1, cared_true=2), quiet)[0] == 4                   # 3.2 + 1.0
    assert S.rate(_pairs(1, false=1), quiet)[0] == 2                        # 3.2 - 1.5
    assert S.rate(_pairs(1, false=3), quiet)[0] == 1                        # clipped
    assert S.rate(_pairs(1, utility=5.0, cared_true=3), quiet)[0] == 5      # clipped
    noisy = S.rate(_pairs(5000), S.Reader(noise_sd=0.6), seed=1)
    assert set(np.unique(noisy)) <= {1, 2, 3, 4, 5} and 3.0 < noisy.mean() < 3.4
    with pytest.raises(DataError, match="unknown Reader"):
        quiet.replace(bias=1)
    assert quiet.replace(per_false=-3).per_false == -3


def test_read_reasons_judges_claims_against_the_truth():
    from helpers.reasons import world as W
    world = W.reason_world()
    row = world.warm.iloc[0]
    u, i = int(row["user_id"]), int(row["item_id"])
    truth_colour = world.items_truth[i]["colour"]
    other = next(c for c in world.lex.colours if c != truth_colour)
    fav = world.users_truth[u]["colour"]
    got = S.read_reasons([f"It comes in {truth_colour}.", f"It comes in {other}.", None],
                         [u, u, u], [i, i, i], world.lex, world.items_truth, world.users_truth)
    assert got["false"].tolist() == [0, 1, 0] and got["claims"].tolist() == [1, 1, 0]
    assert got["cared"].tolist() == [int(truth_colour == fav), int(other == fav), 0]
    with pytest.raises(DataError, match="same length"):
        S.read_reasons(["x"], [u, u], [i], world.lex, world.items_truth, world.users_truth)


def test_ab_test_follows_the_funnel_and_the_analysis_finds_a_known_effect():
    n = 4000
    panel = _pairs(n).assign(user_id=np.arange(n), arm=np.where(np.arange(n) < n // 2, "A", "B"))
    panel.loc[panel["arm"] == "B", ["cared", "cared_true"]] = 2       # B's reasons name 2 cared things
    panel.loc[:100, "cared_false"] = 1
    f = S.Funnel()
    out = S.ab_test(panel, f, sessions=50, seed=0)
    sig = lambda x: 1 / (1 + np.exp(-x))
    a, b = out[out["arm"] == "A"], out[out["arm"] == "B"]
    assert a["clicks"].sum() / a["sessions"].sum() == pytest.approx(sig(f.click), abs=0.005)
    assert b["clicks"].sum() / b["sessions"].sum() == pytest.approx(sig(f.click + 2 * f.click_cared), abs=0.005)
    bad = out.iloc[:101]
    assert bad["returns"].sum() / bad["purchases"].sum() == pytest.approx(f.return_false, abs=0.08)
    summary = S.arm_summary(out, control="A", n_boot=500)
    true_diff = sig(f.click + 2 * f.click_cared) - sig(f.click)
    assert summary.loc["B", "CTR lo"] < true_diff < summary.loc["B", "CTR hi"]
    assert summary.loc["B", "CTR p"] < 0.01
    with pytest.raises(DataError, match="twice"):
        S.ab_test(pd.concat([panel.iloc[:2], panel.iloc[:1]]), f)
    with pytest.raises(DataError, match="control arm"):
        S.arm_summary(out, control="C")


def test_two_proportion_n_gives_the_power_it_promises():
    p0, p1 = 0.10, 0.13
    n = S.two_proportion_n(p0, p1)
    rng = np.random.default_rng(0)

    def power(n_arm, sims=4000):
        x0, x1 = rng.binomial(n_arm, p0, sims), rng.binomial(n_arm, p1, sims)
        pooled = (x0 + x1) / (2 * n_arm)
        z = (x1 - x0) / n_arm / np.sqrt(2 * pooled * (1 - pooled) / n_arm)
        return np.mean(np.abs(z) > 1.959964)
    assert power(n) == pytest.approx(0.8, abs=0.03)
    assert power(n // 2) < 0.6                          # half the traffic: far from 80 %
    with pytest.raises(DataError, match="equal"):
        S.two_proportion_n(0.1, 0.1)
    with pytest.raises(DataError, match="probability"):
        S.two_proportion_n(0.1, 1.2)

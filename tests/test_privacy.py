"""helpers.models.privacy against established references: one DP-SGD aggregation equals Opacus's
DPOptimizer, ghost clipping trains exactly what per-user gradient hooks train, the accountant
reaches the requested epsilon, ranking metrics equal a brute-force argsort, federated averaging
is the size-weighted mean of the clients' local models, and the leak check finds what it
should (and no served reason leaks)."""
import copy

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.core.checks import DataError, ParameterError
from helpers.course.exercises.ch08 import _opacus_noiseless_grad
from helpers.data import preprocess as pp
from helpers.models import privacy as P


def _data(n_users=120, n_items=40, seed=0):
    rng = np.random.default_rng(seed)
    # two tastes: users 0..59 like items 0..19, the rest items 20..39
    rows = []
    for u in range(n_users):
        lo = 0 if u < n_users // 2 else n_items // 2
        for i in rng.choice(np.arange(lo, lo + n_items // 2), 5, replace=False):
            rows.append((u, int(i)))
    df = pd.DataFrame(rows, columns=["user_id", "item_id"])
    im = pp.build_id_map(pd.Series(range(n_items)))
    return df, im


def test_histories_keep_order_and_refuse_bad_input():
    df, im = _data()
    x = P.histories(df, [5, 2, 999], im)
    assert x.shape == (3, 40)
    assert x[0].nonzero().ravel().tolist() == sorted(df.loc[df.user_id == 5, "item_id"])
    assert x[2].sum() == 0                                   # no interactions: an empty row
    with pytest.raises(DataError, match="repeat"):
        P.histories(df, [1, 1], im)
    with pytest.raises(DataError, match="item"):
        P.histories(pd.DataFrame({"user_id": [1], "item_id": [77]}), [1], im)
    with pytest.raises(DataError, match=r"\(batch, 40\)"):
        P.HistoryModel(40)(torch.zeros(2, 39))


@pytest.mark.parametrize("max_norm,seed", [(1.0, 0), (0.3, 1)])
def test_clip_and_noise_equals_opacus(max_norm, seed):
    per, ref = _opacus_noiseless_grad(max_norm, seed)
    got = P.clip_and_noise(per, max_norm, 0.0)
    assert torch.allclose(got, ref, atol=1e-6)
    # a per-coordinate clamp (a common mistake) is not DP-SGD's clipping, and the check sees it
    assert not torch.allclose(per.clamp(-max_norm, max_norm).mean(0), ref, atol=1e-4)
    noisy = P.clip_and_noise(torch.zeros(5, 50_000), 0.5, 2.0, torch.Generator().manual_seed(0))
    assert abs(float(noisy.std()) - 2.0 * 0.5 / 5) < 0.01 * 0.2


@pytest.mark.slow
def test_ghost_clipping_trains_what_per_user_hooks_train_and_epsilon_is_met():
    df, im = _data()
    x = P.histories(df, range(120), im)
    models, reports = {}, {}
    for mode in ("ghost", "hooks"):
        models[mode] = P.HistoryModel(40, 8, seed=1)
        reports[mode] = P.train(models[mode], x, epsilon=4.0, delta=1e-3, epochs=3,
                                batch_size=16, grad_sample_mode=mode, progress=False)
    for a, b in zip(models["ghost"].parameters(), models["hooks"].parameters()):
        assert torch.allclose(a, b, atol=1e-5)
    rep = reports["ghost"]
    assert abs(rep.epsilon - 4.0) < 0.2 and rep.noise_multiplier > 0
    assert rep.steps == 3 * int(np.ceil(120 / 16))
    strict = P.train(P.HistoryModel(40, 8), x, epsilon=0.5, delta=1e-3, epochs=3, batch_size=16,
                     progress=False)
    assert strict.noise_multiplier > rep.noise_multiplier       # less epsilon, more noise
    plain = P.train(P.HistoryModel(40, 8), x, epsilon=None, epochs=3, batch_size=16,
                    progress=False)
    assert plain.epsilon == float("inf") and plain.noise_multiplier == 0
    assert plain.steps == rep.steps                             # the same schedule


@pytest.mark.parametrize("kwargs,err,match", [
    ({"epsilon": 0.0}, ParameterError, "epsilon"), ({"epsilon": -1.0}, ParameterError, "epsilon"),
    ({"epsilon": float("inf")}, DataError, "epsilon=None"),
    ({"epsilon": 1.0, "delta": 1.0}, ParameterError, "delta"),
    ({"epsilon": 1.0, "delta": 0.05}, DataError, "1/n"),
    ({"epsilon": None, "epochs": 0}, ParameterError, "epochs"),
    ({"epsilon": 1.0, "grad_sample_mode": "ew"}, DataError, "grad_sample_mode"),
])
def test_bad_privacy_settings_are_refused(kwargs, err, match):
    df, im = _data()
    x = P.histories(df, range(120), im)
    with pytest.raises(err, match=match):
        P.train(P.HistoryModel(40, 4), x, progress=False, **kwargs)


def test_bad_histories_are_refused():
    m = P.HistoryModel(40, 4)
    for bad, match in [(torch.full((3, 40), 0.5), "only 0 and 1"), (torch.zeros(0, 40), "empty"),
                       (torch.zeros(3, 41), r"\(users, 40\)"), ([[0] * 40], "tensor")]:
        with pytest.raises(DataError, match=match):
            P.train(m, bad, epsilon=None, progress=False)
    with pytest.raises(DataError, match="NaN|0 and 1"):
        P.user_losses(m, torch.full((2, 40), float("nan")))


def test_evaluate_equals_brute_force_ranking():
    df, im = _data()
    x = P.histories(df, range(120), im)
    m = P.HistoryModel(40, 8, seed=3)
    targets = np.random.default_rng(0).integers(0, 40, 120)
    got = P.evaluate(m, x, targets, k=5)
    with torch.no_grad():
        s = m(x).numpy()
    s[x.numpy() > 0] = -np.inf
    for u in range(120):
        rank = int(np.flatnonzero(np.argsort(-s[u], kind="stable") == targets[u])[0])
        hit = rank < 5 and np.isfinite(s[u, targets[u]])
        assert got["hr@5"][u] == hit
        assert np.isclose(got["ndcg@5"][u], 1 / np.log2(rank + 2) if hit else 0.0)
    pop = torch.tensor([3.0, 3.0, 1.0, 0.0])                    # a tie counts half
    r = P.evaluate(pop, torch.zeros(1, 4), [1], k=1)
    assert r["hr@1"][0] == 1 and np.isclose(r["ndcg@1"][0], 1 / np.log2(2.5))


def test_membership_attack_sees_memorisation_and_nothing_in_an_untrained_model():
    df, im = _data(seed=4)
    x = P.histories(df, range(120), im)
    members, others = x[::2], x[1::2]
    untrained = P.HistoryModel(40, 8)
    assert abs(P.membership_auc(untrained, members, others) - 0.5) < 0.15
    over = P.HistoryModel(40, 32)
    P.train(over, members, epsilon=None, epochs=300, batch_size=8, lr=3e-2, input_dropout=0.0,
            progress=False)
    auc = P.membership_auc(over, members, others)
    assert auc > 0.8
    assert np.isclose(P.membership_auc(over, others, members), 1 - auc)   # direction matters


def test_fedavg_is_the_size_weighted_mean_of_local_models():
    df, im = _data()
    x = P.histories(df, range(120), im)
    clients = [x[:30], x[30:120]]
    start = P.HistoryModel(40, 8, seed=2)
    fed = copy.deepcopy(start)
    traffic = P.fedavg(fed, clients, rounds=1, local_epochs=1, batch_size=16, progress=False)
    local = []
    for j, c in enumerate(clients):                              # what each client does
        m = copy.deepcopy(start)
        P.train(m, c, epsilon=None, epochs=1, batch_size=16, seed=j, progress=False)
        local.append(m.state_dict())
    for k, v in fed.state_dict().items():
        assert torch.allclose(v, 0.25 * local[0][k] + 0.75 * local[1][k], atol=1e-6)
    n = sum(p.numel() for p in start.parameters())
    assert traffic == {"rounds": 1, "bytes down": 4 * n * 2, "bytes up": 4 * n * 2,
                       "parameters": n}
    with pytest.raises(DataError, match="non-empty list"):
        P.fedavg(fed, [])


def test_leaks_finds_other_users_ids_and_words_but_not_ones_own():
    reviews = pd.DataFrame({"user_id": [7, 8], "sentence": [
        "The strap broke after two weeks of daily use.", "Lovely bright colours on this lamp."]})
    found = P.leaks(["Shopper 8 liked it.", "The strap broke after two weeks of use.",
                     "the strap broke after two weeks of daily use",
                     "Recommended for its comfort."], [7, 9, 7, 7], reviews)
    assert found["other_id"].tolist() == [True, False, False, False]
    assert found["other_review"].tolist() == [False, True, False, False]   # 6-word run; own text
    with pytest.raises(DataError, match="one user per reason"):
        P.leaks(["a"], [1, 2], reviews)


@pytest.fixture(scope="module")
def world():
    from helpers.reasons import world as W
    return W.reason_world()


def test_template_reasons_never_leak_and_retrieval_quotes_are_caught(world):
    from helpers.reasons import explainers

    pairs = pd.concat([world.warm, world.cold], ignore_index=True)
    template = explainers.TemplateExplainer(world.facts, world.profile)
    retrieval = explainers.RetrievalExplainer(world.train_reviews, world.profile, fallback=template)
    t = P.leaks(template.explain(pairs["user_id"], pairs["item_id"]), pairs["user_id"],
                world.train_reviews)
    assert not t["leak"].any()
    r = P.leaks(retrieval.explain(pairs["user_id"], pairs["item_id"]), pairs["user_id"],
                world.train_reviews)
    assert r["other_review"].mean() > 0.2


def test_membership_auc_interval_brackets_the_auc():
    df, im = _data(seed=5)
    x = P.histories(df, range(120), im)
    m = P.HistoryModel(40, 16)
    P.train(m, x[::2], epsilon=None, epochs=50, batch_size=8, lr=3e-2, progress=False)
    r = P.membership_auc_ci(m, x[::2], x[1::2], n_boot=300, seed=0)
    assert r["auc"] == P.membership_auc(m, x[::2], x[1::2])
    assert r["lo"] < r["auc"] < r["hi"] and r["hi"] - r["lo"] < 0.5
    with pytest.raises(ParameterError, match="n_boot"):
        P.membership_auc_ci(m, x[::2], x[1::2], n_boot=0)


def test_member_split_halves_the_test_users():
    df, im = _data()
    test = df.groupby("user_id").tail(1)
    train = df.drop(test.index)
    s = P.member_split(train, test, im, seed=3)
    assert len(s.members) == 60 and len(s.others) == 60
    assert not set(s.members) & set(s.others) and set(s.members) | set(s.others) == set(range(120))
    torch.testing.assert_close(s.x_members, P.histories(train, s.members, im))
    truth = test.set_index("user_id")["item_id"]
    assert s.t_others.tolist() == im.encode(truth.loc[s.others]).tolist()
    assert P.member_split(train, test, im, seed=3).members.tolist() == s.members.tolist()
    with pytest.raises(DataError, match="one held-out item per user"):
        P.member_split(train, df, im)

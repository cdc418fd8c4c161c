import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from helpers.core.checks import DataError, ParameterError
from helpers.course.exercises import ch04
from helpers.data.preprocess import build_id_map
from helpers.models import interest as I
from helpers.models.sequential import training_windows


def test_training_windows_cover_every_target_once():
    df = pd.DataFrame({"user_id": [1] * 5 + [2], "item_id": [10, 20, 30, 40, 50, 10],
                       "timestamp": [1, 2, 3, 4, 5, 1]})
    um, im = build_id_map(df.user_id), build_id_map(df.item_id)
    w = training_windows(df, um.encode(df.user_id), im.encode(df.item_id), 3)
    assert w.tolist() == [[3, 4, 5], [1, 2, 3]]  # user 2 (one item) has no target
    with pytest.raises(ValueError, match="length"):
        training_windows(df, um.encode(df.user_id), im.encode(df.item_id), 1)


def test_pooling_matches_loops_and_handles_empty_history():
    gen = torch.Generator().manual_seed(0)
    emb = F.normalize(torch.randn(7, 4, generator=gen), dim=-1)
    seqs = torch.tensor([[0, 1, 2, 3], [0, 0, 0, 5], [0, 0, 0, 0]])
    mean = I.mean_pool(emb, seqs)
    assert torch.allclose(mean[0], emb[[0, 1, 2]].mean(0)) and torch.allclose(mean[1], emb[4])
    assert torch.equal(mean[2], torch.zeros(4))
    q = torch.randn(3, 4, generator=gen)
    pooled, w = I.attention_pool(emb, seqs, q, 0.5)
    ref = torch.softmax(emb[[0, 1, 2]] @ q[0] / 0.5, 0)
    assert torch.allclose(w[0, 1:], ref, atol=1e-6) and w[0, 0] == 0
    assert torch.allclose(pooled[0], ref @ emb[[0, 1, 2]], atol=1e-6)
    assert torch.equal(w[2], torch.zeros(4))
    with pytest.raises(ValueError, match="ids outside"):
        I.mean_pool(emb, torch.tensor([[8]]))
    with pytest.raises(ValueError, match="query must be"):
        I.attention_pool(emb, seqs, torch.randn(2, 4))


def test_in_batch_loss_equals_cross_entropy_and_exercises_accept_reference():
    gen = torch.Generator().manual_seed(1)
    u, v = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    lq = torch.randn(5, generator=gen)
    want = F.cross_entropy(u @ v.T / 0.1 - lq[None], torch.arange(5))
    assert torch.allclose(I.in_batch_softmax_loss(u, v, 0.1, log_q=lq), want)
    # a repeated target is not its own negative
    ids = torch.tensor([0, 1, 1, 2, 3])
    logits = u @ v.T / 0.1
    logits[1, 2] = logits[2, 1] = float("-inf")
    assert torch.allclose(I.in_batch_softmax_loss(u, v, 0.1, ids),
                          F.cross_entropy(logits, torch.arange(5)))
    with pytest.raises(ValueError, match="batch, d"):
        I.in_batch_softmax_loss(u, v[:4])
    assert ch04.q1.check(lambda h, r: I.mean_pool(h.reshape(-1, h.shape[-1]),
                         (torch.arange(1, h.shape[0] * h.shape[1] + 1).view(r.shape) * r))).passed
    assert ch04.q3.check(lambda a, b, t, l: I.in_batch_softmax_loss(a, b, t, log_q=l)).passed
    assert not ch04.q3.check(lambda a, b, t, l: F.cross_entropy(a @ b.T, torch.arange(len(a)))).passed
    assert not ch04.q2.check(lambda q, h, r, t: torch.softmax((h @ q[:, :, None])[..., 0], -1)).passed


def test_mask_items_hides_only_real_items_and_at_least_one():
    seqs = torch.tensor([[0, 0, 4, 5, 6], [0, 0, 0, 0, 0], [1, 2, 3, 4, 5]])
    inp, lab = I.mask_items(seqs, 0.01, 99, torch.Generator().manual_seed(0))
    assert (inp[seqs == 0] == 0).all() and (lab[seqs == 0] == -100).all()
    assert ((inp == 99).sum(1) >= 1)[[0, 2]].all() and (inp[1] == 0).all()
    assert torch.equal(lab[inp == 99], seqs[inp == 99])
    with pytest.raises(ValueError, match="mask_prob"):
        I.mask_items(seqs, 1.5, 99)


def _toy():
    rows = []
    rng = np.random.default_rng(0)
    for user in range(40):   # even users like items 0-5, odd users items 6-11
        base = 0 if user % 2 == 0 else 6
        for t in range(8):
            rows.append((user, base + int(rng.integers(6)), t))
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    # item texts: two clusters of directions
    emb = torch.zeros(12, 4)
    emb[:6, 0], emb[6:, 1] = 1.0, 1.0
    emb += 0.1 * torch.randn(12, 4, generator=torch.Generator().manual_seed(0))
    return df, F.normalize(emb, dim=-1), pd.Index(range(12))


def test_text_interest_recommends_the_users_cluster_and_falls_back():
    df, emb, ids = _toy()
    for pooling in ("mean", "attention"):
        m = I.TextInterestRecommender(emb, ids, pooling=pooling).fit(df)
        recs = m.recommend([0, 1], k=3, exclude_seen=False)
        assert recs[recs.user_id == 0].item_id.lt(6).all()
        assert recs[recs.user_id == 1].item_id.ge(6).all()
    why = m.explain(0, 2, top=2)
    assert list(why.columns) == ["item_id", "weight", "similarity"] and why.item_id.lt(6).all()
    with pytest.raises(DataError, match="no embedding"):
        I.TextInterestRecommender(emb[:6], ids[:6]).fit(df)
    with pytest.raises(ParameterError, match="pooling"):
        I.TextInterestRecommender(emb, ids, pooling="max").check_params()
    # a user with no history in the training data (known to the map) gets popular items
    um = build_id_map(list(range(40)) + [99])
    m = I.TextInterestRecommender(emb, ids).fit(df, um, build_id_map(range(12)))
    with pytest.warns(UserWarning, match="no history"):
        recs = m.recommend([99], k=2)
    assert recs.item_id.tolist() == list(np.argsort(-m.popularity, kind="stable")[:2])


def test_two_tower_and_bert4rec_learn_the_toy_clusters():
    df, emb, ids = _toy()
    tt = I.TwoTowerRecommender(emb, ids, max_len=5, n_epochs=30, lr=1e-2,
                               batch_size=32).fit(df)
    top = tt.recommend([0, 1], k=3, exclude_seen=False)
    assert top[top.user_id == 0].item_id.lt(6).all() and top[top.user_id == 1].item_id.ge(6).all()
    assert tt.history[-1] < tt.history[0]
    b4r = I.BERT4RecRecommender(max_len=6, d_model=16, n_layer=1, dropout=0.0, n_epochs=40,
                                batch_size=16).fit(df)
    top = b4r.recommend([0, 1], k=3, exclude_seen=False)
    assert top[top.user_id == 0].item_id.lt(6).mean() > 0.6
    assert b4r.history[-1] < b4r.history[0]
    with pytest.raises(ParameterError, match="texts"):
        I.TwoTowerRecommender(emb, ids, finetune_layers=1).check_params()
    assert tt.device_.type == "cpu" and tt.user_vecs.device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            I.TwoTowerRecommender(emb, ids, device="cuda").check_params()
    with pytest.raises(ParameterError, match="Unknown device"):
        I.TwoTowerRecommender(emb, ids, device="tpu").check_params()


def test_finetune_top_layer_starts_from_the_frozen_embeddings():
    """The cached lower-layer path reproduces models.encode before any training step."""
    texts = pd.Series(["a red lamp", "quiet espresso machine with easy cleaning",
                       "light running shoes"], index=[1, 2, 3])
    emb = I.encode_items(texts, cache=False)
    df = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [1, 2, 2, 3], "timestamp": [1, 2, 1, 2]})
    m = I.TwoTowerRecommender(emb, texts.index, finetune_layers=1, texts=texts, max_steps=1,
                              n_epochs=1, encoder_lr=0.0, lr=0.0)
    m.fit(df)
    assert torch.allclose(m.item_base, emb, atol=1e-5)


def test_item_texts_and_bad_input():
    cat = pd.DataFrame({"item_id": [1, 2], "title": ["Lamp.", "Mug"],
                        "description": ["Bright.", "Holds tea."]})
    assert I.item_texts(cat).tolist() == ["Lamp. Bright.", "Mug. Holds tea."]
    with pytest.raises(DataError, match="no description"):
        I.item_texts(cat.assign(description=["x", None]))
    with pytest.raises(DataError, match="unique"):
        I.item_texts(pd.concat([cat, cat]))
    items = pd.DataFrame({"item_id": [1, 2], "title": ["Toy Story", "Old"], "year": [1995, np.nan],
                          "genres": ["Animation|Comedy", ""]})
    assert I.movielens_texts(items).tolist() == ["Toy Story (1995). Genres: Animation, Comedy.",
                                                 "Old."]
    with pytest.raises(TypeError, match="Series"):
        I.encode_items(["a"])


def test_aspect_profile_recovers_planted_preferences():
    cats = {"lamps": ["brightness", "adjustability"], "mugs": ["capacity", "warmth"]}
    cat = pd.DataFrame({"item_id": [1, 2, 3, 4], "category": ["lamps", "lamps", "mugs", "mugs"],
                        "description": ["Great brightness.", "Superb adjustability.",
                                        "Huge capacity.", "Keeps warmth."]})
    ev = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [1, 1, 2, 4],
                       "event_type": ["click", "purchase", "add_to_cart", "purchase"]})
    rev = pd.DataFrame({"user_id": [2], "aspect": ["capacity"]})
    prof = I.aspect_profile(ev, rev, cat, cats, top=2)
    p = prof.set_index("user_id")
    assert p.loc[1, "aspect_1"] == "brightness" and p.loc[2, "aspect_1"] == "capacity"
    assert np.isinf(p.loc[1, "score_2"]) or p.loc[1, "aspect_2"] == "adjustability"
    truth = pd.DataFrame({"user_id": [1, 2], "aspect_1": ["brightness", "warmth"],
                          "aspect_2": ["adjustability", "capacity"]})
    assert I.aspect_precision(prof, truth, top=2) == pytest.approx((2 / 2 + 2 / 2) / 2)
    with pytest.raises(DataError, match="unknown event types"):
        I.aspect_profile(ev.assign(event_type="cart"), rev, cat, cats)
    with pytest.raises(DataError, match="missing from the truth"):
        I.aspect_precision(prof, truth.iloc[:1], top=2)


def test_evaluate_with_candidates():
    from helpers.models import cf
    df = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [1, 2, 1, 3, 1]})
    m = cf.MostPopular().fit(df, build_id_map([1, 2, 3]), build_id_map([1, 2, 3, 4, 5]))
    test = pd.DataFrame({"user_id": [3], "item_id": [5]})
    assert m.evaluate(test, k=1)["hr@1"] == 0.0
    assert m.evaluate(test, k=1, candidates=[4, 5])["hr@1"] == 0.0   # 4 before 5 on a tie
    assert m.evaluate(test, k=2, candidates=[4, 5])["hr@2"] == 1.0
    with pytest.raises(DataError, match="candidates"):
        m.evaluate(test, k=1, candidates=[4])

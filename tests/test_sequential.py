import numpy as np
import pandas as pd
import pytest
import torch

from helpers.core.checks import DataError, ParameterError
from helpers.data.preprocess import build_id_map
from helpers.models.interest import BERT4RecRecommender
from helpers.models.sequential import SASRecRecommender, user_sequences


def test_user_sequences_are_time_ordered_and_left_padded():
    df = pd.DataFrame({"user_id": [1, 1, 1, 2], "item_id": [30, 10, 20, 10],
                       "timestamp": [3, 1, 2, 5]})
    um, im = build_id_map(df.user_id), build_id_map(df.item_id)
    seqs = user_sequences(df, um.encode(df.user_id), im.encode(df.item_id), 2, 4)
    assert seqs.tolist() == [[0, 1, 2, 3], [0, 0, 0, 1]]  # item index + 1, oldest first


def test_sasrec_learns_a_next_item_pattern():
    rng = np.random.default_rng(0)
    rows = []
    for user in range(60):  # item j is always followed by j + 1 (mod 12)
        start = rng.integers(12)
        rows += [(user, (start + t) % 12, t) for t in range(9)]
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    model = SASRecRecommender(max_len=8, d_model=32, n_layer=1, dropout=0.0, n_epochs=60,
                              lr=5e-3, batch_size=32).fit(df)
    recs = model.recommend(range(60), k=1, exclude_seen=False)
    last = df.sort_values("timestamp").groupby("user_id")["item_id"].last()
    expected = (last + 1) % 12
    hit = (recs.set_index("user_id")["item_id"] == expected).mean()
    assert hit > 0.9, hit
    assert model.history[-1] < model.history[0]


def test_sasrec_starts_near_a_uniform_guess():
    """Small initial weights: the first loss is about log(n_items), not several times it."""
    from helpers.models.attention import AttentionConfig, SASRec
    torch.manual_seed(0)
    model = SASRec(500, 20, AttentionConfig(d_model=64, n_head=2))
    seq = torch.randint(1, 501, (8, 20))
    loss = torch.nn.functional.cross_entropy(model.logits(model(seq[:, :-1])).reshape(-1, 500),
                                             seq[:, 1:].reshape(-1) - 1)
    assert abs(loss.item() - np.log(500)) < 0.1


def _cycles(n_users=60, n_items=12, length=9, seed=0):
    """Every user walks the cycle j -> j + 1 (mod n_items) from a random start."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        start = rng.integers(n_items)
        rows += [(user, (start + t) % n_items, t) for t in range(length)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def test_sasrec_and_bert4rec_share_one_encoder_and_differ_only_in_the_mask():
    """Same weights, one block: the last position (which sees the whole sequence either way)
    agrees; earlier positions differ, because only BERT4Rec reads the future. A deliberately
    causal BERT4Rec agrees with SASRec everywhere, with any number of blocks."""
    from helpers.models.attention import AttentionConfig, ItemSequenceEncoder, SASRec
    from helpers.models.interest import BERT4Rec
    torch.manual_seed(0)
    cfg = AttentionConfig(d_model=16, n_head=2, dropout=0.0)
    sas, bert = SASRec(30, 8, cfg, n_layer=1).eval(), BERT4Rec(30, 8, cfg, n_layer=1).eval()
    assert isinstance(sas, ItemSequenceEncoder) and isinstance(bert, ItemSequenceEncoder)
    state = sas.state_dict()
    bert_state = bert.state_dict()
    assert set(state) == set(bert_state)
    for name, w in state.items():
        if name == "item_emb.weight":      # BERT4Rec has one more row: [MASK]
            assert bert_state[name].shape[0] == w.shape[0] + 1
            w = torch.cat([w, bert_state[name][-1:]])
        bert_state[name] = w
    bert.load_state_dict(bert_state)
    seq = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8]])
    with torch.no_grad():
        a, b = sas(seq), bert(seq)
        torch.testing.assert_close(a[:, -1], b[:, -1])
        assert (a[:, 2:-1] - b[:, 2:-1]).abs().max() > 1e-3
        torch.testing.assert_close(sas.logits(a), bert.logits(a))   # the same 30 item columns
        bert.causal = True
        torch.testing.assert_close(sas(seq), bert(seq))
    # ids are not range-checked in forward (a GPU would wait for that check on every step): an
    # id past the table fails in the embedding lookup; the recommenders encode ids by item map
    with pytest.raises(IndexError):
        bert(torch.tensor([[0, 32]]))
    with pytest.raises(IndexError):
        sas(torch.tensor([[0, 31]]))          # SASRec has no [MASK] id


@pytest.mark.parametrize("make", [
    lambda: SASRecRecommender(max_len=8, d_model=16, n_layer=1, dropout=0.0, n_epochs=200,
                              lr=5e-3, batch_size=16),
    lambda: BERT4RecRecommender(max_len=8, d_model=16, n_layer=1, dropout=0.0, n_epochs=200,
                                lr=5e-3, batch_size=16)], ids=["SASRec", "BERT4Rec"])
def test_sequence_models_stop_early_and_keep_their_best_epoch(make):
    df = _cycles()
    valid = df.sort_values("timestamp").groupby("user_id").tail(1)
    train = df.drop(valid.index)
    m = make().fit(train, valid=valid, patience=10)
    assert len(m.history_valid) < 200                               # stopped before the cap
    assert len(m.history_valid) == int(np.argmax(m.history_valid)) + 1 + 10
    got = m.evaluate(valid, 10)["mrr@10"]
    assert got == pytest.approx(max(m.history_valid), abs=1e-9)      # the best epoch's weights
    assert max(m.history_valid) > 0.9                                 # it learned the cycle


def test_use_history_reads_new_events_without_retraining():
    df = _cycles()
    last = df.sort_values("timestamp").groupby("user_id").tail(1)
    train = df.drop(last.index)
    m = SASRecRecommender(max_len=8, d_model=16, n_layer=1, dropout=0.0, n_epochs=60,
                          lr=5e-3, batch_size=16).fit(train)
    before = m.recommend(range(60), k=1, exclude_seen=False).set_index("user_id")["item_id"]
    weights = [p.detach().clone() for p in m.model.parameters()]
    m.use_history(df)                      # each user's newest event is now part of the input
    after = m.recommend(range(60), k=1, exclude_seen=False).set_index("user_id")["item_id"]
    assert all(torch.equal(p, w) for p, w in zip(m.model.parameters(), weights))
    expected = ((last.set_index("user_id")["item_id"] + 1) % 12).sort_index()
    assert (after.sort_index() == expected).mean() > 0.9
    assert (before.sort_index() == expected).mean() < 0.1   # it predicted the held-out item
    with pytest.raises(DataError, match="Unknown history item"):
        m.use_history(pd.DataFrame({"user_id": [1], "item_id": [99], "timestamp": [0]}))
    with pytest.raises(DataError, match="NaN"):
        m.use_history(df.assign(timestamp=np.where(df.index == 3, np.nan, df.timestamp)))


@pytest.mark.parametrize("cls", [SASRecRecommender, BERT4RecRecommender])
def test_sequence_models_train_on_their_device_and_refuse_a_missing_one(cls):
    m = cls(max_len=6, d_model=8, n_layer=1, n_epochs=1, device="cpu").fit(_cycles(10))
    assert next(m.model.parameters()).device.type == "cpu"
    assert m.scores(np.arange(3)).shape == (3, 12)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            cls(device="cuda").check_params()
    with pytest.raises(ParameterError, match="Unknown device"):
        cls(device="tpu").check_params()
    with pytest.raises(DataError, match="two interactions"):
        cls(n_epochs=1).fit(pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2],
                                          "timestamp": [0, 0]}))

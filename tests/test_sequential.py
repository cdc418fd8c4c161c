import numpy as np
import pandas as pd
import torch

from helpers.preprocess import build_id_map
from helpers.sequential import SASRecRecommender, user_sequences


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
    from helpers.attention import AttentionConfig, SASRec
    torch.manual_seed(0)
    model = SASRec(500, 20, AttentionConfig(d_model=64, n_head=2))
    seq = torch.randint(1, 501, (8, 20))
    loss = torch.nn.functional.cross_entropy(model.logits(model(seq[:, :-1])).reshape(-1, 501),
                                             seq[:, 1:].reshape(-1))
    assert abs(float(loss) - np.log(500)) < 0.1

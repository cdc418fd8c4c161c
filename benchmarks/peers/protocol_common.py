"""What both sides of the sequence-model comparison share (issue 38), in numpy only, so the
course's environment and RecBole's (``build/peers-venv``) import the very same code:

* ``recbole_event_order``: RecBole 1.2.1's order of a user's events (its tie order), as an
  integer key the course's models can take as their time column;
* ``target_ranks``: each user's rank of the held-out item under a candidate set (a mask);
* ``metrics_from_ranks``: NDCG@k, HR@k and MRR@k per user from those ranks.

Leave-one-out has exactly one held-out item per user, so its rank says everything: NDCG@k =
1 / log2(rank + 1), HR@k = 1, MRR@k = 1 / rank when rank <= k, else 0 (RecBole's ideal DCG for
one relevant item is 1, as the course's). Ties in score go to the lower column index (the
course's ``rank_from_scores``; RecBole's ``torch.topk`` leaves them unspecified).
"""
from __future__ import annotations

import numpy as np

K = 10
CANDIDATE_SETS = ("masked", "padding")   # history masked / RecBole's own (only padding masked)
# The tuning grid: the same two points for both libraries (both sides' scripts read it here),
# each library's own defaults for the knobs where the two differ. BERT4Rec's dropout is 0.2 in
# both. The course's figures came from test-set looks at an earlier split; RecBole's are its yaml.
CONFIGS = {
    "SASRec": {"course": {"dropout": 0.2, "batch_size": 128, "lr": 1e-3},
               "recbole": {"dropout": 0.5, "batch_size": 2048, "lr": 1e-3}},
    "BERT4Rec": {"course": {"dropout": 0.2, "batch_size": 128, "lr": 3e-3},
                 "recbole": {"dropout": 0.2, "batch_size": 2048, "lr": 1e-3}},
    "BPR": {"course": {"batch_size": 2048, "lr": 1e-3, "n_negatives": 4},
            "recbole": {"batch_size": 2048, "lr": 1e-3, "n_negatives": 1}},
}
PATIENCE = 10


def recbole_event_order(user, timestamp) -> np.ndarray:
    """Each event's position in RecBole 1.2.1's order, as an int64 key (0 .. n-1).

    RecBole min-max-normalises the timestamp column (``Dataset._normalize``; ``normalize_all:
    True`` in its ``properties/dataset/ml-100k.yaml``) and keeps it in float32
    (``Dataset._dataframe_to_interaction``), where events about a second apart near the end of MovieLens' range become equal;
    ``SequentialDataset.data_augmentation`` then sorts by (user, time) with stable sorts
    (``Interaction.sort``: ``np.argsort(kind="stable")``, last key first), so equal times keep
    the file's order. ``user`` and ``timestamp`` must be in file order. Handing this key to the
    course's models as their time column gives them RecBole's sequences: the key is unique, so
    their own tie rule (item id) never applies."""
    ts = np.asarray(timestamp, dtype=np.float64)
    key = ((ts - ts.min()) / (ts.max() - ts.min())).astype(np.float32)
    by_time = np.argsort(key, kind="stable")
    order = by_time[np.argsort(np.asarray(user)[by_time], kind="stable")]
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    return position


def target_ranks(scores, target, masked) -> np.ndarray:
    """1-based rank of ``target[u]`` (a column index) in row ``u`` of ``scores`` among the
    columns not ``masked`` (boolean, same shape as ``scores``); ties go to the lower column
    index. A masked target is an error (it could never be recommended)."""
    s = np.asarray(scores, dtype=np.float64)
    masked = np.asarray(masked, dtype=bool)
    target = np.asarray(target, dtype=np.int64)
    if s.shape != masked.shape or len(target) != len(s):
        raise ValueError(f"scores {s.shape}, mask {masked.shape}, targets {target.shape}")
    rows = np.arange(len(s))
    if masked[rows, target].any():
        raise ValueError(f"{int(masked[rows, target].sum())} held-out items are masked")
    t = s[rows, target][:, None]
    if not np.isfinite(t).all():
        raise ValueError("a held-out item has a non-finite score")
    cols = np.arange(s.shape[1])[None, :]
    ahead = ~masked & ((s > t) | ((s == t) & (cols < target[:, None])))
    return ahead.sum(1) + 1


def metrics_from_ranks(ranks, k: int = K) -> dict[str, np.ndarray]:
    """Per-user NDCG@k, HR@k and MRR@k for one held-out item per user at ``ranks``."""
    r = np.asarray(ranks, dtype=np.float64)
    hit = r <= k
    return {f"ndcg@{k}": np.where(hit, 1.0 / np.log2(r + 1.0), 0.0),
            f"hr@{k}": hit.astype(np.float64),
            f"mrr@{k}": np.where(hit, 1.0 / r, 0.0)}


def summary(ranks, k: int = K) -> dict[str, float]:
    """Means over users of :func:`metrics_from_ranks`."""
    return {name: float(v.mean()) for name, v in metrics_from_ranks(ranks, k).items()}

"""Chapter 06: what only the picture shows — images as tensors, a small CNN that reads an icon's
colour and pattern, a pretrained encoder (EfficientNet-Lite0) and linear probes, a shared
image-text space (InfoNCE), fusion for recommendation (early, late, attention; VBPR), the
picture's facts for chapter 05's reasons, and a conditional GAN that draws icons.

ShopWorld draws every item as a 64×64 PNG icon (``shopworld.draw_item_image``: the category's
silhouette, filled with the item's colour, overlaid with its pattern). For many items the text
never states the colour (``colour_in_text`` is false in the item truth): there the image is the
only source of that fact.

Conventions: an image batch is a float32 tensor ``(n, 3, H, W)`` with values in ``[0, 1]``
(``decode_png``, ``load_item_images``); class labels are integer codes into the fixed vocabularies
``COLOURS`` / ``PATTERNS`` / ``CATEGORIES`` (the order of ``shopworld_vocab``), so a label means the
same on every machine.
"""
from __future__ import annotations

import io
import itertools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike
from torch import nn
from torch.nn import functional as F

from helpers.core.checks import DataError, ParameterError, require_int, require_number
from helpers.core.config import get_device
from helpers.data import loaders, vocab as V
from helpers.data.preprocess import IdMap
from helpers.models.cf import BPR, Recommender
from helpers.models.efficientnet import EfficientNetLite0
from helpers.models.interest import TwoTowerRecommender, rows_for_item_map

if TYPE_CHECKING:
    import matplotlib.figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COLOURS: list[str] = list(V.COLOURS)
PATTERNS: list[str] = list(V.PATTERNS)
CATEGORIES: list[str] = list(V.CATEGORIES)
CLASSES: dict[str, list[str]] = {"colour": COLOURS, "pattern": PATTERNS, "category": CATEGORIES}


# ----------------------------------------------------------------------------- images as tensors
def decode_png(data: bytes, *, size: int = 64, item: int | None = None) -> torch.Tensor:
    """One PNG's pixels as a float32 tensor ``(3, size, size)`` in ``[0, 1]``.

    Refuses, saying which ``item``: bytes that are not a PNG, a PNG that does not decode, an image
    of another size, and any mode but RGB (grayscale, palette or alpha images are not converted
    silently: convert them yourself, e.g. ``Image.convert("RGB")``, if that is what you mean).
    """
    from PIL import Image, UnidentifiedImageError

    where = f" (item {item})" if item is not None else ""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode_png needs the PNG file's bytes{where}, got {type(data).__name__}")
    data = bytes(data)
    if not data.startswith(PNG_MAGIC):
        head = data[:8]
        raise DataError(f"not a PNG image{where}: the bytes start with {head!r}, not the PNG "
                        "signature. Pass the file's raw bytes (ShopWorld's images table, column "
                        "'png').")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            mode, got = img.mode, img.size
            arr = np.asarray(img) if mode == "RGB" else None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"corrupt PNG{where}: {err}") from err
    if mode != "RGB":
        raise DataError(f"image{where} is in mode {mode!r}, not 'RGB' (3 colour channels); "
                        "convert it first, e.g. Image.open(f).convert('RGB')")
    if got != (size, size):
        raise DataError(f"image{where} is {got[0]}x{got[1]} pixels, expected {size}x{size}; "
                        f"resize it first or pass size={got[0]} if it is square")
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def load_item_images(item_ids: ArrayLike | None = None, *, root: str | Path | None = None,
                     size: int = 64, progress: bool = True) -> tuple[torch.Tensor, pd.Index]:
    """ShopWorld's item icons as one tensor ``(n, 3, size, size)`` and the item ids of its rows.

    ``item_ids`` chooses the items and their order (default: every image, in item-id order); an
    id without an image, an unknown id or a repeated id is an error, never a silently shorter
    batch. ``progress=False`` hides the bar (shown for 500 images or more), e.g. in a cell whose
    printed output is checked.
    """
    from tqdm.auto import tqdm


    images = loaders.load_shopworld("images", root)
    if images["item_id"].duplicated().any():
        dup = images.loc[images["item_id"].duplicated(), "item_id"].head(5).tolist()
        raise DataError(f"the images table has several images for items {dup}: one per item")
    by_id = images.set_index("item_id")["png"]
    if item_ids is None:
        ids = pd.Index(sorted(by_id.index), name="item_id")
    else:
        if isinstance(item_ids, (str, bytes)) or not hasattr(item_ids, "__iter__"):
            raise TypeError("item_ids must be a list or array of item ids")
        ids = pd.Index(list(item_ids), name="item_id")
        if len(ids) == 0:
            raise DataError("item_ids is empty: pass at least one item id (or None for all)")
        if ids.has_duplicates:
            raise DataError(f"item_ids repeats {ids[ids.duplicated()].unique()[:5].tolist()}: "
                            "each item once (index the tensor to repeat rows)")
        missing = ids.difference(by_id.index)
        if len(missing):
            raise DataError(f"{len(missing)} of the {len(ids)} items have no image, e.g. "
                            f"{missing[:5].tolist()}; ShopWorld draws one per catalogue item, so "
                            "check the ids (unknown items?) or the images table")
    out = torch.empty((len(ids), 3, size, size))
    for row, i in enumerate(tqdm(ids, desc="decoding images", leave=False,
                                 disable=not progress or len(ids) < 500)):
        out[row] = decode_png(by_id[i], size=size, item=i)
    return out, ids


def item_labels(item_ids: ArrayLike, *, root: str | Path | None = None) -> pd.DataFrame:
    """Integer class codes (``colour``, ``pattern``, ``category``) of ``item_ids``, from the item
    truth and the catalogue, with ``colour_in_text``; rows in ``item_ids`` order."""

    truth = loaders.load_shopworld("item_truth", root).set_index("item_id")
    cat = loaders.load_shopworld("catalogue", root).set_index("item_id")
    ids = pd.Index(list(item_ids))
    unknown = ids.difference(truth.index)
    if len(unknown):
        raise DataError(f"unknown items {unknown[:5].tolist()} ({len(unknown)} in all)")
    names = {"colour": truth.loc[ids, "colour"], "pattern": truth.loc[ids, "pattern"],
             "category": cat.loc[ids, "category"]}
    codes = {task: names[task].map({v: k for k, v in enumerate(CLASSES[task])}).to_numpy()
             for task in CLASSES}
    return pd.DataFrame({**codes, "colour_in_text": truth.loc[ids, "colour_in_text"].to_numpy()},
                        index=ids)


def _require_images(x, what: str = "images") -> None:
    if not torch.is_tensor(x):
        raise TypeError(f"{what} must be a torch tensor (n, 3, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise DataError(f"{what} must have shape (n, 3, H, W), got {tuple(x.shape)}")
    if len(x) == 0:
        raise DataError(f"{what} is empty")
    if not x.is_floating_point():
        raise TypeError(f"{what} must be floating point in [0, 1], got {x.dtype}")
    if not torch.isfinite(x).all():
        raise DataError(f"{what} contains NaN or inf")


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of an image batch (compute them on the training
    images only, then normalise every split with them)."""
    _require_images(x)
    return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))


def normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` per channel; a new tensor (the input is left as it is)."""
    _require_images(x)
    mean, std = torch.as_tensor(mean, dtype=x.dtype), torch.as_tensor(std, dtype=x.dtype)
    if mean.shape != (3,) or std.shape != (3,):
        raise DataError(f"mean and std need one value per channel (3), got {tuple(mean.shape)} "
                        f"and {tuple(std.shape)}")
    if not (std > 0).all():
        raise DataError(f"std must be > 0 in every channel, got {std.tolist()}")
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def show_grid(x: torch.Tensor, titles: list[str] | None = None, ncols: int = 8,
              scale: float = 1.1) -> matplotlib.figure.Figure:
    """A labelled grid of images (values in [0, 1]); returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    _require_images(x)
    n = len(x)
    if titles is not None and len(titles) != n:
        raise DataError(f"{len(titles)} titles for {n} images")
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows * 1.15),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(x[k].permute(1, 2, 0).clamp(0, 1).cpu().numpy())
            if titles is not None:
                ax.set_title(str(titles[k]), fontsize=7)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- a small CNN
def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:
    """Side length after a 2-D convolution or pooling: ``⌊(size + 2p − d(k − 1) − 1) / s⌋ + 1``."""
    for name, v, low in (("size", size, 1), ("kernel", kernel, 1), ("stride", stride, 1),
                         ("padding", padding, 0), ("dilation", dilation, 1)):
        require_int(name, v, low)
    out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise ParameterError(f"a kernel of {kernel} (dilation {dilation}) does not fit in {size} "
                             f"pixels with padding {padding}")
    return out


class SmallCNN(nn.Module):
    """Three conv blocks (3×3 conv, batch norm, ReLU, 2×2 max-pool: 64 → 32 → 16 → 8 pixels),
    global average pooling, and one linear head per task. ``heads``: task name → number of
    classes. ``forward`` returns a dict of logits; ``features`` the pooled vector."""

    def __init__(self, heads: dict[str, int], width: int = 32):
        super().__init__()
        if not heads or not all(isinstance(n, int) and n >= 2 for n in heads.values()):
            raise ParameterError(f"heads must map each task to its number of classes (>= 2), got "
                                 f"{heads!r}")
        require_int("width", width, 4)
        chans = [3, width // 2, width, 2 * width]
        self.body = nn.Sequential(*[nn.Sequential(
            nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(),
            nn.MaxPool2d(2)) for a, b in zip(chans[:-1], chans[1:])])
        self.heads = nn.ModuleDict({name: nn.Linear(chans[-1], n) for name, n in heads.items()})
        self.dim = chans[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, H, W)`` images -> ``(batch, channels)``: the convolutional body, averaged
        over space.
        """
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(x)
        return {name: head(h) for name, head in self.heads.items()}


def _label_codes(x, labels, columns, what: str):
    """Checked integer class codes of images ``x``: ``({column: LongTensor}, {column: number of
    classes})``; the number is the vocabulary's for colour, pattern and category, else the
    largest code + 1. ``what`` names a column in messages ("task", "condition")."""
    _require_images(x)
    if not isinstance(labels, pd.DataFrame) or len(labels) != len(x):
        raise DataError(f"labels must be a DataFrame with one row per image ({len(x)}), got "
                        f"{type(labels).__name__} of length {len(labels)}")
    columns = list(columns)
    missing = [c for c in columns if c not in labels.columns]
    if missing:
        raise DataError(f"labels lack the {what} column(s) {missing}; it has "
                        f"{list(labels.columns)}")
    ys = {}
    for c in columns:
        y = labels[c].to_numpy()
        if pd.isna(y).any() or (y < 0).any():
            raise DataError(f"labels[{c!r}] has missing or negative codes")
        ys[c] = torch.as_tensor(y.astype(np.int64))
    return ys, {c: len(CLASSES[c]) if c in CLASSES else int(ys[c].max()) + 1 for c in columns}


def fit_image_classifier(x: torch.Tensor, labels: pd.DataFrame,
                         tasks: tuple[str, ...] = ("colour", "pattern"), *,
                         epochs: int = 8, batch_size: int = 64, lr: float = 3e-3,
                         width: int = 32, seed: int = 0, device: str | None = "cpu",
                         augment: bool = True) -> tuple[SmallCNN, list[float]]:
    """Train a :class:`SmallCNN` with one cross-entropy per task (summed), Adam, seeded batches.

    ``x``: images in ``[0, 1]`` (normalised inside with the training batch's channel statistics,
    kept on the model as ``model.mean`` / ``model.std``); ``labels``: a frame with one integer
    column per task (``item_labels``). ``augment`` flips images left-right at random (colour and
    pattern do not change under a flip). Returns ``(model, history)``: the mean training loss per
    epoch.
    """
    from tqdm.auto import tqdm


    ys, n_classes = _label_codes(x, labels, tasks, "task")
    tasks = list(ys)
    for name, v in (("epochs", epochs), ("batch_size", batch_size), ("seed", seed)):
        require_int(name, v, 0 if name == "seed" else 1)
    require_number("lr", lr, low=0, low_open=True)
    dev = get_device(device)
    torch.manual_seed(seed)
    model = SmallCNN(n_classes, width).to(dev)
    mean, std = channel_stats(x)
    model.register_buffer("mean", mean.to(dev))
    model.register_buffer("std", std.to(dev))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    xn = normalise(x, mean, std)                  # once, not per batch
    history = []
    for _ in tqdm(range(epochs), desc="CNN epochs", leave=False):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for lo in range(0, len(x), batch_size):
            b = perm[lo:lo + batch_size]
            xb = xn[b].to(dev)
            if augment:
                flip = torch.rand(len(b), generator=gen) < 0.5
                xb[flip.to(dev)] = xb[flip.to(dev)].flip(-1)
            out = model(xb)
            loss = sum(F.cross_entropy(out[t], ys[t][b].to(dev)) for t in tasks)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        history.append(total / len(x))
    model.eval()
    return model, history


@torch.no_grad()
def predict_proba(model: SmallCNN, x: torch.Tensor, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Class probabilities per task for images ``x`` in ``[0, 1]`` (CPU tensors, ``(n, classes)``),
    normalised with the statistics the model was trained with."""
    _require_images(x)
    dev = next(model.parameters()).device
    model.eval()
    parts: dict[str, list] = {}
    for lo in range(0, len(x), batch_size):
        xb = normalise(x[lo:lo + batch_size], model.mean.cpu(), model.std.cpu()).to(dev)
        for t, logits in model(xb).items():
            parts.setdefault(t, []).append(logits.softmax(-1).cpu())
    return {t: torch.cat(p) for t, p in parts.items()}


@torch.no_grad()
def image_features(encoder: EfficientNetLite0, x: torch.Tensor, *, size: int = 224,
                   batch_size: int = 64, device: torch.device | str | None = None,
                   progress: bool = True) -> torch.Tensor:
    """Frozen ``encoder`` features of images ``x`` in ``[0, 1]``, resized to ``size`` pixels
    (bilinear) first: a float32 CPU tensor ``(n, 1280)``, in ``x``'s order. ``progress=False``
    shows no bar (a checked cell, or a measurement run inside one)."""
    from tqdm.auto import tqdm

    _require_images(x)
    require_int("size", size, 16)
    require_int("batch_size", batch_size, 1)
    dev = next(encoder.parameters()).device if device is None else torch.device(device)
    encoder.eval()
    out = []
    for lo in tqdm(range(0, len(x), batch_size), desc="image features", leave=False,
                   disable=not progress or len(x) < 4 * batch_size):
        xb = x[lo:lo + batch_size].to(dev)
        if xb.shape[-1] != size or xb.shape[-2] != size:
            xb = F.interpolate(xb, size=(size, size), mode="bilinear", align_corners=False)
        out.append(encoder.features(xb).float().cpu())
    return torch.cat(out)


# ----------------------------------------------------------------------------- probes and a shared space
def linear_probe(train_x: ArrayLike, train_y: ArrayLike, test_x: ArrayLike, test_y: ArrayLike, *,
                 C: float = 1.0, seed: int = 0) -> dict:
    """Logistic regression (scikit-learn, L2, ``C``) on frozen features, standardised with the
    training features' statistics: does a representation already separate the classes?
    Returns the held-out accuracy, the per-class accuracy and the fitted classifier."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xs = [np.asarray(a.cpu() if torch.is_tensor(a) else a, dtype=np.float64)
          for a in (train_x, test_x)]
    ys = [np.asarray(a) for a in (train_y, test_y)]
    for name, x, y in (("train", xs[0], ys[0]), ("test", xs[1], ys[1])):
        if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
            raise DataError(f"{name}: features must be (n, d) with one label per row, got "
                            f"{x.shape} and {len(y)} labels")
        if not np.isfinite(x).all():
            raise DataError(f"{name} features contain NaN or inf")
    if xs[0].shape[1] != xs[1].shape[1]:
        raise DataError(f"train and test features differ in width: {xs[0].shape[1]} vs "
                        f"{xs[1].shape[1]}")
    require_number("C", C, low=0, low_open=True)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000,
                                                             random_state=seed))
    clf.fit(xs[0], ys[0])
    pred = clf.predict(xs[1])
    per_class = {int(c): float((pred[ys[1] == c] == c).mean()) for c in np.unique(ys[1])}
    return {"accuracy": float((pred == ys[1]).mean()), "per_class": per_class, "model": clf}


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float | torch.Tensor = 0.07
             ) -> torch.Tensor:
    """CLIP's symmetric contrastive loss for ``n`` matched pairs (row ``i`` of ``a`` goes with
    row ``i`` of ``b``): cosine similarities over ``temperature``, cross-entropy towards the
    diagonal from both sides, averaged."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0] or a.shape[1] != b.shape[1]:
        raise DataError(f"info_nce needs two (n, d) batches of matched pairs, got "
                        f"{tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[0] < 2:
        raise DataError("info_nce needs at least 2 pairs (the other rows are the negatives)")
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    target = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


class SharedSpace(nn.Module):
    """Two learned linear projections into one ``dim``-wide space (frozen encoders below them,
    LiT-style) and CLIP's learned temperature (initialised at 0.07, kept above 0.01)."""

    def __init__(self, image_dim: int, text_dim: int, dim: int = 128):
        super().__init__()
        for name, v in (("image_dim", image_dim), ("text_dim", text_dim), ("dim", dim)):
            require_int(name, v, 1)
        self.image = nn.Linear(image_dim, dim)
        self.text = nn.Linear(text_dim, dim)
        self.log_inv_t = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @property
    def temperature(self) -> torch.Tensor:
        return 1 / self.log_inv_t.clamp(max=math.log(100)).exp()

    def embed_images(self, f: torch.Tensor) -> torch.Tensor:
        """Image features -> unit vectors in the shared space, ``(batch, d)``."""
        return F.normalize(self.image(f), dim=-1)

    def embed_texts(self, f: torch.Tensor) -> torch.Tensor:
        """Text features -> unit vectors in the shared space, ``(batch, d)``."""
        return F.normalize(self.text(f), dim=-1)


def fit_shared_space(image_feats: torch.Tensor, text_feats: torch.Tensor, *, dim: int = 128,
                     epochs: int = 30, batch_size: int = 256, lr: float = 1e-3, seed: int = 0,
                     device: str | None = "cpu") -> tuple[SharedSpace, list[float]]:
    """Align frozen image and text features of the same items with :func:`info_nce` (Adam,
    seeded shuffled batches). Row ``i`` of both inputs must be the same item. Returns the
    projections and the mean loss per epoch."""
    from tqdm.auto import tqdm


    for name, f in (("image_feats", image_feats), ("text_feats", text_feats)):
        if not torch.is_tensor(f) or f.ndim != 2 or not f.is_floating_point():
            raise TypeError(f"{name} must be a float tensor (n, d)")
        if not torch.isfinite(f).all():
            raise DataError(f"{name} contains NaN or inf")
    if len(image_feats) != len(text_feats):
        raise DataError(f"{len(image_feats)} images but {len(text_feats)} texts: one pair per item")
    require_int("batch_size", batch_size, 2)
    require_int("epochs", epochs, 1)
    dev = get_device(device)
    torch.manual_seed(seed)
    model = SharedSpace(image_feats.shape[1], text_feats.shape[1], dim).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    fi, ft = image_feats.float().to(dev), text_feats.float().to(dev)
    history = []
    for _ in tqdm(range(epochs), desc="aligning", leave=False):
        perm = torch.randperm(len(fi), generator=gen).to(dev)
        total, n = 0.0, 0
        for lo in range(0, len(fi), batch_size):
            b = perm[lo:lo + batch_size]
            if len(b) < 2:
                continue
            loss = info_nce(model.image(fi[b]), model.text(ft[b]), model.temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + float(loss.detach()) * len(b), n + len(b)
        history.append(total / n)
    return model.eval(), history


def recall_at_k(queries: torch.Tensor, keys: torch.Tensor, k: int = 1) -> float:
    """Share of queries whose own partner (the key in the same row) is among their ``k`` most
    similar keys (dot product; pass unit vectors for cosine)."""
    if queries.shape != keys.shape or queries.ndim != 2:
        raise DataError(f"queries and keys must be matched (n, d) batches, got "
                        f"{tuple(queries.shape)} and {tuple(keys.shape)}")
    require_int("k", k, 1)
    sims = queries @ keys.T
    own = sims.diagonal().unsqueeze(1)
    rank = (sims > own).sum(1)                  # how many keys beat the partner (ties: kind)
    return float((rank < k).float().mean())


# ----------------------------------------------------------------------------- reasons from pixels
def stated_labels(facts: dict, item_ids: ArrayLike, task: str) -> pd.Series:
    """The shop's own stated colour or pattern codes (``task``) of ``item_ids``, from chapter 05's
    facts (what the item's text says), NaN where the text is silent: labels a classifier may
    learn from without reading the hidden truth."""
    if task not in ("colour", "pattern"):
        raise ParameterError(f"task must be 'colour' or 'pattern', got {task!r}")
    vocab = {v: k for k, v in enumerate(CLASSES[task])}
    unknown = [i for i in item_ids if int(i) not in facts]
    if unknown:
        raise DataError(f"{len(unknown)} items have no facts, e.g. {unknown[:5]}")
    vals = [facts[int(i)].get(task) for i in item_ids]
    return pd.Series([vocab[v] if v is not None else np.nan for v in vals],
                     index=pd.Index(list(item_ids), name="item_id"), dtype="float64")


def facts_from_pixels(facts: dict, item_ids: ArrayLike, proba: dict[str, torch.Tensor], *,
                      threshold: float = 0.9) -> tuple[dict, dict]:
    """Facts with the picture's colour and pattern added where the text is silent.

    ``proba``: per task (``colour``, ``pattern``) the image classifier's class probabilities for
    ``item_ids`` (rows in that order). An item gets the most probable class as a stated fact only
    when its text states none and the probability is at least ``threshold``; the fact records
    where it came from (``facts[i]["from_image"][task] = probability``). What the text states is
    never replaced, and ``facts`` itself is not changed: a new dict comes back, with counts
    (``added``, ``below threshold``, ``stated by text``) per task. The shop's own product photo is
    something the shop shows, so a reason may say what it shows; it may not say what the
    classifier only guesses (below the threshold)."""
    import copy

    require_number("threshold", threshold, low=0, high=1)
    ids = [int(i) for i in item_ids]
    if len(set(ids)) != len(ids):
        raise DataError("item_ids repeats an item: one row of probabilities per item")
    out = copy.deepcopy(facts)
    counts = {}
    for task, p in proba.items():
        if task not in ("colour", "pattern"):
            raise ParameterError(f"only colour and pattern come from pixels, got {task!r}")
        names = CLASSES[task]
        if not torch.is_tensor(p) or p.shape != (len(ids), len(names)):
            raise DataError(f"proba[{task!r}] must be ({len(ids)}, {len(names)}), got "
                            f"{tuple(p.shape) if torch.is_tensor(p) else type(p).__name__}")
        if not torch.isfinite(p).all() or (p < 0).any():
            raise ParameterError(f"proba[{task!r}] must be finite probabilities")
        conf, best = p.max(dim=1)
        c = {"added": 0, "below threshold": 0, "stated by text": 0}
        for i, pc, b in zip(ids, conf.tolist(), best.tolist()):
            if i not in out:
                raise DataError(f"item {i} has no facts")
            if out[i].get(task) is not None:
                c["stated by text"] += 1
            elif pc >= threshold:
                out[i][task] = names[b]
                out[i].setdefault("from_image", {})[task] = round(pc, 4)
                c["added"] += 1
            else:
                c["below threshold"] += 1
        counts[task] = c
    return out, counts


# ----------------------------------------------------------------------------- fusion
def pca(f: torch.Tensor, dim: int) -> torch.Tensor:
    """The first ``dim`` principal components of features ``f`` ``(n, d)`` (centred; exact SVD,
    each component's sign fixed so that its largest loading is positive, so the result is the
    same on every machine): ``(n, dim)``. Unsupervised: it reads the features only."""
    if not torch.is_tensor(f) or f.ndim != 2 or not f.is_floating_point():
        raise TypeError("f must be a float tensor (n, d)")
    if not torch.isfinite(f).all():
        raise DataError("f contains NaN or inf")
    require_int("dim", dim, 1)
    if dim > min(f.shape):
        raise ParameterError(f"dim={dim} is more than the {min(f.shape)} components (n, d) = "
                             f"{tuple(f.shape)} has")
    x = f.double() - f.double().mean(0)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    v = vh[:dim]
    sign = torch.sign(v.gather(1, v.abs().argmax(1, keepdim=True)))
    return (x @ (v * sign).T).float()


def modality_attention(query: torch.Tensor, tokens: torch.Tensor, present: torch.Tensor
                       ) -> torch.Tensor:
    """Weights over each item's modality tokens: ``softmax_m(q · t_m / √d)`` over the modalities
    that are ``present``. ``query`` ``(d,)`` or ``(n, d)``, ``tokens`` ``(n, m, d)``, ``present``
    ``(n, m)`` bool → ``(n, m)``, zero on a missing modality. Every item needs at least one."""
    if tokens.ndim != 3 or present.shape != tokens.shape[:2] or present.dtype != torch.bool:
        raise DataError(f"tokens must be (n, m, d) and present an (n, m) bool mask, got "
                        f"{tuple(tokens.shape)} and {tuple(present.shape)} {present.dtype}")
    if not present.any(1).all():
        raise DataError(f"{int((~present.any(1)).sum())} item(s) have no modality at all: "
                        "nothing to attend to (drop them or give them one)")
    q = query if query.ndim == 2 else query.expand(len(tokens), -1)
    scores = (tokens @ q.unsqueeze(-1)).squeeze(-1) / math.sqrt(tokens.shape[-1])
    return torch.softmax(scores.masked_fill(~present, float("-inf")), dim=-1)


class AttentionFusion(nn.Module):
    """Item tower of :class:`AttentionFusionTwoTower`: each modality's vector (columns ``splits``
    of the item's base vector) becomes a token by its own linear map, initialised to put it
    in its own block of the output (so at the start the fused vector is the concatenation,
    scaled: early fusion); a learned query weights the tokens per item
    (:func:`modality_attention`), so an item whose picture says more leans on the picture."""

    def __init__(self, splits: tuple[int, ...]):
        super().__init__()
        if len(splits) < 2 or not all(isinstance(s, int) and s >= 1 for s in splits):
            raise ParameterError(f"splits must give two or more modality widths, got {splits!r}")
        self.splits, d = tuple(splits), sum(splits)
        self.maps = nn.ModuleList(nn.Linear(s, d, bias=False) for s in splits)
        lo = 0
        with torch.no_grad():
            for s, m in zip(splits, self.maps):
                m.weight.zero_()
                m.weight[lo:lo + s] = torch.eye(s)
                lo += s
        self.query = nn.Parameter(torch.zeros(d))

    def tokens(self, base: torch.Tensor) -> torch.Tensor:
        """``(batch, sum of modality widths)`` -> ``(batch, n_modalities, d)``: each modality's
        slice mapped to one token.
        """
        parts = torch.split(base, self.splits, dim=-1)
        return torch.stack([m(p) for m, p in zip(self.maps, parts)], dim=-2)

    def forward(self, base: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tok = self.tokens(base)
        w = modality_attention(self.query, tok, present)
        return (w.unsqueeze(-1) * tok).sum(-2), w


class AttentionFusionTwoTower(TwoTowerRecommender):
    """Chapter 04's two-tower model whose item tower is :class:`AttentionFusion` over the
    modalities concatenated in ``item_embeddings`` (widths ``splits``, e.g. ``(384, 128)`` for
    text then image). ``present`` ``(n_items, m)`` bool marks a missing modality (e.g. an item
    without a picture: its columns are ignored, not read as zeros); default: all present.
    ``modality_weights()`` gives each item's learned weights after ``fit``."""

    def __init__(self, item_embeddings: torch.Tensor, item_ids: ArrayLike, splits: tuple[int, ...],
                 present: torch.Tensor | None = None, *,
                 device: str | None = "cpu", **kw: Any):
        super().__init__(item_embeddings, item_ids, device=device, **kw)
        self.splits, self.present = splits, present

    def check_params(self) -> None:
        """Chapter 04's settings, then the modality widths and the presence mask (data:
        a :class:`DataError`)."""
        super().check_params()
        emb, splits = self.item_embeddings, tuple(self.splits)
        if sum(splits) != emb.shape[1]:
            raise DataError(f"splits {splits} add up to {sum(splits)}, but the item embeddings "
                            f"are {emb.shape[1]} wide")
        present = self.present
        if present is None:
            present = torch.ones(len(emb), len(splits), dtype=torch.bool)
        if not torch.is_tensor(present) or present.shape != (len(emb), len(splits)) \
                or present.dtype != torch.bool:
            raise DataError(f"present must be a ({len(emb)}, {len(splits)}) bool tensor, one row "
                            "per item and one column per modality")
        self._present_all = present

    def _make_item_tower(self, d_in: int) -> nn.Module:
        self._present = self._present_all[self.item_rows].to(self.device_)
        return AttentionFusion(tuple(self.splits))

    def _item_vec(self, base, idx=None):
        present = self._present if idx is None else self._present[idx]
        fused, _ = self.item_proj(base, present)
        return F.normalize(fused, dim=-1)

    @torch.no_grad()
    def modality_weights(self) -> torch.Tensor:
        """``(n_items, m)`` attention weights of every item (item-map order), after ``fit``."""
        _, w = self.item_proj(self.item_base.to(self.device_), self._present)
        return w.cpu()


class LateFusion(Recommender):
    """Late fusion: recommenders' scores, each standardised per user over the items (z-scores,
    so their scales do not matter), averaged with ``weights``. ``fit`` fits every model on the
    same data and ID maps; ``evaluate`` and ``recommend`` are chapter 02's."""

    def __init__(self, models: list[Recommender], weights: ArrayLike | None = None, **kw: Any):
        super().__init__(**kw)
        self.models, self.weights = models, weights

    def check_params(self) -> None:
        """Two or more recommenders, and one non-negative weight each (not all 0)."""
        super().check_params()
        models = list(self.models)
        if len(models) < 2 or not all(isinstance(m, Recommender) for m in models):
            raise ParameterError("late fusion needs two or more recommenders "
                                 "(helpers.models.cf.Recommender)")
        w = np.ones(len(models)) if self.weights is None else np.asarray(self.weights, dtype=float)
        if w.shape != (len(models),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ParameterError(f"weights must be {len(models)} non-negative numbers, not all 0; "
                                 f"got {self.weights!r}")
        self.weights_ = w / w.sum()

    def fit(self, df: pd.DataFrame, user_map: IdMap | None = None,
            item_map: IdMap | None = None) -> Self:
        self._prepare(df, user_map, item_map)
        for m in self.models:
            m.fit(df, self.user_map, self.item_map)
        return self

    def scores(self, user_idx: ArrayLike) -> np.ndarray:
        out = 0.0
        for w, m in zip(self.weights_, self.models):
            s = m.scores(user_idx)
            s = (s - s.mean(1, keepdims=True)) / np.maximum(s.std(1, keepdims=True), 1e-12)
            out = out + w * s
        return out


class VBPR(BPR):
    """Visual BPR (He & McAuley, 2016): chapter 02's BPR with a content term per item,

        x_ui = b_i + p_u · q_i + θ_u · (E f_i) + β' · f_i,

    where ``f_i`` is the item's feature vector (``item_features``: an image encoder's, a text
    encoder's, or both concatenated: early fusion), ``E`` a learned projection to
    ``n_content`` dimensions and ``θ_u`` each user's taste in that space. An item no one has
    interacted with in training gets no ``q_i`` or ``b_i`` (they stay zero: it is never drawn
    as a negative either) and is ranked by its content term alone — which is how VBPR
    recommends brand-new items. L2 (``reg``) on each user's and item's whole factor vector,
    ``θ_u`` and ``E f_i`` included; ``β'`` is not regularised. Defaults: Cornac's (k = k2 = 10,
    20 epochs, lr 0.005, batch 100).
    """

    def __init__(self, item_features: torch.Tensor, item_ids: ArrayLike, n_factors: int = 10,
                 n_content: int = 10, reg: float = 1e-4, n_epochs: int = 20, lr: float = 5e-3,
                 batch_size: int = 100, seed: int = 0, device: str | None = "cpu", **kw: Any):
        super().__init__(n_factors=n_factors, reg=reg, n_epochs=n_epochs, lr=lr,
                         batch_size=batch_size, seed=seed, device=device, **kw)
        self.item_features, self.item_ids, self.n_content = item_features, item_ids, n_content

    def check_params(self) -> None:
        """BPR's settings and ``n_content``; the item features with their IDs (data: a
        :class:`DataError`)."""
        super().check_params()
        require_int("n_content", self.n_content, 1)
        feats, ids = self.item_features, pd.Index(self.item_ids)
        if not torch.is_tensor(feats) or feats.ndim != 2 or not feats.is_floating_point():
            raise TypeError("item_features must be a float tensor (n_items, d)")
        if len(ids) != len(feats) or ids.has_duplicates:
            raise DataError(f"item_ids must name each of the {len(feats)} feature rows once, got "
                            f"{len(ids)} ids ({int(ids.duplicated().sum())} repeated)")
        if not torch.isfinite(feats).all():
            raise DataError("item_features contains NaN or inf")
        self._features_all, self._feature_ids = feats.float(), ids

    def _make_weights(self, n_u, n_i, gen):
        weights = super()._make_weights(n_u, n_i, gen)
        dev, std = self.device_, self.init_std
        self.F = self._features_all[rows_for_item_map(self._feature_ids, self.item_map,
                                                      "feature row",
                                                      "pass features for every item")].to(dev)
        self.trained = torch.as_tensor(np.asarray(self.seen.sum(0)).ravel() > 0, device=dev)
        with torch.no_grad():            # items unseen in training: no ID factors, no ID bias
            self.Q[~self.trained] = 0.0
        d = self.F.shape[1]
        self.T = nn.Parameter((torch.randn(n_u, self.n_content, generator=gen) * std).to(dev))
        self.E = nn.Parameter((torch.randn(d, self.n_content, generator=gen) / math.sqrt(d))
                              .to(dev))
        self.b_content = nn.Parameter(torch.zeros(d, device=dev))
        return weights + [self.T, self.E, self.b_content]

    def _negative_pool(self, n_i):
        return np.flatnonzero(self.trained.cpu().numpy())

    def _user_factors(self, u):
        return torch.cat([self.P[u], self.T[u]], dim=-1)

    def _item_factors(self, i):
        f = self.F[i]
        return (torch.cat([self.Q[i], f @ self.E], dim=-1), self.b[i] + f @ self.b_content)


# ----------------------------------------------------------------------------- generating icons
class CondGenerator(nn.Module):
    """A small conditional DCGAN generator (Radford et al., 2016; Mirza & Osindero, 2014): noise
    ``z`` and one learned embedding per condition (e.g. category and colour) → a 4×4 map →
    three transposed convolutions (4×4, stride 2, batch norm, ReLU) → a ``size``×``size`` RGB
    image in ``[0, 1]`` (sigmoid). ``conditions``: condition name → number of classes."""

    def __init__(self, conditions: dict[str, int], z_dim: int = 32, width: int = 64,
                 size: int = 32):
        super().__init__()
        if not conditions or not all(isinstance(n, int) and n >= 2 for n in conditions.values()):
            raise ParameterError(f"conditions must map each name to its number of classes (>= 2), "
                                 f"got {conditions!r}")
        require_int("z_dim", z_dim, 1)
        require_int("width", width, 8)
        if size not in (32, 64):
            raise ParameterError(f"size must be 32 or 64, got {size!r}")
        self.conditions, self.z_dim, self.size = dict(conditions), z_dim, size
        self.embed = nn.ModuleDict({c: nn.Embedding(n, 16) for c, n in conditions.items()})
        self.width = width
        self.fc = nn.Sequential(nn.Linear(z_dim + 16 * len(conditions), 2 * width * 16),
                                nn.BatchNorm1d(2 * width * 16), nn.ReLU())
        chans = [2 * width, width, width // 2] + ([width // 4] if size == 64 else [])
        ups = [nn.Sequential(nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b),
                             nn.ReLU()) for a, b in zip(chans[:-1], chans[1:])]
        self.net = nn.Sequential(*ups, nn.ConvTranspose2d(chans[-1], 3, 4, 2, 1), nn.Sigmoid())

    def forward(self, z: torch.Tensor, labels: dict[str, torch.Tensor]) -> torch.Tensor:
        h = torch.cat([z] + [self.embed[c](labels[c]) for c in self.conditions], dim=1)
        return self.net(self.fc(h).view(len(z), 2 * self.width, 4, 4))


class CondDiscriminator(nn.Module):
    """Its critic: strided convolutions (spectral norm, leaky ReLU) to a feature vector ``h``;
    the score is ``w·h + Σ_c e_c(y_c)·h`` (a projection discriminator, Miyato & Koyama, 2018):
    real *and* matching its conditions scores high. One linear head per condition also names
    each condition from ``h`` (the auxiliary classifier of AC-GAN, Odena et al., 2017), read
    with ``with_logits=True``."""

    def __init__(self, conditions: dict[str, int], width: int = 64, size: int = 32):
        super().__init__()
        sn = nn.utils.spectral_norm
        chans = [3] + ([width // 4] if size == 64 else []) + [width // 2, width, 2 * width]
        self.net = nn.Sequential(*[nn.Sequential(sn(nn.Conv2d(a, b, 4, 2, 1)), nn.LeakyReLU(0.2))
                                   for a, b in zip(chans[:-1], chans[1:])], nn.Flatten())
        d = 2 * width * 16
        self.out = sn(nn.Linear(d, 1))
        self.embed = nn.ModuleDict({c: sn(nn.Embedding(n, d)) for c, n in conditions.items()})
        self.heads = nn.ModuleDict({c: nn.Linear(d, n) for c, n in conditions.items()})

    def forward(self, x: torch.Tensor, labels: dict[str, torch.Tensor], *,
                with_logits: bool = False) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The score ``(n,)``; with ``with_logits`` also each condition's class logits
        ``{condition: (n, classes)}``."""
        h = self.net(x * 2 - 1)
        score = self.out(h).squeeze(1) + sum((self.embed[c](y) * h).sum(1)
                                              for c, y in labels.items())
        if not with_logits:
            return score
        return score, {c: self.heads[c](h) for c in labels}


def fit_cgan(x: torch.Tensor, labels: pd.DataFrame,
             conditions: tuple[str, ...] = ("category", "colour"), *,
             steps: int = 600, batch_size: int = 64, size: int = 32, z_dim: int = 32,
             width: int = 64, lr: float = 2e-4, aux_weight: float = 1.0, seed: int = 0,
             device: str | None = "cpu") -> tuple[CondGenerator, CondDiscriminator, dict]:
    """Train a conditional GAN on images ``x`` (``(n, 3, H, W)`` in ``[0, 1]``, resized to
    ``size``) with their class ``labels`` (integer columns ``conditions``): hinge loss, Adam
    (β₁ = 0.5), one critic step per generator step, seeded.

    ``aux_weight`` weighs the auxiliary classifier's loss (AC-GAN): the critic also learns to
    name each condition of the *real* images (cross-entropy), and the generator is also trained
    to have its images named as asked. The projection term alone teaches the condition slowly
    and unevenly (how far chapter 06's quick GAN moves over six seeds:
    benchmarks/results/14_multimodal_cpu.md, section 10); 0 turns the classifier off. Returns ``(generator, critic, history)``,
    the history holding the critic's and the generator's loss per step (each including its
    classifier term)."""
    from tqdm.auto import tqdm


    ys, n_classes = _label_codes(x, labels, conditions, "condition")
    conditions = list(ys)
    for name, v, low in (("steps", steps, 1), ("batch_size", batch_size, 2), ("seed", seed, 0)):
        require_int(name, v, low)
    require_number("lr", lr, low=0, low_open=True)
    require_number("aux_weight", aux_weight, low=0)
    dev = get_device(device)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="area")
    torch.manual_seed(seed)
    g = CondGenerator(n_classes, z_dim, width, size).to(dev)
    d = CondDiscriminator(n_classes, width, size).to(dev)
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(seed)
    history = {"critic": [], "generator": []}
    for _ in tqdm(range(steps), desc="GAN steps", leave=False):
        b = torch.randint(0, len(x), (batch_size,), generator=gen)
        real = x[b].to(dev)
        yb = {c: ys[c][b].to(dev) for c in conditions}
        z = torch.randn(batch_size, z_dim, generator=gen).to(dev)
        fake = g(z, yb)
        named = lambda logits: sum(F.cross_entropy(logits[c], yb[c]) for c in conditions)
        score_real, logits_real = d(real, yb, with_logits=True)
        loss_d = (F.relu(1 - score_real).mean() + F.relu(1 + d(fake.detach(), yb)).mean()
                  + aux_weight * named(logits_real))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        score_fake, logits_fake = d(fake, yb, with_logits=True)
        loss_g = -score_fake.mean() + aux_weight * named(logits_fake)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        history["critic"].append(float(loss_d.detach()))
        history["generator"].append(float(loss_g.detach()))
    return g.eval(), d.eval(), history


@torch.no_grad()
def sample_cgan(generator: CondGenerator, labels: dict, *, seed: int = 0,
                size: int | None = None) -> torch.Tensor:
    """Images for the given condition codes (``labels``: condition → sequence of class codes,
    all the same length): ``(n, 3, size, size)`` in ``[0, 1]`` on the CPU, resized (nearest) to
    ``size`` when given, e.g. 64 for a classifier trained on 64-pixel icons."""
    if set(labels) != set(generator.conditions):
        raise DataError(f"labels must give exactly the conditions {list(generator.conditions)}, "
                        f"got {list(labels)}")
    codes = {c: torch.as_tensor(np.array(v), dtype=torch.long) for c, v in labels.items()}
    n = {len(v) for v in codes.values()}
    if len(n) != 1 or 0 in n:
        raise DataError("every condition needs the same, non-zero number of codes")
    for c, v in codes.items():
        if v.ndim != 1 or (v < 0).any() or (v >= generator.conditions[c]).any():
            raise DataError(f"labels[{c!r}] must be codes in 0..{generator.conditions[c] - 1}")
    dev = next(generator.parameters()).device
    z = torch.randn(n.pop(), generator.z_dim, generator=torch.Generator().manual_seed(seed))
    out = generator.eval()(z.to(dev), {c: v.to(dev) for c, v in codes.items()}).float().cpu()
    if size is not None and size != out.shape[-1]:
        out = F.interpolate(out, size=(size, size), mode="nearest")
    return out


def judge_cgan(generator: CondGenerator, classifier: SmallCNN, *, per_pair: int = 5,
               seed: int = 0, size: int = 64) -> dict:
    """Judge a conditional generator with a classifier that never saw a generated image: draw
    ``per_pair`` samples for every combination of the generator's conditions (in the order of
    ``generator.conditions``, the last varying fastest, each combination's samples together),
    resize them to ``size`` (the pixels the classifier was trained on: ShopWorld's icons are 64)
    and read each condition with the classifier's head of the same name.

    Returns ``{"images": (n, 3, size, size) tensor, "asked": DataFrame of the codes asked for
    (one column per condition), "read_as_asked": {condition: share of samples read as asked}}``.
    The idea behind the Inception Score and FID, with their caveat: it measures what the judge
    can see."""
    if not isinstance(generator, CondGenerator):
        raise TypeError(f"generator must be a CondGenerator (from fit_cgan), got "
                        f"{type(generator).__name__}")
    if not isinstance(classifier, SmallCNN):
        raise TypeError(f"classifier must be a SmallCNN (from fit_image_classifier), got "
                        f"{type(classifier).__name__}")
    require_int("per_pair", per_pair, 1)
    require_int("seed", seed, 0)
    require_int("size", size, 8)
    missing = [c for c in generator.conditions if c not in classifier.heads]
    if missing:
        raise DataError(f"the classifier has no head for the condition(s) {missing}; train it "
                        f"with tasks including them (it has {list(classifier.heads)})")
    for c, n in generator.conditions.items():
        if classifier.heads[c].out_features != n:
            raise DataError(f"the classifier's {c!r} head has {classifier.heads[c].out_features} "
                            f"classes but the generator's condition has {n}: they must name the "
                            f"same classes")
    names = list(generator.conditions)
    grid = list(itertools.product(*(range(generator.conditions[c]) for c in names)))
    asked = pd.DataFrame(np.repeat(np.array(grid, dtype=np.int64), per_pair, axis=0),
                         columns=names)
    images = sample_cgan(generator, {c: asked[c].to_numpy() for c in names}, seed=seed, size=size)
    proba = predict_proba(classifier, images)
    read = {c: float((proba[c].argmax(1).numpy() == asked[c].to_numpy()).mean()) for c in names}
    return {"images": images, "asked": asked, "read_as_asked": read}

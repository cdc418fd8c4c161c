"""Chapter 06: what only the picture shows — images as tensors, a small CNN that reads an icon's
colour and pattern, and (next) a pretrained encoder, a shared image-text space and fusion.

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
import math

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from . import shopworld_vocab as V
from .data import DataError, require_int, require_number

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COLOURS: list[str] = list(V.COLOURS)
PATTERNS: list[str] = list(V.PATTERNS)
CATEGORIES: list[str] = list(V.CATEGORIES)
CLASSES: dict[str, list[str]] = {"colour": COLOURS, "pattern": PATTERNS, "category": CATEGORIES}


# ----------------------------------------------------------------------------- images as tensors
def decode_png(data: bytes, *, size: int = 64, item=None) -> torch.Tensor:
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


def load_item_images(item_ids=None, *, root=None, size: int = 64) -> tuple[torch.Tensor, pd.Index]:
    """ShopWorld's item icons as one tensor ``(n, 3, size, size)`` and the item ids of its rows.

    ``item_ids`` chooses the items and their order (default: every image, in item-id order); an
    id without an image, an unknown id or a repeated id is an error, never a silently shorter
    batch.
    """
    from tqdm.auto import tqdm

    from . import data

    images = data.load_shopworld("images", root)
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
                                 disable=len(ids) < 500)):
        out[row] = decode_png(by_id[i], size=size, item=i)
    return out, ids


def item_labels(item_ids, *, root=None) -> pd.DataFrame:
    """Integer class codes (``colour``, ``pattern``, ``category``) of ``item_ids``, from the item
    truth and the catalogue, with ``colour_in_text``; rows in ``item_ids`` order."""
    from . import data

    truth = data.load_shopworld("item_truth", root).set_index("item_id")
    cat = data.load_shopworld("catalogue", root).set_index("item_id")
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
        raise ValueError(f"{what} must have shape (n, 3, H, W), got {tuple(x.shape)}")
    if len(x) == 0:
        raise ValueError(f"{what} is empty")
    if not x.is_floating_point():
        raise TypeError(f"{what} must be floating point in [0, 1], got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{what} contains NaN or inf")


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of an image batch (compute them on the training
    images only, then normalise every split with them)."""
    _require_images(x)
    return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))


def normalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    """``(x - mean) / std`` per channel; a new tensor (the input is left as it is)."""
    _require_images(x)
    mean, std = torch.as_tensor(mean, dtype=x.dtype), torch.as_tensor(std, dtype=x.dtype)
    if mean.shape != (3,) or std.shape != (3,):
        raise ValueError(f"mean and std need one value per channel (3), got {tuple(mean.shape)} "
                         f"and {tuple(std.shape)}")
    if not (std > 0).all():
        raise ValueError(f"std must be > 0 in every channel, got {std.tolist()}")
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def show_grid(x: torch.Tensor, titles=None, ncols: int = 8, scale: float = 1.1):
    """A labelled grid of images (values in [0, 1]); returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    _require_images(x)
    n = len(x)
    if titles is not None and len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} images")
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
        raise ValueError(f"a kernel of {kernel} (dilation {dilation}) does not fit in {size} "
                         f"pixels with padding {padding}")
    return out


class SmallCNN(nn.Module):
    """Three conv blocks (3×3 conv, batch norm, ReLU, 2×2 max-pool: 64 → 32 → 16 → 8 pixels),
    global average pooling, and one linear head per task. ``heads``: task name → number of
    classes. ``forward`` returns a dict of logits; ``features`` the pooled vector."""

    def __init__(self, heads: dict[str, int], width: int = 32):
        super().__init__()
        if not heads or not all(isinstance(n, int) and n >= 2 for n in heads.values()):
            raise ValueError(f"heads must map each task to its number of classes (>= 2), got "
                             f"{heads!r}")
        require_int("width", width, 4)
        chans = [3, width // 2, width, 2 * width]
        self.body = nn.Sequential(*[nn.Sequential(
            nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(),
            nn.MaxPool2d(2)) for a, b in zip(chans[:-1], chans[1:])])
        self.heads = nn.ModuleDict({name: nn.Linear(chans[-1], n) for name, n in heads.items()})
        self.dim = chans[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(x)
        return {name: head(h) for name, head in self.heads.items()}


def fit_image_classifier(x: torch.Tensor, labels: pd.DataFrame, tasks=("colour", "pattern"), *,
                         epochs: int = 8, batch_size: int = 64, lr: float = 3e-3,
                         width: int = 32, seed: int = 0, device: str | None = "cpu",
                         augment: bool = True):
    """Train a :class:`SmallCNN` with one cross-entropy per task (summed), Adam, seeded batches.

    ``x``: images in ``[0, 1]`` (normalised inside with the training batch's channel statistics,
    kept on the model as ``model.mean`` / ``model.std``); ``labels``: a frame with one integer
    column per task (``item_labels``). ``augment`` flips images left-right at random (colour and
    pattern do not change under a flip). Returns ``(model, history)``: the mean training loss per
    epoch.
    """
    from tqdm.auto import tqdm

    from .config import get_device

    _require_images(x)
    if not isinstance(labels, pd.DataFrame) or len(labels) != len(x):
        raise ValueError(f"labels must be a DataFrame with one row per image ({len(x)}), got "
                         f"{type(labels).__name__} of length {len(labels)}")
    tasks = list(tasks)
    missing = [t for t in tasks if t not in labels.columns]
    if missing:
        raise DataError(f"labels lack the task column(s) {missing}; it has {list(labels.columns)}")
    for name, v in (("epochs", epochs), ("batch_size", batch_size), ("seed", seed)):
        require_int(name, v, 0 if name == "seed" else 1)
    require_number("lr", lr, low=0, low_open=True)
    dev = get_device(device)
    ys = {}
    for t in tasks:
        y = labels[t].to_numpy()
        if pd.isna(y).any() or (y < 0).any():
            raise DataError(f"labels[{t!r}] has missing or negative codes")
        ys[t] = torch.as_tensor(y.astype(np.int64))
    n_classes = {t: len(CLASSES[t]) if t in CLASSES else int(ys[t].max()) + 1 for t in tasks}
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


# ----------------------------------------------------------------------------- a pretrained encoder
# EfficientNet-Lite0 (Tan & Le 2019, "Lite": no squeeze-and-excitation, ReLU6, the stem and head
# kept at 32 and 1,280 channels). Per stage: (expand ratio, kernel, stride, output channels,
# repeats); TensorFlow's "SAME" padding, batch-norm epsilon 1e-3, as the ImageNet weights expect.
LITE0_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
LITE0_INPUT = (127.0 / 255.0, 128.0 / 255.0)   # x in [0, 1] -> (255 x - 127) / 128, per channel


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's "SAME" padding: output side ``⌈size / stride⌉``, the odd
    pixel of padding at the bottom/right (what weights trained in TensorFlow expect)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s, d in zip(x.shape[-2:], self.kernel_size, self.stride, self.dilation):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top or bottom or left or right:
            x = F.pad(x, [left, right, top, bottom])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual block: 1×1 expansion (unless ``expand`` is 1), depthwise k×k
    convolution, 1×1 projection; ReLU6 after the first two; a skip connection when the shape
    is kept. Attribute names follow the ImageNet checkpoint's keys."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (4.7 M parameters): ``features`` gives the 1,280-d pooled vector a
    linear probe reads, ``forward`` the 1,000 ImageNet logits. Input: images in ``[0, 1]``,
    ``(n, 3, H, W)``, any size (224 is what it was trained at); ``features`` scales them as the
    weights expect (``LITE0_INPUT``)."""

    def __init__(self, n_classes: int = 1000):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks, cin = [], 32
        for expand, kernel, stride, cout, repeats in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if r == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(cin, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, n_classes)

    def scale_input(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = LITE0_INPUT
        return (x - mean) / std

    def pooled(self, z: torch.Tensor) -> torch.Tensor:
        """The network on already-scaled input, to the pooled 1,280-d vector."""
        h = F.relu6(self._bn0(self._conv_stem(z)))
        for block in self._blocks:
            h = block(h)
        return F.relu6(self._bn1(self._conv_head(h))).mean(dim=(2, 3))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        _require_images(x)
        return self.pooled(self.scale_input(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x))


@torch.no_grad()
def image_features(encoder: EfficientNetLite0, x: torch.Tensor, *, size: int = 224,
                   batch_size: int = 64, device=None) -> torch.Tensor:
    """Frozen ``encoder`` features of images ``x`` in ``[0, 1]``, resized to ``size`` pixels
    (bilinear) first: a float32 CPU tensor ``(n, 1280)``, in ``x``'s order."""
    from tqdm.auto import tqdm

    _require_images(x)
    require_int("size", size, 16)
    require_int("batch_size", batch_size, 1)
    dev = next(encoder.parameters()).device if device is None else torch.device(device)
    encoder.eval()
    out = []
    for lo in tqdm(range(0, len(x), batch_size), desc="image features", leave=False,
                   disable=len(x) < 4 * batch_size):
        xb = x[lo:lo + batch_size].to(dev)
        if xb.shape[-1] != size or xb.shape[-2] != size:
            xb = F.interpolate(xb, size=(size, size), mode="bilinear", align_corners=False)
        out.append(encoder.features(xb).float().cpu())
    return torch.cat(out)


# ----------------------------------------------------------------------------- probes and a shared space
def linear_probe(train_x, train_y, test_x, test_y, *, C: float = 1.0, seed: int = 0) -> dict:
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
            raise ValueError(f"{name}: features must be (n, d) with one label per row, got "
                             f"{x.shape} and {len(y)} labels")
        if not np.isfinite(x).all():
            raise ValueError(f"{name} features contain NaN or inf")
    if xs[0].shape[1] != xs[1].shape[1]:
        raise ValueError(f"train and test features differ in width: {xs[0].shape[1]} vs "
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
        raise ValueError(f"info_nce needs two (n, d) batches of matched pairs, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[0] < 2:
        raise ValueError("info_nce needs at least 2 pairs (the other rows are the negatives)")
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
        return F.normalize(self.image(f), dim=-1)

    def embed_texts(self, f: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(f), dim=-1)


def fit_shared_space(image_feats: torch.Tensor, text_feats: torch.Tensor, *, dim: int = 128,
                     epochs: int = 30, batch_size: int = 256, lr: float = 1e-3, seed: int = 0,
                     device: str | None = "cpu") -> tuple[SharedSpace, list[float]]:
    """Align frozen image and text features of the same items with :func:`info_nce` (Adam,
    seeded shuffled batches). Row ``i`` of both inputs must be the same item. Returns the
    projections and the mean loss per epoch."""
    from tqdm.auto import tqdm

    from .config import get_device

    for name, f in (("image_feats", image_feats), ("text_feats", text_feats)):
        if not torch.is_tensor(f) or f.ndim != 2 or not f.is_floating_point():
            raise TypeError(f"{name} must be a float tensor (n, d)")
        if not torch.isfinite(f).all():
            raise ValueError(f"{name} contains NaN or inf")
    if len(image_feats) != len(text_feats):
        raise ValueError(f"{len(image_feats)} images but {len(text_feats)} texts: one pair per item")
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
        raise ValueError(f"queries and keys must be matched (n, d) batches, got "
                         f"{tuple(queries.shape)} and {tuple(keys.shape)}")
    require_int("k", k, 1)
    sims = queries @ keys.T
    own = sims.diagonal().unsqueeze(1)
    rank = (sims > own).sum(1)                  # how many keys beat the partner (ties: kind)
    return float((rank < k).float().mean())


# ----------------------------------------------------------------------------- reasons from pixels
def stated_labels(facts: dict, item_ids, task: str) -> pd.Series:
    """The shop's own stated colour or pattern codes (``task``) of ``item_ids``, from chapter 05's
    facts (what the item's text says), NaN where the text is silent: labels a classifier may
    learn from without reading the hidden truth."""
    if task not in ("colour", "pattern"):
        raise ValueError(f"task must be 'colour' or 'pattern', got {task!r}")
    vocab = {v: k for k, v in enumerate(CLASSES[task])}
    unknown = [i for i in item_ids if int(i) not in facts]
    if unknown:
        raise DataError(f"{len(unknown)} items have no facts, e.g. {unknown[:5]}")
    vals = [facts[int(i)].get(task) for i in item_ids]
    return pd.Series([vocab[v] if v is not None else np.nan for v in vals],
                     index=pd.Index(list(item_ids), name="item_id"), dtype="float64")


def facts_from_pixels(facts: dict, item_ids, proba: dict[str, torch.Tensor], *,
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
            raise ValueError(f"only colour and pattern come from pixels, got {task!r}")
        names = CLASSES[task]
        if not torch.is_tensor(p) or p.shape != (len(ids), len(names)):
            raise ValueError(f"proba[{task!r}] must be ({len(ids)}, {len(names)}), got "
                             f"{tuple(p.shape) if torch.is_tensor(p) else type(p).__name__}")
        if not torch.isfinite(p).all() or (p < 0).any():
            raise ValueError(f"proba[{task!r}] must be finite probabilities")
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

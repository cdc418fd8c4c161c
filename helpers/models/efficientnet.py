"""EfficientNet-Lite0, the pretrained image encoder of chapter 06, written out so that its ImageNet
weights (a safetensors file, :func:`helpers.models.pretrained.image_encoder`) load into plain
PyTorch modules: no model zoo, no pickles.

    encoder = pretrained.image_encoder()            # this architecture with its weights
    encoder.features(images)                        # (n, 3, H, W) in [0, 1] -> (n, 1280)
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["SameConv2d", "MBConv", "EfficientNetLite0", "LITE0_STAGES", "LITE0_INPUT"]


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
        """Standardise images in [0, 1] with the mean and scale the pretrained weights were trained
        with.
        """
        mean, std = LITE0_INPUT
        return (x - mean) / std

    def pooled(self, z: torch.Tensor) -> torch.Tensor:
        """The network on already-scaled input, to the pooled 1,280-d vector."""
        h = F.relu6(self._bn0(self._conv_stem(z)))
        for block in self._blocks:
            h = block(h)
        return F.relu6(self._bn1(self._conv_head(h))).mean(dim=(2, 3))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images in ``[0, 1]``, ``(n, 3, H, W)``, to their pooled 1,280-d vectors (the caller
        checks the batch once: :func:`helpers.models.multimodal.image_features` does)."""
        return self.pooled(self.scale_input(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x))

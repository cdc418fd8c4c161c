"""From-scratch attention equals torch's own, to 1e-5, on random inputs with masks."""
import math

import pytest
import torch
from torch.nn import functional as F

from helpers.models import attention as A


def _qkv(b=2, h=3, t=5, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, t, d, generator=g) for _ in range(3)]


@pytest.mark.parametrize("mask_kind", ["none", "causal", "random"])
def test_sdpa_matches_torch(mask_kind):
    q, k, v = _qkv()
    mask = {"none": None, "causal": A.causal_mask(5),
            "random": torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(1)) > 0.3}[mask_kind]
    if mask is not None:
        mask = mask | torch.eye(5, dtype=torch.bool)  # every query keeps one key (torch gives NaN otherwise)
    out, w = A.scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 5))


def test_fully_masked_query_gets_zero_weights_not_nan():
    q, k, v = _qkv(t=3)
    mask = torch.ones(3, 3, dtype=torch.bool)
    mask[0] = False
    out, w = A.scaled_dot_product_attention(q, k, v, mask)
    assert not torch.isnan(out).any() and (w[..., 0, :] == 0).all()


@pytest.mark.parametrize("args,err,msg", [
    ((torch.randn(2, 4, 8), torch.randn(2, 4, 6), torch.randn(2, 4, 8)), ValueError, "last dim"),
    ((torch.randn(2, 4, 8), torch.randn(2, 4, 8), torch.randn(2, 5, 8)), ValueError, "positions"),
    ((torch.randn(2, 4, 8), torch.randn(2, 4, 8).double(), torch.randn(2, 4, 8)), TypeError, "dtype"),
])
def test_sdpa_rejects_mismatched_shapes_and_dtypes(args, err, msg):
    with pytest.raises(err, match=msg):
        A.scaled_dot_product_attention(*args)


def test_sdpa_rejects_bad_masks():
    q, k, v = _qkv()
    with pytest.raises(TypeError, match="bool"):
        A.scaled_dot_product_attention(q, k, v, torch.ones(5, 5))
    with pytest.raises(ValueError, match="does not broadcast"):
        A.scaled_dot_product_attention(q, k, v, torch.ones(4, 4, dtype=torch.bool))


def test_multi_head_attention_matches_torch_with_copied_weights():
    torch.manual_seed(0)
    cfg = A.AttentionConfig(d_model=12, n_head=3)
    mine = A.MultiHeadAttention(cfg)
    ref = torch.nn.MultiheadAttention(12, 3, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(mine.c_attn.weight)
        ref.in_proj_bias.copy_(mine.c_attn.bias)
        ref.out_proj.weight.copy_(mine.c_proj.weight)
        ref.out_proj.bias.copy_(mine.c_proj.bias)
    x = torch.randn(2, 6, 12)
    keep = A.causal_mask(6)
    out = mine(x, keep)
    want, want_w = ref(x, x, x, attn_mask=~keep, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mine.last_weights, want_w, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="divisible"):
        A.AttentionConfig(d_model=10, n_head=3)
    with pytest.raises(ValueError, match="x must be"):
        mine(torch.randn(2, 6, 10))


def test_sinusoidal_positions_follow_the_formula():
    pe = A.sinusoidal_positions(7, 6)
    for p in range(7):
        for i in range(3):
            angle = p / 10000 ** (2 * i / 6)
            assert pe[p, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[p, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_sasrec_is_causal_and_ignores_padding():
    torch.manual_seed(0)
    model = A.SASRec(n_items=20, max_len=6, cfg=A.AttentionConfig(16, 2, 0.0)).eval()
    seq = torch.tensor([[0, 0, 3, 4, 5, 6]])
    changed = torch.tensor([[0, 0, 3, 4, 9, 11]])        # only the future of position 3 differs
    with torch.no_grad():
        a, b = model(seq), model(changed)
    torch.testing.assert_close(a[:, 2:4], b[:, 2:4])
    assert not torch.allclose(a[:, 5], b[:, 5])
    assert model.logits(a).shape == (1, 6, 20)           # the real items only: never the pad
    with pytest.raises(ValueError, match="seq must be"):
        model(torch.zeros(1, 7, dtype=torch.long))

import numpy as np
import pytest
import torch
from sklearn.metrics.pairwise import cosine_similarity as sk_cosine

from helpers.models.similarity import cosine_similarity, top_k


@pytest.mark.parametrize("n,m,d", [(1, 1, 3), (5, 7, 16), (3, 2, 384)])
def test_cosine_matches_scikit_learn(n, m, d):
    gen = torch.Generator().manual_seed(n * 100 + m)
    a, b = torch.randn(n, d, generator=gen) * 3, torch.randn(m, d, generator=gen)
    np.testing.assert_allclose(cosine_similarity(a, b).numpy(), sk_cosine(a.numpy(), b.numpy()),
                               atol=1e-6)
    np.testing.assert_allclose(cosine_similarity(a).numpy(), sk_cosine(a.numpy()), atol=1e-6)


def test_cosine_zero_vector_gives_zero_not_nan():
    s = cosine_similarity(torch.zeros(1, 4), torch.ones(2, 4))
    assert torch.equal(s, torch.zeros(1, 2))


@pytest.mark.parametrize("a,b,msg", [
    (np.ones((2, 3)), torch.ones(2, 3), "torch.Tensor"),
    (torch.ones(2, 3), torch.ones(2, 4), "same width"),
    (torch.ones(2, 3, 4), torch.ones(2, 3), "shape"),
    (torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3), "float"),
])
def test_cosine_rejects_bad_input(a, b, msg):
    with pytest.raises((TypeError, ValueError), match=msg):
        cosine_similarity(a, b)


def test_top_k_matches_numpy_argsort_and_respects_exclusion():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 10, generator=gen)
    values, idx = top_k(scores, 3)
    np.testing.assert_array_equal(idx.numpy(), np.argsort(-scores.numpy(), axis=1)[:, :3])
    exclude = torch.zeros_like(scores, dtype=torch.bool)
    exclude[:, idx[:, 0]] = True
    _, idx2 = top_k(scores, 3, exclude=exclude)
    assert not exclude.gather(1, idx2).any()


@pytest.mark.parametrize("k", [0, 11, 2.0, True])
def test_top_k_rejects_bad_k(k):
    with pytest.raises(ValueError, match="k must be"):
        top_k(torch.randn(2, 10), k)


def test_top_k_rejects_overexclusion():
    exclude = torch.ones(1, 5, dtype=torch.bool)
    exclude[0, 0] = False
    with pytest.raises(ValueError, match="candidates left"):
        top_k(torch.randn(1, 5), 2, exclude=exclude)

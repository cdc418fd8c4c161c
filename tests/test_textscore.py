"""helpers.evaluation.textscore against the reference implementations: the bert-score package on the same
offline MiniLM and layer, transformers' own causal-LM loss, and the judge's two-token softmax
read off the full logits."""
import numpy as np
import pytest
import torch

from helpers.core import assets
from helpers.core.checks import DataError
from helpers.evaluation import textscore as TS
from helpers.models import pretrained

CANDS = ["Recommended for its great warmth, which you care about.", "This lamp is bright and cheap.",
         "It comes in pink, a colour you often choose."]
REFS = ["I bought it for the warmth.", "A bright lamp, good value.", "Pink is my colour."]


@pytest.fixture(scope="module")
def encoder():
    return pretrained.text_encoder()


@pytest.fixture(scope="module")
def lm():
    return pretrained.language_model()


@pytest.mark.parametrize("layer", [4, 6])
def test_bert_score_equals_the_bert_score_package(encoder, layer):
    bert_score = pytest.importorskip("bert_score")
    tok, model = encoder
    p, r, f = TS.bert_score(CANDS, REFS, tok, model, layer=layer)
    P, R, F = bert_score.score(CANDS, REFS, model_type=str(assets.asset_path("minilm")),
                               num_layers=layer, batch_size=8)
    np.testing.assert_allclose(p, P.numpy(), atol=1e-5)
    np.testing.assert_allclose(r, R.numpy(), atol=1e-5)
    np.testing.assert_allclose(f, F.numpy(), atol=1e-5)
    # the broken version: special tokens dropped from the matches too (a common mistake)
    emb = TS._token_embeddings(CANDS[:1] + REFS[:1], tok, model, layer, 8, False)
    (ec, sc), (er, sr) = emb
    broken = float((ec[~sc] @ er[~sr].T).max(dim=1).values.mean())
    assert abs(broken - p[0]) > 1e-4


def test_bert_score_is_one_for_identical_texts_and_rescales(encoder):
    tok, model = encoder
    p, r, f = TS.bert_score(CANDS, CANDS, tok, model)
    np.testing.assert_allclose(f, 1.0, atol=1e-5)
    base = TS.random_pair_baseline(CANDS + REFS, tok, model, n_pairs=30)
    assert 0 < base < 1
    assert TS.rescale([base, 1.0], base).tolist() == pytest.approx([0.0, 1.0])


def test_bert_score_rejects_bad_input(encoder):
    tok, model = encoder
    with pytest.raises(DataError, match="one reference per candidate"):
        TS.bert_score(CANDS, REFS[:2], tok, model)
    with pytest.raises(DataError, match="empty"):
        TS.bert_score([], [], tok, model)
    with pytest.raises(DataError, match="non-empty strings"):
        TS.bert_score(["ok", ""], ["a", "b"], tok, model)
    with pytest.raises(DataError, match="layer"):
        TS.bert_score(CANDS, REFS, tok, model, layer=7)
    with pytest.raises(DataError, match="list of strings"):
        TS.bert_score("one text", "another", tok, model)


def test_lm_nll_equals_the_transformers_loss(lm):
    tok, model = lm
    prompts = ["Why is the Kestrel running shoe recommended?", "Say one thing about lamps."]
    texts = ["It is light and cushioned.", "This lamp is bright, and it is easy to adjust."]
    got = TS.lm_nll(tok, model, prompts, texts)
    for p, t, g in zip(prompts, texts, got):
        head = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                       tokenize=False)
        a = tok(head, add_special_tokens=False)["input_ids"]
        b = tok(t, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            ref = model(input_ids=torch.tensor([a + b]), labels=torch.tensor([[-100] * len(a) + b])).loss
        assert g == pytest.approx(float(ref), abs=1e-4)
    with pytest.raises(DataError, match="one prompt per text"):
        TS.lm_nll(tok, model, prompts, texts[:1])


def test_judge_reads_the_two_token_softmax(lm):
    tok, model = lm
    qs = ["Is the sky blue? Answer Yes or No.",
          "Is fire cold? Answer Yes or No, and think about it at length before you do."]
    got = TS.judge(tok, model, qs)
    yes, no = (tok(w, add_special_tokens=False)["input_ids"][0] for w in ("Yes", "No"))
    for q, g in zip(qs, got):
        head = tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                       tokenize=False)
        with torch.no_grad():
            last = model(input_ids=tok(head, add_special_tokens=False, return_tensors="pt")["input_ids"]).logits[0, -1]
        assert g == pytest.approx(float(torch.softmax(last[[yes, no]], 0)[0]), abs=1e-4)
    assert tok.padding_side == "left"
    with pytest.raises(DataError, match="two different answers"):
        TS.judge(tok, model, qs, options=("Yes", "Yes"))
    with pytest.raises(DataError, match="several"):
        TS.judge(tok, model, qs, options=("Absolutely", "No"))


def test_judge_prompts_state_only_the_shops_facts():
    f = {"aspects": {"warmth": "high", "fit": "medium"}, "colour": "red", "brand": None}
    assert TS.stated_facts(f) == "fit: medium; warmth: high; colour: red"
    assert TS.stated_facts({"aspects": {}}) == "none stated"
    q = TS.verdict_question(f, "Warm.")
    assert q.startswith("Product facts: fit: medium; warmth: high; colour: red.\nReason: Warm.\n")
    assert q.endswith("Answer Yes or No.")
    assert "Reason A: x\nReason B: y\n" in TS.preference_question(f, "x", "y")
    with pytest.raises(DataError, match="item_facts"):
        TS.stated_facts({"colour": "red"})

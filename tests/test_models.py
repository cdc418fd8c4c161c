"""The offline models: right architectures, correct pooling, faithful GGUF conversion, and
clear errors. `make test` runs `make assets` first, so the assets are present."""
import json

import numpy as np
import pytest
import torch

from helpers.core import assets
from helpers.models import pretrained


@pytest.fixture(scope="module")
def encoder():
    return pretrained.text_encoder(device="cpu")


@pytest.fixture(scope="module")
def lm():
    return pretrained.language_model(device="cpu")


TEXTS = ["Noise-cancelling headphones with a long battery", "trail shoes",
         "A waterproof backpack for a week of hiking in the Alps, with padded straps"]


def test_text_encoder_is_minilm_bert(encoder):
    tok, model = encoder
    assert type(model).__name__ == "BertModel"
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (6, 384)
    assert not model.training


def test_encode_is_independent_of_batching_and_padding(encoder):
    """Mean pooling must ignore padding: a text alone and in a padded batch embed the same."""
    tok, model = encoder
    batched = pretrained.encode(TEXTS, tok, model, batch_size=3)
    single = torch.cat([pretrained.encode([t], tok, model) for t in TEXTS])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)
    assert batched.shape == (3, 384)
    torch.testing.assert_close(batched.norm(dim=1), torch.ones(3), atol=1e-5, rtol=0)


def test_encode_matches_manual_mean_pooling(encoder):
    tok, model = encoder
    enc = tok(TEXTS[0], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state[0].numpy()
    manual = hidden.mean(0) / np.linalg.norm(hidden.mean(0))
    np.testing.assert_allclose(pretrained.encode(TEXTS[:1], tok, model)[0].numpy(), manual,
                               atol=1e-5)


def test_encoder_ranks_paraphrase_above_unrelated(encoder):
    tok, model = encoder
    e = pretrained.encode(["headphones that block noise", "noise-cancelling earphones",
                       "a cast-iron frying pan"], tok, model)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2


@pytest.mark.parametrize("texts,err", [([], ValueError), ("just a string", TypeError),
                                       (["ok", ""], ValueError), (["ok", None], ValueError)])
def test_encode_rejects_bad_texts(encoder, texts, err):
    with pytest.raises(err):
        pretrained.encode(texts, *encoder)


def test_encode_states_truncation(encoder):
    with pytest.warns(UserWarning, match="truncated"):
        pretrained.encode(["word " * 300], *encoder, max_length=16)


def test_unknown_model_offline_says_how_to_opt_in(monkeypatch):
    monkeypatch.delenv("COURSE_ONLINE", raising=False)
    with pytest.raises(pretrained.ModelUnavailableError, match="COURSE_ONLINE=1"):
        pretrained.text_encoder("no-such-org/no-such-model-xyz")
    with pytest.raises(pretrained.ModelUnavailableError, match="not available offline"):
        pretrained.language_model("no-such-org/no-such-lm-xyz")


def test_blank_model_name_is_rejected():
    with pytest.raises(ValueError, match="non-empty"):
        pretrained.text_encoder("  ")


def test_language_model_is_smollm2(lm):
    tok, model = lm
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.num_hidden_layers == 30
    assert 134e6 < sum(p.numel() for p in model.parameters()) < 136e6
    assert tok.padding_side == "left" and tok.pad_token is not None


@pytest.mark.slow
def test_converted_weights_equal_gguf_dequantisation():
    """Independent reference: the gguf package's own dequantiser on the original file."""
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.torch import load_file

    reader = GGUFReader(str(assets.asset_path("smollm2") / pretrained._GGUF_FILE))
    state = load_file(str(pretrained.converted_lm_dir() / "model.safetensors"))
    pairs = {"token_embd.weight": "model.embed_tokens.weight",
             "blk.0.ffn_down.weight": "model.layers.0.mlp.down_proj.weight",
             "blk.29.attn_v.weight": "model.layers.29.self_attn.v_proj.weight",
             "output_norm.weight": "model.norm.weight"}
    seen = 0
    for tensor in reader.tensors:
        if tensor.name in pairs:
            ref = dequantize(tensor.data, tensor.tensor_type)
            np.testing.assert_array_equal(state[pairs[tensor.name]].numpy(), ref)
            seen += 1
    assert seen == len(pairs)


def test_generate_reply_is_deterministic_and_nonempty(lm):
    tok, model = lm
    a = pretrained.generate_reply(tok, model, "Name one fruit.", max_new_tokens=8)
    b = pretrained.generate_reply(tok, model, "Name one fruit.", max_new_tokens=8)
    assert a and a == b


@pytest.mark.parametrize("prompt,err,msg", [("   ", ValueError, "empty"),
                                            (42, TypeError, "prompt must be"),
                                            ([{"role": "user"}], TypeError, "prompt must be")])
def test_generate_reply_rejects_bad_prompts(lm, prompt, err, msg):
    with pytest.raises(err, match=msg):
        pretrained.generate_reply(*lm, prompt)


def test_generate_reply_rejects_prompt_longer_than_context(lm):
    tok, model = lm
    with pytest.raises(ValueError, match="exceeds the model's context"):
        pretrained.generate_reply(tok, model, "buy " * 9000, max_new_tokens=5)
    with pytest.raises(ValueError, match="max_new_tokens"):
        pretrained.generate_reply(tok, model, "hi", max_new_tokens=0)


def test_corrupt_converted_model_names_the_repair(tmp_path, monkeypatch):
    fake = tmp_path / "smollm2-135m-instruct"
    fake.mkdir()
    (fake / "model.safetensors").write_bytes(b"not the weights")
    (fake / ".converted.json").write_text(json.dumps({
        "source_sha256": assets.manifest()["smollm2"]["sha256"],
        "files": {"model.safetensors": "0" * 64}}))
    monkeypatch.setattr(pretrained, "converted_lm_dir", lambda: fake)
    with pytest.raises(assets.AssetError, match=r"corrupt.*make assets"):
        pretrained.language_model(device="cpu")

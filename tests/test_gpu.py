"""The course's models on CUDA (marker ``gpu``: skipped, with the reason, where there is no GPU).

    python -m pytest -m gpu tests/test_gpu.py      # on a CUDA machine (tools/gpu/ runs it)

Each model is trained for a moment on the GPU from the same seed and data as on the CPU: the
weights must live on the GPU, the figures must be finite, and where the two runs start from the
same weights their scores must agree to float tolerance (kernels differ, maths does not).
"""
import numpy as np
import pandas as pd
import pytest
import torch
from test_sequential import _cycles  # every user walks a cycle of items

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _same_weights_same_scores(cpu_model, gpu_model, net_attr, users):
    """Copy the CPU model's trained weights into the GPU one: the scores must then agree."""
    getattr(gpu_model, net_attr).load_state_dict(getattr(cpu_model, net_attr).state_dict())
    a = cpu_model.scores(users)
    b = gpu_model.scores(users)
    a = a.cpu() if torch.is_tensor(a) else torch.as_tensor(a)
    b = b.cpu() if torch.is_tensor(b) else torch.as_tensor(b)
    torch.testing.assert_close(b.float(), a.float(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["SASRec", "BERT4Rec"])
def test_sequence_models_train_on_cuda_and_agree_with_the_cpu(name):
    from helpers.models.interest import BERT4RecRecommender
    from helpers.models.sequential import SASRecRecommender

    cls = {"SASRec": SASRecRecommender, "BERT4Rec": BERT4RecRecommender}[name]
    df = _cycles(80, 15, 10)
    kw = dict(max_len=8, d_model=16, n_layer=1, n_epochs=3, seed=0)
    gpu = cls(device="cuda", **kw).fit(df)
    assert next(gpu.model.parameters()).device.type == "cuda"
    assert np.isfinite(gpu.history).all()
    cpu = cls(device="cpu", **kw).fit(df)
    _same_weights_same_scores(cpu, gpu, "model", np.arange(10))


def test_bpr_trains_on_cuda():
    from helpers.models import cf

    df = _cycles(80, 15, 10)
    m = cf.BPR(16, n_epochs=3, device="cuda").fit(df)
    res = m.evaluate(df.groupby("user_id").tail(1), 10)
    assert all(np.isfinite(v) for v in res.values())


def test_two_tower_fine_tunes_its_encoder_on_cuda():
    """Chapter 04's fine-tuned tower: the encoder and its cached lower layers on the GPU."""
    from helpers.models import interest as I

    texts = pd.Series([f"item number {k} in the shop" for k in range(15)], index=range(15))
    emb = I.encode_items(texts, cache=False)
    m = I.TwoTowerRecommender(emb, texts.index, max_len=5, batch_size=16, n_epochs=1,
                              finetune_layers=1, texts=texts, device="cuda").fit(_cycles(80, 15, 10))
    assert next(m.encoder.parameters()).device.type == "cuda"
    res = m.evaluate(_cycles(80, 15, 10).groupby("user_id").tail(1))
    assert all(np.isfinite(v) for v in res.values())


def test_text_encoder_on_cuda_matches_the_cpu():
    from helpers.models import pretrained

    texts = ["a red trail shoe", "a quiet kettle with a steel body", "Toy Story (1995)"]
    tok, enc = pretrained.text_encoder(device="cpu")
    cpu = pretrained.encode(texts, tok, enc, progress=False)
    tok, enc = pretrained.text_encoder(device="cuda")
    gpu = pretrained.encode(texts, tok, enc, progress=False)
    assert gpu.device.type == "cpu" and gpu.dtype == torch.float32   # the documented contract
    assert float((gpu * cpu).sum(1).min()) > 0.9999


def test_language_model_defaults_to_bfloat16_on_cuda_and_generates():
    from helpers.models import pretrained
    from helpers.reasons import lm as LM

    tok, lm = pretrained.language_model(device="cuda")
    assert lm.dtype == torch.bfloat16 and lm.device.type == "cuda"
    prompts = [[{"role": "user", "content": "Say hello."}],
               [{"role": "user", "content": "Name a colour."}]]
    out, stats = LM.generate(tok, lm, prompts, max_new_tokens=8, progress=False)
    assert len(out) == 2 and all(isinstance(o, str) and o for o in out)
    assert stats["reasons_per_s"] > 0


def test_chapter_06_models_train_on_cuda():
    """Chapter 06's trainable pieces on the GPU: the CNN, the shared space, the conditional GAN,
    attention fusion and VBPR; weights on CUDA, finite losses, outputs back on the CPU."""
    from test_multimodal import _tiny_interactions, _two_colour_icons, _two_taste_world

    from helpers.models import multimodal as M

    x, labels, red, _ = _two_colour_icons(32)
    cnn, hist = M.fit_image_classifier(_icons_64(x), labels, tasks=("colour",), epochs=2,
                                       device="cuda")
    assert next(cnn.parameters()).device.type == "cuda" and np.isfinite(hist).all()
    assert M.predict_proba(cnn, _icons_64(x))["colour"].device.type == "cpu"
    g, critic, h = M.fit_cgan(x, labels, conditions=("colour",), steps=5, batch_size=8,
                              width=8, device="cuda")
    assert next(g.parameters()).device.type == "cuda" and np.isfinite(h["critic"]).all()
    assert M.sample_cgan(g, {"colour": [red, red]}).device.type == "cpu"
    space, loss = M.fit_shared_space(torch.randn(64, 12), torch.randn(64, 8), dim=4, epochs=2,
                                     batch_size=16, device="cuda")
    assert next(space.parameters()).device.type == "cuda" and np.isfinite(loss).all()
    df = _tiny_interactions()
    emb = torch.randn(30, 10)
    att = M.AttentionFusionTwoTower(emb, np.arange(1, 31), splits=(6, 4), n_epochs=2,
                                    batch_size=32, device="cuda").fit(df)
    assert np.isfinite(att.scores(np.arange(5))).all()
    assert att.modality_weights().shape == (30, 2)
    df2, feats, ids = _two_taste_world()
    vb = M.VBPR(feats, ids, n_epochs=2, batch_size=32, device="cuda").fit(df2)
    assert vb.E.device.type == "cuda" and np.isfinite(vb.scores(np.arange(5))).all()


def _icons_64(x):
    """The toy squares are 32 px and one colour channel is flat; the CNN's icons are 64 px and
    its normalisation needs spread in every channel: resize, add a little seeded noise."""
    big = torch.nn.functional.interpolate(x, size=(64, 64), mode="nearest")
    noise = torch.rand(big.shape, generator=torch.Generator().manual_seed(0))
    return (0.95 * big + 0.05 * noise).clamp(0, 1)


def test_chapter_07_text_scores_on_cuda_match_the_cpu():
    """BERTScore, the LM likelihood and the judge read their device off the model: on CUDA
    (MiniLM in float32, SmolLM2 in bfloat16 as the course loads it) they agree with the CPU to
    the precision of the dtype."""
    from helpers.evaluation import textscore as TS
    from helpers.models import pretrained

    cands, refs = ["A bright lamp, good value.", "Warm and light."], ["Bright lamp.", "It is warm."]
    tok, enc = pretrained.text_encoder()
    cpu = TS.bert_score(cands, refs, tok, enc, layer=4)[2]
    gpu = TS.bert_score(cands, refs, tok, enc.to("cuda"), layer=4)[2]
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)
    tok_l, lm_cpu = pretrained.language_model(device="cpu")
    _, lm_gpu = pretrained.language_model(device="cuda")
    prompts, texts = ["Why this lamp?", "Why this jacket?"], ["It is bright.", "It is warm."]
    np.testing.assert_allclose(TS.lm_nll(tok_l, lm_gpu, prompts, texts),
                               TS.lm_nll(tok_l, lm_cpu, prompts, texts), atol=0.1)
    qs = ["Is the sky blue? Answer Yes or No."]
    np.testing.assert_allclose(TS.judge(tok_l, lm_gpu, qs), TS.judge(tok_l, lm_cpu, qs), atol=0.05)


def test_chapter_08c_dp_sgd_trains_on_cuda_and_scores_match_the_cpu():
    import copy

    from helpers.models import privacy as P
    rng = np.random.default_rng(0)
    x = torch.zeros(120, 40)
    x[np.repeat(np.arange(120), 5), rng.integers(0, 40, 600)] = 1.0
    model = P.HistoryModel(40, 8)
    rep = P.train(model, x, epsilon=4.0, delta=1e-3, epochs=2, batch_size=16, device="cuda",
                  progress=False)
    assert next(model.parameters()).is_cuda and np.isfinite(rep.losses).all()
    on_cpu = copy.deepcopy(model).cpu()
    targets = rng.integers(0, 40, 120)
    pd.testing.assert_frame_equal(P.evaluate(model, x, targets), P.evaluate(on_cpu, x, targets),
                                  atol=1e-5)
    np.testing.assert_allclose(P.user_losses(model, x), P.user_losses(on_cpu, x), atol=1e-4)

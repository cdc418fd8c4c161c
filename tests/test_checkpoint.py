"""Training state that survives a crash: `finetune_lm` killed at every point of writing a
checkpoint resumes to exactly the weights of an uninterrupted run (tiny Llama, seconds)."""
import os
import random
import shutil

import numpy as np
import pytest
import torch

from helpers.core import checkpoint as C
from helpers.reasons import lm


@pytest.fixture(scope="module")
def tiny(tiny_lm):
    tok, make = tiny_lm
    msgs = lambda a: lm.build_prompt([a], {"title": "Shoe", "aspects": {a: "high"}})
    examples = [lm.encode_example(tok, msgs(a), f"Its superb {a} suits you.")
                for a in ["comfort", "grip", "fit", "warmth", "display"] * 2]
    kw = dict(batch_size=4, lr=1e-2, pad_id=tok.pad_token_id, seed=3, progress=False)
    straight = make()
    losses = lm.finetune_lm(straight, examples, steps=6, **kw)
    return {"make": make, "examples": examples, "kw": kw, "losses": losses,
            "weights": {n: p.detach().clone() for n, p in straight.named_parameters()}}


def test_resume_from_a_shorter_run_equals_the_uninterrupted_run(tiny, tmp_path):
    make, examples, kw = tiny["make"], tiny["examples"], tiny["kw"]
    assert tiny["losses"][-1] < tiny["losses"][0]
    lm.finetune_lm(make(), examples, steps=3, checkpoint_dir=tmp_path, checkpoint_every=2, **kw)
    assert C.latest(tmp_path).name == "step-00000003"
    fresh = make()                      # a new process: fresh weights, then resume from disk
    l_resumed = lm.finetune_lm(fresh, examples, steps=6, checkpoint_dir=tmp_path, **kw)
    assert l_resumed == pytest.approx(tiny["losses"], rel=1e-5)
    for n, p in fresh.named_parameters():
        assert torch.allclose(p, tiny["weights"][n], atol=1e-6), n


def test_train_layers_freezes_the_lower_layers_and_is_bounded(tiny):
    top = tiny["make"]()
    lm.finetune_lm(top, tiny["examples"], steps=1, train_layers=1, **tiny["kw"])
    assert [p.requires_grad for p in top.model.layers[0].parameters()] == [False] * len(
        list(top.model.layers[0].parameters()))
    with pytest.raises(ValueError, match="train_layers"):
        lm.finetune_lm(tiny["make"](), tiny["examples"], steps=1, train_layers=5, **tiny["kw"])
    with pytest.raises(ValueError, match="no training examples"):
        lm.finetune_lm(tiny["make"](), [], steps=1)


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing on the way may swallow it."""


def _assert_same_as_uninterrupted(tiny, model, losses):
    assert losses == pytest.approx(tiny["losses"], rel=1e-5)
    for n, p in model.named_parameters():
        assert torch.allclose(p, tiny["weights"][n], atol=1e-6), n


def _kill_on_call(monkeypatch, target, attr, n=2):
    """Patch ``target.attr`` so that its ``n``-th call dies (the 2nd write of a file kind is the
    checkpoint at step 4)."""
    real, calls = getattr(target, attr), {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise Killed()
        return real(*args, **kwargs)

    monkeypatch.setattr(target, attr, dying)


@pytest.mark.parametrize("point", ["weights", "optimizer+rng", "meta", "rename"])
def test_killed_while_writing_keeps_the_previous_checkpoint_and_resumes_exactly(
        tiny, tmp_path, monkeypatch, point):
    import safetensors.torch

    target = {"weights": (safetensors.torch, "save_file"), "optimizer+rng": (torch, "save"),
              "meta": (C.Path, "write_text"), "rename": (os, "replace")}[point]
    with monkeypatch.context() as m:
        _kill_on_call(m, *target)
        with pytest.raises(Killed):
            lm.finetune_lm(tiny["make"](), tiny["examples"], steps=6, checkpoint_dir=tmp_path,
                            checkpoint_every=2, **tiny["kw"])
    # a real kill leaves a half-written temporary folder behind; simulate one too
    (tmp_path / ".tmp-00000004-deadbeef").mkdir(exist_ok=True)
    (tmp_path / ".tmp-00000004-deadbeef" / "weights.safetensors").write_bytes(b"half")
    assert C.latest(tmp_path).name == "step-00000002"          # the previous one, complete
    assert not list(tmp_path.glob(".tmp-*")), "leftovers of the killed write are removed"
    fresh = tiny["make"]()                                      # a new process
    losses = lm.finetune_lm(fresh, tiny["examples"], steps=6, checkpoint_dir=tmp_path,
                             checkpoint_every=2, **tiny["kw"])
    _assert_same_as_uninterrupted(tiny, fresh, losses)
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["step-00000006"]


def test_killed_after_the_rename_resumes_from_the_new_checkpoint(tiny, tmp_path, monkeypatch):
    with monkeypatch.context() as m:
        _kill_on_call(m, shutil, "rmtree", n=1)  # step 4 removes step 2: die there
        with pytest.raises(Killed):
            lm.finetune_lm(tiny["make"](), tiny["examples"], steps=6, checkpoint_dir=tmp_path,
                            checkpoint_every=2, **tiny["kw"])
    assert C.latest(tmp_path).name == "step-00000004"
    fresh = tiny["make"]()
    losses = lm.finetune_lm(fresh, tiny["examples"], steps=6, checkpoint_dir=tmp_path,
                             checkpoint_every=2, **tiny["kw"])
    _assert_same_as_uninterrupted(tiny, fresh, losses)


def test_killed_between_checkpoints_loses_only_the_steps_since_the_last(tiny, tmp_path):
    calls = {"n": 0}
    model = tiny["make"]()
    real_forward = model.forward

    def dies_at_step_5(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 5:
            raise Killed()
        return real_forward(*a, **kw)

    model.forward = dies_at_step_5
    with pytest.raises(Killed):
        lm.finetune_lm(model, tiny["examples"], steps=6, checkpoint_dir=tmp_path,
                        checkpoint_every=2, **tiny["kw"])
    assert C.latest(tmp_path).name == "step-00000004"
    fresh = tiny["make"]()
    _assert_same_as_uninterrupted(tiny, fresh, lm.finetune_lm(
        fresh, tiny["examples"], steps=6, checkpoint_dir=tmp_path, **tiny["kw"]))


@pytest.mark.parametrize("change", [{"lr": 1e-3}, {"batch_size": 2}, {"seed": 4},
                                    {"examples": "fewer"}, {"train_layers": 1}])
def test_resuming_with_other_settings_is_refused_unless_asked(tiny, tmp_path, change):
    lm.finetune_lm(tiny["make"](), tiny["examples"], steps=2, checkpoint_dir=tmp_path,
                    **tiny["kw"])
    kw = {**tiny["kw"], **{k: v for k, v in change.items() if k != "examples"}}
    examples = tiny["examples"][:6] if "examples" in change else tiny["examples"]
    name = next(iter(change))
    with pytest.raises(C.CheckpointError, match=rf"other settings \(.*{name}.*\).*delete the "
                                                r"checkpoint.*allow_changed_settings=True"):
        lm.finetune_lm(tiny["make"](), examples, steps=4, checkpoint_dir=tmp_path, **kw)
    if name != "train_layers":  # other trainable parameters cannot be loaded at all
        losses = lm.finetune_lm(tiny["make"](), examples, steps=4, checkpoint_dir=tmp_path,
                                 allow_changed_settings=True, **kw)
        assert len(losses) == 4


def test_a_failure_restores_train_mode_and_frozen_parameters(tiny):
    model = tiny["make"]()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)

    def boom(*a, **kw):
        raise RuntimeError("out of memory (simulated)")

    model.forward = boom
    with pytest.raises(RuntimeError, match="simulated"):
        lm.finetune_lm(model, tiny["examples"], steps=2, train_layers=1, **tiny["kw"])
    assert not model.training
    assert all(p.requires_grad for p in model.parameters()), "train_layers' freezing undone"


def test_a_diverging_loss_stops_with_advice_and_keeps_the_checkpoint(tiny, tmp_path):
    lm.finetune_lm(tiny["make"](), tiny["examples"], steps=2, checkpoint_dir=tmp_path,
                    **tiny["kw"])
    model = tiny["make"]()
    real = model.forward

    def nan_loss(*a, **kw):
        out = real(*a, **kw)
        out.loss = out.loss * float("nan")
        return out

    model.forward = nan_loss
    with pytest.raises(FloatingPointError, match="lower lr"):
        lm.finetune_lm(model, tiny["examples"], steps=4, checkpoint_dir=tmp_path, **tiny["kw"])
    assert C.latest(tmp_path).name == "step-00000002"


def test_a_damaged_checkpoint_says_how_to_recover(tiny, tmp_path):
    lm.finetune_lm(tiny["make"](), tiny["examples"], steps=2, checkpoint_dir=tmp_path,
                    **tiny["kw"])
    (C.latest(tmp_path) / "state.pt").write_bytes(b"not a torch file")
    with pytest.raises(C.CheckpointError, match="cannot be read.*Delete that folder"):
        lm.finetune_lm(tiny["make"](), tiny["examples"], steps=4, checkpoint_dir=tmp_path,
                        **tiny["kw"])


def test_rng_state_round_trips_every_generator():
    state = C.rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())
    C.set_rng_state(state)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2] == again[2]


@pytest.mark.parametrize("kw,msg", [
    ({"steps": 0}, "steps must be a positive integer"), ({"steps": 2.5}, "steps must be"),
    ({"steps": 2, "batch_size": "8"}, "batch_size must be"),
    ({"steps": 2, "lr": float("nan")}, "lr must be a finite number"),
    ({"steps": 2, "lr": -1.0}, "lr must be"), ({"steps": 2, "seed": -1}, "seed must be"),
    ({"steps": 2, "train_layers": 2.0}, "train_layers must be an integer"),
])
def test_finetune_rejects_bad_settings(tiny, kw, msg):
    with pytest.raises(ValueError, match=msg):
        lm.finetune_lm(tiny["make"](), tiny["examples"], progress=False, **kw)


@pytest.mark.parametrize("examples,msg", [
    ([], "no training examples"), ("text", "no training examples"),
    ([{"input_ids": [1, 2, 3], "labels": [-100, 2]}], r"input_ids \(3\) and labels \(2\)"),
    ([{"input_ids": [1, 2], "labels": [-100, -100]}], "no target token"),
    ([{"ids": [1]}], "not an encode_example"),
])
def test_finetune_rejects_malformed_examples(tiny, examples, msg):
    with pytest.raises(ValueError, match=msg):
        lm.finetune_lm(tiny["make"](), examples, steps=1, progress=False)


def test_save_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="step must be a positive integer"):
        C.save(tmp_path, 0, {}, {}, {})
    with pytest.raises(ValueError, match="keep must be"):
        C.save(tmp_path, 1, {}, {}, {}, keep=0)

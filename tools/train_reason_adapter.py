"""Train the reason realiser's LoRA adapter that the course ships (chapter 05).

    .venv/bin/python tools/train_reason_adapter.py            # ~30 min on 2 CPU cores
    .venv/bin/python tools/train_reason_adapter.py --steps 2 --out build/adapter-smoke.safetensors

Data: every training purchase of chapter 05's time split (``nlg.reason_world()``), its prompt
built from the plan its reference reason realises (the reason's own claims) and the item's brand
and noun; three targets per purchase drawn from a mixture of the reference, the reference with
the product as its subject and random phrasing-bank sentences for the plan
(``nlg.realiser.MIXTURE`` gives the shares and says why). Model: SmolLM2-135M-Instruct with
LoRA on every linear layer (``nlg.realiser.add_lora``). Training: AdamW, loss on the reason's
tokens only, seeded batches; checkpoints every 20 steps in ``build/artifacts/`` so an
interrupted run resumes where it stopped. Output: ``helpers/reasons/weights/reason_realiser.safetensors``
(float16) and its ``.json`` with the settings, the training data's sha256, the time taken, the
file's sha256, and the *scores* ``tests/test_realiser.py`` checks the shipped file against.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=float, default=0.5)
    ap.add_argument("--per-purchase", type=int, default=3, help="targets drawn per purchase")
    ap.add_argument("--steps", type=int, default=None, help="overrides --epochs")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--alpha", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "helpers/reasons/weights/reason_realiser.safetensors"))
    ap.add_argument("--checkpoint-dir", default=str(ROOT / "build/artifacts/realiser_checkpoint"))
    args = ap.parse_args(argv)

    import torch

    from helpers.core import config
    from helpers.models import pretrained
    from helpers.reasons import adapter, realiser as R
    from helpers.reasons.lm import finetune_lm
    from helpers.reasons.world import reason_world

    config.seed_everything(args.seed)
    world = reason_world()
    tok, base = pretrained.language_model(device=config.get_device())
    examples, prompts, targets, digest = R.training_examples(
        world, tok, args.per_purchase, R.MIXTURE, args.seed)
    steps = args.steps or int(round(args.epochs * len(examples) / args.batch_size))
    print(f"{len(examples)} (plan, reason) examples, {steps} steps of {args.batch_size}")
    model = adapter.add_lora(base, r=args.r, alpha=args.alpha, seed=args.seed)
    t0 = time.perf_counter()
    losses = finetune_lm(model, examples, steps=steps, batch_size=args.batch_size, lr=args.lr,
                         pad_id=tok.pad_token_id, seed=args.seed,
                         checkpoint_dir=args.checkpoint_dir, checkpoint_every=20)
    seconds = time.perf_counter() - t0
    meta = {"lora": {"r": args.r, "alpha": args.alpha, "dropout": 0.05,
                     "targets": list(adapter.LORA_TARGETS)},
            "base_model": "SmolLM2-135M-Instruct (helpers/core/assets.json: smollm2)",
            "training": {"examples": len(examples), "per_purchase": args.per_purchase,
                         "mixture": {k: list(v) for k, v in R.MIXTURE.items()},
                         "data_sha256": digest, "steps": steps,
                         "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                         "optimizer": "AdamW, weight decay 0, grad-norm clip 1.0",
                         "seconds_this_run": round(seconds, 1),
                         "device": str(config.get_device()), "threads": torch.get_num_threads(),
                         "torch": torch.__version__, "python": platform.python_version(),
                         "loss_first_10": round(sum(losses[:10]) / max(len(losses[:10]), 1), 4),
                         "loss_last_10": round(sum(losses[-10:]) / max(len(losses[-10:]), 1), 4)}}
    info = adapter.save_adapter(model, args.out, meta)
    scores = R.reference_scores(Path(args.out), world)
    info["scores"] = scores
    Path(args.out).with_suffix(".json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()

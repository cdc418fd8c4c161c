"""LoRA against full fine-tuning for chapter 05's realiser, at equal steps, on the same data.

    .venv/bin/python benchmarks/lora_vs_full.py               # ~25 min on 2 CPU cores
    .venv/bin/python benchmarks/lora_vs_full.py --steps 4     # a smoke run

Protocol: SmolLM2-135M-Instruct, the realiser's training examples
(``realiser.training_examples``: three targets per training purchase, drawn from its
reference, the reference with the product as subject, and the phrasing bank), batch 16, the
same seeded batches for both, AdamW, gradient-norm clip 1.0.

* **LoRA**: rank 8, alpha 16, every linear layer of the decoder (the shipped recipe), lr 1e-3.
* **Full**: every parameter trains (embeddings included), lr 5e-5 (a usual rate for full
  fine-tuning of a model this size; 1e-3 diverges).

Reported per method: trainable parameters, seconds per step, peak RSS, the size of what must be
stored to ship it (LoRA: the adapter in float16; full: the whole model in float16), and the
realiser's quality after ``--steps`` steps (``realiser.realiser_scores``: loss on 48 warm
test references with their oracle plans, and the share of greedy sentences that say exactly
their plan). Prints a Markdown table.
"""
import argparse
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from helpers.core import config
from helpers.models import pretrained
from helpers.reasons import adapter, lm, realiser as R, world

warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=80)
    args = ap.parse_args()
    device = config.get_device()
    if device.type == "cpu":
        torch.set_num_threads(2)
    w = world.reason_world()
    rows = []
    for method, lr in (("LoRA r=8", 1e-3), ("full fine-tuning", 5e-5)):
        config.seed_everything(0)
        tok, model = pretrained.language_model(device=device, dtype=torch.float32)
        ex, *_ = R.training_examples(w, tok)
        if method.startswith("LoRA"):
            model = adapter.add_lora(model, seed=0)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        t0 = time.perf_counter()
        losses = lm.finetune_lm(model, ex, steps=args.steps, batch_size=16, lr=lr,
                                 pad_id=tok.pad_token_id, seed=0, progress=True)
        secs = time.perf_counter() - t0
        stored = (trainable if method.startswith("LoRA")
                  else sum(p.numel() for p in model.parameters())) * 2
        if method.startswith("LoRA"):
            model = model.merge_and_unload()
        scores = R.realiser_scores(tok, model, w)
        rows.append({"method": method, "lr": f"{lr:g}", "trainable parameters": f"{trainable:,}",
                     "s/step": secs / args.steps, "peak RSS MiB": config.peak_rss_mib(),
                     "to ship (MiB, fp16)": stored / 2**20,
                     "train loss, last 10": sum(losses[-10:]) / len(losses[-10:]),
                     "held-out loss": scores["loss"], "plan exact": scores["plan_exact"]})
        del model
    print(f"\n{args.steps} steps of 16 on {device} ({torch.get_num_threads()} threads):\n")
    print(pd.DataFrame(rows).round(3).to_markdown(index=False))
    print("\n(peak RSS is the process's maximum so far: the second row includes the first.)")


if __name__ == "__main__":
    main()

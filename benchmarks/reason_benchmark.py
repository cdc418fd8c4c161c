"""Benchmark for chapter 05 (issue 6): how fast reasons are scored, generated and learned.

    .venv/bin/python benchmarks/reason_benchmark.py            # CPU: ~6 minutes on 2 cores
    .venv/bin/python benchmarks/reason_benchmark.py --steps 0  # skip the fine-tuning timing

1. Scoring: every chapter-05 metric (BLEU-1/4, ROUGE-1/2/L, USR, FMR, FCR, DIV, faithfulness,
   hallucination) on 10,000 (reason, reference) pairs drawn from ShopWorld's reference reasons.
2. Generation with SmolLM2-135M-Instruct on chapter-05 prompts (profile + stated facts + one
   review), greedy, 32 new tokens: reasons/s and generated tokens/s for several batch sizes, with
   and without the KV cache; peak memory (CUDA: torch's allocator; CPU: the process's max RSS).
3. Fine-tuning: seconds per step (batch 8 on CPU, 16 on GPU; the last 4 layers on CPU, all on
   GPU) over ``--steps`` steps, and the projected time of the full profile (3 epochs over all
   training reasons that name a feature).

Runs on the GPU when there is one (bf16), else on the CPU with 2 threads. Prints a Markdown table.
"""
import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from helpers import config, data, models, nlg, preprocess as pp  # noqa: E402
from helpers import interest as I  # noqa: E402

warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6, help="fine-tuning steps to time (0: skip)")
    ap.add_argument("--n-prompts", type=int, default=64)
    args = ap.parse_args()
    device = config.get_device()
    if device.type == "cpu":
        torch.set_num_threads(2)
    sw = pp.clean_shopworld(write=False)
    catalogue, events = sw["catalogue"], sw["events"]
    reviews, reasons = data.load_shopworld("reviews"), data.load_shopworld("reasons")
    lex = nlg.lexicon(catalogue)
    items = nlg.item_truth_facts(data.load_shopworld("item_truth"), catalogue)
    users = nlg.user_truth_facts(data.load_shopworld("user_truth"))

    # 1. scoring 10k reasons
    rng = np.random.default_rng(0)
    pairs = reasons.iloc[rng.integers(0, len(reasons), 10_000)].reset_index(drop=True)
    shuffled = pairs["reason"].sample(frac=1.0, random_state=1).tolist()
    t0 = time.perf_counter()
    nlg.score_reasons(shuffled, pairs, lex, items, users)
    print(f"| scoring 10,000 reasons, every metric | {time.perf_counter() - t0:.1f} s |")

    # 2. generation
    cutoff = reasons["timestamp"].quantile(0.7)
    train_reviews = reviews[reviews["timestamp"] < cutoff]
    profile = nlg.profile_map(I.aspect_profile(events[events["timestamp"] < cutoff], train_reviews,
                                                catalogue, data.vocabulary()["categories"]))
    facts = nlg.item_facts(catalogue, train_reviews)
    test = reasons[reasons["timestamp"] >= cutoff].head(args.n_prompts)
    prompts = [nlg.build_prompt(profile.get(int(u), []), facts[int(i)],
                                train_reviews.loc[train_reviews["item_id"] == i, "sentence"].head(1).tolist())
               for u, i in zip(test["user_id"], test["item_id"])]
    tok, lm = models.language_model(device=device)
    nlg.generate(tok, lm, prompts[:2], max_new_tokens=4, progress=False)  # warm-up
    sizes = [1, 8, 16] if device.type == "cpu" else [1, 16, 64]
    rows = []
    for bs in sizes:
        n = min(len(prompts), max(bs * 2, 4) if device.type == "cpu" else len(prompts))
        for cache in (True, False):
            if not cache and bs != sizes[1]:
                continue
            _, st = nlg.generate(tok, lm, prompts[:n], batch_size=bs, max_new_tokens=32,
                                 use_cache=cache, progress=False)
            rows.append({"batch": bs, "KV cache": cache, "prompts": n,
                         "reasons/s": round(st["reasons_per_s"], 2),
                         "tokens/s": round(st["tokens_per_s"], 1),
                         "peak MiB": round(st["peak_mib"])})
    print(f"\nGeneration on {device} ({torch.get_num_threads()} threads), "
          f"{next(lm.parameters()).dtype}:\n")
    print(pd.DataFrame(rows).to_markdown(index=False))

    # 3. fine-tuning speed
    if args.steps:
        named = reasons[(reasons["timestamp"] < cutoff) & (reasons["drivers"] != "popularity")]
        bs = 8 if device.type == "cpu" else 16
        ex = [nlg.encode_example(tok, nlg.build_prompt(profile.get(int(u), []), facts[int(i)],
                                                       train_reviews.loc[train_reviews["item_id"] == i,
                                                                         "sentence"].head(1).tolist()), r)
              for u, i, r in zip(named["user_id"][:bs * args.steps], named["item_id"][:bs * args.steps],
                                 named["reason"][:bs * args.steps])]
        t0 = time.perf_counter()
        nlg.finetune_lm(lm, ex, steps=args.steps, batch_size=bs, lr=1e-4, pad_id=tok.pad_token_id,
                        train_layers=4 if device.type == "cpu" else None, progress=False)
        per_step = (time.perf_counter() - t0) / args.steps
        full_steps = 3 * len(named) // 16
        print(f"\nFine-tuning: {per_step:.2f} s/step (batch {bs}, "
              f"{'last 4 layers' if device.type == 'cpu' else 'all layers'}); the full profile's "
              f"{full_steps} steps of 16 would take ~{full_steps * per_step * 16 / bs / 60:.0f} min here.")


if __name__ == "__main__":
    main()

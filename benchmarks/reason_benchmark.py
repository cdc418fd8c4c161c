"""Benchmark for chapter 05: how fast reasons are scored, generated and learned.

    .venv/bin/python benchmarks/reason_benchmark.py             # CPU: ~26 minutes on 2 cores
    .venv/bin/python benchmarks/reason_benchmark.py --steps 0   # skip the fine-tuning timing

1. Scoring: every chapter-05 metric (BLEU-1/4, ROUGE-1/2/L, USR, FCR, DIV, and the per-pair
   truthful / grounded / personal / faithful / FMR) on 10,000 (reason, reference) pairs drawn
   from ShopWorld's reference reasons.
2. Generation, the old prompt path (the peer): SmolLM2-135M-Instruct on chapter 05's chat
   prompts (profile + stated facts + one quoted review), greedy, 32 new tokens, batch 8 with the
   KV cache — what the chapter used before the realiser.
3. Generation, the realiser: SmolLM2-135M with the shipped LoRA adapter merged, on short plan
   prompts of distinct warm test pairs (no two prompts alike, so no caching of repeats helps),
   greedy, up to 40 new tokens: batch sizes 8/32/64, with and without the KV cache, float32 and
   bfloat16, plain and constrained decoding; then ``realise_fast`` (the loop written out, output
   layer cut to the closed vocabulary, finished rows leaving the batch) greedy in float32, with
   int8 MLPs (``decoding.quantize_mlp``) and int8 everywhere (dynamic quantisation), and sampled at
   temperature 1, with the share of sentences that
   say exactly their plan; and the whole warm split as the chapter serves it
   (``realiser.serve``: one sample per pair, the guard, greedy for the rejected), with its
   unique-sentence ratio. reasons/s counts
   sentences produced; tokens/s the new tokens; peak memory is the process's max RSS on a CPU
   (torch's allocator on CUDA).
4. Resemblance against variety on the whole warm split: BLEU-4, USR, FMR and faithful of the
   served sentences, the same model greedy and at temperature 0.7, the phrasing bank with
   0/25/50/100 % of pairs in the references' exact wording, and the bank drawn as the
   realiser's training mixture (``R.MIXTURE``); and, on the last 15 % of the training period,
   the grid of mixtures the shipped one was chosen from.
5. Fine-tuning: seconds per LoRA step (batch 16) on the realiser's training examples, and the
   projected time of the shipped adapter's recipe (its steps from ``reason_realiser.json``).

Runs on the GPU when there is one, else on the CPU with 2 threads. Prints Markdown tables.
"""
import argparse
import copy
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from helpers.core import config
from helpers.models import pretrained
from helpers.reasons import (
    adapter,
    claims,
    decoding,
    explainers,
    guard as G,
    lm as LM,
    plan_prompt,
    planner as PL,
    realiser as R,
    vocabulary,
    world,
)

warnings.filterwarnings("ignore")


def bank_mixture(w, plans, items, mixture: dict, seed: int = 0) -> list[str]:
    """The phrasing bank drawn as a mixture, one sentence per pair. ``mixture``: per kind of
    plan (``phrasing.kind_of``) the (exact, mirrored) shares as in ``R.MIXTURE``: a reference
    template (one of the kind's, at random) with the first probability, its mirror with the
    product as subject with the second, else any template; opinion words at random; a sentence
    that repeats another copy of the same prompt's is drawn once more (as ``realise_varied``)."""
    import random

    from helpers.reasons import phrasing

    rng, out, said = random.Random(seed), [], {}
    for p, i in zip(plans, items):
        f = w.facts[int(i)]
        prompt = plan_prompt.realiser_prompt(p, f)
        kind = phrasing.kind_of(p)
        exact, mirrored = mixture[kind]
        for _ in range(2):
            mirror, u = phrasing.MIRROR[kind], rng.random()
            ref = rng.choice(sorted(mirror))
            pick = (ref if u < exact else mirror[ref] if u < exact + mirrored
                    else rng.randrange(phrasing.n_templates(p)))
            s = phrasing.say(p, f, pick, rng.randrange(8))
            if s not in said.setdefault(prompt, set()):
                break
        said[prompt].add(s)
        out.append(s)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4, help="LoRA fine-tuning steps to time (0: skip)")
    ap.add_argument("--n-prompts", type=int, default=256)
    args = ap.parse_args()
    device = config.get_device()
    if device.type == "cpu":
        torch.set_num_threads(2)
    w = world.reason_world()

    # 1. scoring 10k reasons
    rng = np.random.default_rng(0)
    allr = pd.concat([w.train, w.warm, w.cold], ignore_index=True)
    pairs = allr.iloc[rng.integers(0, len(allr), 10_000)].reset_index(drop=True)
    shuffled = pairs["reason"].sample(frac=1.0, random_state=1).tolist()
    t0 = time.perf_counter()
    claims.score_reasons(shuffled, pairs, w.lex, w.items_truth, w.facts)
    print(f"| scoring 10,000 reasons, every metric | {time.perf_counter() - t0:.1f} s |")

    rows = []
    # 2. the old chat-prompt path (peer)
    prof = explainers.profile_map(w.profile)
    test = w.warm.head(16)
    chat = [LM.build_prompt(prof.get(int(u), []), w.facts[int(i)],
                             w.train_reviews.loc[w.train_reviews["item_id"] == i, "sentence"]
                             .head(1).tolist()) for u, i in zip(test["user_id"], test["item_id"])]
    tok, lm = pretrained.language_model(device=device)
    LM.generate(tok, lm, chat[:2], max_new_tokens=4, progress=False)     # warm-up
    _, st = LM.generate(tok, lm, chat, batch_size=8, max_new_tokens=32, progress=False)
    rows.append({"path": "chat prompt + review (old)", "batch": 8, "KV cache": True,
                 "dtype": "float32", "decoding": "plain", "prompts": len(chat),
                 "reasons/s": st["reasons_per_s"], "tokens/s": st["tokens_per_s"],
                 "peak MiB": st["peak_mib"]})
    del lm

    # 3. the realiser
    planner = PL.fit_planner(w, progress=False)
    d = w.warm
    plans = planner.plans(d["user_id"], d["item_id"], progress=False)
    prompts, masks, seen = [], [], set()
    for p, i in zip(plans, d["item_id"]):
        pr = plan_prompt.realiser_prompt(p, w.facts[int(i)])
        if pr not in seen:
            seen.add(pr)
            prompts.append(pr)
            masks.append(vocabulary.allowed_tokens(tok, p, w.facts[int(i)]["category"], w.lex,
                                          brand=w.facts[int(i)]["brand"]))
    prompts, masks = prompts[:args.n_prompts], masks[:args.n_prompts]
    tok_r, model, meta = adapter.load_realiser(device=device)
    decoding.realise(tok_r, model, prompts[:4], progress=False)                   # warm-up
    settings = [(8, True, torch.float32, False), (32, True, torch.float32, False),
                (64, True, torch.float32, False), (32, False, torch.float32, False),
                (64, True, torch.bfloat16, False), (64, True, torch.float32, True)]
    for bs, cache, dtype, constrained in settings:
        # a bfloat16 *copy*: casting the model itself and back would leave every later row with
        # weights rounded to bfloat16 (the run of 2026-11-30 did; its speeds are unaffected)
        m = model if dtype == torch.float32 else copy.deepcopy(model).to(dtype)
        m.generation_config.use_cache = cache
        _, st = decoding.realise(tok_r, m, prompts, batch_size=bs, progress=False,
                          allowed=masks if constrained else None)
        rows.append({"path": "plan prompt, LoRA realiser", "batch": bs, "KV cache": cache,
                     "dtype": str(dtype).replace("torch.", ""),
                     "decoding": "constrained" if constrained else "plain",
                     "prompts": len(prompts), "reasons/s": st["reasons_per_s"],
                     "tokens/s": st["tokens_per_s"], "peak MiB": st["peak_mib"]})
    del m
    model.generation_config.use_cache = True
    # the written-out loop with the output layer cut to the closed vocabulary (finished rows
    # leave the batch), greedy in float32 and int8 (dynamic quantisation of every Linear), and
    # sampled at temperature 1; "plan exact" = the sentence says exactly its plan (naming the
    # product's brand allowed: plan_prompt.says_plan), the quality a faster path must not lose
    vocab = vocabulary.closed_vocabulary(tok_r, w.lex)
    plan_of = {}
    for p, i in zip(plans, d["item_id"]):
        plan_of.setdefault(plan_prompt.realiser_prompt(p, w.facts[int(i)]), (p, w.facts[int(i)]))
    exact = lambda outs: float(np.mean([plan_prompt.says_plan(o, *plan_of[p], w.lex)
                                        for o, p in zip(outs, prompts)]))
    hf_out, _ = decoding.realise(tok_r, model, prompts, batch_size=64, progress=False)
    next(r for r in rows if r["batch"] == 64 and r["dtype"] == "float32" and r["KV cache"]
         and r["decoding"] == "plain" and r["path"].startswith("plan"))["plan exact"] = exact(hf_out)
    quant = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    mlp8 = decoding.quantize_mlp(model)
    for label, m, bs, temp in [("fast loop, closed vocabulary", model, 64, None),
                               ("fast loop, closed vocabulary", model, 128, None),
                               ("fast loop, closed vocabulary", model, 256, None),
                               ("fast loop, closed vocabulary, sampled T=1", model, 256, 1.0),
                               ("fast loop, closed vocabulary, int8 MLPs", mlp8, 128, None),
                               ("fast loop, closed vocabulary, int8 everywhere", quant, 128, None)]:
        outs, st = decoding.realise_fast(tok_r, m, prompts, vocab, batch_size=bs, temperature=temp)
        rows.append({"path": label, "batch": bs, "KV cache": True,
                     "dtype": "int8" if m is quant else "int8 MLP" if m is mlp8 else "float32",
                     "decoding": "closed vocab",
                     "prompts": len(prompts), "reasons/s": st["reasons_per_s"],
                     "tokens/s": st["tokens_per_s"], "peak MiB": st["peak_mib"],
                     "plan exact": exact(outs)})
    # the whole warm split as the chapter serves it (float32, batch 256): one sample per pair at
    # temperature 1 (drawn again where another copy of its prompt got the same sentence), the
    # guard, the greedy sentence for the samples it rejects
    full = [plan_prompt.realiser_prompt(p, w.facts[int(i)]) for p, i in zip(plans, d["item_id"])]
    wanted = {(int(u), int(i)): {claims.driver_of(c) for c in p}
              for u, i, p in zip(d["user_id"], d["item_id"], plans)}
    guard = G.ClosedWorldGuard(w.facts, w.lex, personal=lambda u, i: wanted[(u, i)],
                                 fallback=explainers.TemplateExplainer(w.facts, w.profile))
    said, st = R.serve(tok_r, model, vocab, guard, d["user_id"], d["item_id"], plans,
                       temperature=1.0, seed=0)
    usr = len(set(said)) / len(said)
    rows.append({"path": f"whole warm split as served ({len(full)} pairs): sample + guard + "
                         f"greedy for the {st['rejected']} rejected, {st['redrawn']} redrawn, "
                         f"{st['fallback']} fallback; USR {usr:.3f}",
                 "batch": 256, "KV cache": True, "dtype": "float32",
                 "decoding": "closed vocab", "prompts": len(full),
                 "reasons/s": st["reasons_per_s"], "tokens/s": st["tokens_per_s"],
                 "peak MiB": st["peak_mib"]})
    print(f"\nGeneration on {device} ({torch.get_num_threads()} threads):\n")
    print(pd.DataFrame(rows).round(1).to_markdown(index=False))

    # 4. resemblance against variety on the whole warm split: BLEU-4 rewards the references'
    # wording, USR rewards not repeating it (the references themselves: USR 0.41). The served
    # sentences above, the same model greedy and at T=0.7, and the phrasing bank with a share
    # of pairs said in the references' exact wording (template 0 of each kind)
    import random

    from helpers.reasons import phrasing

    keep = ["BLEU-4", "USR", "FMR", "faithful"]
    score = lambda outs: {k: float(v) for k, v in
                          claims.score_reasons(outs, d, w.lex, w.items_truth, w.facts).items()
                          if k in keep}
    trade = {"LM served (T=1, guard)": score(said)}
    for label, temp in (("LM greedy", None), ("LM T=0.7", 0.7)):
        outs, _ = decoding.realise_fast(tok_r, model, full, vocab, batch_size=256, temperature=temp,
                                 seed=0)
        trade[label] = score(outs)
    for share in (0.0, 0.25, 0.5, 1.0):
        rng = random.Random(0)
        outs = [phrasing.say(p, w.facts[int(i)], 0 if rng.random() < share
                             else rng.randrange(phrasing.n_templates(p)), rng.randrange(8))
                for p, i in zip(plans, d["item_id"])]
        trade[f"phrasing bank, {share:.0%} in the references' wording"] = score(outs)
    trade["phrasing bank, the realiser's training mixture"] = score(
        bank_mixture(w, plans, d["item_id"], R.MIXTURE))
    print("\nResemblance (BLEU-4) against variety (USR), whole warm split "
          "(chapter 05's PETER: BLEU-4 0.178, USR 0.118):\n")
    print(pd.DataFrame(trade).T[keep].round(3).to_markdown())
    # how the training mixture was chosen: the bank drawn with each (exact, mirrored) share on
    # the last 15 % of the training period, plans = the references' own claims (no test pair)
    tr = w.train.sort_values("timestamp", kind="stable")
    val = tr.iloc[int(len(tr) * 0.85):]
    vplans = [plan_prompt.plan_from_reason(r, w.lex) for r in val["reason"]]
    val, vplans = val[[bool(p) for p in vplans]], [p for p in vplans if p]
    every = lambda shares: {k: shares for k in R.MIXTURE}
    aspects = lambda shares: dict(simple=(0.05, 0.45), aspect=shares, two_aspects=shares)
    grid = {"plain bank": every((0, 0)), "exact 10 %": every((0.1, 0)),
            "exact 20 %": every((0.2, 0)), "mirrored 50 %": every((0, 0.5)),
            "exact 5 %, mirrored 45 %": every((0.05, 0.45))}
    for ex_share, mirrored in [(0.2, 0.4), (0.35, 0.3), (0.5, 0.25), (0.7, 0.1)]:
        grid[f"simple 5/45 %, aspects exact {ex_share:.0%}, mirrored {mirrored:.0%}"] = \
            aspects((ex_share, mirrored))
    assert R.MIXTURE in grid.values(), "the shipped mixture should be one of the grid's rows"
    for label, mixture in grid.items():
        s = claims.score_reasons(bank_mixture(w, vplans, val["item_id"], mixture), val, w.lex,
                              w.items_truth, w.facts)
        grid[label] = {"BLEU-4": float(s["BLEU-4"]), "USR": float(s["USR"]),
                       "shipped": "yes" if mixture == R.MIXTURE else ""}
    print(f"\nChoosing the training mixture: the phrasing bank on the last 15 % of the training "
          f"period ({len(val)} purchases, their references' plans):\n")
    table = pd.DataFrame(grid).T
    print(table.astype({"BLEU-4": float, "USR": float}).round(3).to_markdown())

    # 5. LoRA fine-tuning speed
    if args.steps:
        tok2, base = pretrained.language_model(device=device)
        ex, *_ = R.training_examples(w, tok2)
        lora = adapter.add_lora(base, seed=0)
        t0 = time.perf_counter()
        LM.finetune_lm(lora, ex, steps=args.steps, batch_size=16, lr=1e-3,
                        pad_id=tok2.pad_token_id, progress=False)
        per_step = (time.perf_counter() - t0) / args.steps
        shipped = json.loads(adapter.ADAPTER.with_suffix(".json").read_text())["training"]
        print(f"\nLoRA fine-tuning: {per_step:.2f} s/step (batch 16, {len(ex)} examples); the "
              f"shipped recipe's {shipped['steps']} steps would take "
              f"~{shipped['steps'] * per_step / 60:.0f} min here (it took "
              f"{shipped['seconds_this_run'] / 60:.0f} min on {shipped['device']}, "
              f"{shipped['threads']} threads).")


if __name__ == "__main__":
    main()

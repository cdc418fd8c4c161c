"""The course's heavy jobs on a GPU, each one runnable on the CPU too for the same job's time.

    python benchmarks/gpu_profile.py --out build/gpu                     # every job, this machine's device
    python benchmarks/gpu_profile.py --device cpu --jobs encoder,generation --out build/gpu-cpu
    python benchmarks/gpu_profile.py --report build/gpu build/gpu-cpu    # Markdown of the JSONs

Each job writes ``<out>/<job>.json`` (its figures, its device, the versions, or the traceback
that stopped it), so one failing job hides nothing of the others and jobs may run as separate
processes side by side (the GPU session does: ``tools/gpu/``). Jobs:

* ``sequence``: SASRec (whole history) and BERT4Rec on RecBole's own leave-one-out split of
  MovieLens-100K (``loaders.recbole_split("LS")``), the toolkit benchmark's settings
  (``benchmarks/toolkit_protocols.py``: at most 300 epochs, early stopping on validation
  MRR@10 with patience 10, the best epoch kept; the validation item read as the newest input
  at test time). Fit seconds, epochs run, test NDCG/HR/MRR@10 (full ranking).
* ``two_tower``: chapter 04's full-profile two towers on MovieLens-100K leave-last-out: 1,500
  steps of 64, the frozen-encoder tower and the one whose top 2 MiniLM layers are fine-tuned.
* ``encoder``: MiniLM (all-MiniLM-L6-v2) embedding MovieLens' 1,682 item texts, repeated to
  ``--encoder-texts``, batch 256: texts/s in float32 and (on CUDA) under bfloat16 autocast,
  with the smallest cosine between the two embeddings of a text.
* ``generation``: the shipped LoRA realiser (merged) on distinct plan prompts of chapter 05's
  warm split, greedy, up to 40 new tokens, KV cache: float32 and bfloat16 at batch 64 and 256
  (``realiser.realise``), and the written-out loop with the closed vocabulary
  (``realise_fast``) at 256; reasons/s, tokens/s, peak memory, and the share of sentences that
  say exactly their plan (``says_plan``), the quality a faster setting must not lose.
* ``adapter``: ``tools/train_reason_adapter.py``'s whole recipe (the shipped adapter's 265
  steps of 16 on all 8,469 training examples) into ``<out>/reason_realiser_retrained.safetensors``: its own JSON
  gives the seconds and the held-out scores, set beside the shipped (CPU-trained) adapter's.

Times are wall-clock seconds of this process; on CUDA each timed region ends with
``torch.cuda.synchronize()``. Jobs started side by side share the machine: the report says so.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

JOBS = ("sequence", "two_tower", "encoder", "generation", "adapter")


@contextmanager
def _timed(device):
    """Times the block into ``got["s"]``: CUDA's peak-memory counter reset at its start, and
    its work finished (synchronised) before the clock stops."""
    import torch

    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    got = {}
    t0 = time.perf_counter()
    yield got
    if cuda:
        torch.cuda.synchronize()
    got["s"] = time.perf_counter() - t0


def _peak_mib(device) -> float | None:
    import torch

    if torch.device(device).type == "cuda":
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return None


def job_sequence(device, args) -> dict:
    import pandas as pd

    from helpers.data import loaders, preprocess as pp
    from helpers.models.interest import BERT4RecRecommender
    from helpers.models.sequential import SASRecRecommender

    ml = loaders.load_movielens()["ratings"]
    users, items = pp.build_id_map(ml["user_id"]), pp.build_id_map(ml["item_id"])
    train, valid, test = loaders.recbole_split("LS", ml)
    history = pd.concat([train, valid])
    makers = {"SASRec (whole history)": lambda: SASRecRecommender(
                  n_epochs=args.max_epochs, whole_history=True, device=device),
              "BERT4Rec": lambda: BERT4RecRecommender(n_epochs=args.max_epochs, device=device)}
    out = {}
    for name, make in makers.items():
        model = make()
        with _timed(device) as clock:
            model.fit(train, users, items, valid=valid)
        secs = clock["s"]
        model.use_history(history)
        t = model.evaluate(test, 10, exclude=valid)
        out[name] = {"fit s": round(secs, 1), "epochs run": len(model.history),
                     "s/epoch": round(secs / max(len(model.history), 1), 2),
                     "NDCG@10": round(t["ndcg@10"], 4), "HR@10": round(t["hr@10"], 4),
                     "MRR@10": round(t["mrr@10"], 4), "peak MiB": _peak_mib(device)}
        print(name, out[name], flush=True)
    return out


def job_two_tower(device, args) -> dict:
    from helpers.data import loaders, preprocess as pp
    from helpers.models import interest as I

    ml = loaders.load_movielens()
    texts = I.movielens_texts(ml["items"])
    emb = I.encode_items(texts)
    r = ml["ratings"]
    um, im = pp.build_id_map(r["user_id"]), pp.build_id_map(ml["items"]["item_id"])
    train, _, test = pp.leave_last_out(r)
    towers = {
        "frozen encoder": lambda: I.TwoTowerRecommender(
            emb, texts.index, batch_size=64, n_epochs=50, max_steps=args.tower_steps, seed=0,
            device=device),
        "top 2 layers fine-tuned": lambda: I.TwoTowerRecommender(
            emb, texts.index, batch_size=64, n_epochs=50, max_steps=args.tower_steps, seed=0,
            finetune_layers=2, texts=texts, encoder_lr=1e-4, device=device),
    }
    out = {}
    for name, make in towers.items():
        model = make()
        with _timed(device) as clock:
            model.fit(train, um, im)
        secs = clock["s"]
        t = model.evaluate(test)
        out[name] = {"steps": args.tower_steps, "fit s": round(secs, 1),
                     "HR@10": round(t["hr@10"], 4), "NDCG@10": round(t["ndcg@10"], 4),
                     "peak MiB": _peak_mib(device)}
        print(name, out[name], flush=True)
    return out


def job_encoder(device, args) -> dict:
    import torch

    from helpers.data import loaders
    from helpers.models import interest as I, pretrained

    texts = I.movielens_texts(loaders.load_movielens()["items"]).tolist()
    texts = (texts * (args.encoder_texts // len(texts) + 1))[:args.encoder_texts]
    tok, enc = pretrained.text_encoder(device=str(device))
    pretrained.encode(texts[:512], tok, enc, batch_size=256, progress=False)          # warm-up
    out, ref = {}, None
    dtypes = [torch.float32] + ([torch.bfloat16] if torch.device(device).type == "cuda" else [])
    for dtype in dtypes:
        with _timed(device) as clock, torch.autocast(torch.device(device).type, dtype=dtype,
                                                      enabled=dtype != torch.float32):
            emb = pretrained.encode(texts, tok, enc, batch_size=256, progress=False)
        secs = clock["s"]
        row = {"texts": len(texts), "s": round(secs, 2), "texts/s": round(len(texts) / secs, 1),
               "peak MiB": _peak_mib(device)}
        if ref is None:
            ref = emb.float()
        else:
            row["min cosine to float32"] = round(float((emb.float() * ref).sum(1).min()), 5)
        out[str(dtype).replace("torch.", "")] = row
        print(dtype, row, flush=True)
    return out


def job_generation(device, args) -> dict:
    import copy

    import numpy as np
    import torch

    from helpers.reasons import adapter, decoding, plan_prompt, planner as PL, vocabulary, world

    w = world.reason_world()
    planner = PL.fit_planner(w, progress=False)
    d = w.warm
    plans = planner.plans(d["user_id"], d["item_id"], progress=False)
    prompts, plan_of = [], {}
    for p, i in zip(plans, d["item_id"]):
        pr = plan_prompt.realiser_prompt(p, w.facts[int(i)])
        if pr not in plan_of:
            plan_of[pr] = (p, w.facts[int(i)])
            prompts.append(pr)
    prompts = prompts[:args.n_prompts]
    exact = lambda outs: round(float(np.mean([plan_prompt.says_plan(o, *plan_of[p], w.lex)
                                              for o, p in zip(outs, prompts)])), 4)
    tok, model, _ = adapter.load_realiser(device=device)            # float32, merged
    vocab = vocabulary.closed_vocabulary(tok, w.lex)
    out = {"prompts": len(prompts), "rows": []}
    for dtype in (getattr(torch, d) for d in args.dtypes.split(",")):
        m = model if dtype == torch.float32 else copy.deepcopy(model).to(dtype)
        decoding.realise(tok, m, prompts[:8], batch_size=8, progress=False)               # warm-up
        for bs in args.batches:
            if device.type == "cuda":                  # realise's peak counts from here
                torch.cuda.reset_peak_memory_stats()
            said, st = decoding.realise(tok, m, prompts, batch_size=bs, progress=False)
            row = {"path": "realise (generate, KV cache)", "dtype": str(dtype)[6:], "batch": bs,
                   "reasons/s": round(st["reasons_per_s"], 1),
                   "tokens/s": round(st["tokens_per_s"], 1), "peak MiB": st["peak_mib"],
                   "plan exact": exact(said)}
            out["rows"].append(row)
            print(row, flush=True)
        said, st = decoding.realise_fast(tok, m, prompts, vocab, batch_size=max(args.batches))
        row = {"path": "realise_fast (closed vocabulary)", "dtype": str(dtype)[6:],
               "batch": max(args.batches), "reasons/s": round(st["reasons_per_s"], 1),
               "tokens/s": round(st["tokens_per_s"], 1), "peak MiB": st["peak_mib"],
               "plan exact": exact(said)}
        out["rows"].append(row)
        print(row, flush=True)
        del m
    return out


def job_adapter(device, args) -> dict:
    import os

    target = Path(args.out).resolve() / "reason_realiser_retrained.safetensors"
    env = {**os.environ, "COURSE_DEVICE": str(device)}
    cmd = [sys.executable, str(ROOT / "tools/train_reason_adapter.py"), "--out", str(target),
           "--checkpoint-dir", str(Path(args.out).resolve() / "adapter_checkpoint")]
    if args.adapter_steps:
        cmd += ["--steps", str(args.adapter_steps)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    got = json.loads(target.with_suffix(".json").read_text())
    shipped = json.loads((ROOT / "helpers/reasons/weights/reason_realiser.json").read_text())
    return {"wall s (process, with loading and scoring)": round(time.perf_counter() - t0, 1),
            "this run": {"seconds": got["training"]["seconds_this_run"],
                         "steps": got["training"]["steps"], "device": got["training"]["device"],
                         "scores": got["scores"],
                         "loss_last_10": got["training"]["loss_last_10"]},
            "shipped (CPU)": {"seconds": shipped["training"]["seconds_this_run"],
                              "steps": shipped["training"]["steps"],
                              "device": shipped["training"]["device"],
                              "threads": shipped["training"]["threads"],
                              "scores": shipped["scores"],
                              "loss_last_10": shipped["training"]["loss_last_10"]}}


def environment(device) -> dict:
    import torch
    import transformers

    env = {"python": platform.python_version(), "torch": torch.__version__,
           "transformers": transformers.__version__, "device": str(device),
           "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine()}
    if torch.device(device).type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
    return env


def run_job(name: str, device, args) -> dict:
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    t0 = time.perf_counter()
    try:
        result = {"ok": True, "figures": globals()[f"job_{name}"](device, args)}
    except Exception:                                  # the report keeps the traceback
        result = {"ok": False, "error": traceback.format_exc()}
        print(result["error"], file=sys.stderr, flush=True)
    result.update(job=name, started=started, seconds=round(time.perf_counter() - t0, 1),
                  environment=environment(device), note=args.note)
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def report(dirs: list[str]) -> str:
    """Markdown tables of every job JSON under ``dirs`` (one column group per device)."""
    import pandas as pd

    lines = []
    for d in dirs:
        for path in sorted(Path(d).glob("*.json")):
            res = json.loads(path.read_text())
            if "job" not in res:
                continue
            env = res["environment"]
            lines.append(f"### {res['job']} on {env.get('gpu', env['device'])} "
                         f"({env['device']}, torch {env['torch']}, {env['threads']} threads)"
                         + (f": {res['note']}" if res.get("note") else "") + "\n")
            if not res["ok"]:
                lines.append("FAILED:\n\n```\n" + res["error"][-3000:] + "\n```\n")
                continue
            fig = res["figures"]
            if res["job"] == "generation":
                table = pd.DataFrame(fig["rows"])
                lines.append(f"{fig['prompts']} distinct prompts\n")
            elif res["job"] == "adapter":
                table = pd.DataFrame({k: {**{f: x for f, x in v.items() if f != "scores"},
                                          **v["scores"]}
                                      for k, v in fig.items() if isinstance(v, dict)}).T
                lines.append(f"process wall time {fig[next(iter(fig))]} s (loading and scoring "
                             "included)\n")
            else:
                table = pd.DataFrame(fig).T
            lines.append(table.to_markdown() + "\n")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", default=",".join(JOBS), help=f"comma-separated, of {JOBS}")
    ap.add_argument("--device", default=None, help="cpu, cuda (default: the course's choice)")
    ap.add_argument("--out", default=str(ROOT / "build/gpu_profile"))
    ap.add_argument("--max-epochs", type=int, default=300, help="sequence models' cap")
    ap.add_argument("--tower-steps", type=int, default=1500)
    ap.add_argument("--encoder-texts", type=int, default=16_820)
    ap.add_argument("--n-prompts", type=int, default=2048)
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--dtypes", default="float32,bfloat16", help="generation's dtypes")
    ap.add_argument("--adapter-steps", type=int, default=None, help="default: the recipe's")
    ap.add_argument("--note", default="", help="a line the report prints with each job")
    ap.add_argument("--report", nargs="+", default=None, metavar="DIR",
                    help="print the Markdown report of these output folders and stop")
    args = ap.parse_args(argv)
    if args.report:
        print(report(args.report))
        return
    args.batches = [int(b) for b in args.batches.split(",")]
    jobs = args.jobs.split(",")
    unknown = set(jobs) - set(JOBS)
    if unknown:
        sys.exit(f"unknown job(s) {sorted(unknown)}; choose from {JOBS}")
    from helpers.core import config

    device = config.get_device(args.device)
    config.seed_everything(0)
    for name in jobs:
        res = run_job(name, device, args)
        print(f"[gpu_profile] {name}: {'ok' if res['ok'] else 'FAILED'} in {res['seconds']} s",
              flush=True)


if __name__ == "__main__":
    main()

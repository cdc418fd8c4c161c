"""How fast SmolLM2-135M's architecture decodes: Hugging Face ``generate`` with its dynamic KV
cache against the static cache that ``generate`` compiles (torch.compile, CUDA graphs on a GPU).

    python benchmarks/decode_speed.py                                  # the course's SmolLM2
    python benchmarks/decode_speed.py --random-weights --config PATH   # its architecture only
    python benchmarks/decode_speed.py --device cpu --layers 2 --batches 4 --new-tokens 4  # smoke

Protocol: ``B`` prompts of ``P`` = 48 random tokens (about a realiser plan prompt's length), each
decoding exactly ``N`` = 40 new tokens (``min_new_tokens = max_new_tokens``: no row stops early,
so what the weights say cannot change the work), greedy, one ``generate`` call per timing after
a warm-up call of the same shape (the static cache's compilation happens there and is timed
separately as "first call s"). reasons/s = B / seconds; tokens/s = B * N / seconds. Random
weights are legitimate for speed alone (same shapes, same kernels); chapter 05's quality figures
come from ``benchmarks/gpu_profile.py`` and ``benchmarks/reason_benchmark.py``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_model(args, device, dtype):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if args.random_weights:
        cfg = json.loads(Path(args.config).read_text())
        cfg.pop("quantization_config", None)
        if args.layers:
            cfg["num_hidden_layers"] = args.layers
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(**cfg)).to(device=device, dtype=dtype)
    else:
        from helpers.models import pretrained

        _, model = pretrained.language_model(device=str(device), dtype=dtype)
    return model.eval()


def timed_generate(model, ids, mask, n_new, cache, device):
    import torch

    kw = dict(max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False, pad_token_id=0)
    if cache == "static":
        kw["cache_implementation"] = "static"
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, **kw)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    assert out.shape[1] == ids.shape[1] + n_new
    return time.perf_counter() - t0


def main(argv=None) -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--random-weights", action="store_true")
    ap.add_argument("--config", default=None, help="a Llama config.json (with --random-weights)")
    ap.add_argument("--layers", type=int, default=None, help="override the layer count (smoke)")
    ap.add_argument("--batches", default="64,256,1024")
    ap.add_argument("--dtypes", default="bfloat16,float32")
    ap.add_argument("--caches", default="dynamic,static")
    ap.add_argument("--prompt-tokens", type=int, default=48)
    ap.add_argument("--new-tokens", type=int, default=40)
    ap.add_argument("--out", default=None, help="JSON file for the rows")
    args = ap.parse_args(argv)
    if args.random_weights and not args.config:
        from helpers.models import pretrained
        args.config = str(pretrained.converted_lm_dir() / "config.json")
    from helpers.core import config

    device = config.get_device(args.device)
    rows = []
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        model = build_model(args, device, dtype)
        vocab = model.config.vocab_size
        for cache in args.caches.split(","):
            for b in (int(x) for x in args.batches.split(",")):
                g = torch.Generator().manual_seed(b)
                ids = torch.randint(3, vocab, (b, args.prompt_tokens), generator=g).to(device)
                mask = torch.ones_like(ids)
                row = {"dtype": dtype_name, "cache": cache, "batch": b}
                try:
                    row["first call s"] = round(timed_generate(model, ids, mask, args.new_tokens,
                                                               cache, device), 2)
                    s = timed_generate(model, ids, mask, args.new_tokens, cache, device)
                    row.update({"s": round(s, 3), "reasons/s": round(b / s, 1),
                                "tokens/s": round(b * args.new_tokens / s, 1)})
                    if torch.device(device).type == "cuda":
                        row["peak MiB"] = round(torch.cuda.max_memory_allocated() / 2**20)
                except Exception as err:                       # the table says what failed
                    row["error"] = f"{type(err).__name__}: {str(err)[:200]}"
                    traceback.print_exc()
                rows.append(row)
                print(row, flush=True)
                if args.out:
                    Path(args.out).write_text(json.dumps(
                        {"device": str(device), "torch": torch.__version__,
                         "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
                         "random_weights": args.random_weights, "prompt_tokens": args.prompt_tokens,
                         "new_tokens": args.new_tokens, "rows": rows}, indent=1) + "\n")
        del model
    import pandas as pd
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    main()

"""Benchmark: from-scratch attention (helpers.models.attention) vs torch's fused
scaled_dot_product_attention, causal, batch 16 x 4 heads x d_head 64, on the CPU and, when one is
present, a CUDA GPU. Reports the best of 5 runs after a warm-up.

    .venv/bin/python benchmarks/attention_benchmark.py
"""
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from helpers.models import attention as A  # noqa: E402


def best_ms(fn, device, repeat=5):
    fn()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def main():
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print("| device | t | from scratch (ms) | torch fused (ms) | speed-up | max abs diff |")
    print("|---|---:|---:|---:|---:|---:|")
    for device in devices:
        for t in (64, 256, 1024, 2048):
            q, k, v = (torch.randn(16, 4, t, 64, device=device) for _ in range(3))
            mask = A.causal_mask(t, device)
            mine = best_ms(lambda: A.scaled_dot_product_attention(q, k, v, mask), device)
            fused = best_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), device)
            diff = (A.scaled_dot_product_attention(q, k, v, mask)[0]
                    - F.scaled_dot_product_attention(q, k, v, is_causal=True)).abs().max().item()
            print(f"| {device.type} | {t} | {mine:.1f} | {fused:.1f} | {mine / fused:.1f}x | "
                  f"{diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()

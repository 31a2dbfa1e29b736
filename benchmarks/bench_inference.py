"""Inference speed of a BERT-base-sized classifier: leanformers against Transformers in one run.

    .venv/bin/python benchmarks/bench_inference.py [--repeat N] [--threads N] [--no-memory]

One BERT-base-sized ``BertForSequenceClassification`` (random weights, built once by the reference
and saved to benchmarks/.cache/; see common.py) is loaded by both libraries
(``AutoModelForSequenceClassification`` for leanformers) and run, under ``torch.inference_mode()``
with the same thread count, on the same token ids:

1. **mixed**: 32 texts of mixed length (one of them 79 tokens long, 1,406 real tokens in a
   32 x 79 grid, ~44% padding). "leanformers" packs the real tokens (the automatic unpadded path:
   ``F.linear`` on the packed rows, SDPA per length bucket); "leanformers dense" is the same
   checkpoint with ``config.unpad_inputs = False``, for comparison.
2. **full**: 32 x 128, no padding (both libraries run dense).

Memory (first, before this process maps the file: pages mapped by two processes are shared and a
child could not hand them back): each library loads the checkpoint in a fresh process and runs the
mixed batch four times; the peak and final RSS above the interpreter (after ``import torch``) are
printed.

Every variant gets warm-up runs; then the variants are run interleaved, ``--repeat`` rounds, and the
median (and best) of each is reported, since the machine may be shared. The useful work rate is the
encoder's FLOPs on real tokens only (projections, feed-forward, and attention within each text)
divided by the best time, as a share of the machine's fp32 matmul rate (the best 2048 x 2048
``torch.matmul`` seen, measured before and in every round, so a busy moment does not lower the bar).

On a shared machine, ``--threads 1`` gives the steadiest figures: with every core asked for, one
busy core stalls each parallel region of both libraries. The CPU-time columns are the measure least
sensitive to other load.

Nested (jagged) tensors with SDPA were measured as the alternative to the length buckets (torch 2.13,
CPU): they fail under ``inference_mode`` ("Cannot set version_counter for inference tensor") and,
under ``no_grad``, took ~25x longer than the grouped calls for BERT-base attention over 32 texts
(falling back to per-text math attention).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common
from common import BATCH, FULL_SEQ, MIXED_MAX


def encoder_flops(lengths: list[int], config) -> float:
    """FLOPs of the encoder on the real tokens: per layer, 2 x (4 H^2 + 2 H I) per token for the
    projections and feed-forward, plus 4 H L per token for the scores and the weighted sum."""
    hidden, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token = 2 * (4 * hidden * hidden + 2 * hidden * inter)
    return layers * sum(n * per_token + 4 * hidden * n * n for n in lengths)


def matmul_seconds(size: int = 2048, repeat: int = 5) -> tuple[float, float]:
    """Best (wall, CPU) seconds of a size^3 fp32 ``torch.matmul``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best_wall = best_cpu = float("inf")
    with torch.inference_mode():
        torch.matmul(a, b)
        for _ in range(repeat):
            wall, cpu = time.perf_counter(), time.process_time()
            torch.matmul(a, b)
            best_wall = min(best_wall, time.perf_counter() - wall)
            best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu


def timed(model, inputs) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one forward."""
    wall, cpu = time.perf_counter(), time.process_time()
    model(**inputs)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-memory", action="store_true", help="skip the fresh-process memory figures")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import transformers

    import leanformers

    transformers.logging.set_verbosity_error()
    path = common.bert_base_classifier()
    print(common.machine_line() + " (both libraries)")
    if not args.no_memory:
        # First: once this process maps the file, a child's pages are shared with it and stay resident.
        print_memory(path, args.threads)
    reference = transformers.BertForSequenceClassification.from_pretrained(path).eval()
    ours = leanformers.AutoModelForSequenceClassification.from_pretrained(path).eval()
    ours_dense = leanformers.AutoModelForSequenceClassification.from_pretrained(path).eval()
    ours_dense.config.unpad_inputs = False
    torch.set_num_threads(args.threads)  # loading may fit the thread count to the CPUs: use the asked one

    lengths = common.mixed_lengths()
    cases = {
        "mixed": (common.mixed_batch(), lengths,
                  {"leanformers": ours, "leanformers dense": ours_dense, "reference": reference}),
        "full": (common.full_batch(), [FULL_SEQ] * BATCH, {"leanformers": ours, "reference": reference}),
    }

    matmul_best = matmul_seconds(repeat=7)
    print(f"mixed batch: {BATCH} texts padded to {MIXED_MAX}, {sum(lengths)} real tokens of "
          f"{BATCH * MIXED_MAX} ({1 - sum(lengths) / (BATCH * MIXED_MAX):.0%} padding), "
          f"{len(set(lengths))} distinct lengths")

    with torch.inference_mode():
        # Same answers first: the classifier logits agree (they read only real positions).
        for name, (inputs, _, models) in cases.items():
            logits = {label: model(**inputs).logits for label, model in models.items()}
            worst = max((v - logits["reference"]).abs().max().item() for v in logits.values())
            print(f"{name}: max |logits - reference logits| = {worst:.2e}")
            for _ in range(args.warmup):
                for model in models.values():
                    model(**inputs)
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(args.repeat):
            for name, (inputs, _, models) in cases.items():
                for label, model in models.items():
                    times.setdefault((name, label), []).append(timed(model, inputs))
            matmul_best = tuple(map(min, matmul_best, matmul_seconds(repeat=3)))

    rate, cpu_rate = (2 * 2048**3 / seconds for seconds in matmul_best)
    print(f"fp32 matmul rate (torch.matmul 2048^3, best seen over the rounds): {rate / 1e9:.1f} GFLOP/s wall, "
          f"{cpu_rate / 1e9:.1f} GFLOP per CPU-second")

    header = (f"{'case':<7}{'model':<19}{'wall med':>9}{'wall best':>10}{'cpu med':>9}"
              f"{'vs ref wall':>12}{'vs ref cpu':>11}{'useful GFLOP/s':>15}{'of matmul':>10}{'(cpu)':>7}")
    print(header)
    print("-" * len(header))
    for name, (_, case_lengths, models) in cases.items():
        flops = encoder_flops(case_lengths, ours.config)
        ref_wall = statistics.median(t for t, _ in times[(name, "reference")])
        ref_cpu = statistics.median(c for _, c in times[(name, "reference")])
        for label in models:
            wall = statistics.median(t for t, _ in times[(name, label)])
            best = min(t for t, _ in times[(name, label)])
            cpu = statistics.median(c for _, c in times[(name, label)])
            print(f"{name:<7}{label:<19}{wall:>9.3f}{best:>10.3f}{cpu:>9.3f}{ref_wall / wall:>11.2f}x"
                  f"{ref_cpu / cpu:>10.2f}x{flops / best / 1e9:>15.1f}{flops / best / rate:>10.0%}"
                  f"{flops / cpu / cpu_rate:>7.0%}")
    print(f"\n{args.repeat} interleaved rounds after {args.warmup} warm-up round(s). Seconds per forward: "
          "wall median / best, and the median CPU time of this process (less sensitive to other load "
          "with one thread). Useful GFLOP/s = encoder FLOPs on real tokens only / best wall time; "
          "'of matmul' = that as a share of the best fp32 matmul rate seen; '(cpu)' = useful FLOPs per "
          "CPU-second (median) as a share of the matmul's FLOPs per CPU-second (best).")


MEMORY = """
import json, sys
sys.path[:0] = {paths!r}
def rss(field="VmRSS"):  # VmHWM: the peak of this process's own memory (ru_maxrss would count the parent's)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))
import torch
torch.set_num_threads({threads})
import common
base = rss()
if {reference}:
    import transformers
    model = transformers.BertForSequenceClassification.from_pretrained({path!r}).eval()
else:
    import leanformers
    model = leanformers.AutoModelForSequenceClassification.from_pretrained({path!r})
inputs = common.mixed_batch()
with torch.inference_mode():
    for _ in range(4):
        model(**inputs)
print(json.dumps({{"peak": rss("VmHWM") - base, "now": rss() - base}}))
"""


def print_memory(path: Path, threads: int) -> None:
    """Peak and final RSS of load + four mixed forwards, each library in a fresh process."""
    paths = [str(HERE), str(common.SRC)]
    weights = (path / "model.safetensors").stat().st_size
    print(f"\nmemory (fresh process each; load + 4 mixed forwards; above the interpreter with torch; "
          f"weights file {weights / 2**20:.0f} MiB):")
    for label, reference in (("leanformers", False), ("reference", True)):
        code = MEMORY.format(paths=paths, threads=threads, reference=reference, path=str(path))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        got = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {label:<12} peak {got['peak'] / 2**20:6.0f} MiB ({got['peak'] / weights:.2f}x weights), "
              f"after {got['now'] / 2**20:6.0f} MiB")


if __name__ == "__main__":
    main()

"""Inference speed of a BERT-base-sized classifier: leanformers against Transformers in one run.

    .venv/bin/python benchmarks/bench_inference.py [--repeat N] [--threads N]

One BERT-base-sized ``BertForSequenceClassification`` (random weights, built once by the reference
and saved to benchmarks/.cache/) is loaded by both libraries and run, under ``torch.inference_mode()``
with the same thread count, on the same token ids:

1. **mixed**: 32 texts of mixed length (one of them 79 tokens long, ~1,400 real tokens in a
   32 x 79 grid, ~44% padding). leanformers packs the real tokens (automatic unpadded path);
   "leanformers dense" is the same model with ``config.unpad_inputs = False``, for comparison.
   "lf plain linears" is leanformers with its fused linears off (``F.linear`` and separate
   bias/activation/residual ops, as the reference runs them), packed where the default packs.
   "leanformers" keeps its linear weights prepacked, as ``from_pretrained`` does by default for
   weights mapped from a safetensors file (the plain pages go back to the OS): in MKL's packed
   layout, run by the native linear kernel (modeling/_linear.c), on Intel CPUs with AVX-512; in
   oneDNN's blocked layout elsewhere. "lf oneDNN linears" (where the native kernel runs) is a second
   model with that kernel off (``linear.NATIVE = False``): oneDNN's fused linears, the previous
   default. "lf unpacked" is the same model after ``prepack_weights(False)``: oneDNN then reorders
   each plain weight on every call. "lf SDPA attention" is leanformers with its native
   packed-attention kernel off (``attention.NATIVE = False``): one SDPA call per length bucket.
2. **full**: 32 x 128, no padding (both libraries run dense).

Memory (first, before this process maps the file: pages mapped by two processes are shared and a
child could not hand them back): each library loads the checkpoint in a fresh process and runs the
mixed batch four times; the peak and final RSS above the interpreter (after ``import torch``) are
printed, with leanformers also under ``LEANFORMERS_PREPACK=0``.

Every variant gets warm-up runs; then the variants are run interleaved, ``--repeat`` rounds, and the
median (and best) of each is reported, since the machine may be shared. The useful work rate is the
encoder's FLOPs on real tokens only (projections, feed-forward, and attention within each text)
divided by the best time, as a share of the machine's fp32 matmul rate (the best 2048 x 2048 matmul
seen, over torch's MKL ``torch.matmul``, its oneDNN matmul and, where it runs, leanformers' native
linear kernel, measured before and in every round, so a busy moment does not lower the bar).

On a shared machine, ``--threads 1`` gives the steadiest figures: with every core asked for, one
busy core stalls each parallel region of both libraries. The CPU-time columns are the measure least
sensitive to other load.

Attention on the packed tokens is one call per layer of the native kernel (modeling/_attention.c,
where the CPU has AVX-512), each text at its own length; else one SDPA call per length bucket (rows
of similar length, padded to the bucket's longest; see ``plan_buckets`` in modeling/attention.py).
Nested (jagged) tensors
with SDPA were measured as the alternative (torch 2.13, CPU): they fail under ``inference_mode``
("Cannot set version_counter for inference tensor") and, under ``no_grad``, took ~25x longer than the
grouped calls for BERT-base attention over 32 texts (falling back to per-text math attention).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
CHECKPOINT = CACHE / "bert-base-sequence-classification"
sys.path.insert(0, str(HERE.parent / "src"))

BATCH = 32
MIXED_MAX = 79
TARGET_REAL = 1406
FULL_SEQ = 128


def build_checkpoint() -> Path:
    if not (CHECKPOINT / "config.json").exists():
        import transformers

        torch.manual_seed(0)
        model = transformers.BertForSequenceClassification(transformers.BertConfig(num_labels=2))
        model.save_pretrained(CHECKPOINT)
    return CHECKPOINT


def mixed_lengths() -> list[int]:
    """32 deterministic lengths in [8, 79], one of them 79, summing to TARGET_REAL."""
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(8, MIXED_MAX + 1, (BATCH,), generator=gen).tolist()
    lengths[0] = MIXED_MAX
    # Nudge the others, round-robin, until the total is the target.
    i = 1
    while sum(lengths) != TARGET_REAL:
        step = 1 if sum(lengths) < TARGET_REAL else -1
        if 8 <= lengths[i] + step < MIXED_MAX:
            lengths[i] += step
        i = i % (BATCH - 1) + 1
    return lengths


def batch_of(lengths: list[int], seq: int, vocab: int = 30522) -> dict[str, torch.Tensor]:
    """[CLS] random word ids [SEP], right-padded with 0, and the matching attention mask."""
    gen = torch.Generator().manual_seed(1)
    input_ids = torch.zeros(len(lengths), seq, dtype=torch.long)
    attention_mask = torch.zeros(len(lengths), seq, dtype=torch.long)
    for row, length in enumerate(lengths):
        input_ids[row, :length] = torch.randint(1000, vocab, (length,), generator=gen)
        input_ids[row, 0], input_ids[row, length - 1] = 101, 102
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def encoder_flops(lengths: list[int], config) -> float:
    """FLOPs of the encoder on the real tokens: per layer, 2 x (4 H^2 + 2 H I) per token for the
    projections and feed-forward, plus 4 H L per token for the scores and the weighted sum."""
    hidden, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token = 2 * (4 * hidden * hidden + 2 * hidden * inter)
    return layers * sum(n * per_token + 4 * hidden * n * n for n in lengths)


def matmul_kernels() -> dict[str, object]:
    """The fp32 matmuls this torch build offers: MKL's (``torch.matmul``) and, where torch has it,
    oneDNN's (which leanformers' fused linears use; faster than MKL's on some CPUs). The machine's
    matmul rate is the best of them, so the bar is never one kernel's weakness."""
    kernels: dict[str, object] = {"torch.matmul (MKL)": torch.matmul}
    if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        kernels["oneDNN matmul"] = lambda a, b: torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")
    from leanformers.modeling import linear

    if linear.NATIVE:
        kernels["leanformers native linear"] = native_matmul
    return kernels


_NATIVE_PACKED: dict[int, torch.Tensor] = {}


def native_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b.T`` by the native linear kernel (modeling/_linear.c) with ``b`` packed once, as a
    prepacked layer keeps it: the bar then includes the kernel leanformers itself runs."""
    from leanformers.modeling import linear

    rows, (width, depth) = a.shape[0], b.shape
    if id(b) not in _NATIVE_PACKED:
        _NATIVE_PACKED.clear()
        _NATIVE_PACKED[id(b)] = linear._pack(b)
    out = torch.empty(rows, width)
    linear._linear.linear(a.numpy(), _NATIVE_PACKED[id(b)].numpy(), None, None, out.numpy(), rows, width, depth, 0,
                          torch.get_num_threads())
    return out


def matmul_seconds(size: int = 2048, repeat: int = 5) -> tuple[float, float]:
    """Best (wall, CPU) seconds of a size^3 fp32 matmul, over every kernel of ``matmul_kernels``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best_wall = best_cpu = float("inf")
    with torch.inference_mode():
        for kernel in matmul_kernels().values():
            kernel(a, b)
            for _ in range(repeat):
                wall, cpu = time.perf_counter(), time.process_time()
                kernel(a, b)
                best_wall = min(best_wall, time.perf_counter() - wall)
                best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu


def kernel_rates(size: int = 2048, repeat: int = 5) -> dict[str, float]:
    """GFLOP/s (best wall time) of each matmul kernel, for the record."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    rates = {}
    with torch.inference_mode():
        for name, kernel in matmul_kernels().items():
            kernel(a, b)
            best = min(_once(kernel, a, b) for _ in range(repeat))
            rates[name] = 2 * size**3 / best / 1e9
    return rates


def _once(kernel, a, b) -> float:
    start = time.perf_counter()
    kernel(a, b)
    return time.perf_counter() - start


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class SwitchedOff:
    """The leanformers model run with one of leanformers' module-level switches off, to show what
    that piece contributes: ``linear.ENABLED`` (the fused linears; ``F.linear`` and separate
    bias/activation/residual ops instead), ``linear.NATIVE`` (the native linear kernel; oneDNN's
    fused linears instead: give it a model of its own, as switching repacks its weights) or
    ``attention.NATIVE`` (the native packed-attention kernel; SDPA per length bucket instead)."""

    def __init__(self, model, module: str, switch: str) -> None:
        self.model, self.module, self.switch = model, module, switch

    def __call__(self, **inputs):
        target = importlib.import_module(f"leanformers.modeling.{self.module}")
        saved = getattr(target, self.switch)
        setattr(target, self.switch, False)
        try:
            return self.model(**inputs)
        finally:
            setattr(target, self.switch, saved)


def plain_linears(model) -> SwitchedOff:
    return SwitchedOff(model, "linear", "ENABLED")


def packed_megabytes(model) -> float:
    """Memory held by the model's prepacked weight copies."""
    from leanformers.modeling import linear

    entries = [linear._PACKED.get(module) for module in model.modules()]
    return sum(torch.ops.mkldnn._nbytes(entry[0]) if entry[0].is_mkldnn else entry[0].numel()
               for entry in entries if entry is not None) / 1e6


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

    from leanformers.models.bert import BertForSequenceClassification

    transformers.logging.set_verbosity_error()
    path = build_checkpoint()
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads (both libraries); transformers {transformers.__version__}")
    if not args.no_memory:
        # First: once this process maps the file, a child's pages are shared with it and stay resident.
        print_memory(path, args.threads)
    reference = transformers.BertForSequenceClassification.from_pretrained(path).eval()
    ours = BertForSequenceClassification.from_pretrained(path).eval()
    ours_dense = BertForSequenceClassification.from_pretrained(path).eval()
    ours_dense.config.unpad_inputs = False
    ours_unpacked = BertForSequenceClassification.from_pretrained(path).eval().prepack_weights(False)
    from leanformers.modeling import linear

    onednn = {}
    if linear.NATIVE:
        ours_onednn = BertForSequenceClassification.from_pretrained(path).eval()
        onednn = {"lf oneDNN linears": SwitchedOff(ours_onednn, "linear", "NATIVE")}

    lengths = mixed_lengths()
    mixed = batch_of(lengths, MIXED_MAX)
    full = batch_of([FULL_SEQ] * BATCH, FULL_SEQ)
    plain = plain_linears(ours)
    cases = {
        "mixed": (mixed, lengths, {"leanformers": ours, "lf SDPA attention": SwitchedOff(ours, "attention", "NATIVE"),
                                   **onednn, "lf unpacked": ours_unpacked, "leanformers dense": ours_dense,
                                   "lf plain linears": plain, "reference": reference}),
        "full": (full, [FULL_SEQ] * BATCH, {"leanformers": ours, **onednn, "lf unpacked": ours_unpacked,
                                            "lf plain linears": plain, "reference": reference}),
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
    print(f"prepacked copies: {packed_megabytes(ours):.0f} MB (MKL's packed layout reserves about twice "
          "the weight's bytes and fills about the weight's: see the memory figures), the model's weights "
          f"{sum(t.numel() * t.element_size() for t in ours.state_dict().values()) / 1e6:.0f} MB")
    per_kernel = ", ".join(f"{name} {value:.1f}" for name, value in kernel_rates().items())
    print(f"fp32 matmul rate (2048^3, best seen over kernels and rounds): {rate / 1e9:.1f} GFLOP/s wall, "
          f"{cpu_rate / 1e9:.1f} GFLOP per CPU-second; per kernel now (GFLOP/s): {per_kernel}")

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
import bench_inference as b
base = rss()
if {reference}:
    import transformers
    model = transformers.BertForSequenceClassification.from_pretrained({path!r}).eval()
else:
    from leanformers.models.bert import BertForSequenceClassification
    model = BertForSequenceClassification.from_pretrained({path!r})
inputs = b.batch_of(b.mixed_lengths(), b.MIXED_MAX)
with torch.inference_mode():
    for _ in range(4):
        model(**inputs)
print(json.dumps({{"peak": rss("VmHWM") - base, "now": rss() - base}}))
"""


def print_memory(path: Path, threads: int) -> None:
    """Peak and final RSS of load + four mixed forwards, each library in a fresh process."""
    import json
    import subprocess

    paths = [str(HERE), str(HERE.parent / "src")]
    runs = {"leanformers": ({}, False), "leanformers, LEANFORMERS_PREPACK=0": ({"LEANFORMERS_PREPACK": "0"}, False),
            "reference": ({}, True)}
    weights = (path / "model.safetensors").stat().st_size
    print(f"\nmemory (fresh process each; load + 4 mixed forwards; above the interpreter with torch; "
          f"weights file {weights / 2**20:.0f} MiB):")
    for label, (env, reference) in runs.items():
        code = MEMORY.format(paths=paths, threads=threads, reference=reference, path=str(path))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, **env})
        got = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {label:<36} peak {got['peak'] / 2**20:6.0f} MiB ({got['peak'] / weights:.2f}x weights), "
              f"after {got['now'] / 2**20:6.0f} MiB")


if __name__ == "__main__":
    main()

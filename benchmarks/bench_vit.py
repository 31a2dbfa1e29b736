"""Inference speed of a ViT-base image classifier: leanformers against Transformers in one run.

    .venv/bin/python benchmarks/bench_vit.py [--batch 16] [--repeat 5] [--threads N]

A ``ViTForImageClassification`` with ViT-base's shape (random weights, built once by the reference and
saved to benchmarks/.cache/) runs on the same random pixel batch (224x224, 197 tokens per image)
under ``torch.inference_mode()``, interleaved rounds, medians. "leanformers, plain linears" switches
off the fused oneDNN linears (``F.linear`` plus separate ops, as the reference runs them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
CHECKPOINT = HERE / ".cache" / "vit-base-classifier"
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from bench_inference import cpu_name, plain_linears  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import transformers

    from leanformers.models.vit import ViTForImageClassification

    transformers.logging.set_verbosity_error()
    if not (CHECKPOINT / "config.json").exists():
        torch.manual_seed(0)
        transformers.ViTForImageClassification(transformers.ViTConfig(num_labels=1000)).save_pretrained(CHECKPOINT)
    reference = transformers.ViTForImageClassification.from_pretrained(CHECKPOINT).eval()
    ours = ViTForImageClassification.from_pretrained(CHECKPOINT).eval()
    torch.set_num_threads(args.threads)  # loading may have fitted it to the CPUs; use the asked count
    models = {"leanformers": ours, "leanformers, plain linears": plain_linears(ours), "reference": reference}
    pixels = torch.randn(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))

    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        logits = {name: model(pixel_values=pixels).logits for name, model in models.items()}
        for _ in range(args.repeat):
            for name, model in models.items():
                start = time.perf_counter()
                model(pixel_values=pixels)
                times[name].append(time.perf_counter() - start)
    worst = max((v - logits["reference"]).abs().max().item() for v in logits.values())
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"batch {args.batch} x 3 x 224 x 224; max |logits - reference| {worst:.1e}")
    ref = statistics.median(times["reference"])
    print("| run | wall median (s) | images/s | vs reference |")
    print("| --- | ---: | ---: | ---: |")
    for name, values in times.items():
        wall = statistics.median(values)
        print(f"| {name} | {wall:.3f} | {args.batch / wall:.1f} | {ref / wall:.2f}x |")


if __name__ == "__main__":
    main()

"""Inference speed of a ViT-base image classifier: leanformers against Transformers in one run.

    .venv/bin/python benchmarks/bench_vit.py [--batch 16] [--repeat 5] [--threads N]

A ``ViTForImageClassification`` with ViT-base's shape (random weights, built once by the reference and
saved to benchmarks/.cache/) runs on the same random pixel batch (224x224, 197 tokens per image)
under ``torch.inference_mode()``, interleaved rounds after a warm-up, medians. leanformers loads it
with ``AutoModelForImageClassification``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import transformers

    import leanformers

    transformers.logging.set_verbosity_error()
    path = common.vit_base_classifier()
    reference = transformers.ViTForImageClassification.from_pretrained(path).eval()
    ours = leanformers.AutoModelForImageClassification.from_pretrained(path).eval()
    torch.set_num_threads(args.threads)
    models = {"leanformers": ours, "reference": reference}
    pixels = torch.randn(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))

    with torch.inference_mode():
        logits = {name: model(pixel_values=pixels).logits for name, model in models.items()}
        times = common.interleaved({name: common.stopwatch(model, pixel_values=pixels) for name, model in models.items()},
                                   rounds=args.repeat, warmup=1)
    worst = (logits["leanformers"] - logits["reference"]).abs().max().item()
    print(common.machine_line())
    print(f"batch {args.batch} x 3 x 224 x 224; max |logits - reference| {worst:.1e}")
    ref = common.median(times["reference"])
    print("| run | wall median (s) | images/s | vs reference |")
    print("| --- | ---: | ---: | ---: |")
    for name, values in times.items():
        wall = common.median(values)
        print(f"| {name} | {wall:.3f} | {args.batch / wall:.1f} | {ref / wall:.2f}x |")


if __name__ == "__main__":
    main()

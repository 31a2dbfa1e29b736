"""Forward speed of every model family against Transformers, in one run: no family slower.

    .venv/bin/python benchmarks/bench_models.py [--repeat 5] [--threads N] [--only swin,wav2vec2]

Each family gets one model with its common hub checkpoint's shape (random weights, built once by the
reference and saved to benchmarks/.cache/), loaded by both libraries and run on the same inputs under
``torch.inference_mode()``, the two interleaved for ``--repeat`` rounds after a warm-up; medians.
leanformers' model is its public class of the same name (``leanformers.BertForSequenceClassification``...).
The outputs are compared too (max abs difference of the main output).

| family | shape of | input |
| --- | --- | --- |
| bert | bert-base-uncased (sequence classifier) | 16 x 128 tokens, no padding |
| distilbert | distilbert-base-uncased (sequence classifier) | 16 x 128 tokens, no padding |
| vit | google/vit-base-patch16-224 | 8 images 224x224 |
| swin | microsoft/swin-tiny-patch4-window7-224 | 8 images 224x224 |
| resnet | microsoft/resnet-50 | 8 images 224x224 |
| wav2vec2 | facebook/wav2vec2-base-960h (CTC) | 4 x 5 s at 16 kHz |
| hubert | facebook/hubert-base-ls960 (base model) | 4 x 5 s at 16 kHz |
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common


def families() -> dict[str, tuple[Any, str, Any]]:
    """name -> (build the reference model, leanformers class name, inputs)."""
    import transformers as t

    gen = torch.Generator().manual_seed(0)
    tokens = {"input_ids": torch.randint(1000, 30000, (16, 128), generator=gen),
              "attention_mask": torch.ones(16, 128, dtype=torch.long)}
    pixels = {"pixel_values": torch.randn(8, 3, 224, 224, generator=gen)}
    audio = {"input_values": torch.randn(4, 80000, generator=gen)}
    return {
        "bert": (lambda: t.BertForSequenceClassification(t.BertConfig(num_labels=2)),
                 "BertForSequenceClassification", tokens),
        "distilbert": (lambda: t.DistilBertForSequenceClassification(t.DistilBertConfig(num_labels=2)),
                       "DistilBertForSequenceClassification", tokens),
        "vit": (lambda: t.ViTForImageClassification(t.ViTConfig(num_labels=1000)),
                "ViTForImageClassification", pixels),
        "swin": (lambda: t.SwinForImageClassification(t.SwinConfig(num_labels=1000)),
                 "SwinForImageClassification", pixels),
        "resnet": (lambda: t.ResNetForImageClassification(t.ResNetConfig(num_labels=1000)),
                   "ResNetForImageClassification", pixels),
        "wav2vec2": (lambda: t.Wav2Vec2ForCTC(t.Wav2Vec2Config(vocab_size=32)), "Wav2Vec2ForCTC", audio),
        "hubert": (lambda: t.HubertModel(t.HubertConfig()), "HubertModel", audio),
    }


def main_output(output: Any) -> torch.Tensor:
    for name in ("logits", "last_hidden_state"):
        value = getattr(output, name, None)
        if value is not None:
            return value
    raise TypeError(f"no logits or last_hidden_state in {type(output).__name__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--only", help="comma-separated families (default: all)")
    args = parser.parse_args()

    import transformers

    import leanformers

    transformers.logging.set_verbosity_error()
    chosen = families()
    if args.only:
        chosen = {name: chosen[name] for name in args.only.split(",")}
    torch.set_num_threads(args.threads)
    print(f"{common.machine_line()}; {args.repeat} interleaved rounds after a warm-up, medians")
    print("| family | leanformers (s) | reference (s) | speed vs reference | max abs diff |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (build, class_name, inputs) in chosen.items():
        folder = common.saved_checkpoint(f"family-{name}", build)
        reference_class = getattr(transformers, class_name)
        reference = reference_class.from_pretrained(folder).eval()
        ours = getattr(leanformers, class_name).from_pretrained(folder).eval()
        torch.set_num_threads(args.threads)
        runs = {"leanformers": ours, "reference": reference}
        with torch.inference_mode():
            outputs = {label: main_output(model(**inputs)) for label, model in runs.items()}
            times = common.interleaved({label: common.stopwatch(model, **inputs) for label, model in runs.items()},
                                       rounds=args.repeat, warmup=0)
        diff = (outputs["leanformers"] - outputs["reference"]).abs().max().item()
        ours_s, ref_s = (common.median(times[label]) for label in runs)
        print(f"| {name} | {ours_s:.3f} | {ref_s:.3f} | {ref_s / ours_s:.2f}x | {diff:.1e} |", flush=True)
        del reference, ours, runs


if __name__ == "__main__":
    main()

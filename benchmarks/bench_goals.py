"""The speed goals in one run: leanformers against Transformers (and raw `tokenizers`), one table.

    .venv/bin/python benchmarks/bench_goals.py [--rounds 7] [--warmup 1] [--threads N] [--quick]

Every variant of every goal runs once per round, round-robin, after warm-up rounds; each figure is
the median over the rounds (a busy moment of a shared machine hits every variant alike). ``--quick``
is a smoke run (2 rounds, fewer single-text calls): its medians are not goal-grade figures.

| goal | leanformers | against | ratio | bar |
| --- | --- | --- | --- | --- |
| BERT-base mixed batch | ``AutoModelForSequenceClassification`` on 32 texts of mixed length (1,406 real tokens padded to 32 x 79; packed automatically) | the reference's ``BertForSequenceClassification`` | reference time / ours | >= 1.5 |
| BERT-base 32 x 128 dense | the same model on 32 x 128 tokens, no padding | the same | reference / ours | >= 1.0 |
| image preprocessing | ``AutoImageProcessor`` with ViT's settings on 32 PIL images of 640 x 480, to 224 x 224 tensors | ``transformers.ViTImageProcessorPil`` | reference / ours | >= 3 |
| ``from_pretrained`` | BERT-base classifier, 418 MiB safetensors, ``AutoModelForSequenceClassification`` | the reference's | reference / ours | >= 2 |
| tokenising a batch | ``AutoTokenizer`` (bert-base-uncased), 2,000 texts, ``padding=True, return_tensors="pt"`` | raw ``tokenizers.Tokenizer.encode_batch`` with padding on (no tensors) | raw / ours | >= 0.85 |
| tokenising one text | the same tokenizer on one short text (11 tokens) per call | raw ``Tokenizer.encode`` | ours / raw (a cost) | <= 1.4 |

The models are BERT-base-sized with random weights (110M parameters, fp32), built once by the
reference and saved to benchmarks/.cache/ (see common.py); the mixed and dense batches are those of
bench_inference.py. ``from_pretrained`` is timed as bench_core.py times it: each load in a fresh
interpreter, torch and the library's BERT module already imported, the call alone on the clock (the
file is in the page cache after the warm-up). "leanformers dense" (``config.unpad_inputs = False``)
is shown on the mixed batch for information. Both libraries run with the same torch thread count;
``TOKENIZERS_PARALLELISM`` is left as set, else set to ``true`` for the whole run (a fork would
otherwise switch the tokenizers' threads off half-way).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

SHORT_TEXT = "We hope you don't hate it."
BATCH_TEXTS = 2000


def model_variants(threads: int) -> tuple[dict, list[str]]:
    """The BERT-base variants (mixed, dense) and the logit checks."""
    import torch
    import transformers

    import leanformers

    path = common.bert_base_classifier()
    reference = transformers.BertForSequenceClassification.from_pretrained(path).eval()
    ours = leanformers.AutoModelForSequenceClassification.from_pretrained(path).eval()
    ours_dense = leanformers.AutoModelForSequenceClassification.from_pretrained(path).eval()
    ours_dense.config.unpad_inputs = False
    torch.set_num_threads(threads)  # loading may fit the thread count to the CPUs: use the asked one

    mixed, full = common.mixed_batch(), common.full_batch()
    checks = []
    with torch.inference_mode():
        for name, inputs, models in (("mixed", mixed, (ours, ours_dense)), ("32x128", full, (ours,))):
            expected = reference(**inputs).logits
            worst = max((model(**inputs).logits - expected).abs().max().item() for model in models)
            checks.append(f"{name}: max |logits - reference| = {worst:.1e}")
    variants = {
        ("mixed", "leanformers"): common.stopwatch(ours, **mixed),
        ("mixed", "leanformers dense"): common.stopwatch(ours_dense, **mixed),
        ("mixed", "reference"): common.stopwatch(reference, **mixed),
        ("dense", "leanformers"): common.stopwatch(ours, **full),
        ("dense", "reference"): common.stopwatch(reference, **full),
    }
    return variants, checks


def image_variants() -> tuple[dict, list[str]]:
    import transformers

    import leanformers

    images = common.photos(32)
    settings = common.VIT_PROCESSOR
    ours = leanformers.AutoImageProcessor.from_pretrained(common.processor_dir("vit-processor", settings))
    reference = transformers.ViTImageProcessorPil(**{k: v for k, v in settings.items() if k != "image_processor_type"})
    diff = (ours(images, return_tensors="pt")["pixel_values"]
            - reference(images, return_tensors="pt")["pixel_values"]).abs().max().item()
    variants = {
        ("image", "leanformers"): common.stopwatch(ours, images, return_tensors="pt"),
        ("image", "reference"): common.stopwatch(reference, images, return_tensors="pt"),
    }
    return variants, [f"image: max |pixel_values - reference| = {diff:.1e}"]


def load_variants(threads: int) -> dict:
    path = common.bert_base_classifier()
    return {
        ("load", "leanformers"): lambda: common.load_in_fresh_process("leanformers", path, threads=threads)["s"],
        ("load", "reference"): lambda: common.load_in_fresh_process("transformers", path, threads=threads)["s"],
    }


def tokenizer_variants(calls: int) -> tuple[dict, list[str]]:
    import leanformers

    texts = common.corpus(BATCH_TEXTS)
    ours = leanformers.AutoTokenizer.from_pretrained(common.minilm_dir())
    raw, raw_padded = common.raw_tokenizer(), common.raw_tokenizer(padded=True)

    same_batch = ours(texts, padding=True, return_tensors="pt")["input_ids"].tolist() == [
        e.ids for e in raw_padded.encode_batch(texts)]
    same_one = ours(SHORT_TEXT)["input_ids"] == raw.encode(SHORT_TEXT).ids

    def per_call(fn) -> float:
        return common.stopwatch(lambda: [fn(SHORT_TEXT) for _ in range(calls)])() / calls

    variants = {
        ("tok batch", "leanformers"): common.stopwatch(ours, texts, padding=True, return_tensors="pt"),
        ("tok batch", "raw"): common.stopwatch(raw_padded.encode_batch, texts),
        ("tok one", "leanformers"): lambda: per_call(ours),
        ("tok one", "raw"): lambda: per_call(raw.encode),
    }
    tokens = len(raw.encode(SHORT_TEXT).ids)
    return variants, [f"tokens: batch ids equal to raw: {same_batch}; one text ({tokens} tokens) equal: {same_one}"]


# goal key -> (label, the other side, ratio as "other/ours" (speed) or "ours/other" (cost), bar)
GOALS = {
    "mixed": ("BERT-base, 32 mixed-length texts", "reference", "speed", 1.5),
    "dense": ("BERT-base, 32 x 128 dense", "reference", "speed", 1.0),
    "image": ("image preprocessing, ViT, 32 x 640x480 PIL", "reference", "speed", 3.0),
    "load": ("from_pretrained, BERT-base (fresh process)", "reference", "speed", 2.0),
    "tok batch": (f"tokenise {BATCH_TEXTS:,} texts, padded, tensors", "raw", "speed", 0.85),
    "tok one": ("tokenise one short text per call", "raw", "cost", 1.4),
}


def report(medians: dict[tuple[str, str], float]) -> None:
    def fmt(seconds: float) -> str:
        return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds:.3f} s"

    print("| goal | leanformers | other side | ratio | bar | met |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for key, (label, other, kind, bar) in GOALS.items():
        ours, theirs = medians[(key, "leanformers")], medians[(key, other)]
        if kind == "speed":
            ratio, met, shown = theirs / ours, theirs / ours >= bar, f">= {bar:g}x ({other} / ours)"
        else:
            ratio, met, shown = ours / theirs, ours / theirs <= bar, f"<= {bar:g}x (ours / {other})"
        print(f"| {label} | {fmt(ours)} | {fmt(theirs)} ({other}) | {ratio:.2f}x | {shown} | {'yes' if met else 'NO'} |")
    dense = medians[("mixed", "leanformers dense")]
    print(f"\nfor information: mixed batch with config.unpad_inputs = False (leanformers dense) {fmt(dense)}, "
          f"{medians[('mixed', 'reference')] / dense:.2f}x the reference; packing gains "
          f"{dense / medians[('mixed', 'leanformers')]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timed rounds (default 7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds, fewer single-text calls")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    rounds, calls = (2, 200) if args.quick else (args.rounds, 2000)

    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)

    variants: dict = {}
    checks: list[str] = []
    for build in (lambda: model_variants(threads), image_variants, lambda: (load_variants(threads), []),
                  lambda: tokenizer_variants(calls)):
        more, notes = build()
        variants.update(more)
        checks.extend(notes)

    with torch.inference_mode():
        times = common.interleaved(variants, rounds=rounds, warmup=args.warmup, progress=True)
    medians = {key: common.median(values) for key, values in times.items()}

    print(common.machine_line())
    print(f"TOKENIZERS_PARALLELISM={os.environ['TOKENIZERS_PARALLELISM']}; medians of {rounds} interleaved rounds "
          f"after {args.warmup} warm-up round(s){' (--quick: smoke run, not goal-grade)' if args.quick else ''}")
    for note in checks:
        print(note)
    print()
    report(medians)


if __name__ == "__main__":
    main()

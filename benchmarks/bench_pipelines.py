"""Per-token pipelines on padded batches: leanformers against Transformers' pipeline, in one run.

    .venv/bin/python benchmarks/bench_pipelines.py [--n 256] [--batch-size 32] [--repeat 3]

Feature extraction (``return_tensors=True``), token classification and fill-mask (the third word
masked) of ``--n`` mixed-length texts (bench_batch's texts: 3 to 300 words, mostly short), batches
of ``--batch-size`` in input order, with
BERT-base-sized random models and the MiniLM tokenizer (the bert-base-uncased vocabulary), saved
once under ``benchmarks/.cache/`` (common.saved_checkpoint). Three runs per task, interleaved, best of ``--repeat``:

1. the reference: ``transformers.pipeline(task, model=dir, batch_size=B)(texts)``;
2. leanformers' pipeline: these pipelines read no padded position, so the encoder runs on the real
   tokens only (``padding_in_output=False``);
3. the same pipeline on a model with ``config.unpad_inputs = False``, which runs the padded batch
   (what it did before), for comparison.

Prints items/s, the ratios, and the largest difference from the reference's outputs.
"""

from __future__ import annotations

import argparse
import numbers
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import common
from bench_batch import mixed_texts

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def checkpoint(name: str, build) -> Path:
    return common.saved_checkpoint(name, build, tokenizer=True)


def largest_difference(ours, theirs) -> float:
    import torch

    if isinstance(theirs, dict):
        return max((largest_difference(ours[k], v) for k, v in theirs.items() if k != "word"), default=0.0)
    if isinstance(theirs, (list, tuple)):
        return max((largest_difference(a, b) for a, b in zip(ours, theirs)), default=0.0)
    if isinstance(theirs, torch.Tensor):
        # The reference hands back each text's features at its batch's padded length; the real
        # tokens come first.
        theirs = theirs[tuple(slice(0, n) for n in ours.shape)]
        return float((ours.float() - theirs.float()).abs().max())
    if isinstance(theirs, numbers.Real) and not isinstance(theirs, numbers.Integral):  # scores: float32
        return abs(float(ours) - float(theirs))
    return 0.0 if ours == theirs else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import transformers

    from leanformers import pipeline

    transformers.logging.set_verbosity_error()
    ner = {"id2label": dict(enumerate(LABELS)), "label2id": {label: i for i, label in enumerate(LABELS)}}
    tasks = {
        "feature-extraction": (checkpoint("bert-base-features", lambda: transformers.BertModel(transformers.BertConfig())),
                               {"return_tensors": True}),
        "token-classification": (checkpoint("bert-base-ner", lambda: transformers.BertForTokenClassification(
            transformers.BertConfig(**ner))), {"ignore_labels": []}),
        "fill-mask": (checkpoint("bert-base-mlm", lambda: transformers.BertForMaskedLM(transformers.BertConfig())),
                      {"top_k": 3}),
    }
    texts = mixed_texts(args.n)
    # fill-mask: the same texts with their third word masked
    masked = [" ".join(w if i != 2 else "[MASK]" for i, w in enumerate(text.split())) for text in texts]
    bs = args.batch_size
    print(f"{common.machine_line()}; {args.n} texts, batches of {bs} in input order")
    print("| task | run | items/s | vs reference | largest difference from the reference |")
    print("| --- | --- | ---: | ---: | ---: |")
    for task, (folder, kwargs) in tasks.items():
        reference = transformers.pipeline(task, model=str(folder), batch_size=bs, device="cpu")
        ours = pipeline(task, model=str(folder), batch_size=bs)
        padded = pipeline(task, model=str(folder), batch_size=bs)
        padded.model.config.unpad_inputs = False  # run the padded batch, as before
        runs = {"reference": reference, "leanformers": ours, "leanformers, padded batches": padded}
        inputs = masked if task == "fill-mask" else texts
        for pipe in runs.values():
            pipe(inputs[:bs], **kwargs)
        best: dict[str, float] = {}
        results: dict[str, list] = {}
        for _ in range(args.repeat):
            for label, pipe in runs.items():
                start = time.perf_counter()
                results[label] = pipe(inputs, **kwargs)
                best[label] = min(best.get(label, float("inf")), time.perf_counter() - start)
        for label in runs:
            diff = largest_difference(results[label], results["reference"])
            print(f"| {task} | {label} | {args.n / best[label]:.1f} | {best['reference'] / best[label]:.2f}x | "
                  f"{diff:.1e} |")


if __name__ == "__main__":
    main()

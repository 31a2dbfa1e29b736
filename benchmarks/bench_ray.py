"""Batch prediction rows/s: one process against Ray Data with 1 and 2 workers, on this machine.

    .venv/bin/python benchmarks/bench_ray.py [--rows 3000] [--batch-size 64] [--size small|tiny]

A random-weight BERT classifier ("small": 4 layers, hidden 256, intermediate 1024, 3 labels;
"tiny": 1 layer, hidden 32) with the MiniLM tokenizer, saved once to benchmarks/.cache/, predicts
``--rows`` texts of mixed length (1 to 120 words) from a JSONL file with ids already in it.

* **single process**: ``pipeline(...)`` loaded once, then ``run_batch`` over ``--batch-size``
  slices of the texts, with 1 torch thread and with 2.
* **ray, N workers**: ``predict_dataset(...).take_all()`` with ``concurrency=N``, one CPU (one
  torch thread) per worker. Start-up is shown apart: ``ray.init`` (once), then the time from the
  call to the first batch starting in a worker (Ray Data's executor, the worker actors starting,
  each loading the model; the load alone is timed inside the worker). ``rows/s steady`` = rows /
  (last batch's end - first batch's start), taken from timestamps the workers add to each result;
  ``rows/s end-to-end`` = rows / the whole call (start-up included).

The machine may be shared and has few cores: read the numbers as this machine's, not Ray's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from common import CACHE

SIZES = {
    "small": {
        "hidden_size": 256,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 1024,
    },
    "tiny": {
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 37,
    },
}
WORDS = [
    "the",
    "movie",
    "was",
    "great",
    "terrible",
    "fine",
    "boring",
    "awesome",
    "plot",
    "actors",
    "long",
    "short",
    "not",
    "very",
    "good",
    "bad",
    "I",
    "liked",
    "it",
]


def build_checkpoint(size: str) -> Path:
    import transformers

    config = transformers.BertConfig(vocab_size=30522, num_labels=3, **SIZES[size])
    return common.saved_checkpoint(f"bert-{size}-classifier-ray",
                                   lambda: transformers.BertForSequenceClassification(config), tokenizer=True)


def make_input(rows: int) -> tuple[Path, list[str]]:
    rng = random.Random(0)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(1, 120))) for _ in range(rows)]
    path = CACHE / f"ray-bench-{rows}.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    return path, texts


def single_process(model: Path, texts: list[str], batch_size: int, threads: int) -> tuple[float, float]:
    import torch

    from leanformers.pipelines import pipeline

    torch.set_num_threads(threads)
    started = time.perf_counter()
    pipe = pipeline("text-classification", model=str(model))
    load = time.perf_counter() - started
    started = time.perf_counter()
    for start in range(0, len(texts), batch_size):
        pipe.run_batch(texts[start : start + batch_size])
    return load, len(texts) / (time.perf_counter() - started)


class TimedPipeline:
    """The real pipeline, adding to each result when its batch started and ended and how long the
    model took to load in this worker (flat keys, so they come back as columns)."""

    def __init__(self, task, model, device):
        from leanformers.pipelines import pipeline

        started = time.time()
        self.pipe = pipeline(task, model=model, device=device)
        self.load = time.time() - started
        self.task = self.pipe.task

    def input_length(self, item):
        return self.pipe.input_length(item)

    def run_batch(self, items, **kwargs):
        started = time.time()
        results = self.pipe.run_batch(items, **kwargs)
        ended = time.time()
        return [
            {
                **r,
                "t_start": started,
                "t_end": ended,
                "load_s": self.load,
                "pid": os.getpid(),
            }
            for r in results
        ]


def ray_run(source: Path, model: Path, batch_size: int, workers: int) -> dict[str, float]:
    """Wall time of a whole run; the span from the first batch's start to the last one's end
    (steady work); the workers' model load time (mean)."""
    from leanformers.distributed import predict_dataset, read_dataset

    started = time.time()
    rows = predict_dataset(
        read_dataset(source),
        str(model),
        "text-classification",
        batch_size=batch_size,
        concurrency=workers,
        num_cpus=1,
        pipeline_factory=TimedPipeline,
    ).take_all()
    wall = time.time() - started
    span = max(r["t_end"] for r in rows) - min(r["t_start"] for r in rows)
    loads = {r["pid"]: r["load_s"] for r in rows}
    first = min(r["t_start"] for r in rows) - started
    return {
        "rows": len(rows),
        "wall": wall,
        "span": span,
        "load": sum(loads.values()) / len(loads),
        "first": first,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    args = parser.parse_args()
    CACHE.mkdir(exist_ok=True)
    model = build_checkpoint(args.size)
    source, texts = make_input(args.rows)

    table = []
    for threads in (1, 2):
        load, rate = single_process(model, texts, args.batch_size, threads)
        table.append(
            (
                f"single process, {threads} thread(s)",
                f"{load:.2f} (model load)",
                f"{rate:.1f}",
                "-",
            )
        )

    import ray

    started = time.perf_counter()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    init = time.perf_counter() - started
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        for workers in (1, 2):
            run = ray_run(source, model, args.batch_size, workers)
            assert run["rows"] == args.rows, run["rows"]
            table.append(
                (
                    f"ray, {workers} worker(s)",
                    (f"{init:.2f} (ray.init) + " if workers == 1 else "")
                    + f"{run['first']:.2f} to first batch (model load {run['load']:.2f})",
                    f"{run['rows'] / run['span']:.1f}",
                    f"{run['rows'] / run['wall']:.1f} ({run['wall']:.1f} s)",
                )
            )
    finally:
        ray.shutdown()

    cpu = os.cpu_count()
    print(f"\n{args.rows} texts (1-120 words), batch {args.batch_size}, BERT-{args.size} classifier, {cpu} CPU(s)\n")
    header = ("engine", "start-up s", "rows/s steady", "rows/s end-to-end (wall)")
    widths = [max(len(str(row[i])) for row in [header, *table]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *table]:
        print("| " + " | ".join(str(cell).ljust(w) for cell, w in zip(row, widths)) + " |")


if __name__ == "__main__":
    main()

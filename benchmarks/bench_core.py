"""Core benchmarks: leanformers against Transformers (and raw `tokenizers`) in one run.

    .venv/bin/python benchmarks/bench_core.py [--repeat N]

Measures, on the same inputs:
1. import cost: `import leanformers` + first Auto class (with the architecture module), above
   `import torch`; and that tokenizer-only use never imports torch;
2. `from_pretrained` of the BERT-base-sized classifier checkpoint (110M parameters, fp32;
   common.bert_base_classifier) with `AutoModelForSequenceClassification`: wall time of the call
   and peak RSS above the interpreter, each in a fresh process with torch and the library's BERT
   module already imported (common.load_in_fresh_process), after two warm-up loads;
3. batch tokenisation of 2,000 texts padded to tensors, against raw `tokenizers.encode_batch`
   (padding to the longest; no tensors);
4. one short text per call, against raw `tokenizers.encode` (the tokenizer file's own fixed padding
   to 128 and truncation switched off, so both produce the same 11 ids).
Figures are the best of ``--repeat`` (tokenisation) or medians (fresh processes). Prints a table of
figures and ratios; bench_goals.py gives the goal ratios with interleaved medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from common import minilm_dir, run_python


def median_of(code: str, repeat: int, key: str) -> float:
    return statistics.median(run_python(code)[key] for _ in range(repeat))


# -- 1. import ---------------------------------------------------------------------------------

IMPORT_TORCH = """
import time, json; t = time.perf_counter(); import torch
print(json.dumps({"s": time.perf_counter() - t}))
"""
IMPORT_OURS = """
import time, json; t = time.perf_counter()
import leanformers; leanformers.AutoModel; import leanformers.models.bert
print(json.dumps({"s": time.perf_counter() - t}))
"""
IMPORT_REF = """
import time, json; t = time.perf_counter()
import transformers; transformers.AutoModel; transformers.BertModel
print(json.dumps({"s": time.perf_counter() - t}))
"""
TOKENIZER_ONLY = """
import time, json, sys; t = time.perf_counter()
from leanformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(%r)
tok(["a first text", "and a second"], padding=True, return_tensors="np")
print(json.dumps({"s": time.perf_counter() - t, "torch": "torch" in sys.modules}))
"""
TOKENIZER_ONLY_REF = """
import time, json, sys; t = time.perf_counter()
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(%r)
tok(["a first text", "and a second"], padding=True, return_tensors="np")
print(json.dumps({"s": time.perf_counter() - t, "torch": "torch" in sys.modules}))
"""


def bench_import(repeat: int) -> list[tuple[str, str]]:
    torch_s = median_of(IMPORT_TORCH, repeat, "s")
    ours_s = median_of(IMPORT_OURS, repeat, "s")
    ref_s = median_of(IMPORT_REF, repeat, "s")
    tok = run_python(TOKENIZER_ONLY % minilm_dir())
    tok_s = median_of(TOKENIZER_ONLY % minilm_dir(), repeat, "s")
    tok_ref_s = median_of(TOKENIZER_ONLY_REF % minilm_dir(), repeat, "s")
    return [
        ("import torch", f"{torch_s:.3f} s"),
        ("import leanformers + AutoModel + bert module (incl. torch)", f"{ours_s:.3f} s"),
        ("  leanformers above import torch (goal <= 0.15 s)", f"{ours_s - torch_s:+.3f} s"),
        ("import transformers + AutoModel + BertModel (incl. torch)", f"{ref_s:.3f} s"),
        ("  transformers above import torch", f"{ref_s - torch_s:+.3f} s"),
        ("tokenizer-only: import + AutoTokenizer.from_pretrained + call, leanformers", f"{tok_s:.3f} s"),
        ("tokenizer-only, transformers", f"{tok_ref_s:.3f} s ({tok_ref_s / tok_s:.1f}x ours)"),
        ("tokenizer-only use imported torch (leanformers)", str(tok["torch"])),
    ]


# -- 2. from_pretrained ------------------------------------------------------------------------

def bench_load(repeat: int) -> list[tuple[str, str]]:
    path = common.bert_base_classifier()
    size = (path / "model.safetensors").stat().st_size
    for _ in range(2):  # warm the page cache so neither side pays for the first disk read
        common.load_in_fresh_process("leanformers", path)
    ours = [common.load_in_fresh_process("leanformers", path) for _ in range(repeat)]
    ref = [common.load_in_fresh_process("transformers", path) for _ in range(repeat)]
    ours_s = statistics.median(r["s"] for r in ours)
    ref_s = statistics.median(r["s"] for r in ref)
    ours_peak = statistics.median(r["peak_above"] for r in ours)
    ref_peak = statistics.median(r["peak_above"] for r in ref)
    ours_used = statistics.median(r["peak_used"] for r in ours)
    ref_used = statistics.median(r["peak_used"] for r in ref)
    mb = 1024 * 1024
    return [
        ("checkpoint", f"BERT-base classifier random, fp32 safetensors, {size / mb:.0f} MiB"),
        ("from_pretrained, leanformers", f"{ours_s:.3f} s"),
        ("from_pretrained, transformers", f"{ref_s:.3f} s"),
        ("  time ratio ours/ref (goal <= 0.5)", f"{ours_s / ref_s:.2f}"),
        ("peak RSS above interpreter, leanformers", f"{ours_peak / mb:.0f} MiB = {ours_peak / size:.2f}x weights (goal <= 1.15)"),
        ("peak RSS above interpreter, transformers", f"{ref_peak / mb:.0f} MiB = {ref_peak / size:.2f}x weights"),
        ("  (both map the file lazily) peak RSS after one forward, leanformers",
         f"{ours_used / mb:.0f} MiB = {ours_used / size:.2f}x weights"),
        ("  peak RSS after one forward, transformers", f"{ref_used / mb:.0f} MiB = {ref_used / size:.2f}x weights"),
    ]


# -- 3 and 4. tokenisation ---------------------------------------------------------------------

def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_tokenizer(repeat: int) -> list[tuple[str, str]]:
    import transformers

    from leanformers import AutoTokenizer

    path = minilm_dir()
    texts = common.corpus(2000)
    ours = AutoTokenizer.from_pretrained(path)
    ref = transformers.AutoTokenizer.from_pretrained(path)
    raw, raw_padded = common.raw_tokenizer(), common.raw_tokenizer(padded=True)

    assert ours(texts, padding=True, return_tensors="pt")["input_ids"].tolist() == [
        e.ids for e in raw_padded.encode_batch(texts)
    ]
    short = "We hope you don't hate it."
    assert ours(short)["input_ids"] == raw.encode(short).ids
    raw_s = best(lambda: raw_padded.encode_batch(texts), repeat)
    ours_s = best(lambda: ours(texts, padding=True, return_tensors="pt"), repeat)
    ref_s = best(lambda: ref(texts, padding=True, return_tensors="pt"), repeat)

    n = 2000
    raw_one = best(lambda: [raw.encode(short) for _ in range(n)], repeat) / n
    ours_one = best(lambda: [ours(short) for _ in range(n)], repeat) / n
    ref_one = best(lambda: [ref(short) for _ in range(n)], repeat) / n
    return [
        ("2,000 texts, padding=True, return_tensors='pt': raw encode_batch (padded, no tensors)", f"{len(texts) / raw_s:,.0f} texts/s"),
        ("  leanformers", f"{len(texts) / ours_s:,.0f} texts/s = {raw_s / ours_s:.2f}x raw (goal >= 0.85)"),
        ("  transformers", f"{len(texts) / ref_s:,.0f} texts/s = {raw_s / ref_s:.2f}x raw"),
        ("one short text per call: raw tokenizers.encode", f"{raw_one * 1e6:.1f} us"),
        ("  leanformers", f"{ours_one * 1e6:.1f} us = {ours_one / raw_one:.2f}x raw (goal <= 1.4)"),
        ("  transformers", f"{ref_one * 1e6:.1f} us = {ref_one / raw_one:.2f}x raw"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=["import", "load", "tokenizer"], default=None)
    args = parser.parse_args()
    print(common.machine_line())
    sections = {"import": bench_import, "load": bench_load, "tokenizer": bench_tokenizer}
    for name, fn in sections.items():
        if args.only and name != args.only:
            continue
        print(f"\n## {name}")
        for label, value in fn(args.repeat):
            print(f"| {label} | {value} |")


if __name__ == "__main__":
    main()

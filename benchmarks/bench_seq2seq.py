"""Encoder-decoder beam search: ``generate()`` of leanformers against the reference's, BART-base sized.

    .venv/bin/python benchmarks/bench_seq2seq.py [--rounds 3] [--new-tokens 60] [--threads 2] [--profile]

The model is ``BartForConditionalGeneration`` with bart-base's dimensions (6 + 6 layers, d_model 768,
12 heads, feed-forward 3072, vocabulary 50,265; 140M parameters), random weights (seed 0), built once
by the reference under ``benchmarks/.cache/``; both libraries load that folder. The sources are eight
texts of mixed lengths (random word ids, right-padded with the pad id), decoded with the settings a
summarisation checkpoint (bart-large-cnn) ships: 4 beams, ``no_repeat_ngram_size=3``,
``length_penalty=2.0``, ``early_stopping=True``, forced BOS and EOS, here ``max_new_tokens`` N.
Rounds are interleaved (each library once per round) after a warm-up round; the figures are medians
and best runs, and every timed run's ids are checked equal to the reference's. ``--profile`` prints
torch's operator profile of one leanformers run instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

# Source lengths (tokens) of the batch: a headline to a long article's opening.
MIXED = [180, 45, 120, 300, 64, 220, 90, 150]
SETTINGS = {"num_beams": 4, "no_repeat_ngram_size": 3, "length_penalty": 2.0, "early_stopping": True,
            "forced_bos_token_id": 0, "forced_eos_token_id": 2}


def bart_base() -> Path:
    import transformers

    config = transformers.BartConfig(
        vocab_size=50265, d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
        decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072, max_position_embeddings=1024,
    )
    return common.saved_checkpoint("bart-base-generation", lambda: transformers.BartForConditionalGeneration(config))


def sources(lengths: list[int], vocab: int = 50265, pad: int = 1, bos: int = 0, eos: int = 2):
    """<s> random word ids </s>, right-padded with ``pad``, and the attention mask."""
    import torch

    gen = torch.Generator().manual_seed(1)
    seq = max(lengths)
    input_ids = torch.full((len(lengths), seq), pad, dtype=torch.long)
    attention_mask = torch.zeros(len(lengths), seq, dtype=torch.long)
    for row, length in enumerate(lengths):
        input_ids[row, :length] = torch.randint(4, vocab, (length,), generator=gen)
        input_ids[row, 0], input_ids[row, length - 1] = bos, eos
        attention_mask[row, :length] = 1
    return input_ids, attention_mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="print an operator profile of one leanformers run")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = bart_base()

    import torch
    import transformers

    import leanformers

    torch.set_num_threads(args.threads)
    print(common.machine_line())
    input_ids, attention_mask = sources(MIXED)
    ours = leanformers.AutoModelForSeq2SeqLM.from_pretrained(str(path))
    settings = dict(SETTINGS, max_new_tokens=args.new_tokens)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with torch.inference_mode():
            ours.generate(input_ids=input_ids, attention_mask=attention_mask, **settings)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                ours.generate(input_ids=input_ids, attention_mask=attention_mask, **settings)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
        return
    theirs = transformers.AutoModelForSeq2SeqLM.from_pretrained(str(path)).eval()
    models = {"transformers": theirs, "leanformers": ours}
    print(f"BART-base-sized (random weights), fp32; 8 sources of {MIXED} tokens (right-padded to {max(MIXED)}, "
          f"{1 - sum(MIXED) / (8 * max(MIXED)):.0%} padding); {json.dumps(settings)}; {args.threads} threads")

    expected: list = []
    times: dict[str, list[float]] = {}
    cpu_times: dict[str, list[float]] = {}  # process CPU seconds: less swayed by other processes' load

    def variant(name: str):
        model = models[name]

        def run() -> float:
            with torch.inference_mode():
                start, cpu_start = time.perf_counter(), time.process_time()
                out = model.generate(input_ids=input_ids, attention_mask=attention_mask, **settings)
                seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            if name == "transformers":
                if expected:
                    assert torch.equal(out, expected[0]), "transformers: ids changed between runs"
                else:
                    expected.append(out)
            else:
                assert expected and torch.equal(out, expected[0]), f"{name}: ids differ from the reference's"
            times.setdefault(name, []).append(seconds)
            cpu_times.setdefault(name, []).append(cpu_seconds)
            return seconds
        return run

    common.interleaved({name: variant(name) for name in models}, args.rounds, warmup=1, progress=True)
    cpu = common.cpu_model()
    # The warm-up run is dropped.
    timed = {name: values[1:] for name, values in times.items()}
    cpu_timed = {name: values[1:] for name, values in cpu_times.items()}
    ref = timed["transformers"], cpu_timed["transformers"]
    print(f"output: {tuple(expected[0].shape)} ids, equal to the reference's in every run; load average "
          f"{os.getloadavg()[0]:.1f}")
    print("| library | median s | ratio | best s | ratio | median CPU s | ratio | CPU |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, values in timed.items():
        med, best, cpu_med = common.median(values), min(values), common.median(cpu_timed[name])
        print(f"| {name} | {med:.3f} | {common.median(ref[0]) / med:.2f}x | {best:.3f} | {min(ref[0]) / best:.2f}x | "
              f"{cpu_med:.2f} | {common.median(ref[1]) / cpu_med:.2f}x | {cpu} |")
    print("ratio: the reference's seconds / ours (goal >= 1.3x)")
    print("per run, warm-up first (wall s, CPU s):", json.dumps({name: [[round(s, 3), round(c, 2)] for s, c in zip(
        times[name], cpu_times[name])] for name in times}))


if __name__ == "__main__":
    main()

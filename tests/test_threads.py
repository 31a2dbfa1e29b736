"""One loaded tokenizer, image processor, feature extractor and model, used from 8 threads at once,
give the same results as sequential use."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from leanformers import AutoConfig, AutoFeatureExtractor, AutoImageProcessor, AutoModel, AutoTokenizer

THREADS = 8
ROUNDS = 6

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world",
    "A considerably longer sentence that will certainly be truncated when a short maximum length is asked for.",
    "short",
    "Tokenizers keep padding and truncation settings as state, which threads must not share by accident.",
]

# Each thread asks for different padding / truncation settings: with a shared, mutable Rust
# tokenizer, one thread's settings would leak into another's encode.
CALLS = [
    dict(),
    dict(padding=True),
    dict(padding="max_length", max_length=24, truncation=True),
    dict(truncation=True, max_length=6),
    dict(padding=True, padding_side="left"),
    dict(padding="max_length", max_length=12, truncation=True, return_tensors="np"),
    dict(truncation=True, max_length=8, stride=2, return_overflowing_tokens=True),
    dict(padding=True, pad_to_multiple_of=16, return_tensors="pt"),
]


def _plain(encoding) -> dict:
    return {key: value.tolist() if hasattr(value, "tolist") else value for key, value in encoding.items()}


def _hammer(work, jobs):
    """Run every job ROUNDS times from THREADS threads, in an interleaved order."""
    schedule = [job for _ in range(ROUNDS) for job in jobs]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(work, schedule)), schedule


def test_tokenizer_from_threads(minilm_dir):
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    jobs = [(i, texts) for i in range(len(CALLS)) for texts in (TEXTS, TEXTS[0], TEXTS[2])]
    expected = {(i, str(texts)): _plain(tokenizer(texts, **CALLS[i])) for i, texts in jobs}
    results, schedule = _hammer(lambda job: _plain(tokenizer(job[1], **CALLS[job[0]])), jobs)
    for (i, texts), got in zip(schedule, results):
        assert got == expected[(i, str(texts))], f"call {CALLS[i]} gave a different result under threads"
    # And the tokenizer is left usable and unchanged for a plain call.
    assert _plain(tokenizer(TEXTS)) == expected[(0, str(TEXTS))]


def test_image_processor_from_threads(tmp_path):
    config = {"image_processor_type": "ViTImageProcessor", "size": {"height": 16, "width": 16},
              "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in
              [(20, 30), (40, 10), (16, 16), (33, 47)]]
    calls = [dict(), dict(size={"height": 8, "width": 12}), dict(do_normalize=False), dict(do_resize=False)]
    jobs = [(i, j) for i in range(len(calls)) for j in range(len(images))]

    def work(job):
        i, j = job
        return processor(images[j], return_tensors="np", **calls[i])["pixel_values"]

    expected = {job: work(job) for job in jobs}
    results, schedule = _hammer(work, jobs)
    for job, got in zip(schedule, results):
        np.testing.assert_array_equal(got, expected[job])


def test_feature_extractor_from_threads(tmp_path):
    config = {"feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1, "sampling_rate": 16000,
              "padding_value": 0.0, "do_normalize": True, "return_attention_mask": True}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
    extractor = AutoFeatureExtractor.from_pretrained(tmp_path)
    rng = np.random.default_rng(1)
    clips = [rng.standard_normal(n).astype(np.float32) for n in (800, 1600, 123, 4000)]
    calls = [dict(), dict(padding=True), dict(padding="max_length", max_length=2000, truncation=True),
             dict(padding="longest", pad_to_multiple_of=512)]
    jobs = [(i, j) for i in range(len(calls)) for j in range(len(clips))]

    def work(job):
        i, j = job
        out = extractor([clips[j], clips[(j + 1) % len(clips)]], sampling_rate=16000, return_tensors="np", **calls[i])
        return {key: [np.asarray(row) for row in value] for key, value in out.items()}

    expected = {job: work(job) for job in jobs}
    results, schedule = _hammer(work, jobs)
    for job, got in zip(schedule, results):
        assert got.keys() == expected[job].keys()
        for key in got:
            for row, want in zip(got[key], expected[job][key], strict=True):
                np.testing.assert_array_equal(row, want)


def test_model_from_threads(tmp_path):
    config = {"model_type": "bert", "vocab_size": 60, "hidden_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 4, "intermediate_size": 40, "max_position_embeddings": 64}
    (tmp_path / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.from_pretrained(tmp_path)).save_pretrained(tmp_path)
    model = AutoModel.from_pretrained(tmp_path)
    generator = torch.Generator().manual_seed(2)
    inputs = []
    for batch, length in [(1, 5), (3, 17), (2, 40), (4, 9)]:
        ids = torch.randint(0, 60, (batch, length), generator=generator)
        mask = torch.ones(batch, length, dtype=torch.long)
        mask[0, length // 2:] = 0
        inputs.append({"input_ids": ids, "attention_mask": mask})
    jobs = list(range(len(inputs)))

    def work(j):
        with torch.no_grad():
            return model(**inputs[j]).last_hidden_state

    expected = {j: work(j) for j in jobs}
    results, schedule = _hammer(work, jobs)
    for j, got in zip(schedule, results):
        torch.testing.assert_close(got, expected[j], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("copy_kind", ["pickle", "deepcopy"])
def test_tokenizer_with_its_lock_still_copies(minilm_dir, copy_kind):
    import copy
    import pickle

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    tokenizer("warm up the lock", padding=True)
    clone = pickle.loads(pickle.dumps(tokenizer)) if copy_kind == "pickle" else copy.deepcopy(tokenizer)
    assert clone(TEXTS, padding=True)["input_ids"] == tokenizer(TEXTS, padding=True)["input_ids"]

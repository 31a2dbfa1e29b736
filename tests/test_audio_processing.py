"""Audio: the feature extractor, reading audio files, and the CTC character tokenizer, each against
the reference library (``transformers``, the test oracle only).

Audio is generated here (noise with an offset, sines); audio files are written with soundfile;
the CTC vocabulary is written as the hub's wav2vec2 checkpoints ship it.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from conftest import make_hub_cache

from leanformers.auto import AutoFeatureExtractor, AutoTokenizer
from leanformers.errors import (
    CheckpointNotFoundError,
    ConfigError,
    InputError,
    RemoteCodeError,
    TokenizerError,
    UnsupportedModelError,
)
from leanformers.processing.audio import (
    FeatureExtractor,
    load_audio,
    load_feature_extractor,
)
from leanformers.processing.ctc import CTCTokenizer, CTCTokenizerOutput
from leanformers.processing.features import BatchFeature

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

TOLERANCE = 1e-6
_MAX_DIFF: dict[str, float] = {}

# preprocessor_config.json of an XLSR speech-emotion checkpoint (the seed example).
XLSR_CONFIG = {
    "do_normalize": True,
    "feature_extractor_type": "Wav2Vec2FeatureExtractor",
    "feature_size": 1,
    "padding_side": "right",
    "padding_value": 0.0,
    "return_attention_mask": True,
    "sampling_rate": 16000,
}
# facebook/wav2vec2-base-960h: no attention mask (group-norm feature encoder).
BASE_960H_CONFIG = {**XLSR_CONFIG, "return_attention_mask": False}


def _record(label: str, diff: float) -> None:
    _MAX_DIFF[label] = max(_MAX_DIFF.get(label, 0.0), diff)


@pytest.fixture(scope="module", autouse=True)
def _report_max_differences():
    yield
    if _MAX_DIFF:
        print("\nmax |ours - reference|: " + ", ".join(f"{k}={v:.3g}" for k, v in sorted(_MAX_DIFF.items())))


def _speech() -> dict[str, object]:
    rng = np.random.default_rng(0)
    long = (rng.standard_normal(1600) * 0.3 + 0.1).astype(np.float32)
    middle = rng.standard_normal(1111)  # float64, as a list of Python floats would be
    short = (rng.standard_normal(357) * 2.0 - 0.5).astype(np.float32)
    return {
        "one array": long,
        "one list": middle.tolist(),
        "batch of lengths": [long, middle, short],
        "batch of lists": [short.tolist(), long[:500].tolist()],
        "2-D batch": np.stack([long[:300], short[:300], long[-300:]]),
        "torch tensor": torch.from_numpy(long.copy()),
    }


SPEECH = _speech()


def _as_float64(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.double().numpy()
    return np.asarray(value, dtype=np.float64)


def assert_same_features(ours, ref, label: str) -> None:
    """Same keys in the same order, same container types, dtypes, shapes; values within 1e-6."""
    assert isinstance(ours, BatchFeature)
    assert list(ours.keys()) == list(ref.keys())
    for key in ref:
        mine, theirs = ours[key], ref[key]
        assert type(mine) is type(theirs), f"{key}: {type(mine).__name__} vs reference {type(theirs).__name__}"
        pairs = (
            list(zip(mine, theirs))
            if isinstance(theirs, list) or getattr(theirs, "dtype", None) == object
            else [(mine, theirs)]
        )
        if isinstance(theirs, list) or getattr(theirs, "dtype", None) == object:
            assert len(mine) == len(theirs)
        for a, b in pairs:
            assert type(a) is type(b)
            assert a.dtype == b.dtype, f"{key}: dtype {a.dtype} vs reference {b.dtype}"
            assert tuple(a.shape) == tuple(b.shape), f"{key}: shape {tuple(a.shape)} vs reference {tuple(b.shape)}"
            diff = float(np.abs(_as_float64(a) - _as_float64(b)).max()) if np.prod(a.shape) else 0.0
            _record(f"{label}:{key}", diff)
            assert diff <= TOLERANCE, f"{key}: max difference {diff}"


# ----------------------------------------------------------------------------------------------
# Feature extractor parity
# ----------------------------------------------------------------------------------------------

PADDINGS = [
    {"padding": False},
    {"padding": True},
    {"padding": "longest", "pad_to_multiple_of": 64},
    {"padding": "max_length", "max_length": 2000},
    {"padding": "max_length", "max_length": 1000, "truncation": True},
    {"padding": "max_length", "max_length": 700, "pad_to_multiple_of": 128, "truncation": True},
    {"padding": "do_not_pad", "max_length": 900, "truncation": True},
]


@pytest.mark.parametrize("do_normalize,return_attention_mask", list(itertools.product((True, False), (True, False))))
@pytest.mark.parametrize("padding", PADDINGS, ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()))
def test_extractor_matches_reference(do_normalize, return_attention_mask, padding):
    settings = {**XLSR_CONFIG, "do_normalize": do_normalize, "return_attention_mask": return_attention_mask}
    ours = FeatureExtractor(**settings)
    ref = transformers.Wav2Vec2FeatureExtractor(**settings)
    compared = 0
    for (name, speech), return_tensors in itertools.product(SPEECH.items(), (None, "np", "pt")):
        kwargs = {**padding, "sampling_rate": 16000, "return_tensors": return_tensors}
        try:
            expected = ref(speech, **kwargs)
        except ValueError:
            # The reference cannot stack ragged rows into one tensor; neither can we, with our error.
            with pytest.raises(InputError):
                ours(speech, **kwargs)
            continue
        assert_same_features(ours(speech, **kwargs), expected, f"extractor[{return_tensors}]")
        compared += 1
    assert compared >= 10


@pytest.mark.parametrize("return_attention_mask", [None, True, False])
def test_return_attention_mask_defaults_to_the_config(return_attention_mask):
    for config in (XLSR_CONFIG, BASE_960H_CONFIG):
        ours = FeatureExtractor(**config)(
            SPEECH["batch of lengths"],
            sampling_rate=16000,
            padding=True,
            return_attention_mask=return_attention_mask,
            return_tensors="pt",
        )
        ref = transformers.Wav2Vec2FeatureExtractor(**config)(
            SPEECH["batch of lengths"],
            sampling_rate=16000,
            padding=True,
            return_attention_mask=return_attention_mask,
            return_tensors="pt",
        )
        assert_same_features(ours, ref, "mask-default")
        expected_mask = config["return_attention_mask"] if return_attention_mask is None else return_attention_mask
        assert ("attention_mask" in ours) == expected_mask


def test_seed_example_xlsr_emotion(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(XLSR_CONFIG))
    audio = SPEECH["one array"]
    inputs = AutoFeatureExtractor.from_pretrained(tmp_path)(
        audio, sampling_rate=16000, return_tensors="pt", padding=True
    )
    reference = transformers.AutoFeatureExtractor.from_pretrained(tmp_path)(
        audio, sampling_rate=16000, return_tensors="pt", padding=True
    )
    assert list(inputs.keys()) == ["input_values", "attention_mask"]
    assert inputs.input_values.dtype == torch.float32 and inputs.input_values.shape == (1, audio.shape[0])
    assert inputs.attention_mask.dtype == torch.int32 and bool(inputs.attention_mask.all())
    assert_same_features(inputs, reference, "seed")
    # Zero mean, unit variance over the utterance.
    assert abs(float(inputs.input_values.mean())) < 1e-5
    assert abs(float(inputs.input_values.std(unbiased=False)) - 1.0) < 1e-4


def test_normalisation_uses_real_samples_only():
    """With a mask, the padded tail holds padding_value and the real part has zero mean, unit variance."""
    fe = FeatureExtractor(**{**XLSR_CONFIG, "padding_value": 0.25})
    short, long = SPEECH["batch of lengths"][2], SPEECH["batch of lengths"][0]
    out = fe([long, short], sampling_rate=16000, padding=True, return_tensors="np")
    real = out["input_values"][1, : len(short)]
    assert np.all(out["input_values"][1, len(short) :] == np.float32(0.25))
    assert abs(float(real.mean())) < 1e-5 and abs(float(real.std()) - 1.0) < 1e-4
    assert out["attention_mask"][1].sum() == len(short)


def test_left_padding_normalises_the_real_samples():
    # The reference takes the statistics of the first `length` values of a left-padded row (padding
    # included) and then overwrites the end of the real audio; here the real samples are used.
    fe = FeatureExtractor(**{**XLSR_CONFIG, "padding_side": "left"})
    long, short = SPEECH["batch of lengths"][0], SPEECH["batch of lengths"][2]
    out = fe([long, short], sampling_rate=16000, padding=True, return_tensors="np")
    pad = len(long) - len(short)
    assert out["attention_mask"][1].tolist() == [0] * pad + [1] * len(short)
    assert np.all(out["input_values"][1, :pad] == 0.0)
    expected = (short - short.mean()) / np.sqrt(short.var() + 1e-7)
    np.testing.assert_allclose(out["input_values"][1, pad:], expected, atol=1e-6)
    # Without normalisation, left padding equals the reference's.
    settings = {**XLSR_CONFIG, "padding_side": "left", "do_normalize": False}
    assert_same_features(
        FeatureExtractor(**settings)([long, short], sampling_rate=16000, padding=True, return_tensors="pt"),
        transformers.Wav2Vec2FeatureExtractor(**settings)(
            [long, short], sampling_rate=16000, padding=True, return_tensors="pt"
        ),
        "left-padding",
    )


def test_integer_pcm_becomes_float32():
    pcm = (SPEECH["one array"] * 3000).astype(np.int16)
    out = FeatureExtractor(**XLSR_CONFIG)(pcm, sampling_rate=16000, return_tensors="np")
    assert out["input_values"].dtype == np.float32
    ref = transformers.Wav2Vec2FeatureExtractor(**XLSR_CONFIG)(pcm, sampling_rate=16000, return_tensors="np")
    np.testing.assert_allclose(out["input_values"], ref["input_values"], atol=1e-5)


def test_pad_matches_reference_for_collators():
    """feature_extractor.pad(list of dicts) as a CTC data collator calls it."""
    ours, ref = FeatureExtractor(**XLSR_CONFIG), transformers.Wav2Vec2FeatureExtractor(**XLSR_CONFIG)
    features = [{"input_values": SPEECH["batch of lengths"][i]} for i in (0, 2)]
    for kwargs in ({"padding": True, "return_tensors": "pt"}, {"padding": "max_length", "max_length": 2048}, {}):
        assert_same_features(ours.pad(features, **kwargs), ref.pad(features, **kwargs), "pad")


# ----------------------------------------------------------------------------------------------
# Feature extractor: errors
# ----------------------------------------------------------------------------------------------


def test_wrong_sampling_rate_says_how_to_resample():
    with pytest.raises(InputError, match=r"16000 Hz.*sampling_rate=8000.*load_audio\(path, sampling_rate=16000\)"):
        FeatureExtractor(**XLSR_CONFIG)(SPEECH["one array"], sampling_rate=8000)
    with pytest.raises(ValueError):  # still a ValueError, as the reference raises
        FeatureExtractor(**XLSR_CONFIG)(SPEECH["one array"], sampling_rate=44100)


def test_missing_sampling_rate_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="leanformers.processing.audio"):
        FeatureExtractor(**XLSR_CONFIG)(SPEECH["one array"])
    assert "sampling_rate" in caplog.text


@pytest.mark.parametrize(
    "speech,match",
    [
        (np.zeros((16000, 2), dtype=np.float32), "multi-channel"),
        ([np.zeros((800, 2), dtype=np.float32)], "multi-channel"),
        (np.zeros((2, 3, 100), dtype=np.float32), "mono"),
        ([], "empty"),
        (np.zeros(0, dtype=np.float32), "empty"),
        ([np.ones(10, dtype=np.float32), np.zeros(0, dtype=np.float32)], r"raw_speech\[1\] is empty"),
        (["a", "b"], "real numbers"),
        ([1.0, None, 2.0], "real numbers"),
        (np.array([1 + 2j, 3j]), "real numbers"),
        ("speech.wav", "load_audio"),
        (3.5, "1-D float array"),
        ({"array": [0.1]}, "1-D float array"),
    ],
)
def test_bad_speech_raises_input_error(speech, match):
    with pytest.raises(InputError, match=match):
        FeatureExtractor(**XLSR_CONFIG)(speech, sampling_rate=16000)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"padding": "max_length"}, "max_length"),
        ({"truncation": True}, "max_length"),
        ({"padding": "sideways"}, "padding strategy"),
        ({"padding": True, "pad_to_multiple_of": 0}, "pad_to_multiple_of"),
        ({"max_length": -3, "padding": "max_length"}, "max_length"),
        ({"return_tensors": "tf"}, "return_tensors"),
        ({"return_tensor": "pt"}, "unexpected keyword"),
    ],
)
def test_bad_call_options_raise_input_error(kwargs, match):
    with pytest.raises(InputError, match=match):
        FeatureExtractor(**XLSR_CONFIG)(SPEECH["batch of lengths"], sampling_rate=16000, **kwargs)


def test_ragged_tensors_need_padding():
    with pytest.raises(InputError, match="padding"):
        FeatureExtractor(**XLSR_CONFIG)(SPEECH["batch of lengths"], sampling_rate=16000, return_tensors="pt")


# ----------------------------------------------------------------------------------------------
# Feature extractor: printing, saving, loading
# ----------------------------------------------------------------------------------------------


def test_repr_to_dict_and_save_round_trip_with_reference(tmp_path):
    config = {**XLSR_CONFIG, "processor_class": "Wav2Vec2Processor", "custom_key": [1, 2]}
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "preprocessor_config.json").write_text(json.dumps(config))
    ours = AutoFeatureExtractor.from_pretrained(tmp_path / "src")
    ref = transformers.AutoFeatureExtractor.from_pretrained(tmp_path / "src")
    assert repr(ours) == repr(ref)
    assert repr(ours).startswith("Wav2Vec2FeatureExtractor {")
    assert ours.to_dict() == ref.to_dict()
    assert "processor_class" not in ours.to_dict() and ours.to_dict()["custom_key"] == [1, 2]

    # ours -> file -> reference, and reference -> file -> ours.
    assert ours.save_pretrained(tmp_path / "ours") == [str(tmp_path / "ours" / "preprocessor_config.json")]
    ref.save_pretrained(tmp_path / "ref")
    assert (tmp_path / "ours" / "preprocessor_config.json").read_text() == (
        tmp_path / "ref" / "preprocessor_config.json"
    ).read_text()
    assert transformers.AutoFeatureExtractor.from_pretrained(tmp_path / "ours").to_dict() == ref.to_dict()
    assert AutoFeatureExtractor.from_pretrained(tmp_path / "ref") == ours
    assert not list((tmp_path / "ours").glob(".*tmp"))  # the atomic write leaves nothing behind


def test_changed_settings_are_saved(tmp_path):
    fe = FeatureExtractor(**BASE_960H_CONFIG)
    fe.do_normalize = False
    fe.save_pretrained(tmp_path)
    reloaded = transformers.Wav2Vec2FeatureExtractor.from_pretrained(tmp_path)
    assert reloaded.do_normalize is False
    with pytest.raises(InputError, match="directory"):
        fe.save_pretrained(tmp_path / "preprocessor_config.json")


def test_keyword_overrides(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(XLSR_CONFIG))
    fe = AutoFeatureExtractor.from_pretrained(tmp_path, return_attention_mask=False, do_normalize=False)
    assert fe.return_attention_mask is False and fe.do_normalize is False
    fe, unused = AutoFeatureExtractor.from_pretrained(tmp_path, padding_value=1.0, foo=3, return_unused_kwargs=True)
    assert fe.padding_value == 1.0 and unused == {"foo": 3}


def test_loading_variants(tmp_path):
    # model_type fallback when preprocessor_config.json names no class
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "preprocessor_config.json").write_text(
        json.dumps({k: v for k, v in XLSR_CONFIG.items() if k != "feature_extractor_type"})
    )
    (tmp_path / "a" / "config.json").write_text(json.dumps({"model_type": "hubert"}))
    assert repr(AutoFeatureExtractor.from_pretrained(tmp_path / "a")) == repr(
        transformers.AutoFeatureExtractor.from_pretrained(tmp_path / "a")
    )
    # processor_config.json with a nested feature_extractor entry takes priority
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "processor_config.json").write_text(
        json.dumps({"feature_extractor": {**XLSR_CONFIG, "padding_value": 0.5}})
    )
    (tmp_path / "b" / "preprocessor_config.json").write_text(json.dumps(XLSR_CONFIG))
    assert AutoFeatureExtractor.from_pretrained(tmp_path / "b").padding_value == 0.5
    # a preprocessor_config.json file path
    fe = load_feature_extractor(str(tmp_path / "b" / "preprocessor_config.json"))
    assert fe.padding_value == 0.0
    assert FeatureExtractor.from_pretrained(tmp_path / "b" / "preprocessor_config.json") == fe


def test_hub_cache_layout_offline(tmp_path, monkeypatch):
    config = tmp_path / "preprocessor_config.json"
    config.write_text(json.dumps(XLSR_CONFIG))
    cache = make_hub_cache(tmp_path / "hub", "someone/xlsr-emotion", {"preprocessor_config.json": config})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fe = AutoFeatureExtractor.from_pretrained("someone/xlsr-emotion")
    assert fe.return_attention_mask is True and fe.sampling_rate == 16000
    with pytest.raises(CheckpointNotFoundError):
        AutoFeatureExtractor.from_pretrained("someone/not-cached")


def test_vit_feature_extractor_is_delegated_to_the_image_processor(tmp_path):
    image_module = pytest.importorskip("leanformers.processing.image", reason="the image processor is not there yet")
    vit = {
        "do_normalize": True,
        "do_resize": True,
        "feature_extractor_type": "ViTFeatureExtractor",
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "resample": 2,
        "size": 224,
    }
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(vit))
    processor = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert isinstance(processor, image_module.ImageProcessor)
    image = np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    pixels = processor(image, return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 224, 224)
    ref = transformers.AutoImageProcessor.from_pretrained(tmp_path, backend="pil")(image, return_tensors="pt")[
        "pixel_values"
    ]
    assert torch.allclose(pixels, ref, atol=TOLERANCE)


def test_loading_errors(tmp_path):
    def folder(name: str, files: dict[str, object]) -> Path:
        path = tmp_path / name
        path.mkdir()
        for filename, content in files.items():
            (path / filename).write_text(content if isinstance(content, str) else json.dumps(content))
        return path

    with pytest.raises(CheckpointNotFoundError, match="preprocessor_config.json"):
        AutoFeatureExtractor.from_pretrained(folder("empty", {"config.json": {"model_type": "wav2vec2"}}))
    with pytest.raises(UnsupportedModelError, match="SeamlessM4TFeatureExtractor.*Wav2Vec2FeatureExtractor"):
        AutoFeatureExtractor.from_pretrained(
            folder("seamless", {"preprocessor_config.json": {"feature_extractor_type": "SeamlessM4TFeatureExtractor"}})
        )
    with pytest.raises(UnsupportedModelError, match="model_type 'gpt2'"):
        AutoFeatureExtractor.from_pretrained(
            folder(
                "gpt2", {"preprocessor_config.json": {"sampling_rate": 16000}, "config.json": {"model_type": "gpt2"}}
            )
        )
    with pytest.raises(RemoteCodeError):
        AutoFeatureExtractor.from_pretrained(
            folder(
                "remote",
                {
                    "preprocessor_config.json": {
                        "feature_extractor_type": "MyExtractor",
                        "auto_map": {"AutoFeatureExtractor": "x.MyExtractor"},
                    }
                },
            )
        )
    with pytest.raises(ConfigError, match="not valid JSON"):
        AutoFeatureExtractor.from_pretrained(folder("broken", {"preprocessor_config.json": "{not json"}))
    with pytest.raises(ConfigError, match="padding_side"):
        AutoFeatureExtractor.from_pretrained(
            folder("side", {"preprocessor_config.json": {**XLSR_CONFIG, "padding_side": "middle"}})
        )
    with pytest.raises(ConfigError, match="'pad' cannot be"):
        AutoFeatureExtractor.from_pretrained(folder("shadow", {"preprocessor_config.json": {**XLSR_CONFIG, "pad": 1}}))
    with pytest.raises(ConfigError, match="sampling_rate"):
        AutoFeatureExtractor.from_pretrained(
            folder("rate", {"preprocessor_config.json": {**XLSR_CONFIG, "sampling_rate": "16k"}})
        )


# ----------------------------------------------------------------------------------------------
# Reading audio files
# ----------------------------------------------------------------------------------------------


def _sine(frequency: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


@pytest.mark.parametrize(
    "filename,rate,subtype,channels",
    [("speech.wav", 8000, "PCM_16", 2), ("speech.flac", 44100, "PCM_24", 1), ("speech.wav", 44100, "FLOAT", 3)],
)
def test_load_audio_resamples_and_downmixes(tmp_path, filename, rate, subtype, channels):
    seconds, frequency = 1.3, 440.0
    sine = _sine(frequency, rate, seconds)
    # Channels are the sine scaled by 1, 0.5, 0.25...: their average is the sine times the mean scale.
    scales = [0.5**c for c in range(channels)]
    frames = np.stack([sine * s for s in scales], axis=1) if channels > 1 else sine
    path = tmp_path / filename
    soundfile.write(path, frames, rate, subtype=subtype)

    audio = load_audio(path, sampling_rate=16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.shape[0] == math.ceil(sine.shape[0] * 16000 / rate)

    expected = _sine(frequency, 16000, audio.shape[0] / 16000) * float(np.mean(scales))
    # soxr HQ keeps a 440 Hz tone far inside its passband, so away from the first and last 10 ms
    # (where the filter starts and stops on a tone cut off abruptly: errors up to ~1e-2 there) the
    # error is the file's quantisation: measured 3.4e-5 for 16-bit PCM (one step is 3.1e-5),
    # 4.5e-7 for 24-bit, 2.4e-7 for float. 1e-4 leaves 3x margin over 16-bit and is 1000x below
    # what a wrong rate, a shifted phase or a dropped channel gives (order 0.1 to 1).
    edge = 160
    assert np.abs(audio[edge:-edge] - expected[edge:-edge]).max() < 1e-4
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 16000 / audio.shape[0] - frequency) <= 16000 / audio.shape[0]

    # Same samples as the reference's own soundfile + soxr reader.
    reference = transformers.audio_utils.load_audio(str(path), sampling_rate=16000)
    diff = float(np.abs(reference - audio).max())
    _record("load_audio", diff)
    assert diff <= TOLERANCE


def test_load_audio_at_native_rate_and_from_bytes(tmp_path):
    sine = _sine(300.0, 16000, 0.5)
    path = tmp_path / "native.wav"
    soundfile.write(path, sine, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path), sine)
    np.testing.assert_array_equal(load_audio(path.read_bytes()), sine)
    audio = load_audio(str(path), sampling_rate=8000)
    assert audio.shape == (4000,)


def test_loaded_audio_goes_through_the_extractor(tmp_path):
    path = tmp_path / "tone.flac"
    soundfile.write(path, _sine(440.0, 22050, 0.4), 22050)
    fe = FeatureExtractor(**XLSR_CONFIG)
    out = fe(load_audio(path, sampling_rate=fe.sampling_rate), sampling_rate=fe.sampling_rate, return_tensors="pt")
    assert out.input_values.shape == (1, math.ceil(0.4 * 22050 * 16000 / 22050))


def test_load_audio_errors(tmp_path):
    with pytest.raises(InputError, match="no audio file"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(InputError, match="directory"):
        load_audio(tmp_path)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio" * 20)
    with pytest.raises(InputError, match=r"could not decode .*garbage\.wav"):
        load_audio(garbage)
    with pytest.raises(InputError, match="download"):
        load_audio("https://example.com/a.wav")
    with pytest.raises(InputError, match="sampling_rate"):
        load_audio(garbage, sampling_rate=0)
    with pytest.raises(InputError, match="feature extractor"):
        load_audio(np.zeros(10, dtype=np.float32))


# ----------------------------------------------------------------------------------------------
# CTC tokenizer
# ----------------------------------------------------------------------------------------------

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ'"


def _write_ctc_checkpoint(path: Path, *, do_lower_case: bool, legacy: bool = False) -> Path:
    """vocab.json as wav2vec2 checkpoints ship it; ``legacy``: the facebook/wav2vec2-base-960h layout
    (no tokenizer_class, a special_tokens_map.json, config.json's model_type)."""
    path.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    vocab.update({char: 5 + i for i, char in enumerate(LETTERS)})
    (path / "vocab.json").write_text(json.dumps(vocab))
    specials = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}
    if legacy:
        (path / "tokenizer_config.json").write_text(
            json.dumps(
                {**specials, "do_lower_case": do_lower_case, "return_attention_mask": False, "do_normalize": True}
            )
        )
        (path / "special_tokens_map.json").write_text(json.dumps(specials))
        (path / "config.json").write_text(json.dumps({"model_type": "wav2vec2"}))
    else:
        (path / "tokenizer_config.json").write_text(
            json.dumps(
                {
                    **specials,
                    "tokenizer_class": "Wav2Vec2CTCTokenizer",
                    "do_lower_case": do_lower_case,
                    "word_delimiter_token": "|",
                }
            )
        )
    return path


CHECKPOINTS = {
    "lower-case": {"do_lower_case": True},
    "upper-case": {"do_lower_case": False},
    "legacy-layout": {"do_lower_case": False, "legacy": True},
}


@pytest.fixture(scope="module", params=list(CHECKPOINTS))
def ctc_pair(request, tmp_path_factory):
    folder = _write_ctc_checkpoint(tmp_path_factory.mktemp(request.param), **CHECKPOINTS[request.param])
    return folder, AutoTokenizer.from_pretrained(folder), transformers.AutoTokenizer.from_pretrained(folder)


SENTENCES = [
    "HELLO WORLD",
    "hello world",
    "It's a  test",
    "  leading and trailing  ",
    "<s>HELLO</s>",
    "  HELLO   <s>  WORLD  ",
    "A<unk>B</s><pad>C|D",
    "<s><s>",
    "<<s>>",
    "héllo 123 ÿ!",
    "tab\there new\nline",
    "",
]

CTC_IDS = [
    [0, 12, 12, 0, 9, 9, 16, 0, 16, 19, 4, 4, 0, 27, 19, 19, 22, 16, 8, 0],
    [1, 12, 12, 0, 12, 9, 4, 4, 2, 3, 0, 99],
    [0, 0, 0],
    [4, 4, 5, 0, 5, 4],
    [31, 31, 0, 23, 4, 0, 4, 5],
    [],
]


def _same_encoding(ours, ref) -> None:
    assert list(ours.keys()) == list(ref.keys())
    for key in ref:
        a, b = ours[key], ref[key]
        assert type(a) is type(b), key
        if isinstance(b, torch.Tensor):
            assert a.dtype == b.dtype and torch.equal(a, b), key
        elif isinstance(b, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b), key
        else:
            assert a == b, key


def test_ctc_tokenizer_is_built(ctc_pair):
    _, ours, ref = ctc_pair
    assert isinstance(ours, CTCTokenizer)
    assert repr(ours) == repr(ref)
    assert (len(ours), ours.vocab_size) == (len(ref), ref.vocab_size)
    assert ours.get_vocab() == ref.get_vocab()
    assert ours.special_tokens_map == ref.special_tokens_map
    assert ours.all_special_tokens == ref.all_special_tokens and ours.all_special_ids == ref.all_special_ids
    assert (ours.pad_token_id, ours.unk_token_id, ours.word_delimiter_token, ours.word_delimiter_token_id) == (
        ref.pad_token_id,
        ref.unk_token_id,
        ref.word_delimiter_token,
        ref.word_delimiter_token_id,
    )
    assert ours.added_tokens_decoder == ref.added_tokens_decoder


def test_ctc_encode_matches_reference(ctc_pair):
    _, ours, ref = ctc_pair
    for text in SENTENCES:
        assert ours.tokenize(text) == ref.tokenize(text), text
        _same_encoding(ours(text), ref(text))
        assert ours.encode(text) == ref.encode(text)
    _same_encoding(ours("AB", text_target="HELLO"), ref("AB", text_target="HELLO"))
    _same_encoding(ours(text_target=SENTENCES[:3]), ref(text_target=SENTENCES[:3]))
    _same_encoding(ours("AB", "CD"), ref("AB", "CD"))
    _same_encoding(ours([("AB", "CD"), ("A", "B")]), ref([("AB", "CD"), ("A", "B")]))
    _same_encoding(ours("a <s>b", split_special_tokens=True), ref("a <s>b", split_special_tokens=True))


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"padding": True},
        {"padding": True, "pad_to_multiple_of": 8, "return_tensors": "pt"},
        {"padding": "max_length", "max_length": 30, "return_tensors": "np"},
        {"truncation": True, "max_length": 5},
        {"max_length": 4},
        {
            "padding": "max_length",
            "max_length": 8,
            "truncation": True,
            "return_special_tokens_mask": True,
            "return_length": True,
            "return_token_type_ids": True,
        },
        {"padding": True, "padding_side": "left", "return_tensors": "pt"},
        {"return_attention_mask": False, "padding": "longest"},
    ],
    ids=str,
)
def test_ctc_batch_encode_matches_reference(ctc_pair, kwargs):
    _, ours, ref = ctc_pair
    _same_encoding(ours(SENTENCES[:6], **kwargs), ref(SENTENCES[:6], **kwargs))
    _same_encoding(ours(SENTENCES[2], **kwargs), ref(SENTENCES[2], **kwargs))


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"skip_special_tokens": True},
        {"skip_special_tokens": False, "group_tokens": False},
        {"spaces_between_special_tokens": True},
        {"output_char_offsets": True},
        {"output_word_offsets": True, "output_char_offsets": True, "skip_special_tokens": True},
    ],
    ids=str,
)
def test_ctc_decode_matches_reference(ctc_pair, kwargs):
    _, ours, ref = ctc_pair
    for ids in CTC_IDS:
        for given in (ids, np.array(ids, dtype=np.int64), torch.tensor(ids, dtype=torch.long)):
            mine, theirs = ours.decode(given, **kwargs), ref.decode(given, **kwargs)
            if isinstance(theirs, str):
                assert mine == theirs, (ids, kwargs)
            else:
                assert isinstance(mine, CTCTokenizerOutput)
                assert (mine.text, mine.char_offsets, mine.word_offsets) == (
                    theirs.text,
                    theirs.char_offsets,
                    theirs.word_offsets,
                ), (ids, kwargs)
    rows = [ids + [0] * (20 - len(ids)) for ids in CTC_IDS]
    mine, theirs = ours.batch_decode(torch.tensor(rows), **kwargs), ref.batch_decode(torch.tensor(rows), **kwargs)
    if isinstance(theirs, list):
        assert mine == theirs
    else:
        assert (mine.text, mine.char_offsets, mine.word_offsets) == (
            theirs.text,
            theirs.char_offsets,
            theirs.word_offsets,
        )


def test_ctc_ids_and_tokens(ctc_pair):
    _, ours, ref = ctc_pair
    ids = [0, 1, 4, 5, 31, 99]
    assert ours.convert_ids_to_tokens(ids) == ref.convert_ids_to_tokens(ids)
    assert ours.convert_ids_to_tokens(ids, skip_special_tokens=True) == ref.convert_ids_to_tokens(
        ids, skip_special_tokens=True
    )
    assert ours.convert_ids_to_tokens(99) == ref.convert_ids_to_tokens(99) == "<unk>"
    tokens = ["<s>", "A", "é", "|", "'"]
    assert ours.convert_tokens_to_ids(tokens) == ref.convert_tokens_to_ids(tokens)


def test_ctc_save_round_trip_both_ways(ctc_pair, tmp_path):
    _, ours, ref = ctc_pair
    written = ours.save_pretrained(tmp_path / "ours")
    assert written == (str(tmp_path / "ours" / "tokenizer_config.json"), str(tmp_path / "ours" / "vocab.json"))
    ref.save_pretrained(tmp_path / "ref")
    for name in ("tokenizer_config.json", "vocab.json"):
        assert (tmp_path / "ours" / name).read_text() == (tmp_path / "ref" / name).read_text(), name
    ref_of_ours = transformers.AutoTokenizer.from_pretrained(tmp_path / "ours")
    ours_of_ref = AutoTokenizer.from_pretrained(tmp_path / "ref")
    assert repr(ours_of_ref).replace("/ref'", "/x'") == repr(ref_of_ours).replace("/ours'", "/x'")
    for text in SENTENCES[:5]:
        assert ours_of_ref(text) == ref_of_ours(text) == ref(text)
    assert ours_of_ref.batch_decode(CTC_IDS) == ref_of_ours.batch_decode(CTC_IDS)
    assert not list((tmp_path / "ours").glob(".*tmp"))


def test_ctc_added_tokens_round_trip(tmp_path):
    folder = _write_ctc_checkpoint(tmp_path / "src", do_lower_case=True)
    ours, ref = AutoTokenizer.from_pretrained(folder), transformers.AutoTokenizer.from_pretrained(folder)
    for tokenizer in (ours, ref):
        assert tokenizer.add_tokens(["XY", "Z"]) == 1
        assert tokenizer.add_special_tokens({"extra_special_tokens": ["<new>"]}) == 1
    assert repr(ours) == repr(ref)
    _same_encoding(ours("hello xy<new> XYz"), ref("hello xy<new> XYz"))
    assert ours.decode([32, 33, 0, 12], skip_special_tokens=True) == ref.decode(
        [32, 33, 0, 12], skip_special_tokens=True
    )
    ours.save_pretrained(tmp_path / "ours")
    ref.save_pretrained(tmp_path / "ref")
    for name in ("tokenizer_config.json", "vocab.json", "added_tokens.json"):
        assert (tmp_path / "ours" / name).read_text() == (tmp_path / "ref" / name).read_text(), name
    assert repr(AutoTokenizer.from_pretrained(tmp_path / "ref")).replace("/ref'", "'") == repr(
        transformers.AutoTokenizer.from_pretrained(tmp_path / "ours")
    ).replace("/ours'", "'")


def test_ctc_multilingual_vocabulary(tmp_path):
    base = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    vocab = {
        "eng": {**base, **{c: 5 + i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz'")}},
        "fra": {**base, **{c: 5 + i for i, c in enumerate("abcdeéèfghijklmnopqrstuvwxyzç")}},
    }
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "Wav2Vec2CTCTokenizer", "target_lang": "eng"})
    )
    ours, ref = AutoTokenizer.from_pretrained(tmp_path), transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert repr(ours) == repr(ref)
    _same_encoding(ours("héllo ça"), ref("héllo ça"))
    ours.set_target_lang("fra")
    ref.set_target_lang("fra")
    assert repr(ours) == repr(ref)
    _same_encoding(ours("héllo ça"), ref("héllo ça"))
    assert ours.decode([12, 13, 0, 5]) == ref.decode([12, 13, 0, 5])
    with pytest.raises(TokenizerError, match="deu"):
        ours.set_target_lang("deu")
    with pytest.raises(TokenizerError, match="target_lang"):
        AutoTokenizer.from_pretrained(tmp_path, target_lang=None)


def test_ctc_from_a_vocabulary_dict_matches_reference(tmp_path):
    folder = _write_ctc_checkpoint(tmp_path, do_lower_case=False)
    vocab = json.loads((folder / "vocab.json").read_text())
    ours = CTCTokenizer(vocab, do_lower_case=True)
    ref = transformers.Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), do_lower_case=True)
    assert repr(ours) == repr(ref)
    _same_encoding(ours(SENTENCES[:4], padding=True), ref(SENTENCES[:4], padding=True))


def test_ctc_deliberate_differences(tmp_path):
    folder = _write_ctc_checkpoint(tmp_path, do_lower_case=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    # Pre-split words keep their word boundaries (one delimiter before each word).
    assert tokenizer.convert_ids_to_tokens(
        tokenizer(["hello", "world"], is_split_into_words=True)["input_ids"]
    ) == list("|HELLO|WORLD")
    # A single id decodes to its token; a batch decodes row by row.
    assert tokenizer.decode(5) == "a" and tokenizer.decode(0) == ""
    assert tokenizer.decode([[12, 9], [5]]) == ["he", "a"]


def test_ctc_custom_word_delimiter(tmp_path):
    vocab = {"<pad>": 0, "<unk>": 1, "/": 2, **{c: 3 + i for i, c in enumerate("abc")}}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "Wav2Vec2CTCTokenizer",
                "word_delimiter_token": "/",
                "bos_token": None,
                "eos_token": None,
            }
        )
    )
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert tokenizer.word_delimiter_token == "/"
    assert tokenizer("ab c")["input_ids"] == [3, 4, 2, 5]
    assert tokenizer.decode([3, 3, 0, 4, 2, 2, 5]) == "ab c"


def test_ctc_errors(tmp_path):
    folder = _write_ctc_checkpoint(tmp_path / "ok", do_lower_case=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with pytest.raises(InputError, match="unexpected keyword"):
        tokenizer("hello", return_tensor="pt")
    with pytest.raises(InputError, match="padding"):
        tokenizer(["a", "bb"], padding="sideways")
    with pytest.raises(InputError, match="return_tensors"):
        tokenizer("a", return_tensors="tf")
    with pytest.raises(InputError, match="different lengths|padding=True"):
        tokenizer(["a", "bb"], return_tensors="pt")
    with pytest.raises(InputError):
        tokenizer(3.5)
    with pytest.raises(InputError, match="text_target"):
        tokenizer()
    no_pad = CTCTokenizer({"a": 0, "|": 1}, pad_token=None, unk_token=None, bos_token=None, eos_token=None)
    with pytest.raises(TokenizerError, match="pad token"):
        no_pad(["a", "aa"], padding=True)

    missing = tmp_path / "missing"
    missing.mkdir()
    (missing / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "Wav2Vec2CTCTokenizer"}))
    with pytest.raises(TokenizerError, match="vocab.json"):
        AutoTokenizer.from_pretrained(missing)
    (missing / "vocab.json").write_text("[1, 2]")
    with pytest.raises(TokenizerError, match="JSON object"):
        AutoTokenizer.from_pretrained(missing)
    (missing / "vocab.json").write_text(json.dumps({"a": "zero"}))
    with pytest.raises(TokenizerError, match="integer ids"):
        AutoTokenizer.from_pretrained(missing)

"""AST (Audio Spectrogram Transformer): the filter-bank feature extractor against the reference's
numpy path, the model against tiny random reference checkpoints, round trips, and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from parity import (
    assert_outputs_close,
    assert_tensors_close,
    build_reference,
    load_reference,
    run,
    transformers,
)
from safetensors.torch import load_file

from leanformers import registry
from leanformers.errors import ConfigError, InputError
from leanformers.models import ast
from leanformers.processing.audio import FeatureExtractor, FilterBankFeatureExtractor
from leanformers.processing.fbank import mel_filters

ref_fe_module = pytest.importorskip(
    "transformers.models.audio_spectrogram_transformer.feature_extraction_audio_spectrogram_transformer"
)

TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 37,
    "patch_size": 8,
    "frequency_stride": 4,
    "time_stride": 6,
    "num_mel_bins": 16,
    "max_length": 64,
}
SMALL_FE = {"num_mel_bins": 16, "max_length": 64}
# The reference warns that one of its 128 default filters is empty (true of AST's trained setup too).
pytestmark = pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values")


def clip(samples: int, seed: int = 0, scale: float = 0.1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(samples) * scale).astype(np.float32)


@pytest.fixture
def reference_fe(monkeypatch):
    """The reference's extractor on its numpy path (the one it takes without torchaudio)."""
    monkeypatch.setattr(ref_fe_module, "is_speech_available", lambda: False)

    def make(**settings):
        return transformers.ASTFeatureExtractor(**settings)

    return make


# -- feature extractor ----------------------------------------------------------------------------


def test_mel_filters_equal_the_reference():
    from transformers.audio_utils import mel_filter_bank

    for bins in (16, 128):
        ref = mel_filter_bank(257, bins, 20, 8000, 16000, norm=None, mel_scale="kaldi",
                              triangularize_in_mel_space=True)
        np.testing.assert_allclose(mel_filters(bins, 16000), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("settings", [{}, {"do_normalize": False}, SMALL_FE, {**SMALL_FE, "do_normalize": False}])
def test_features_match_reference(reference_fe, settings):
    ref, ours = reference_fe(**settings), FeatureExtractor("ASTFeatureExtractor", **settings)
    assert type(ours) is FilterBankFeatureExtractor
    max_length = settings.get("max_length", 1024)
    # shorter than max_length frames, about max_length, longer; different lengths in one batch
    lengths = (5000, 400 + 160 * (max_length - 1), 160 * max_length + 7000, 173_333)
    clips = [clip(n, seed) for seed, n in enumerate(lengths)]
    expected = ref(clips, sampling_rate=16000, return_tensors="np")["input_values"]
    got = ours(clips, sampling_rate=16000, return_tensors="np")["input_values"]
    assert got.shape == expected.shape == (4, max_length, settings.get("num_mel_bins", 128))
    assert got.dtype == expected.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    # the features are not trivially equal: padding and real frames both present in the short clip
    assert np.unique(got[0][-1]).size == 1 and np.unique(got[0][0]).size > 1
    # one clip alone equals its row of the batch
    alone = ours(clips[1], sampling_rate=16000)["input_values"]
    assert isinstance(alone, list) and len(alone) == 1
    np.testing.assert_array_equal(alone[0], got[1])


def test_input_forms_match_reference(reference_fe):
    ref, ours = reference_fe(**SMALL_FE), FilterBankFeatureExtractor(**SMALL_FE)
    rows = np.stack([clip(9000, 3), clip(9000, 4)])
    pcm = (clip(7000, 5, scale=3000.0)).astype(np.int16)
    for given in (rows, list(rows[0]), pcm, rows.astype(np.float64)):
        expected = ref(given, sampling_rate=16000)["input_values"]
        got = ours(given, sampling_rate=16000)["input_values"]
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    pt = ours(torch.from_numpy(rows), sampling_rate=16000, return_tensors="pt")["input_values"]
    assert isinstance(pt, torch.Tensor) and pt.shape == (2, 64, 16) and pt.dtype == torch.float32
    np.testing.assert_allclose(pt.numpy(), ref(rows, sampling_rate=16000, return_tensors="np")["input_values"],
                               rtol=0, atol=1e-4)


def test_clip_shorter_than_one_frame_is_all_padding(reference_fe, caplog):
    ref, ours = reference_fe(**SMALL_FE), FilterBankFeatureExtractor(**SMALL_FE)
    short = clip(300)
    got = ours(short, sampling_rate=16000)["input_values"][0]
    np.testing.assert_allclose(got, ref(short, sampling_rate=16000)["input_values"][0], rtol=0, atol=1e-6)
    assert np.all(got == np.float32((0.0 - ours.mean) / (2 * ours.std)))
    assert "fewer than one 400-sample frame" in caplog.text


def test_padding_value_is_used():
    ours = FilterBankFeatureExtractor(**SMALL_FE, padding_value=-7.0, do_normalize=False)
    got = ours(clip(2000), sampling_rate=16000)["input_values"][0]
    assert np.all(got[-1] == -7.0) and not np.all(got[0] == -7.0)


def test_settings_and_round_trips(tmp_path, reference_fe):
    ref = reference_fe()
    ours = FilterBankFeatureExtractor()
    assert ours.to_dict() == ref.to_dict()
    assert ours.class_name == "ASTFeatureExtractor"
    # ours saved -> the reference reads the same settings
    ours_saved = FilterBankFeatureExtractor(**SMALL_FE, do_normalize=False)
    ours_saved.save_pretrained(tmp_path / "ours")
    reloaded = transformers.ASTFeatureExtractor.from_pretrained(tmp_path / "ours")
    assert reloaded.to_dict() == ours_saved.to_dict()
    # the reference's file -> ours, and a keyword override
    reference_fe(mean=-3.0, std=2.0, max_length=100).save_pretrained(tmp_path / "ref")
    loaded = FilterBankFeatureExtractor.from_pretrained(tmp_path / "ref", num_mel_bins=16)
    assert type(loaded) is FilterBankFeatureExtractor
    assert (loaded.mean, loaded.std, loaded.max_length, loaded.num_mel_bins) == (-3.0, 2.0, 100, 16)
    expected = json.loads((tmp_path / "ref" / "preprocessor_config.json").read_text())
    assert FeatureExtractor.from_dict(expected).to_dict() == expected


def test_copies_and_class_dispatch():
    import copy
    import pickle

    from leanformers.errors import UnsupportedModelError

    fe = FeatureExtractor("ASTFeatureExtractor", **SMALL_FE)
    features = fe(clip(5000), sampling_rate=16000)["input_values"][0]
    for other in (copy.deepcopy(fe), pickle.loads(pickle.dumps(fe))):
        assert type(other) is FilterBankFeatureExtractor and other == fe
        np.testing.assert_array_equal(other(clip(5000), sampling_rate=16000)["input_values"][0], features)
    assert type(FeatureExtractor()) is FeatureExtractor  # the waveform engine stays the default
    with pytest.raises(UnsupportedModelError, match="Wav2Vec2FeatureExtractor"):
        FilterBankFeatureExtractor("Wav2Vec2FeatureExtractor")


def test_return_attention_mask_follows_the_reference(reference_fe):
    ref = reference_fe(**SMALL_FE, return_attention_mask=True)
    ours = FilterBankFeatureExtractor(**SMALL_FE, return_attention_mask=True)
    assert list(ref(clip(3000), sampling_rate=16000)) == list(ours(clip(3000), sampling_rate=16000)) == [
        "input_values"
    ]
    with pytest.raises(InputError, match="no attention_mask"):
        ours(clip(3000), sampling_rate=16000, return_attention_mask=True)


@pytest.mark.parametrize(
    "raw, match",
    [
        (np.zeros(0, dtype=np.float32), "empty"),
        ([], "empty"),
        (np.array([0.1, np.nan] * 500, dtype=np.float32), "NaN"),
        (np.zeros((16000, 2), dtype=np.float32), "multi-channel"),
        (np.zeros((2, 3, 500), dtype=np.float32), "mono"),
        (np.array(["a", "b"]), "real numbers"),
        ("speech.wav", "path"),
    ],
)
def test_bad_audio_raises_input_error(raw, match):
    with pytest.raises(InputError, match=match):
        FilterBankFeatureExtractor(**SMALL_FE)(raw, sampling_rate=16000)


def test_bad_calls_and_settings():
    fe = FilterBankFeatureExtractor(**SMALL_FE)
    with pytest.raises(InputError, match="16000 Hz"):
        fe(clip(3000), sampling_rate=8000)
    with pytest.raises(InputError, match="unexpected keyword"):
        fe(clip(3000), sampling_rate=16000, padding=True)
    for bad in ({"num_mel_bins": 0}, {"max_length": 1.5}, {"std": 0.0}, {"mean": float("nan")},
                {"sampling_rate": -1}, {"feature_size": 2}, {"do_normalize": "yes"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            FilterBankFeatureExtractor(**bad)
    fe.num_mel_bins = -3  # changed after construction: caught at call time
    with pytest.raises(ConfigError, match="num_mel_bins"):
        fe(clip(3000), sampling_rate=16000)


# -- model ------------------------------------------------------------------------------------------


def ref_config(**overrides):
    return transformers.ASTConfig(**{**TINY, **overrides})


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """Reference-saved checkpoints with non-zero tokens and positions (a fresh model has them at zero)."""
    root = tmp_path_factory.mktemp("ast")
    specs = {
        "ASTModel": ("ASTModel", ref_config()),
        "ASTForAudioClassification": ("ASTForAudioClassification", ref_config(num_labels=3)),
        "regression": ("ASTForAudioClassification", ref_config(num_labels=1)),
        "overlap_free": ("ASTModel", ref_config(frequency_stride=8, time_stride=8, qkv_bias=False)),
    }
    paths = {}
    for seed, (key, (name, config)) in enumerate(specs.items()):
        model = build_reference(name, config, seed)
        with torch.no_grad():
            for name_, param in model.named_parameters():
                if name_.endswith(("cls_token", "distillation_token", "position_embeddings")):
                    param.normal_(0.0, 0.5)
        paths[key] = root / key
        model.save_pretrained(paths[key])
    return paths


def spectrogram(batch: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 64, 16, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("key", ["ASTModel", "overlap_free"])
def test_base_model_matches_reference(ckpts, key):
    ref = load_reference("ASTModel", ckpts[key], eager=True)
    ours = ast.ASTModel.from_pretrained(ckpts[key])
    x = spectrogram()
    expected = run(ref, input_values=x, output_hidden_states=True, output_attentions=True)
    got = run(ours, input_values=x, output_hidden_states=True, output_attentions=True)
    seq = got.last_hidden_state.shape[1]
    assert len(got.hidden_states) == 3 and got.attentions[0].shape == (3, 4, seq, seq)
    assert_outputs_close(got, expected, key)
    assert got.last_hidden_state[:, 0].abs().sum() > 0


def test_classification_matches_reference(ckpts):
    ref = load_reference("ASTForAudioClassification", ckpts["ASTForAudioClassification"], eager=True)
    ours = ast.ASTForAudioClassification.from_pretrained(ckpts["ASTForAudioClassification"])
    x, labels = spectrogram(), torch.tensor([0, 2, 1])
    expected = run(ref, input_values=x, labels=labels, output_hidden_states=True, output_attentions=True)
    got = run(ours, input_values=x, labels=labels, output_hidden_states=True, output_attentions=True)
    assert_outputs_close(got, expected, "classification")
    assert_outputs_close(run(ours, input_values=x, return_dict=False), run(ref, input_values=x, return_dict=False))
    # multi-label: float targets give BCE, in both
    ref.config.problem_type = ours.config.problem_type = None
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    assert_tensors_close(run(ours, input_values=x, labels=targets).loss, run(ref, input_values=x, labels=targets).loss,
                         "multi-label loss")


def test_regression_loss_matches_reference(ckpts):
    ref = load_reference("ASTForAudioClassification", ckpts["regression"])
    ours = ast.ASTForAudioClassification.from_pretrained(ckpts["regression"])
    x, labels = spectrogram(), torch.tensor([0.5, -1.0, 2.0])
    assert_outputs_close(run(ours, input_values=x, labels=labels), run(ref, input_values=x, labels=labels))


def test_waveform_to_logits_matches_reference(ckpts, reference_fe):
    ref_fe, ours_fe = reference_fe(**SMALL_FE), FilterBankFeatureExtractor(**SMALL_FE)
    clips = [clip(6000, 1), clip(15000, 2)]
    ref = load_reference("ASTForAudioClassification", ckpts["ASTForAudioClassification"])
    ours = ast.ASTForAudioClassification.from_pretrained(ckpts["ASTForAudioClassification"])
    expected = run(ref, **ref_fe(clips, sampling_rate=16000, return_tensors="pt")).logits
    got = run(ours, **ours_fe(clips, sampling_rate=16000, return_tensors="pt")).logits
    assert_tensors_close(got, expected, "logits from audio")


def test_save_round_trip_through_reference(ckpts, tmp_path):
    ours = ast.ASTForAudioClassification.from_pretrained(ckpts["ASTForAudioClassification"])
    ours.save_pretrained(tmp_path)
    assert set(load_file(tmp_path / "model.safetensors")) == set(
        load_file(ckpts["ASTForAudioClassification"] / "model.safetensors")
    )
    ref = load_reference("ASTForAudioClassification", tmp_path)
    x = spectrogram()
    assert_tensors_close(run(ours, input_values=x).logits, run(ref, input_values=x).logits, "reloaded logits")
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "audio-spectrogram-transformer"


def test_reference_in_memory_layout_loads(ckpts, tmp_path):
    """Files the reference writes with save_original_format=False use its v5 names (layers.N.mlp.fc1...)."""
    ref = load_reference("ASTForAudioClassification", ckpts["ASTForAudioClassification"])
    ref.save_pretrained(tmp_path, save_original_format=False)
    keys = set(load_file(tmp_path / "model.safetensors"))
    assert "audio_spectrogram_transformer.layers.0.attention.q_proj.weight" in keys
    ours = ast.ASTForAudioClassification.from_pretrained(tmp_path)
    x = spectrogram()
    assert_tensors_close(run(ours, input_values=x).logits, run(ref, input_values=x).logits, "v5-layout logits")


def test_head_over_base_checkpoint_loads_the_base(ckpts):
    base = ast.ASTModel.from_pretrained(ckpts["ASTModel"])
    head = ast.ASTForAudioClassification.from_pretrained(ckpts["ASTModel"], num_labels=2)
    x = spectrogram()
    assert_tensors_close(run(head.audio_spectrogram_transformer, input_values=x).last_hidden_state,
                         run(base, input_values=x).last_hidden_state, "base under the head")


def test_config_defaults_equal_the_reference():
    ours, ref = ast.ASTConfig().to_dict(), transformers.ASTConfig().to_dict()
    for key in ast.ASTConfig.defaults:
        assert ours[key] == ref[key], key
    assert ours["model_type"] == ref["model_type"] == "audio-spectrogram-transformer"


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"patch_size": 20}, "patch_size"),
        ({"max_length": 4}, "max_length"),
        ({"num_attention_heads": 5}, "multiple"),
        ({"time_stride": 0}, "time_stride"),
        ({"frequency_stride": 1.5}, "frequency_stride"),
        ({"hidden_act": "nope"}, "hidden_act"),
        ({"hidden_dropout_prob": 2}, "hidden_dropout_prob"),
        ({"layer_norm_eps": 0}, "layer_norm_eps"),
    ],
)
def test_bad_configs_raise_config_error(bad, match):
    with pytest.raises(ConfigError, match=match):
        ast.ASTConfig(**{**TINY, **bad})


def test_bad_inputs_raise_input_error(ckpts):
    model = ast.ASTForAudioClassification.from_pretrained(ckpts["ASTForAudioClassification"])
    cases = [
        (None, "needs input_values"),
        (np.zeros((1, 64, 16), dtype=np.float32), "torch.Tensor"),
        (torch.zeros(64, 16), "unsqueeze"),
        (torch.zeros(2, 16, 64), "transposed"),
        (torch.zeros(2, 100, 16), "max_length"),
        (torch.zeros(2, 8000), "Raw waveforms"),
        (torch.zeros(2, 64, 16, dtype=torch.long), "floats"),
    ]
    for value, match in cases:
        with pytest.raises(InputError, match=match):
            model(input_values=value)
    with pytest.raises(InputError, match="attention_mask"):
        model(input_values=spectrogram(), attention_mask=torch.ones(3, 64))


# -- Auto classes and pipeline (only once registry.py lists AST) ---------------------------------


@pytest.fixture
def registered():
    if "audio-spectrogram-transformer" not in registry.MODELS or "ASTFeatureExtractor" not in (
        registry.FEATURE_EXTRACTORS
    ):
        pytest.skip("registry.py does not list audio-spectrogram-transformer / ASTFeatureExtractor yet")


def test_auto_classes_and_pipeline(registered, ckpts, tmp_path, reference_fe):
    from leanformers import auto
    from leanformers.pipelines import pipeline

    folder = tmp_path / "ast"
    model = build_reference("ASTForAudioClassification", ref_config(num_labels=3), 7)
    model.save_pretrained(folder)
    reference_fe(**SMALL_FE).save_pretrained(folder)
    assert type(auto.AutoModel.from_pretrained(ckpts["ASTModel"])) is ast.ASTModel
    assert type(auto.AutoModelForAudioClassification.from_pretrained(folder)) is ast.ASTForAudioClassification
    fe = auto.AutoFeatureExtractor.from_pretrained(folder)
    assert type(fe) is FilterBankFeatureExtractor and fe.max_length == 64
    audio = clip(12000, 9)
    scores = pipeline("audio-classification", model=str(folder))(audio, top_k=None)
    with torch.no_grad():
        logits = model(**reference_fe(**SMALL_FE)(audio, sampling_rate=16000, return_tensors="pt")).logits[0]
    expected = dict(zip([model.config.id2label[i] for i in range(3)], logits.softmax(-1).tolist()))
    assert {s["label"]: pytest.approx(s["score"], abs=1e-5) for s in scores} == expected
    # the reference's own pipeline over the same folder: the same labels in the same order
    import transformers

    theirs = transformers.pipeline("audio-classification", model=str(folder))(audio, top_k=None)
    assert [s["label"] for s in scores] == [s["label"] for s in theirs]
    assert [s["score"] for s in scores] == pytest.approx([s["score"] for s in theirs], abs=1e-5)

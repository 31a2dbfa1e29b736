"""Whisper: the log-mel feature extractor against the reference's torch and numpy paths, the model
against tiny random reference checkpoints (forward, loss, cache, greedy decoding), round trips, and
errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from parity import (
    assert_outputs_close,
    assert_tensors_close,
    load_reference,
    state_dicts_equal,
    transformers,
)

from leanformers import registry
from leanformers.errors import ConfigError, InputError
from leanformers.modeling.seq2seq import Seq2SeqCache
from leanformers.models import whisper
from leanformers.processing import logmel
from leanformers.processing.audio import FeatureExtractor, LogMelFeatureExtractor

ref_fe_module = pytest.importorskip("transformers.models.whisper.feature_extraction_whisper")

RATE = 16000
TINY = {
    "vocab_size": 100,
    "d_model": 32,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
    "num_mel_bins": 80,
    # The encoder reads exactly 2 * max_source_positions frames (the reference checks it too).
    "max_source_positions": 16,
    "max_target_positions": 40,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "decoder_start_token_id": 3,
    "begin_suppress_tokens": None,
    # Larger weights than the default 0.02, so that greedy decoding does not repeat one token.
    "init_std": 0.3,
}
FRAMES = 2 * TINY["max_source_positions"]


def clip(seconds: float, seed: int = 0, scale: float = 0.1) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * RATE)) * scale).astype(np.float32)


def reference_numpy_path(monkeypatch) -> list[int]:
    """Force the reference's extractor onto its numpy path (it takes torch's when torch is
    installed); returns a list that grows by one per numpy-path call."""
    calls: list[int] = []
    original = ref_fe_module.WhisperFeatureExtractor._np_extract_fbank_features

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ref_fe_module, "is_torch_available", lambda: False)
    monkeypatch.setattr(ref_fe_module.WhisperFeatureExtractor, "_np_extract_fbank_features", counting)
    return calls


# -- feature extractor --------------------------------------------------------------------------


@pytest.mark.parametrize("bins", [80, 128])
def test_mel_filters_equal_reference(bins):
    ref = transformers.WhisperFeatureExtractor(feature_size=bins).mel_filters
    np.testing.assert_allclose(logmel.mel_filters(bins, 400, RATE), ref, rtol=0, atol=1e-12)


CASES = {
    "one second": ([clip(1)], {}),
    "thirty seconds": ([clip(30, 1)], {}),
    "forty-five seconds, truncated": ([clip(45, 2)], {}),
    "mixed batch with mask": ([clip(1, 3), clip(12.34, 4), clip(45, 5)], {"return_attention_mask": True}),
    "longest padding": ([clip(2.5, 6), clip(1.01, 7)], {"padding": "longest", "return_attention_mask": True}),
    "normalised": ([clip(3, 8, scale=3.0), clip(0.5, 9)], {"do_normalize": True, "return_attention_mask": True}),
    "multiple of": ([clip(1.3, 10)], {"padding": True, "pad_to_multiple_of": 1000, "return_attention_mask": True}),
}


@pytest.mark.parametrize("bins", [80, 128])
@pytest.mark.parametrize("case", list(CASES))
def test_features_equal_reference_torch_and_numpy_paths(case, bins, monkeypatch):
    audio, options = CASES[case]
    ours = FeatureExtractor("WhisperFeatureExtractor", feature_size=bins)
    assert isinstance(ours, LogMelFeatureExtractor)
    got = ours(audio, sampling_rate=RATE, return_tensors="np", **options)
    ref = transformers.WhisperFeatureExtractor(feature_size=bins)
    torch_path = ref(audio, sampling_rate=RATE, return_tensors="np", **options)  # its default with torch installed
    numpy_calls = reference_numpy_path(monkeypatch)
    numpy_path = ref(audio, sampling_rate=RATE, return_tensors="np", **options)
    assert numpy_calls, "the reference's numpy path did not run"
    assert set(got) == set(numpy_path) == set(torch_path)
    for expected in (numpy_path, torch_path):
        assert got["input_features"].shape == expected["input_features"].shape
        assert got["input_features"].dtype == np.float32
        np.testing.assert_allclose(got["input_features"], expected["input_features"], rtol=0, atol=1e-4)
        if "attention_mask" in expected:
            np.testing.assert_array_equal(got["attention_mask"], expected["attention_mask"])
    # The features move: a test that passes on constant output proves nothing.
    assert got["input_features"].std() > 0.05


def test_default_shape_torch_output_and_settings_round_trip(tmp_path):
    fe = FeatureExtractor("WhisperFeatureExtractor")
    out = fe([clip(2), clip(40, 1)], sampling_rate=RATE, return_tensors="pt")
    assert tuple(out["input_features"].shape) == (2, 80, 3000)
    assert out["input_features"].dtype == torch.float32
    fe.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["feature_extractor_type"] == "WhisperFeatureExtractor"
    assert saved["n_samples"] == 480000 and saved["nb_max_frames"] == 3000
    ref = transformers.WhisperFeatureExtractor.from_pretrained(tmp_path)
    assert ref.feature_size == 80 and ref.n_fft == 400 and ref.hop_length == 160
    # ...and a file the reference wrote loads back here.
    transformers.WhisperFeatureExtractor(feature_size=128).save_pretrained(tmp_path / "ref")
    back = LogMelFeatureExtractor.from_pretrained(tmp_path / "ref")
    assert isinstance(back, LogMelFeatureExtractor) and back.feature_size == 128


def test_unpadded_clips_of_different_lengths_come_back_as_a_list():
    fe = FeatureExtractor("WhisperFeatureExtractor")
    out = fe([clip(1), clip(2, 1)], sampling_rate=RATE, padding=False)
    assert [f.shape for f in out["input_features"]] == [(80, 100), (80, 200)]
    with pytest.raises(InputError, match="different lengths"):
        fe([clip(1), clip(2, 1)], sampling_rate=RATE, padding=False, return_tensors="pt")


def test_feature_extractor_errors():
    fe = FeatureExtractor("WhisperFeatureExtractor")
    with pytest.raises(InputError, match="16000 Hz"):
        fe(clip(1), sampling_rate=8000)
    with pytest.raises(InputError, match="empty"):
        fe(np.zeros(0, np.float32), sampling_rate=RATE)
    with pytest.raises(InputError, match="multi-channel"):
        fe(np.zeros((RATE, 2), np.float32), sampling_rate=RATE)
    with pytest.raises(InputError, match="unexpected keyword"):
        fe(clip(1), sampling_rate=RATE, chunk=3)
    with pytest.raises(ConfigError, match="n_fft"):
        FeatureExtractor("WhisperFeatureExtractor", n_fft=0)
    with pytest.raises(ConfigError, match="padding_side"):
        FeatureExtractor("WhisperFeatureExtractor", padding_side="left")


# -- model --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("whisper")
    torch.manual_seed(0)
    transformers.WhisperForConditionalGeneration(transformers.WhisperConfig(**TINY)).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def models(checkpoint):
    ref = load_reference("WhisperForConditionalGeneration", checkpoint, eager=True)
    ours = whisper.WhisperForConditionalGeneration.from_pretrained(checkpoint)
    return ours, ref


def features(batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, TINY["num_mel_bins"], FRAMES, generator=torch.Generator().manual_seed(seed))


def decoder_ids(batch: int = 2, length: int = 7, seed: int = 2) -> torch.Tensor:
    ids = torch.randint(4, TINY["vocab_size"], (batch, length), generator=torch.Generator().manual_seed(seed))
    ids[:, 0] = TINY["decoder_start_token_id"]
    return ids


def test_weights_load_under_the_reference_keys(models):
    ours, ref = models
    assert set(ours.state_dict()) == set(ref.state_dict())
    state_dicts_equal(ours, ref)
    assert ours.proj_out.weight is ours.model.decoder.embed_tokens.weight


def test_forward_equals_reference_with_hidden_states_and_attentions(models):
    ours, ref = models
    inputs = {"input_features": features(), "decoder_input_ids": decoder_ids(), "use_cache": False,
              "output_hidden_states": True, "output_attentions": True}
    with torch.no_grad():
        got, expected = ours(**inputs), ref(**inputs)
    assert_outputs_close(got, expected)
    assert len(got.encoder_hidden_states) == TINY["encoder_layers"] + 1


def test_decoder_padding_mask_and_base_model_equal_reference(checkpoint):
    ref = load_reference("WhisperModel", checkpoint, eager=True)
    ours = whisper.WhisperModel.from_pretrained(checkpoint)
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    inputs = {"input_features": features(), "decoder_input_ids": decoder_ids(), "decoder_attention_mask": mask,
              "use_cache": False}
    with torch.no_grad():
        assert_outputs_close(ours(**inputs), ref(**inputs))


def test_loss_with_labels_equals_reference(models):
    ours, ref = models
    labels = decoder_ids(seed=5)
    labels[0, -2:] = -100
    with torch.no_grad():
        got = ours(input_features=features(), labels=labels)
        expected = ref(input_features=features(), labels=labels)
    assert_tensors_close(got.loss, expected.loss, "loss")
    assert_tensors_close(got.logits, expected.logits, "logits")


def test_cached_decoding_equals_full_forward(models):
    ours, _ = models
    ids = decoder_ids(length=9)
    with torch.no_grad():
        encoded = ours.get_encoder()(features(), return_dict=True)
        full = ours(encoder_outputs=encoded, decoder_input_ids=ids, use_cache=False).logits
        cache, steps = None, []
        for position in range(ids.shape[1]):
            out = ours(encoder_outputs=encoded, decoder_input_ids=ids[:, position : position + 1],
                       past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            steps.append(out.logits)
    assert isinstance(cache, Seq2SeqCache) and cache.get_seq_length() == ids.shape[1]
    assert_tensors_close(torch.cat(steps, dim=1), full, "cached logits")


def test_greedy_loop_equals_reference_generate(models):
    ours, ref = models
    source, new_tokens = features(), 10
    with torch.no_grad():
        # The reference's Whisper generate returns the tokens after the decoder prompt (here just the start token).
        expected = ref.generate(source, max_new_tokens=new_tokens, do_sample=False)
        encoded = ours.get_encoder()(input_ids=source, return_dict=True)  # the alias generate() uses
        sequence = torch.full((2, 1), TINY["decoder_start_token_id"])
        cache = None
        for _ in range(new_tokens):
            out = ours(encoder_outputs=encoded, decoder_input_ids=sequence[:, -1:], past_key_values=cache,
                       use_cache=True)
            cache = out.past_key_values
            sequence = torch.cat([sequence, out.logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    generated = sequence[:, 1:]
    stop, pad = TINY["eos_token_id"], TINY["pad_token_id"]
    for row, ref_row in zip(generated.tolist(), expected.tolist()):
        # The reference drops the end-of-sequence token and pads finished rows with pad_token_id.
        if stop in row:
            row = row[: row.index(stop)]
        assert ref_row[: len(row)] == row
        assert all(token == pad for token in ref_row[len(row) :])
    assert len(set(generated.flatten().tolist())) > 2, "degenerate decoding proves little"


def test_audio_classification_equals_reference(tmp_path):
    config = transformers.WhisperConfig(**TINY, num_labels=3, classifier_proj_size=8, use_weighted_layer_sum=True)
    torch.manual_seed(0)
    transformers.WhisperForAudioClassification(config).save_pretrained(tmp_path)
    ref = load_reference("WhisperForAudioClassification", tmp_path, eager=True)
    with torch.no_grad():
        ref.layer_weights.copy_(torch.tensor([0.1, 0.5, -0.3]))
    ref.save_pretrained(tmp_path)
    ours = whisper.WhisperForAudioClassification.from_pretrained(tmp_path)
    labels = torch.tensor([0, 2])
    with torch.no_grad():
        got = ours(input_features=features(), labels=labels, output_attentions=True)
        expected = ref(input_features=features(), labels=labels, output_attentions=True)
    assert_outputs_close(got, expected)


def test_save_round_trip_and_fresh_positions_are_sinusoids(models, tmp_path):
    ours, ref = models
    ours.save_pretrained(tmp_path)
    back = load_reference("WhisperForConditionalGeneration", tmp_path)
    state_dicts_equal(back, ref)
    fresh = whisper.WhisperForConditionalGeneration(whisper.WhisperConfig(**TINY))
    torch.testing.assert_close(fresh.model.encoder.embed_positions.weight,
                               whisper.sinusoids(TINY["max_source_positions"], TINY["d_model"]))
    assert not fresh.model.encoder.embed_positions.weight.requires_grad


def test_config_defaults_equal_reference():
    ours, ref = whisper.WhisperConfig(), transformers.WhisperConfig()
    for key in whisper.WhisperConfig.defaults:
        value = getattr(ref, key)
        value = list(value) if isinstance(value, tuple) else value
        assert getattr(ours, key) == value, key
    assert ours.hidden_size == 384 and ours.num_hidden_layers == 4


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"d_model": 30}, "multiple of"),
        ({"encoder_layers": 0}, "encoder_layers"),
        ({"dropout": 2.0}, "dropout"),
        ({"decoder_start_token_id": 100}, "decoder_start_token_id"),
        ({"activation_function": "nope"}, "activation"),
    ],
)
def test_bad_configs_raise(bad, message):
    with pytest.raises(ConfigError, match=message):
        whisper.WhisperConfig(**{**TINY, **bad})


def test_bad_inputs_raise(models):
    ours, _ = models
    with pytest.raises(InputError, match="frames"):
        ours(input_features=torch.randn(1, 80, FRAMES + 2), decoder_input_ids=decoder_ids(1))
    with pytest.raises(InputError, match="mel bins"):
        ours(input_features=torch.randn(1, 128, FRAMES), decoder_input_ids=decoder_ids(1))
    with pytest.raises(InputError, match="float tensor"):
        ours(input_features=torch.ones(1, 80, FRAMES, dtype=torch.long), decoder_input_ids=decoder_ids(1))
    with pytest.raises(InputError, match="decoder_input_ids"):
        ours(input_features=features(1))
    with pytest.raises(InputError, match="max_target_positions"):
        ours(input_features=features(1), labels=torch.zeros(1, TINY["max_target_positions"] + 1, dtype=torch.long))


def test_auto_feature_extractor_when_registered(tmp_path):
    if "WhisperFeatureExtractor" not in registry.FEATURE_EXTRACTORS:
        pytest.skip("WhisperFeatureExtractor is not in registry.FEATURE_EXTRACTORS yet")
    from leanformers import AutoFeatureExtractor

    transformers.WhisperFeatureExtractor().save_pretrained(tmp_path)
    assert isinstance(AutoFeatureExtractor.from_pretrained(tmp_path), LogMelFeatureExtractor)

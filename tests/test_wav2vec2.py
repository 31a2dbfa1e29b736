"""wav2vec2: parity with the reference on tiny random checkpoints, weight-norm key formats, loading
variants, padding, losses, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from parity import (
    BF16_TOLERANCE,
    assert_outputs_close,
    assert_tensors_close,
    build_reference,
    load_reference,
    run,
    transformers,
)

from leanformers import auto
from leanformers.configuration import COMMON_DEFAULTS
from leanformers.errors import ConfigError, InputError
from leanformers.models import wav2vec2

TINY = dict(
    vocab_size=12,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    conv_dim=(16, 16, 16),
    conv_kernel=(10, 3, 3),
    conv_stride=(5, 2, 2),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    classifier_proj_size=24,
    num_labels=3,
)
# Group norm on the first convolution + post-norm encoder (wav2vec2-base), and layer norm on every
# convolution + pre-norm ("stable") encoder with conv biases and an odd position kernel (large / XLSR).
VARIANTS = {
    "group": {},
    "stable": dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True, num_conv_pos_embeddings=15),
}
# checkpoint key -> (reference class, config overrides)
HEADS = {
    "Wav2Vec2Model": ("Wav2Vec2Model", {}),
    "Wav2Vec2ForSequenceClassification": ("Wav2Vec2ForSequenceClassification", {}),
    "weighted": ("Wav2Vec2ForSequenceClassification", {"use_weighted_layer_sum": True}),
    "Wav2Vec2ForCTC": ("Wav2Vec2ForCTC", {}),
}
EMOTIONS = ["angry", "calm", "disgust", "fearful", "happy", "neutral", "sad", "surprised"]
WN_NEW = "encoder.pos_conv_embed.conv.parametrizations.weight.original"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The models are tiny: one thread is fastest, and spares the intra-op thread pool's stalls on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def ref_config(**overrides):
    values = {**TINY, **overrides}
    if "id2label" in overrides:
        del values["num_labels"]
    return transformers.Wav2Vec2Config(**values)


def audio(batch: int = 3, samples: int = 2400, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, samples, generator=torch.Generator().manual_seed(seed))


def padded_mask(batch: int = 3, samples: int = 2400) -> torch.Tensor:
    mask = torch.ones(batch, samples, dtype=torch.long)
    mask[1, samples - 517:] = 0
    if batch > 2:
        mask[2, 1100:] = 0
    return mask


def to_old_format(src: Path, dst: Path, bin_file: bool = False) -> Path:
    """A copy of a reference checkpoint with the weight-norm pair under the pre-parametrization names."""
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "config.json", dst / "config.json")
    state = {
        k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                           "weight_v"): v
        for k, v in load_file(src / "model.safetensors").items()
    }
    assert any(k.endswith("weight_g") for k in state)
    if bin_file:
        torch.save(state, dst / "pytorch_model.bin")
    else:
        save_file(state, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """Reference-saved checkpoints, built once per session: {variant}/{head}."""
    root = tmp_path_factory.mktemp("wav2vec2")
    paths = {}
    seed = 0
    for variant, variant_overrides in VARIANTS.items():
        for key, (name, overrides) in HEADS.items():
            paths[variant, key] = root / variant / key
            model = build_reference(name, ref_config(**variant_overrides, **overrides), seed)
            model.save_pretrained(paths[variant, key])
            seed += 1
    paths["old_format"] = to_old_format(paths["group", "Wav2Vec2ForCTC"], root / "old_format")
    # A tiny stand-in for ehcalabres/wav2vec2-lg-xlsr-en-speech-emotion-recognition: XLSR layout (layer-norm
    # convolutions with biases, stable layer norm, even position kernel), an 8-emotion classifier, the keys
    # an older library version wrote into config.json, and pytorch_model.bin weights with weight_g / weight_v.
    emotion = build_reference(
        "Wav2Vec2ForSequenceClassification",
        ref_config(
            feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True, num_conv_pos_embeddings=16,
            id2label=dict(enumerate(EMOTIONS)), label2id={e: i for i, e in enumerate(EMOTIONS)},
            problem_type="single_label_classification", vocab_size=33, ctc_loss_reduction="mean",
        ),
        seed,
    )
    emotion.save_pretrained(root / "emotion_new")
    paths["emotion"] = to_old_format(root / "emotion_new", root / "emotion", bin_file=True)
    config = json.loads((paths["emotion"] / "config.json").read_text())
    config.update({"feat_extract_dropout": 0.0, "gradient_checkpointing": True, "pooling_mode": "mean",
                   "torch_dtype": "float32", "transformers_version": "4.8.2"})
    config.pop("dtype", None)
    (paths["emotion"] / "config.json").write_text(json.dumps(config))
    return paths


def ours_class(key: str):
    return getattr(wav2vec2, HEADS[key][0])


def ref_name(key: str) -> str:
    return HEADS[key][0]


# -- forward parity -------------------------------------------------------------------------------


def _inputs(case: str) -> dict:
    if case == "plain":
        return {"input_values": audio()}
    if case == "padded":
        return {"input_values": audio(), "attention_mask": padded_mask(), "output_hidden_states": True}
    if case == "attentions":
        return {"input_values": audio(), "attention_mask": padded_mask(), "output_hidden_states": True,
                "output_attentions": True}
    if case == "tuple":
        return {"input_values": audio(2, 1999), "output_hidden_states": True, "output_attentions": True,
                "return_dict": False}
    if case == "single":
        return {"input_values": audio(1, 400), "attention_mask": torch.ones(1, 400, dtype=torch.long)}
    raise AssertionError(case)


CASES = ["plain", "padded", "attentions", "tuple", "single"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("key", list(HEADS))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_forward_matches_reference(ckpts, variant, key, case):
    inputs = _inputs(case)
    path = ckpts[variant, key]
    ours = ours_class(key).from_pretrained(path)
    # The reference returns attention weights only from its explicit ("eager") attention.
    ref = load_reference(ref_name(key), path, eager=bool(inputs.get("output_attentions")))
    ours_out, ref_out = run(ours, **inputs), run(ref, **inputs)
    assert_outputs_close(ours_out, ref_out, f"{variant}/{key}/{case}")
    if case == "padded" and key == "Wav2Vec2Model":
        assert len(ours_out.hidden_states) == TINY["num_hidden_layers"] + 1


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_hidden_states_layout(ckpts, variant):
    """The last reported hidden state is the last layer's output: after the final LayerNorm in the
    post-norm form, before it in the stable form (as the reference reports them)."""
    model = wav2vec2.Wav2Vec2Model.from_pretrained(ckpts[variant, "Wav2Vec2Model"])
    out = run(model, input_values=audio(), output_hidden_states=True)
    same = torch.equal(out.hidden_states[-1], out.last_hidden_state)
    assert same == (variant == "group")


def test_padding_does_not_change_real_frames(ckpts):
    """With layer-norm convolutions a padded row's real frames equal the row run alone (group norm
    normalises over the padding too, in both libraries, so only the reference comparison holds there)."""
    values, mask = audio(), padded_mask()
    real = int(mask[2].sum())
    frames = int(wav2vec2.conv_output_length(real, wav2vec2.Wav2Vec2Config(**TINY)))
    for key in HEADS:
        model = ours_class(key).from_pretrained(ckpts["stable", key])
        batch = run(model, input_values=values, attention_mask=mask)
        alone = run(model, input_values=values[2:3, :real])
        if key == "Wav2Vec2Model":
            assert_tensors_close(batch.last_hidden_state[2:3, :frames], alone.last_hidden_state, f"{key} padded row")
            assert_tensors_close(batch.extract_features[2:3, :frames], alone.extract_features, f"{key} features")
        elif key == "Wav2Vec2ForCTC":
            assert_tensors_close(batch.logits[2:3, :frames], alone.logits, f"{key} padded row")
        else:
            assert_tensors_close(batch.logits[2:3], alone.logits, f"{key} padded row")


def test_padded_frames_are_zeroed_before_the_position_convolution(ckpts):
    """Garbage in the padding must not reach real frames through the position convolution."""
    model = wav2vec2.Wav2Vec2Model.from_pretrained(ckpts["stable", "Wav2Vec2Model"])
    values, mask = audio(), padded_mask()
    noisy = values.clone()
    noisy[mask == 0] = 1000.0
    clean = run(model, input_values=values, attention_mask=mask)
    dirty = run(model, input_values=noisy, attention_mask=mask)
    frames = int(wav2vec2.conv_output_length(int(mask[2].sum()), model.config))
    assert_tensors_close(dirty.last_hidden_state[2, :frames], clean.last_hidden_state[2, :frames], "padding leak")


def test_explicit_time_mask_matches_reference(ckpts):
    path = ckpts["group", "Wav2Vec2Model"]
    ours, ref = wav2vec2.Wav2Vec2Model.from_pretrained(path), load_reference("Wav2Vec2Model", path)
    frames = int(wav2vec2.conv_output_length(2400, ours.config))
    mask = torch.zeros(3, frames, dtype=torch.bool)
    mask[0, 3:9] = True
    mask[2, 40:] = True
    inputs = {"input_values": audio(), "mask_time_indices": mask, "output_hidden_states": True}
    ours_out = run(ours, **inputs)
    assert_outputs_close(ours_out, run(ref, **inputs), "mask_time_indices")
    plain = run(ours, input_values=audio(), output_hidden_states=True)
    assert not torch.equal(plain.hidden_states[0][0], ours_out.hidden_states[0][0])
    assert torch.equal(plain.hidden_states[0][1], ours_out.hidden_states[0][1])


def test_xlsr_emotion_layout(ckpts):
    """The ehcalabres XLSR emotion-recognition layout: old key names, a .bin file, extra config keys."""
    path = ckpts["emotion"]
    ours, info = auto.AutoModelForAudioClassification.from_pretrained(path, output_loading_info=True)
    assert type(ours) is wav2vec2.Wav2Vec2ForSequenceClassification
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    assert ours.config.id2label[3] == "fearful" and ours.config.pooling_mode == "mean"
    assert ours.config.do_stable_layer_norm and ours.config.feat_extract_norm == "layer"
    ref = load_reference("Wav2Vec2ForSequenceClassification", path)
    for inputs in ({"input_values": audio()},
                   {"input_values": audio(), "attention_mask": padded_mask(), "labels": torch.tensor([0, 7, 3])}):
        assert_outputs_close(run(ours, **inputs), run(ref, **inputs), "emotion")


# -- losses ---------------------------------------------------------------------------------------


def _ctc_labels() -> torch.Tensor:
    labels = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 3, -100, -100], [4, 4, 0, 0, 0]])
    return labels


@pytest.mark.parametrize("reduction, zero_infinity", [("sum", False), ("mean", False), ("none", False), ("mean", True)])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_ctc_loss_matches_reference(ckpts, variant, reduction, zero_infinity):
    path = ckpts[variant, "Wav2Vec2ForCTC"]
    overrides = {"ctc_loss_reduction": reduction, "ctc_zero_infinity": zero_infinity}
    ours = wav2vec2.Wav2Vec2ForCTC.from_pretrained(path, **overrides)
    ref = load_reference("Wav2Vec2ForCTC", path, **overrides)
    labels = _ctc_labels()
    if zero_infinity:
        labels = torch.cat([labels, torch.full((3, 80), 5)], dim=1)  # longer than the frames: infinite loss
    for mask in (None, padded_mask()):
        inputs = {"input_values": audio(), "attention_mask": mask, "labels": labels}
        ours_out, ref_out = run(ours, **inputs), run(ref, **inputs)
        assert ours_out.keys()[0] == "loss"
        assert_outputs_close(ours_out, ref_out, f"ctc/{reduction}")
        if zero_infinity:
            assert torch.all(ours_out.loss == 0)


def test_sequence_classification_loss_matches_reference(ckpts):
    for key in ("Wav2Vec2ForSequenceClassification", "weighted"):
        path = ckpts["stable", key]
        ours, ref = ours_class(key).from_pretrained(path), load_reference(ref_name(key), path)
        inputs = {"input_values": audio(), "attention_mask": padded_mask(), "labels": torch.tensor([2, 0, 1])}
        ours_out = run(ours, **inputs)
        assert_outputs_close(ours_out, run(ref, **inputs), f"loss/{key}")
        assert run(ours, **inputs, return_dict=False)[0] is not None
        with torch.no_grad():  # the reference's positional order: input_values, attention_mask, labels
            assert torch.equal(ours(*inputs.values()).loss, ours_out.loss)


def test_training_mode_and_backward(ckpts):
    path = ckpts["group", "Wav2Vec2ForCTC"]
    model = wav2vec2.Wav2Vec2ForCTC.from_pretrained(path, mask_time_prob=0.5, mask_time_length=2, layerdrop=0.0)
    values = audio()
    evaluated = run(model, input_values=values).logits
    assert torch.equal(evaluated, run(model, input_values=values).logits)  # eval: deterministic, no masking
    model.train()
    torch.manual_seed(3)
    out = model(values, attention_mask=padded_mask(), labels=_ctc_labels())
    out.loss.backward()
    assert model.wav2vec2.masked_spec_embed.grad is not None  # SpecAugment replaced some frames
    trained = [n for n, p in model.named_parameters() if p.grad is None]
    assert trained == [], trained
    model.eval()
    assert torch.equal(evaluated, run(model, input_values=values).logits)


def test_layerdrop_skips_layers_only_in_training(ckpts):
    path = ckpts["group", "Wav2Vec2Model"]
    model = wav2vec2.Wav2Vec2Model.from_pretrained(path, layerdrop=1.0, hidden_dropout=0.0, activation_dropout=0.0,
                                                   attention_dropout=0.0, mask_time_prob=0.0)
    ref = load_reference("Wav2Vec2Model", path, layerdrop=1.0)
    inputs = {"input_values": audio(), "output_hidden_states": True}
    assert_tensors_close(run(model, **inputs).last_hidden_state, run(ref, **inputs).last_hidden_state, "eval")
    model.train()
    out = model(**inputs)
    assert len(out.hidden_states) == 1 and torch.equal(out.hidden_states[0], out.last_hidden_state)


def test_partial_layerdrop_draws_like_the_reference(ckpts):
    """With half the layers dropped at random in training (and no dropout), the same seed skips the
    same layers in both libraries, so the outputs agree."""
    path = ckpts["group", "Wav2Vec2Model"]
    options = {"layerdrop": 0.5, "hidden_dropout": 0.0, "activation_dropout": 0.0, "attention_dropout": 0.0,
               "feat_proj_dropout": 0.0, "mask_time_prob": 0.0}
    model = wav2vec2.Wav2Vec2Model.from_pretrained(path, **options).train()
    ref = load_reference("Wav2Vec2Model", path, **options).train()
    inputs = {"input_values": audio(), "output_hidden_states": True}
    counts = set()
    for seed in range(6):
        torch.manual_seed(seed)
        ours = model(**inputs)
        torch.manual_seed(seed)
        theirs = ref(**inputs)
        counts.add(len(ours.hidden_states))
        assert_tensors_close(ours.last_hidden_state, theirs.last_hidden_state, f"seed {seed}")
        if theirs.hidden_states:
            assert len(ours.hidden_states) == len(theirs.hidden_states)
            for a, b in zip(ours.hidden_states, theirs.hidden_states):
                assert_tensors_close(a, b, f"seed {seed} hidden states")
        else:  # every layer skipped: the reference records nothing; we keep the encoder's input
            assert len(ours.hidden_states) == 1
    assert len(counts) > 1  # the seeds really dropped different numbers of layers


def test_freeze_helpers(ckpts):
    model = wav2vec2.Wav2Vec2ForCTC.from_pretrained(ckpts["group", "Wav2Vec2ForCTC"])
    model.freeze_feature_encoder()
    assert not any(p.requires_grad for p in model.wav2vec2.feature_extractor.parameters())
    assert model.lm_head.weight.requires_grad and model.wav2vec2.encoder.layer_norm.weight.requires_grad
    model.freeze_base_model()
    assert not any(p.requires_grad for p in model.wav2vec2.parameters()) and model.lm_head.weight.requires_grad


# -- loading variants -----------------------------------------------------------------------------


def _info_sets(info: dict) -> dict[str, set]:
    return {
        "missing_keys": set(info["missing_keys"]),
        "unexpected_keys": set(info["unexpected_keys"]),
        "mismatched_keys": {k for k, *_ in info["mismatched_keys"]},
    }


def test_old_weight_norm_keys(ckpts):
    """Checkpoints written before torch's weight-norm parametrization name the pair weight_g / weight_v."""
    path = ckpts["old_format"]
    assert "wav2vec2.encoder.pos_conv_embed.conv.weight_g" in load_file(path / "model.safetensors")
    ours, info = wav2vec2.Wav2Vec2ForCTC.from_pretrained(path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    new = wav2vec2.Wav2Vec2ForCTC.from_pretrained(ckpts["group", "Wav2Vec2ForCTC"])
    for key, tensor in new.state_dict().items():
        assert torch.equal(ours.state_dict()[key], tensor), key
    inputs = {"input_values": audio(), "attention_mask": padded_mask(), "output_hidden_states": True}
    assert_outputs_close(run(ours, **inputs), run(load_reference("Wav2Vec2ForCTC", path), **inputs), "old format")
    # The base model strips the prefix and still renames.
    base, info = wav2vec2.Wav2Vec2Model.from_pretrained(path, output_loading_info=True)
    assert info["missing_keys"] == [] and set(info["unexpected_keys"]) == {"lm_head.weight", "lm_head.bias"}
    assert torch.equal(base.encoder.pos_conv_embed.conv.weight, new.wav2vec2.encoder.pos_conv_embed.conv.weight)


@pytest.mark.parametrize("head", ["Wav2Vec2ForSequenceClassification", "weighted", "Wav2Vec2ForCTC"])
def test_base_checkpoint_into_head(ckpts, head):
    path = ckpts["stable", "Wav2Vec2Model"]
    overrides = HEADS[head][1]
    ours, info = ours_class(head).from_pretrained(path, output_loading_info=True, **overrides)
    ref, ref_info = getattr(transformers, ref_name(head)).from_pretrained(path, output_loading_info=True, **overrides)
    assert _info_sets(info) == _info_sets(ref_info)
    assert info["missing_keys"] and all(not k.startswith("wav2vec2.") for k in info["missing_keys"])
    assert all(not p.is_meta for p in ours.parameters())
    inputs = {"input_values": audio(), "output_hidden_states": True}
    assert_tensors_close(run(ours, **inputs).hidden_states, run(ref.eval(), **inputs).hidden_states, "hidden_states")
    if head == "weighted":
        assert torch.allclose(ours.layer_weights, torch.full((3,), 1 / 3))


@pytest.mark.parametrize("head", ["Wav2Vec2ForSequenceClassification", "Wav2Vec2ForCTC"])
def test_head_checkpoint_into_base(ckpts, head):
    path = ckpts["group", head]
    ours, info = wav2vec2.Wav2Vec2Model.from_pretrained(path, output_loading_info=True)
    ref, ref_info = transformers.Wav2Vec2Model.from_pretrained(path, output_loading_info=True)
    assert _info_sets(info) == _info_sets(ref_info)
    assert info["missing_keys"] == [] and info["unexpected_keys"]
    inputs = {"input_values": audio(), "attention_mask": padded_mask(), "output_hidden_states": True}
    assert_outputs_close(run(ours, **inputs), run(ref.eval(), **inputs), "head into base")


def test_without_spec_augment_vector(ckpts, tmp_path):
    """mask_time_prob = mask_feature_prob = 0: no masked_spec_embed in the model or the file."""
    build_reference("Wav2Vec2Model", ref_config(mask_time_prob=0.0), 40).save_pretrained(tmp_path / "ref")
    assert not any("masked_spec_embed" in k for k in load_file(tmp_path / "ref" / "model.safetensors"))
    ours, info = wav2vec2.Wav2Vec2Model.from_pretrained(tmp_path / "ref", output_loading_info=True)
    assert info["missing_keys"] == [] and ours.masked_spec_embed is None
    inputs = {"input_values": audio()}
    assert_outputs_close(run(ours, **inputs), run(load_reference("Wav2Vec2Model", tmp_path / "ref"), **inputs))
    with pytest.raises(InputError, match="mask_time_prob=0"):
        ours(audio(), mask_time_indices=torch.zeros(3, 59, dtype=torch.bool))
    # A checkpoint that has the vector loaded into a config without masking: reported, not fatal.
    _, info = wav2vec2.Wav2Vec2Model.from_pretrained(ckpts["group", "Wav2Vec2Model"], mask_time_prob=0.0,
                                                    output_loading_info=True)
    assert info["unexpected_keys"] == ["masked_spec_embed"]


@pytest.mark.parametrize("key", list(HEADS))
def test_save_round_trip(ckpts, tmp_path, key):
    path = ckpts["stable", key]
    inputs = {"input_values": audio(), "attention_mask": padded_mask(), "output_hidden_states": True}
    # ours saves -> the reference loads it; the file has exactly the keys the reference writes.
    ours = ours_class(key).from_pretrained(path)
    ours.save_pretrained(tmp_path / "ours")
    assert set(load_file(tmp_path / "ours" / "model.safetensors")) == set(load_file(path / "model.safetensors"))
    saved = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert saved["architectures"] == [ref_name(key)] and saved["model_type"] == "wav2vec2"
    ref, info = getattr(transformers, ref_name(key)).from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    expected = run(ours, **inputs)
    assert_outputs_close(run(ref.eval(), **inputs), expected, f"reference loads ours/{key}")
    # the reference saves what it loaded from ours -> we load it back, bit for bit.
    ref.save_pretrained(tmp_path / "ref")
    again, info = ours_class(key).from_pretrained(tmp_path / "ref", output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    assert_outputs_close(run(again, **inputs), expected, f"ours loads the reference's/{key}")
    for name, tensor in ours.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor), name


def test_old_format_saves_in_the_current_format(ckpts, tmp_path):
    ours = wav2vec2.Wav2Vec2ForCTC.from_pretrained(ckpts["old_format"])
    ours.save_pretrained(tmp_path)
    keys = set(load_file(tmp_path / "model.safetensors"))
    assert "wav2vec2." + WN_NEW + "0" in keys and not any("weight_g" in k for k in keys)
    ref = load_reference("Wav2Vec2ForCTC", tmp_path)
    inputs = {"input_values": audio()}
    assert_outputs_close(run(ours, **inputs), run(ref, **inputs), "resaved old format")


def test_fp32_checkpoint_loaded_as_bf16(ckpts):
    path = ckpts["stable", "Wav2Vec2ForSequenceClassification"]
    ours = wav2vec2.Wav2Vec2ForSequenceClassification.from_pretrained(path, dtype=torch.bfloat16)
    ref = load_reference("Wav2Vec2ForSequenceClassification", path, dtype=torch.bfloat16)
    assert ours.dtype == torch.bfloat16
    inputs = {"input_values": audio().to(torch.bfloat16), "attention_mask": padded_mask()}
    assert_outputs_close(run(ours, **inputs), run(ref, **inputs), "bf16", BF16_TOLERANCE)
    # float32 audio is cast to the model's dtype.
    assert run(ours, input_values=audio()).logits.dtype == torch.bfloat16


def test_auto_classes(ckpts):
    inputs = {"input_values": audio(), "attention_mask": padded_mask()}
    for auto_class, key in (
        (auto.AutoModel, "Wav2Vec2Model"),
        (auto.AutoModelForAudioClassification, "Wav2Vec2ForSequenceClassification"),
        (auto.AutoModelForCTC, "Wav2Vec2ForCTC"),
    ):
        path = ckpts["group", key]
        model = auto_class.from_pretrained(path)
        assert type(model) is ours_class(key)
        assert_outputs_close(run(model, **inputs), run(load_reference(ref_name(key), path), **inputs), key)
    assert type(auto.AutoConfig.from_pretrained(ckpts["group", "Wav2Vec2Model"])) is wav2vec2.Wav2Vec2Config
    config = wav2vec2.Wav2Vec2Config(**TINY)
    assert type(auto.AutoModelForCTC.from_config(config)) is wav2vec2.Wav2Vec2ForCTC
    # A head checkpoint through AutoModel gives the base model.
    assert type(auto.AutoModel.from_pretrained(ckpts["group", "Wav2Vec2ForCTC"])) is wav2vec2.Wav2Vec2Model


# -- config and initialisation ---------------------------------------------------------------------


def test_config_matches_reference_defaults():
    ours, ref = wav2vec2.Wav2Vec2Config().to_dict(), transformers.Wav2Vec2Config().to_dict()
    for key, value in ref.items():
        if key != "transformers_version":
            assert ours[key] == (list(value) if isinstance(value, tuple) else value), key
    assert wav2vec2.Wav2Vec2Config(conv_dim=(8, 8), conv_kernel=(3, 3), conv_stride=(2, 2)).num_feat_extract_layers == 2
    assert wav2vec2.Wav2Vec2Config().inputs_to_logits_ratio == 320
    tiny = ref_config()
    assert wav2vec2.Wav2Vec2Config(**TINY).output_hidden_size == tiny.output_hidden_size == 32


def test_saved_config_matches_reference(ckpts, tmp_path):
    path = ckpts["group", "Wav2Vec2ForCTC"]
    wav2vec2.Wav2Vec2ForCTC.from_pretrained(path).save_pretrained(tmp_path)
    ours = json.loads((tmp_path / "config.json").read_text())
    ref = json.loads((path / "config.json").read_text())
    ref.pop("transformers_version"), ours.pop("transformers_version", None)
    # Every key the reference writes, with its value; ours may also spell out library-wide defaults.
    assert {k: ours.get(k) for k in ref} == ref
    assert set(ours) - set(ref) <= set(COMMON_DEFAULTS)


@pytest.mark.parametrize("overrides, match", [
    ({"hidden_size": 30}, "multiple"),
    ({"num_conv_pos_embedding_groups": 3}, "num_conv_pos_embedding_groups"),
    ({"conv_kernel": (10, 3)}, "same length"),
    ({"conv_stride": (5, 0, 2)}, "conv_stride"),
    ({"feat_extract_norm": "batch"}, "feat_extract_norm"),
    ({"hidden_act": "nope"}, "hidden_act"),
    ({"feat_extract_activation": "nope"}, "feat_extract_activation"),
    ({"hidden_dropout": 1.5}, "probability"),
    ({"mask_time_prob": -0.1}, "probability"),
    ({"ctc_loss_reduction": "max"}, "ctc_loss_reduction"),
    ({"layer_norm_eps": 0}, "layer_norm_eps"),
])
def test_config_validation(overrides, match):
    with pytest.raises(ConfigError, match=match):
        wav2vec2.Wav2Vec2Config(**{**TINY, **overrides})


def test_unsupported_options_are_refused():
    with pytest.raises(ConfigError, match="add_adapter"):
        wav2vec2.Wav2Vec2ForCTC.from_config(wav2vec2.Wav2Vec2Config(**TINY, add_adapter=True))
    with pytest.raises(ConfigError, match="adapter_attn_dim"):
        wav2vec2.Wav2Vec2Model(wav2vec2.Wav2Vec2Config(**TINY, adapter_attn_dim=8))
    with pytest.raises(ConfigError, match="vocab_size"):
        wav2vec2.Wav2Vec2ForCTC(wav2vec2.Wav2Vec2Config(**{**TINY, "vocab_size": None}))
    # The config itself still loads: only building the model refuses.
    assert wav2vec2.Wav2Vec2Config(**TINY, add_adapter=True).add_adapter


def test_fresh_model_initialisation():
    config = wav2vec2.Wav2Vec2Config(**{**TINY, "hidden_size": 64, "conv_dim": (64, 64, 64), "num_labels": 2,
                                        "use_weighted_layer_sum": True})
    model = wav2vec2.Wav2Vec2ForSequenceClassification.from_config(config)
    base = model.wav2vec2
    conv = base.feature_extractor.conv_layers[1].conv
    assert abs(conv.weight.std().item() - (2 / (64 * 3)) ** 0.5) < 0.01  # Kaiming normal, fan-in
    projection = base.feature_projection.projection
    bound = 64 ** -0.5
    assert projection.weight.abs().max() <= bound and projection.bias.abs().max() <= bound
    assert abs(projection.weight.std().item() - bound / 3 ** 0.5) < 0.01  # uniform, not normal(0, 0.02)
    pos = base.encoder.pos_conv_embed.conv
    direction = pos.parametrizations["weight"].original1
    assert abs(direction.std().item() - 2 * (1 / (16 * 64)) ** 0.5) < 0.01
    assert torch.allclose(pos.weight, direction, atol=1e-6) and torch.equal(pos.bias, torch.zeros(64))
    assert 0 <= base.masked_spec_embed.min() and base.masked_spec_embed.max() <= 1
    assert abs(base.encoder.layers[0].attention.q_proj.weight.std().item() - 0.02) < 0.004
    assert torch.equal(base.encoder.layers[0].final_layer_norm.weight, torch.ones(64))
    assert torch.equal(model.layer_weights, torch.full((3,), 1 / 3))
    assert torch.equal(base.feature_extractor.conv_layers[0].layer_norm.weight, torch.ones(64))


# -- errors ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ctc_model(ckpts):
    return wav2vec2.Wav2Vec2ForCTC.from_pretrained(ckpts["group", "Wav2Vec2ForCTC"])


@pytest.mark.parametrize("kwargs, match", [
    ({"input_values": None}, "input_values is required"),
    ({"input_values": [[0.0] * 800]}, "torch.Tensor"),
    ({"input_values": torch.zeros(800)}, r"input_values\[None\]"),
    ({"input_values": torch.zeros(1, 1, 800)}, r"\(batch, samples\), got \(1, 1, 800\)"),
    ({"input_values": torch.zeros(2, 800, dtype=torch.int16)}, "float samples"),
    ({"input_values": torch.zeros(2, 39)}, "at least 40"),
    ({"input_values": torch.zeros(2, 800), "attention_mask": torch.ones(2, 799)}, r"shape \(2, 800\)"),
    ({"input_values": torch.zeros(2, 800), "attention_mask": [[1] * 800] * 2}, "attention_mask must be a tensor"),
    ({"input_values": torch.zeros(2, 800), "attention_mask": torch.tensor([[1] * 800, [1] * 20 + [0] * 780])},
     "Row 1 .* 20 real samples"),
    ({"input_values": torch.zeros(2, 800), "labels": torch.tensor([[1, 12]])}, "vocabulary has 12"),
    ({"input_values": torch.zeros(2, 800), "labels": torch.tensor([[1.0, 2.0]])}, "integer tensor"),
])
def test_bad_inputs_raise_input_error(ctc_model, kwargs, match):
    with pytest.raises(InputError, match=match):
        ctc_model(**kwargs)


def test_minimum_length_is_exact(ctc_model):
    assert wav2vec2.min_input_length(ctc_model.config) == 40
    assert run(ctc_model, input_values=audio(1, 40)).logits.shape == (1, 1, 12)


def test_bad_time_mask(ckpts):
    model = wav2vec2.Wav2Vec2Model.from_pretrained(ckpts["group", "Wav2Vec2Model"])
    with pytest.raises(InputError, match="mask_time_indices"):
        model(audio(), mask_time_indices=torch.zeros(3, 5, dtype=torch.bool))


def test_package_does_not_import_the_reference():
    code = (
        "import sys, leanformers.models.wav2vec2, leanformers.models.hubert; "
        "assert 'transformers' not in sys.modules, 'transformers was imported'"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)

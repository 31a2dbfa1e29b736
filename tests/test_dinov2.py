"""DINOv2: parity with the reference on tiny random checkpoints (MLP and SwiGLU blocks, layer
scale, resampled positions, mask token), the classifier and its losses, the backbone's stage
selection, both file layouts, save round trips, config defaults and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from parity import (
    BF16_TOLERANCE,
    assert_outputs_close,
    assert_tensors_close,
    load_reference,
    run,
    transformers,
)
from safetensors.torch import load_file

import leanformers.registry
from leanformers.errors import ConfigError, InputError
from leanformers.models import dinov2

TINY = dict(
    image_size=32,
    patch_size=8,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    mlp_ratio=2,
    initializer_range=0.2,
    layerscale_value=0.5,
)
STAGES = ["stem", "stage1", "stage2"]


def ref_config(**overrides) -> transformers.Dinov2Config:
    return transformers.Dinov2Config(**{**TINY, **overrides})


def pixels(batch: int = 2, height: int = 32, width: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def build_and_save(class_name: str, config, path: Path, seed: int, **save_kwargs) -> Path:
    """A reference model whose norms, biases, layer scales and mask token are all random too (their
    initial values are constants, which would hide a swapped or ignored weight)."""
    torch.manual_seed(seed)
    model = getattr(transformers, class_name)(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 1 or name.endswith("mask_token"):
                param.add_(torch.randn_like(param) * 0.3)
    model.save_pretrained(path, **save_kwargs)
    return path


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dinov2")
    specs = {
        "mlp": ("Dinov2ForImageClassification", ref_config(num_labels=3)),
        "swiglu": ("Dinov2ForImageClassification", ref_config(num_labels=3, use_swiglu_ffn=True, hidden_act="relu")),
        "regression": ("Dinov2ForImageClassification", ref_config(num_labels=1)),
        "base": ("Dinov2Model", ref_config(drop_path_rate=0.4)),
        "backbone": ("Dinov2Backbone", ref_config(out_features=["stem", "stage2"])),
    }
    paths = {
        key: build_and_save(name, config, root / key, seed) for seed, (key, (name, config)) in enumerate(specs.items())
    }
    paths["in_memory"] = build_and_save(
        "Dinov2Model", ref_config(use_swiglu_ffn=True), root / "in_memory", 10, save_original_format=False
    )
    return paths


# -- forward parity -------------------------------------------------------------------------------

SIZES = {
    "trained": (32, 32),
    "larger_square": (48, 48),
    "non_square": (40, 24),
    # The trained patch count on a non-square image: the reference resamples here too.
    "same_count_non_square": (32, 39),
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("ckpt, name", [
    ("mlp", "Dinov2ForImageClassification"),
    ("swiglu", "Dinov2ForImageClassification"),
    ("swiglu", "Dinov2Model"),
    ("base", "Dinov2Model"),
])
def test_forward_matches_reference(ckpts, ckpt, name, size):
    ours = getattr(dinov2, name).from_pretrained(ckpts[ckpt])
    ref = load_reference(name, ckpts[ckpt], eager=True)
    inputs = {"pixel_values": pixels(2, *SIZES[size]), "output_hidden_states": True, "output_attentions": True}
    ours_out = run(ours, **inputs)
    assert_outputs_close(ours_out, run(ref, **inputs), f"{ckpt}/{name}/{size}")
    assert len(ours_out.hidden_states) == len(ours_out.attentions) + 1 == TINY["num_hidden_layers"] + 1
    assert_outputs_close(run(ours, **inputs, return_dict=False), run(ref, **inputs, return_dict=False), "tuple")
    plain = run(ours, pixel_values=inputs["pixel_values"])
    assert plain.keys() == (["logits"] if "Classification" in name else ["last_hidden_state", "pooler_output"])


def test_pooler_is_the_normalised_cls_and_positions_resample(ckpts):
    model = dinov2.Dinov2Model.from_pretrained(ckpts["swiglu"])
    out = run(model, pixel_values=pixels())
    assert torch.equal(out.pooler_output, out.last_hidden_state[:, 0])
    embeddings = model.embeddings
    assert embeddings.positions_for(32, 32) is embeddings.position_embeddings
    same_count = embeddings.positions_for(32, 39)
    assert same_count is not embeddings.position_embeddings and same_count.shape == (1, 17, 32)
    assert embeddings.positions_for(48, 40).shape == (1, 31, 32)


def test_classifier_reads_cls_and_mean_patch(ckpts):
    model = dinov2.Dinov2ForImageClassification.from_pretrained(ckpts["mlp"])
    assert model.classifier.in_features == 2 * TINY["hidden_size"]
    hidden = run(model.dinov2, pixel_values=pixels()).last_hidden_state
    expected = model.classifier(torch.cat((hidden[:, 0], hidden[:, 1:].mean(1)), dim=1))
    assert_tensors_close(run(model, pixel_values=pixels()).logits, expected, "logits")


def test_drop_path_is_identity_in_eval_and_matches_in_training(ckpts):
    path = ckpts["base"]
    ours, ref = dinov2.Dinov2Model.from_pretrained(path), load_reference("Dinov2Model", path)
    assert ours.config.drop_path_rate == 0.4
    image = pixels()
    assert_outputs_close(run(ours, pixel_values=image), run(ref, pixel_values=image), "eval")
    ours.train(), ref.train()
    outs = []
    for model in (ours, ref):
        torch.manual_seed(3)  # the same per-sample draws, in the same order, as the reference
        outs.append(run(model, pixel_values=image))
    assert_outputs_close(outs[0], outs[1], "train")
    torch.manual_seed(4)
    assert not torch.allclose(run(ours, pixel_values=image).last_hidden_state, outs[0].last_hidden_state)


def test_masked_patches_match_reference(ckpts):
    path = ckpts["swiglu"]
    ours, ref = dinov2.Dinov2Model.from_pretrained(path), load_reference("Dinov2Model", path)
    assert ours.embeddings.mask_token.abs().sum() > 0
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[0, [1, 5, 6]] = True
    mask[1, 9] = True
    inputs = {"pixel_values": pixels(), "bool_masked_pos": mask}
    out = run(ours, **inputs)
    assert_outputs_close(out, run(ref, **inputs), "masked")
    assert not torch.allclose(out.last_hidden_state, run(ours, pixel_values=pixels()).last_hidden_state)


@pytest.mark.parametrize("eager", [True, False])
@pytest.mark.parametrize("name", ["Dinov2ForImageClassification", "Dinov2Backbone"])
def test_attention_mask_matches_reference(ckpts, name, eager):
    path = ckpts["swiglu"]
    ours, ref = getattr(dinov2, name).from_pretrained(path), load_reference(name, path, eager=eager)
    mask = torch.ones(2, 17, dtype=torch.long)
    mask[0, [3, 4, 10, 16]] = 0
    inputs = {"pixel_values": pixels(), "attention_mask": mask, "output_hidden_states": True}
    out = run(ours, **inputs)
    assert_outputs_close(out, run(ref, **inputs), f"{name} masked keys")
    unmasked = run(ours, pixel_values=pixels(), output_hidden_states=True)
    assert not torch.allclose(out.hidden_states[-1][0], unmasked.hidden_states[-1][0])
    assert_tensors_close(out.hidden_states[-1][1], unmasked.hidden_states[-1][1], "row without masking")
    with pytest.raises(InputError, match="attention_mask has shape"):
        ours(pixels(), attention_mask=mask[:, :16])


def test_integer_pixels_are_cast_like_the_reference(ckpts):
    path = ckpts["mlp"]
    image = torch.randint(0, 3, (2, 3, 32, 32), generator=torch.Generator().manual_seed(4))
    ours = dinov2.Dinov2ForImageClassification.from_pretrained(path)
    ref = load_reference("Dinov2ForImageClassification", path)
    assert_outputs_close(run(ours, pixel_values=image), run(ref, pixel_values=image), "integer pixels")


def test_bf16_interpolated(ckpts):
    path = ckpts["swiglu"]
    ours = dinov2.Dinov2Model.from_pretrained(path, dtype=torch.bfloat16)
    ref = load_reference("Dinov2Model", path, dtype=torch.bfloat16)
    assert ours.dtype == torch.bfloat16
    inputs = {"pixel_values": pixels(2, 48, 40)}
    assert_outputs_close(run(ours, **inputs), run(ref, **inputs), "bf16", BF16_TOLERANCE)


# -- losses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["single_label", "multi_label", "regression"])
def test_loss_matches_reference(ckpts, case):
    gen = torch.Generator().manual_seed(5)
    path = ckpts["regression"] if case == "regression" else ckpts["mlp"]
    labels = {
        "single_label": torch.tensor([2, 0]),
        "multi_label": torch.randint(0, 2, (2, 3), generator=gen).float(),
        "regression": torch.randn(2, generator=gen),
    }[case]
    ours = dinov2.Dinov2ForImageClassification.from_pretrained(path)
    ref = load_reference("Dinov2ForImageClassification", path)
    inputs = {"pixel_values": pixels(), "labels": labels, "output_hidden_states": True}
    ours_out = run(ours, **inputs)
    assert ours_out.keys()[0] == "loss"
    assert_outputs_close(ours_out, run(ref, **inputs), case)
    assert ours.config.problem_type == ref.config.problem_type


# -- backbone -------------------------------------------------------------------------------------

CHOICES = {
    "default": {},
    "negative_indices": {"out_indices": [-3, -1]},
    "stem_and_stage1": {"out_features": ["stem", "stage1"]},
    "all_tokens_no_norm": {"out_indices": [1, 2], "reshape_hidden_states": False, "apply_layernorm": False},
    "maps_no_norm": {"out_indices": [0, 2], "apply_layernorm": False},
}


@pytest.mark.parametrize("choice", CHOICES)
@pytest.mark.parametrize("size", [(32, 32), (48, 40)])
def test_backbone_matches_reference(ckpts, choice, size):
    """A classification checkpoint into the backbone, with each way of choosing stages."""
    kwargs = CHOICES[choice]
    ours, info = dinov2.Dinov2Backbone.from_pretrained(ckpts["swiglu"], output_loading_info=True, **kwargs)
    ref = load_reference("Dinov2Backbone", ckpts["swiglu"], eager=True, **kwargs)
    assert info["missing_keys"] == [] and set(info["unexpected_keys"]) == {"classifier.weight", "classifier.bias"}
    assert ours.stage_names == ref.stage_names == STAGES
    assert (ours.out_features, ours.out_indices) == (ref.out_features, list(ref.out_indices))
    assert ours.channels == ref.channels
    image = pixels(2, *size)
    out = run(ours, pixel_values=image)
    assert out.keys() == ["feature_maps"]
    reshaped = kwargs.get("reshape_hidden_states", True)
    grid = (size[0] // 8, size[1] // 8)
    for fmap in out.feature_maps:
        assert fmap.shape == ((2, 32, *grid) if reshaped else (2, 1 + grid[0] * grid[1], 32))
    assert_outputs_close(out, run(ref, pixel_values=image), choice)
    for extra in ({"output_hidden_states": True, "output_attentions": True}, {"return_dict": False}):
        assert_outputs_close(run(ours, pixel_values=image, **extra), run(ref, pixel_values=image, **extra), str(extra))


def test_backbone_checkpoint_and_stage_errors(ckpts):
    path = ckpts["backbone"]
    ours = dinov2.Dinov2Backbone.from_pretrained(path)
    ref = load_reference("Dinov2Backbone", path)
    assert ours.out_features == ["stem", "stage2"]
    assert_outputs_close(run(ours, pixel_values=pixels()), run(ref, pixel_values=pixels()), "backbone ckpt")
    base = dinov2.Dinov2Model.from_pretrained(path)  # backbone keys carry no prefix, like the base model's
    ref_base = load_reference("Dinov2Model", path)
    assert_outputs_close(run(base, pixel_values=pixels()), run(ref_base, pixel_values=pixels()))
    with pytest.raises(ConfigError, match="stage3"):
        dinov2.Dinov2Backbone.from_pretrained(path, out_features=["stage3"])
    with pytest.raises(ConfigError, match="out of range"):
        dinov2.Dinov2Config(**TINY, out_indices=[3])


# -- layouts and saving ---------------------------------------------------------------------------


def test_reference_in_memory_layout_loads(ckpts):
    path = ckpts["in_memory"]
    keys = set(load_file(path / "model.safetensors"))
    assert "encoder.layer.0.mlp.gate_proj.weight" in keys and "encoder.layer.0.attention.q_proj.weight" in keys
    ours, info = dinov2.Dinov2Model.from_pretrained(path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    ref = load_reference("Dinov2Model", path)
    assert_outputs_close(run(ours, pixel_values=pixels()), run(ref, pixel_values=pixels()))


@pytest.mark.parametrize("ckpt, name", [
    ("mlp", "Dinov2ForImageClassification"),
    ("swiglu", "Dinov2Model"),
    ("backbone", "Dinov2Backbone"),
])
def test_save_round_trip(ckpts, tmp_path, ckpt, name):
    inputs = {"pixel_values": pixels(2, 40, 40), "output_hidden_states": True}
    ours = getattr(dinov2, name).from_pretrained(ckpts[ckpt])
    ours.save_pretrained(tmp_path / "ours")
    saved = set(load_file(tmp_path / "ours" / "model.safetensors"))
    original = set(load_file(ckpts[ckpt] / "model.safetensors"))
    if name == "Dinov2Model" and ckpt == "swiglu":  # the classifier checkpoint's base, without prefix or head
        original = {k.removeprefix("dinov2.") for k in original if not k.startswith("classifier.")}
    assert saved == original
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["architectures"] == [name]
    ref, info = getattr(transformers, name).from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    expected = run(ours, **inputs)
    assert_outputs_close(run(ref.eval(), **inputs), expected, f"reference loads ours/{name}")
    ref.save_pretrained(tmp_path / "ref")
    again, info = getattr(dinov2, name).from_pretrained(tmp_path / "ref", output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    for key, tensor in ours.state_dict().items():
        assert torch.equal(again.state_dict()[key], tensor), key


@pytest.mark.skipif("dinov2" not in leanformers.registry.MODELS, reason="dinov2 is not in the registry yet")
def test_auto_classes(ckpts):
    from leanformers import auto

    path = ckpts["mlp"]
    head = auto.AutoModelForImageClassification.from_pretrained(path)
    assert type(head) is dinov2.Dinov2ForImageClassification
    ref = load_reference("Dinov2ForImageClassification", path)
    assert_outputs_close(run(head, pixel_values=pixels()), run(ref, pixel_values=pixels()))
    assert type(auto.AutoModel.from_pretrained(path)) is dinov2.Dinov2Model
    backbone = auto.AutoBackbone.from_pretrained(path, out_indices=[1])
    assert type(backbone) is dinov2.Dinov2Backbone and backbone.out_features == ["stage1"]
    assert type(auto.AutoConfig.from_pretrained(path)) is dinov2.Dinov2Config


# -- config, initialisation, errors ---------------------------------------------------------------


def test_config_matches_reference_defaults():
    for kwargs in ({}, {"num_hidden_layers": 3, "out_indices": [0, -1]}):
        ours, ref = dinov2.Dinov2Config(**kwargs).to_dict(), transformers.Dinov2Config(**kwargs).to_dict()
        for key, value in ref.items():
            if key not in ("transformers_version", "architectures"):
                assert json.loads(json.dumps(ours[key])) == json.loads(json.dumps(value)), key


def test_config_round_trips_through_the_reference(ckpts, tmp_path):
    config = dinov2.Dinov2Config.from_pretrained(ckpts["backbone"])
    assert config.out_features == ["stem", "stage2"] and config.out_indices == [0, 2]
    config.save_pretrained(tmp_path)
    ref = transformers.Dinov2Config.from_pretrained(tmp_path)
    for key in ("out_features", "stage_names", "layerscale_value", "mlp_ratio", "use_swiglu_ffn"):
        assert json.loads(json.dumps(getattr(ref, key))) == json.loads(json.dumps(getattr(config, key))), key


@pytest.mark.parametrize("overrides, match", [
    ({"hidden_size": 30}, "multiple"),
    ({"patch_size": 0}, "patch_size"),
    ({"patch_size": 64}, "larger"),
    ({"image_size": [32, 16]}, "square grid"),
    ({"hidden_act": "nope"}, "hidden_act"),
    ({"mlp_ratio": 0}, "mlp_ratio"),
    ({"drop_path_rate": 1.5}, "probability"),
    ({"use_swiglu_ffn": "yes"}, "use_swiglu_ffn"),
    ({"layer_norm_eps": 0}, "layer_norm_eps"),
    ({"num_hidden_layers": 0}, "num_hidden_layers"),
    ({"out_features": ["stage9"]}, "stage9"),
])
def test_config_validation(overrides, match):
    with pytest.raises(ConfigError, match=match):
        dinov2.Dinov2Config(**{**TINY, **overrides})


def test_fresh_model_initialisation():
    config = dinov2.Dinov2Config(**{**TINY, "hidden_size": 128, "num_attention_heads": 4, "initializer_range": 0.02})
    model = dinov2.Dinov2Model(config)
    layer = model.encoder.layer[0]
    assert torch.all(layer.layer_scale1.lambda1 == 0.5) and torch.all(model.embeddings.mask_token == 0)
    weight = layer.attention.attention.query.weight
    assert 0.018 < weight.std() < 0.022  # initializer_range; the reference truncates at +-2, far outside
    assert torch.all(layer.attention.attention.query.bias == 0)
    assert dinov2.Dinov2Model(dinov2.Dinov2Config(**TINY, use_mask_token=False)).embeddings.mask_token is None


@pytest.fixture(scope="module")
def head(ckpts):
    return dinov2.Dinov2ForImageClassification.from_pretrained(ckpts["mlp"])


@pytest.mark.parametrize("pixel_values, match", [
    (None, "pixel_values is required"),
    ([[0.0]], "torch.Tensor"),
    (torch.zeros(3, 32, 32), r"pixel_values\[None\]"),
    (torch.zeros(2, 1, 32, 32), r"has 1 channels.*num_channels=3"),
    (torch.zeros(0, 3, 32, 32), "empty"),
    (torch.zeros(2, 3, 4, 32), "smaller than one 8x8 patch"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.complex64), "real"),
])
def test_bad_pixels(head, pixel_values, match):
    with pytest.raises(InputError, match=match):
        head(pixel_values)


def test_bad_masks(ckpts):
    model = dinov2.Dinov2Model.from_pretrained(ckpts["swiglu"])
    with pytest.raises(InputError, match=r"\(2, 16\)"):
        model(pixels(), bool_masked_pos=torch.zeros(2, 15, dtype=torch.bool))
    plain = dinov2.Dinov2Model.from_pretrained(ckpts["swiglu"], use_mask_token=False)
    with pytest.raises(InputError, match="use_mask_token=True"):
        plain(pixels(), bool_masked_pos=torch.zeros(2, 16, dtype=torch.bool))

"""ConvNeXt: parity with the reference on tiny random checkpoints (with and without layer scale),
the classifier and its losses, the backbone's stage selection and per-stage norms, save round
trips, config defaults and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from parity import (
    assert_outputs_close,
    assert_tensors_close,
    load_reference,
    run,
    transformers,
)
from safetensors.torch import load_file

import leanformers.registry
from leanformers.errors import ConfigError, InputError
from leanformers.models import convnext

TINY = dict(
    hidden_sizes=[8, 16, 24],
    depths=[1, 2, 1],
    num_stages=3,
    patch_size=4,
    initializer_range=0.3,
    layer_scale_init_value=0.5,
    num_labels=3,
)
STAGES = ["stem", "stage1", "stage2", "stage3"]
CHANNELS = {"stem": 8, "stage1": 8, "stage2": 16, "stage3": 24}


def ref_config(**overrides) -> transformers.ConvNextConfig:
    return transformers.ConvNextConfig(**{**TINY, **overrides})


def images(batch: int = 2, height: int = 32, width: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def build_and_save(class_name: str, config, path: Path, seed: int) -> Path:
    """A reference model whose norms, biases and layer scales are random too (their initial values
    are constants, which would hide a swapped or ignored weight)."""
    torch.manual_seed(seed)
    model = getattr(transformers, class_name)(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 1:
                param.add_(torch.randn_like(param) * 0.3)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("convnext")
    specs = {
        "cls": ("ConvNextForImageClassification", ref_config()),
        "no_layer_scale": ("ConvNextForImageClassification", ref_config(layer_scale_init_value=0.0, hidden_act="relu")),
        "regression": ("ConvNextForImageClassification", ref_config(num_labels=1)),
        "base": ("ConvNextModel", ref_config(drop_path_rate=0.5, patch_size=2, layer_norm_eps=1e-5)),
        "backbone": ("ConvNextBackbone", ref_config(out_features=["stem", "stage2"])),
    }
    return {
        key: build_and_save(name, config, root / key, seed) for seed, (key, (name, config)) in enumerate(specs.items())
    }


# -- forward parity -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(32, 32), (40, 24), (16, 16), (37, 51)])
@pytest.mark.parametrize("ckpt, name", [
    ("cls", "ConvNextForImageClassification"),
    ("cls", "ConvNextModel"),
    ("no_layer_scale", "ConvNextForImageClassification"),
    ("base", "ConvNextModel"),
])
def test_forward_matches_reference(ckpts, ckpt, name, size):
    ours = getattr(convnext, name).from_pretrained(ckpts[ckpt])
    ref = load_reference(name, ckpts[ckpt])
    inputs = {"pixel_values": images(2, *size), "output_hidden_states": True}
    ours_out = run(ours, **inputs)
    assert_outputs_close(ours_out, run(ref, **inputs), f"{ckpt}/{name}/{size}")
    assert len(ours_out.hidden_states) == len(STAGES)
    assert_outputs_close(run(ours, **inputs, return_dict=False), run(ref, **inputs, return_dict=False), "tuple")
    plain = run(ours, pixel_values=inputs["pixel_values"])
    assert plain.keys() == (["logits"] if "Classification" in name else ["last_hidden_state", "pooler_output"])


def test_layer_scale_presence_follows_the_config(ckpts):
    scaled = convnext.ConvNextModel.from_pretrained(ckpts["cls"])
    plain = convnext.ConvNextModel.from_pretrained(ckpts["no_layer_scale"])
    assert scaled.encoder.stages[0].layers[0].layer_scale_parameter is not None
    assert plain.encoder.stages[0].layers[0].layer_scale_parameter is None
    stages = scaled.encoder.stages
    assert len(stages[0].downsampling_layer) == 0 and len(stages[1].downsampling_layer) == 2


def test_pooler_is_the_normalised_mean(ckpts):
    model = convnext.ConvNextModel.from_pretrained(ckpts["base"])
    assert model.layernorm.eps == 1e-5
    out = run(model, pixel_values=images())
    expected = model.layernorm(out.last_hidden_state.mean(dim=(-2, -1)))
    assert_tensors_close(out.pooler_output, expected, "pooler")


def test_drop_path_is_identity_in_eval_and_matches_in_training(ckpts):
    path = ckpts["base"]
    ours, ref = convnext.ConvNextModel.from_pretrained(path), load_reference("ConvNextModel", path)
    assert ours.config.drop_path_rate == 0.5
    rates = [layer.drop_path_rate for stage in ours.encoder.stages for layer in stage.layers]
    assert rates == pytest.approx([0.0, 0.5 / 3, 1.0 / 3, 0.5])
    image = images()
    assert_outputs_close(run(ours, pixel_values=image), run(ref, pixel_values=image), "eval")
    ours.train(), ref.train()
    outs = []
    for model in (ours, ref):
        torch.manual_seed(3)  # the same per-sample draws, in the same order, as the reference
        outs.append(run(model, pixel_values=image))
    assert_outputs_close(outs[0], outs[1], "train")
    torch.manual_seed(4)
    assert not torch.allclose(run(ours, pixel_values=image).last_hidden_state, outs[0].last_hidden_state)


# -- losses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["single_label", "multi_label", "regression"])
def test_loss_matches_reference(ckpts, case):
    gen = torch.Generator().manual_seed(5)
    path = ckpts["regression"] if case == "regression" else ckpts["cls"]
    labels = {
        "single_label": torch.tensor([2, 0]),
        "multi_label": torch.randint(0, 2, (2, 3), generator=gen).float(),
        "regression": torch.randn(2, generator=gen),
    }[case]
    ours = convnext.ConvNextForImageClassification.from_pretrained(path)
    ref = load_reference("ConvNextForImageClassification", path)
    inputs = {"pixel_values": images(), "labels": labels, "output_hidden_states": True}
    ours_out = run(ours, **inputs)
    assert ours_out.keys()[0] == "loss"
    assert_outputs_close(ours_out, run(ref, **inputs), case)
    assert ours.config.problem_type == ref.config.problem_type


def test_base_checkpoint_into_classifier(ckpts):
    path = ckpts["base"]
    ours, info = convnext.ConvNextForImageClassification.from_pretrained(path, output_loading_info=True)
    ref, ref_info = transformers.ConvNextForImageClassification.from_pretrained(path, output_loading_info=True)
    assert set(info["missing_keys"]) == set(ref_info["missing_keys"]) == {"classifier.weight", "classifier.bias"}
    inputs = {"pixel_values": images(), "output_hidden_states": True}
    assert_tensors_close(run(ours, **inputs).hidden_states, run(ref.eval(), **inputs).hidden_states, "hidden_states")


# -- backbone -------------------------------------------------------------------------------------

CHOICES = {
    "default": {},
    "negative_indices": {"out_indices": [-3, -1]},
    "stem_and_stage2": {"out_features": ["stem", "stage2"]},
    "all_indices_tuple": {"out_indices": (0, 1, 2, 3)},
}


@pytest.mark.parametrize("choice", CHOICES)
def test_backbone_matches_reference(ckpts, choice):
    """A classification checkpoint into the backbone (its stage norms are new: initialised alike,
    then copied from the reference so the comparison covers them), with each way of choosing stages."""
    kwargs = CHOICES[choice]
    ours, info = convnext.ConvNextBackbone.from_pretrained(ckpts["cls"], output_loading_info=True, **kwargs)
    ref = load_reference("ConvNextBackbone", ckpts["cls"], **kwargs)
    norms = {f"hidden_states_norms.{stage}.{p}" for stage in ref.out_features for p in ("weight", "bias")}
    assert set(info["missing_keys"]) == norms
    unused = {"classifier.weight", "classifier.bias", "convnext.layernorm.weight", "convnext.layernorm.bias"}
    assert set(info["unexpected_keys"]) == unused
    assert ours.stage_names == ref.stage_names == STAGES
    assert (ours.out_features, ours.out_indices) == (ref.out_features, list(ref.out_indices))
    assert ours.channels == ref.channels and ours.out_feature_channels == CHANNELS
    ref_state = ref.state_dict()
    for key in norms:  # fresh norms start at unit scale and zero shift in both libraries
        assert torch.equal(ours.state_dict()[key], ref_state[key]), key
    with torch.no_grad():
        for key in norms:
            ref_state[key].add_(torch.randn_like(ref_state[key]) * 0.3)
        ours.load_state_dict(ref.state_dict())
    image = images(2, 40, 48)
    out = run(ours, pixel_values=image)
    assert out.keys() == ["feature_maps"]
    assert [f.shape[1] for f in out.feature_maps] == ours.channels
    assert_outputs_close(out, run(ref, pixel_values=image), choice)
    for extra in ({"output_hidden_states": True}, {"return_dict": False}):
        assert_outputs_close(run(ours, pixel_values=image, **extra), run(ref, pixel_values=image, **extra), str(extra))


def test_backbone_checkpoint(ckpts):
    path = ckpts["backbone"]
    ours, info = convnext.ConvNextBackbone.from_pretrained(path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    assert list(ours.hidden_states_norms) == ["stem", "stage2"]
    ref = load_reference("ConvNextBackbone", path)
    assert_outputs_close(run(ours, pixel_values=images()), run(ref, pixel_values=images()))
    ours.out_features = ["stage1"]
    with pytest.raises(InputError, match="not built with"):
        ours(images())
    with pytest.raises(ConfigError, match="stage4"):
        convnext.ConvNextBackbone.from_pretrained(path, out_features=["stage4"])


# -- saving ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ckpt, name", [
    ("cls", "ConvNextForImageClassification"),
    ("no_layer_scale", "ConvNextForImageClassification"),
    ("base", "ConvNextModel"),
    ("backbone", "ConvNextBackbone"),
])
def test_save_round_trip(ckpts, tmp_path, ckpt, name):
    inputs = {"pixel_values": images(), "output_hidden_states": True}
    ours = getattr(convnext, name).from_pretrained(ckpts[ckpt])
    ours.save_pretrained(tmp_path / "ours")
    assert set(load_file(tmp_path / "ours" / "model.safetensors")) == set(load_file(ckpts[ckpt] / "model.safetensors"))
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["architectures"] == [name]
    ref, info = getattr(transformers, name).from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    expected = run(ours, **inputs)
    assert_outputs_close(run(ref.eval(), **inputs), expected, f"reference loads ours/{name}")
    ref.save_pretrained(tmp_path / "ref")
    again, info = getattr(convnext, name).from_pretrained(tmp_path / "ref", output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    for key, tensor in ours.state_dict().items():
        assert torch.equal(again.state_dict()[key], tensor), key


@pytest.mark.skipif("convnext" not in leanformers.registry.MODELS, reason="convnext is not in the registry yet")
def test_auto_classes(ckpts):
    from leanformers import auto

    path = ckpts["cls"]
    head = auto.AutoModelForImageClassification.from_pretrained(path)
    assert type(head) is convnext.ConvNextForImageClassification
    ref = load_reference("ConvNextForImageClassification", path)
    assert_outputs_close(run(head, pixel_values=images()), run(ref, pixel_values=images()))
    assert type(auto.AutoModel.from_pretrained(path)) is convnext.ConvNextModel
    backbone = auto.AutoBackbone.from_pretrained(path, out_indices=[1])
    assert type(backbone) is convnext.ConvNextBackbone and backbone.out_features == ["stage1"]
    assert type(auto.AutoConfig.from_pretrained(path)) is convnext.ConvNextConfig


# -- config, initialisation, errors ---------------------------------------------------------------


def test_config_matches_reference_defaults():
    for kwargs in ({}, {"depths": [1, 1], "hidden_sizes": [4, 8], "num_stages": 2, "out_indices": [0, -1]}):
        ours, ref = convnext.ConvNextConfig(**kwargs).to_dict(), transformers.ConvNextConfig(**kwargs).to_dict()
        for key, value in ref.items():
            if key not in ("transformers_version", "architectures"):
                assert json.loads(json.dumps(ours[key])) == json.loads(json.dumps(value)), key
    assert convnext.ConvNextConfig(num_hidden_layers=3, depths=[1] * 3, hidden_sizes=[4] * 3).num_stages == 3


def test_config_round_trips_through_the_reference(ckpts, tmp_path):
    config = convnext.ConvNextConfig.from_pretrained(ckpts["backbone"])
    assert config.out_features == ["stem", "stage2"] and config.out_indices == [0, 2]
    config.save_pretrained(tmp_path)
    ref = transformers.ConvNextConfig.from_pretrained(tmp_path)
    for key in ("out_features", "stage_names", "hidden_sizes", "depths", "num_stages", "layer_scale_init_value"):
        assert json.loads(json.dumps(getattr(ref, key))) == json.loads(json.dumps(getattr(config, key))), key


@pytest.mark.parametrize("overrides, match", [
    ({"depths": [1, 1]}, "one entry per stage"),
    ({"num_stages": 4}, "one entry per stage"),
    ({"hidden_sizes": [8, 0, 24]}, "positive integers"),
    ({"depths": "121"}, "depths"),
    ({"patch_size": 0}, "patch_size"),
    ({"hidden_act": "nope"}, "nope"),
    ({"drop_path_rate": -0.1}, "probability"),
    ({"layer_norm_eps": 0}, "layer_norm_eps"),
    ({"layer_scale_init_value": "big"}, "layer_scale_init_value"),
    ({"num_channels": 0}, "num_channels"),
    ({"out_indices": [5]}, "out of range"),
])
def test_config_validation(overrides, match):
    with pytest.raises(ConfigError, match=match):
        convnext.ConvNextConfig(**{**TINY, **overrides})


def test_fresh_model_initialisation():
    model = convnext.ConvNextModel(convnext.ConvNextConfig(**{**TINY, "initializer_range": 0.02}))
    layer = model.encoder.stages[1].layers[0]
    assert torch.all(layer.layer_scale_parameter == 0.5)
    assert 0.015 < layer.pwconv1.weight.std() < 0.025 and torch.all(layer.pwconv1.bias == 0)
    assert torch.all(layer.layernorm.weight == 1) and layer.layernorm.eps == 1e-6


@pytest.fixture(scope="module")
def head(ckpts):
    return convnext.ConvNextForImageClassification.from_pretrained(ckpts["cls"])


@pytest.mark.parametrize("pixel_values, match", [
    (None, "pixel_values is required"),
    ([[0.0]], "torch.Tensor"),
    (torch.zeros(3, 32, 32), r"pixel_values\[None\]"),
    (torch.zeros(2, 1, 32, 32), r"has 1 channels.*num_channels=3"),
    (torch.zeros(0, 3, 32, 32), "empty"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.long), "floating point"),
    (torch.zeros(2, 3, 15, 32), "at least 16x16 pixels"),
])
def test_bad_pixels(head, pixel_values, match):
    with pytest.raises(InputError, match=match):
        head(pixel_values)

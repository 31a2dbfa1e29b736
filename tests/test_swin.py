"""Swin: parity with the reference on tiny random checkpoints (model, classifier, backbone), the
backbone's stage choices, loading variants, round trips and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import make_hub_cache
from parity import (
    BF16_TOLERANCE,
    assert_outputs_close,
    assert_tensors_close,
    load_reference,
    run,
    transformers,
)

from leanformers.auto import AutoBackbone, AutoConfig, AutoModel, AutoModelForImageClassification
from leanformers.errors import ConfigError, InputError
from leanformers.models import swin
from leanformers.models.swin import SwinBackbone, SwinConfig, SwinForImageClassification, SwinModel

# 32x32 images, 4x4 patches: an 8x8 grid, then 4x4 after merging; stage 2 shifts its second block.
TINY = dict(
    image_size=32, patch_size=4, embed_dim=16, depths=[1, 2], num_heads=[2, 4], window_size=4, num_labels=3
)
# Absolute position embeddings, 2x2 patches and windows, three stages and other non-default choices.
ABSOLUTE = dict(
    image_size=32,
    patch_size=2,
    embed_dim=12,
    depths=[2, 2, 1],
    num_heads=[2, 3, 4],
    window_size=2,
    use_absolute_embeddings=True,
    qkv_bias=False,
    mlp_ratio=2.5,
    hidden_act="gelu_new",
    layer_norm_eps=1e-6,
    num_labels=2,
)
# (height, width): the config's size, not a multiple of the patch or window, non-square, larger.
SIZES = [(32, 32), (36, 36), (30, 44), (64, 64)]


def perturb(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Move every weight off its initial value (the reference zeroes the relative-position tables and
    sets norms to one), so that parity exercises every parameter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            scale = 0.5 if name.endswith(("relative_position_bias_table", "position_embeddings")) else 0.1
            param.add_(torch.randn(param.shape, generator=gen) * scale)
    return model


def build(class_name: str, seed: int, **config) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = getattr(transformers, class_name)(transformers.SwinConfig(**config))
    return perturb(model, seed).eval()


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """Reference-saved checkpoints, built once per session."""
    root = tmp_path_factory.mktemp("swin")
    specs = {
        "cls": ("SwinForImageClassification", TINY),
        "base": ("SwinModel", TINY),
        "backbone": ("SwinBackbone", {**TINY, "out_features": ["stem", "stage2"]}),
        "absolute": ("SwinForImageClassification", ABSOLUTE),
        "regression": ("SwinForImageClassification", {**TINY, "num_labels": 1}),
    }
    paths = {}
    for seed, (key, (class_name, config)) in enumerate(specs.items()):
        paths[key] = root / key
        build(class_name, seed, **config).save_pretrained(paths[key])
    return paths


def pixels(height: int = 32, width: int = 32, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def reference(class_name: str, path: Path, eager: bool = True, **kwargs):
    # A fresh reference model per input size: the reference remembers a shrunk window on its modules
    # after a small input, which would change its later results (leanformers decides per call).
    return load_reference(class_name, path, eager=eager, **kwargs)


# -- config ---------------------------------------------------------------------------------------


def _jsonable(value):
    return json.loads(json.dumps(value))


def test_config_defaults_and_derived_values_match_reference():
    for kwargs in ({}, TINY, ABSOLUTE):
        ours, ref = SwinConfig(**kwargs), transformers.SwinConfig(**kwargs)
        keys = set(SwinConfig.defaults) | {"hidden_size", "num_layers", "stage_names"}
        for key in sorted(keys):
            assert _jsonable(getattr(ours, key)) == _jsonable(getattr(ref, key)), key
    config = SwinConfig(**TINY)
    assert config.num_hidden_layers == 2 and config.num_attention_heads == [2, 4]
    assert config.stage_names == ["stem", "stage1", "stage2"]
    assert (config.out_features, config.out_indices) == (["stage2"], [2])


def test_config_json_round_trips_both_ways(ckpts, tmp_path):
    ours = SwinConfig.from_pretrained(ckpts["backbone"])
    assert ours.out_features == ["stem", "stage2"] and ours.out_indices == [0, 2]
    ours.save_pretrained(tmp_path)
    ref = transformers.SwinConfig.from_pretrained(tmp_path)
    for key in ("depths", "num_heads", "embed_dim", "window_size", "out_features", "out_indices", "stage_names"):
        assert _jsonable(getattr(ref, key)) == _jsonable(getattr(ours, key)), key
    # An override of one of the linked keys replaces the stored pair.
    assert SwinConfig.from_pretrained(ckpts["backbone"], out_indices=(1,)).out_features == ["stage1"]
    assert SwinConfig.from_pretrained(ckpts["backbone"], out_features=["stage2"]).out_indices == [2]
    assert AutoConfig.from_pretrained(ckpts["cls"]).model_type == "swin"


BAD_STAGES = [
    ({"out_indices": [3]}, "out of range"),
    ({"out_indices": [-4]}, "out of range"),
    ({"out_indices": [1, 1]}, "twice"),
    ({"out_indices": [1, -2]}, "twice"),
    ({"out_indices": [2, 1]}, "order"),
    ({"out_features": ["stage3"]}, "not stages"),
    ({"out_features": ["stage2", "stage1"]}, "order"),
    ({"out_features": ["stage1", "stage1"]}, "repeat"),
    ({"out_features": ["stage1"], "out_indices": [2]}, "different stages"),
    ({"out_features": "stage1"}, "list or tuple"),
]


@pytest.mark.parametrize("kwargs,message", BAD_STAGES)
def test_invalid_stage_choices_raise_config_error(kwargs, message, ckpts):
    with pytest.raises(ConfigError, match=message) as info:
        SwinConfig(**TINY, **kwargs)
    assert "stage" in str(info.value)
    # The reference refuses them too (some with an IndexError or its own strict-field error).
    with pytest.raises(Exception):
        transformers.SwinConfig(**TINY, **kwargs)
    # Through a checkpoint: the error names where the config came from.
    with pytest.raises(ConfigError, match=message):
        AutoBackbone.from_pretrained(ckpts["cls"], **kwargs)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"depths": [1, 2], "num_heads": [2]}, "one entry per stage"),
        ({"embed_dim": 10, "num_heads": [3, 4]}, "num_heads"),
        ({"depths": []}, "non-empty"),
        ({"window_size": 0}, "window_size"),
        ({"drop_path_rate": 1.5}, "probability"),
        ({"hidden_act": "nope"}, "activation"),
        ({"patch_size": 64}, "larger than image_size"),
        ({"image_size": [32]}, "pair"),
        ({"mlp_ratio": 0}, "mlp_ratio"),
    ],
)
def test_invalid_config_values(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SwinConfig(**{**TINY, **kwargs})


# -- model and classifier parity -------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_model_parity(ckpts, size):
    ours = SwinModel.from_pretrained(ckpts["base"])
    ref = reference("SwinModel", ckpts["base"])
    x = pixels(*size)
    full = dict(output_hidden_states=True, output_attentions=True)
    assert_outputs_close(run(ours, pixel_values=x, **full), run(ref, pixel_values=x, **full), f"model{size}")
    ref = reference("SwinModel", ckpts["base"], eager=False)  # the reference's default (SDPA) path
    assert_outputs_close(run(ours, pixel_values=x), run(ref, pixel_values=x), f"model{size}")


@pytest.mark.parametrize("size", SIZES)
def test_classification_parity(ckpts, size):
    ours = SwinForImageClassification.from_pretrained(ckpts["cls"])
    ref = reference("SwinForImageClassification", ckpts["cls"])
    x = pixels(*size, batch=3)
    full = dict(output_hidden_states=True, output_attentions=True)
    expected = run(ref, pixel_values=x, **full)
    got = run(ours, pixel_values=x, **full)
    assert_outputs_close(got, expected, f"classifier{size}")
    assert len(got.reshaped_hidden_states) == 3 and got.reshaped_hidden_states[0].shape[1] == 16
    assert_tensors_close(run(ours, pixel_values=x, return_dict=False), (expected.logits,), "classifier-tuple")
    assert list(run(ours, pixel_values=x, output_attentions=True).keys()) == ["logits", "attentions"]


def test_absolute_position_embeddings_and_interpolation(ckpts):
    ours = SwinForImageClassification.from_pretrained(ckpts["absolute"])
    full = dict(output_hidden_states=True, output_attentions=True)
    for size, interpolate in (((32, 32), False), ((32, 32), True), ((48, 48), True), ((32, 48), True)):
        ref = reference("SwinForImageClassification", ckpts["absolute"])
        x = pixels(*size)
        inputs = dict(pixel_values=x, interpolate_pos_encoding=interpolate, **full)
        assert_outputs_close(run(ours, **inputs), run(ref, **inputs), f"absolute{size}")
    with pytest.raises(InputError, match="interpolate_pos_encoding=True"):
        run(ours, pixel_values=pixels(48, 48))


def test_labels_give_the_reference_loss(ckpts):
    x = pixels(batch=4)
    cases = [
        ("cls", torch.tensor([0, 2, 1, 2])),
        ("cls", torch.tensor([[1.0, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0]])),
        ("regression", torch.tensor([0.5, -1.0, 2.0, 0.0])),
    ]
    for key, labels in cases:
        ours = SwinForImageClassification.from_pretrained(ckpts[key])
        ref = reference("SwinForImageClassification", ckpts[key])
        got, expected = run(ours, pixel_values=x, labels=labels), run(ref, pixel_values=x, labels=labels)
        assert_outputs_close(got, expected, f"loss-{key}")
        assert got[0] is got.loss
        assert ours.config.problem_type == ref.config.problem_type


def test_mask_token(ckpts):
    ours = SwinModel.from_pretrained(ckpts["base"], use_mask_token=True)
    ref = reference("SwinModel", ckpts["base"], use_mask_token=True)
    x = pixels()
    masked = torch.rand(2, 64, generator=torch.Generator().manual_seed(3)) > 0.5
    inputs = dict(pixel_values=x, bool_masked_pos=masked)
    assert_outputs_close(run(ours, **inputs), run(ref, **inputs), "masked")
    with pytest.raises(InputError, match="bool_masked_pos"):
        run(ours, pixel_values=x, bool_masked_pos=masked[:, :10])


def test_bf16(ckpts):
    ours = SwinForImageClassification.from_pretrained(ckpts["cls"], dtype=torch.bfloat16)
    ref = reference("SwinForImageClassification", ckpts["cls"], dtype=torch.bfloat16)
    x = pixels()
    assert ours.dtype == torch.bfloat16
    # float32 pixels are cast to the model's dtype.
    got, expected = run(ours, pixel_values=x), run(ref, pixel_values=x.to(torch.bfloat16))
    assert_outputs_close(got, expected, "bf16", tol=BF16_TOLERANCE)


# -- backbone -------------------------------------------------------------------------------------

BACKBONE_CASES = [
    ("cls", {}),
    ("cls", {"out_indices": (1,)}),
    ("cls", {"out_indices": (-1,)}),
    ("cls", {"out_indices": (-3, -1)}),
    ("cls", {"out_features": ["stem", "stage2"]}),
    ("base", {"out_indices": (0, 1, 2)}),
    ("backbone", {}),
    ("backbone", {"out_indices": (1,)}),
]


@pytest.mark.parametrize("key,kwargs", BACKBONE_CASES)
def test_backbone_parity(ckpts, key, kwargs):
    ours = SwinBackbone.from_pretrained(ckpts[key], **kwargs)
    # The backbone always partitions, so the reference keeps no per-size state: one model serves all sizes.
    ref = reference("SwinBackbone", ckpts[key], **kwargs)
    for attr in ("stage_names", "out_features", "out_indices", "channels"):
        assert list(getattr(ours, attr)) == list(getattr(ref, attr)), attr
    assert ours.out_feature_channels == ref.out_feature_channels
    assert ours.config.out_indices == ref.config.out_indices
    for size in ((32, 32), (36, 36), (16, 16)):
        x = pixels(*size)
        assert_outputs_close(run(ours, pixel_values=x), run(ref, pixel_values=x), f"backbone{size}")
        full = dict(output_hidden_states=True, output_attentions=True)
        assert_outputs_close(run(ours, pixel_values=x, **full), run(ref, pixel_values=x, **full), f"backbone{size}")
    maps = run(ours, pixel_values=pixels()).feature_maps
    assert [m.shape[1] for m in maps] == ours.channels


def test_backbone_checkpoint_keeps_its_norms(ckpts):
    # The reference writes a fresh SwinBackbone's embeddings/encoder without the "swin." prefix.
    keys = load_file(ckpts["backbone"] / "model.safetensors")
    assert "embeddings.norm.weight" in keys and "swin.layernorm.weight" in keys
    ours, info = SwinBackbone.from_pretrained(ckpts["backbone"], output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    assert set(ours.hidden_states_norms) == {"stem", "stage2"}
    # A classification checkpoint loads into the backbone; only its classifier is left over.
    _, info = SwinBackbone.from_pretrained(ckpts["cls"], output_loading_info=True)
    assert info["unexpected_keys"] == ["classifier.bias", "classifier.weight"]
    assert info["missing_keys"] == ["hidden_states_norms.stage2.bias", "hidden_states_norms.stage2.weight"]


def test_backbone_stage_setters(ckpts):
    ours = SwinBackbone.from_pretrained(ckpts["cls"])
    ours.out_indices = [-2]
    assert ours.out_features == ["stage1"] and ours.config.out_indices == [-2]
    with pytest.raises(ConfigError, match="not stages"):
        ours.out_features = ["stage7"]


def test_swin_tiny_backbone_shape(tmp_path):
    # The seed's example: swin-tiny, out_indices=(1,), one 224x224 image -> one (1, 96, 56, 56) map.
    # The reference's default config (swin-tiny) as it saves it; the override replaces its stored stages.
    transformers.SwinConfig().save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path, out_indices=(1,))
    tiny = (config.embed_dim, config.depths, config.num_heads, config.window_size)
    assert tiny == (96, [2, 2, 6, 2], [3, 6, 12, 24], 7)
    model = AutoBackbone.from_config(config).eval()
    assert isinstance(model, SwinBackbone)
    out = run(model, pixel_values=pixels(224, 224, batch=1))
    assert [tuple(m.shape) for m in out.feature_maps] == [(1, 96, 56, 56)]
    assert model.channels == [96] and model.out_features == ["stage1"]
    assert model.stage_names == ["stem", "stage1", "stage2", "stage3", "stage4"]


# -- auto classes and sources ------------------------------------------------------------------------


def test_auto_classes(ckpts):
    model = AutoModel.from_pretrained(ckpts["base"])
    assert type(model) is SwinModel
    classifier = AutoModelForImageClassification.from_pretrained(ckpts["cls"])
    assert type(classifier) is SwinForImageClassification
    ref = reference("SwinForImageClassification", ckpts["cls"], eager=False)
    assert_outputs_close(run(classifier, pixel_values=pixels()), run(ref, pixel_values=pixels()), "auto-cls")
    backbone = AutoBackbone.from_pretrained(ckpts["cls"], out_indices=(1,))
    assert type(backbone) is SwinBackbone and backbone.out_features == ["stage1"]
    # The reference's AutoBackbone asks the hub first, so compare against its concrete class.
    ref = reference("SwinBackbone", ckpts["cls"], out_indices=(1,))
    out = run(backbone, pixel_values=pixels())
    assert [tuple(m.shape) for m in out.feature_maps] == [(2, 16, 8, 8)]
    assert_outputs_close(out, run(ref, pixel_values=pixels()), "auto-backbone")
    # A backbone checkpoint loads as the base model (its norms left over), and a base one as a backbone.
    _, info = SwinModel.from_pretrained(ckpts["backbone"], output_loading_info=True)
    assert info["missing_keys"] == [] and all(k.startswith("hidden_states_norms.") for k in info["unexpected_keys"])
    _, info = SwinBackbone.from_pretrained(ckpts["base"], output_loading_info=True)
    assert info["unexpected_keys"] == [] and all(k.startswith("hidden_states_norms.") for k in info["missing_keys"])


def test_auto_backbone_from_offline_hub_cache(ckpts, tmp_path, monkeypatch):
    files = {name: ckpts["cls"] / name for name in ("config.json", "model.safetensors")}
    cache = make_hub_cache(tmp_path / "hub", "org/tiny-swin", files)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = AutoBackbone.from_pretrained("org/tiny-swin", out_indices=(1,))
    assert type(model) is SwinBackbone and model.channels == [16]
    ref = reference("SwinBackbone", ckpts["cls"], out_indices=(1,))
    assert_outputs_close(run(model, pixel_values=pixels()), run(ref, pixel_values=pixels()), "hub-backbone")


# -- saving and loading ---------------------------------------------------------------------------------


def test_save_round_trips_with_the_reference(ckpts, tmp_path):
    ours = SwinForImageClassification.from_pretrained(ckpts["cls"])
    ours.save_pretrained(tmp_path / "cls")
    saved = load_file(tmp_path / "cls" / "model.safetensors")
    assert set(saved) == set(load_file(ckpts["cls"] / "model.safetensors"))
    assert not any("relative_position_index" in key for key in saved)
    ref, info = transformers.SwinForImageClassification.from_pretrained(tmp_path / "cls", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    x = pixels(36, 36)
    assert_outputs_close(run(ours, pixel_values=x), run(ref.eval(), pixel_values=x), "saved-cls")
    again = SwinForImageClassification.from_pretrained(tmp_path / "cls")
    assert torch.equal(run(again, pixel_values=x).logits, run(ours, pixel_values=x).logits)

    backbone = SwinBackbone.from_pretrained(ckpts["cls"], out_indices=(0, 2))
    backbone.save_pretrained(tmp_path / "backbone")
    assert json.loads((tmp_path / "backbone" / "config.json").read_text())["out_indices"] == [0, 2]
    ref = transformers.SwinBackbone.from_pretrained(tmp_path / "backbone").eval()
    assert ref.out_features == ["stem", "stage2"]
    assert_outputs_close(run(backbone, pixel_values=x), run(ref, pixel_values=x), "saved-backbone")


def test_fresh_model_saves_what_the_reference_expects(tmp_path):
    model = SwinModel.from_config(SwinConfig(**TINY)).eval()
    attention = model.encoder.layers[1].blocks[1].attention.self
    assert not attention.relative_position_bias_table.any()
    ref = transformers.SwinModel(transformers.SwinConfig(**TINY))
    expected = ref.encoder.layers[1].blocks[1].attention.relative_position_bias.relative_position_index
    assert torch.equal(attention.relative_position_index, expected)
    model.save_pretrained(tmp_path)
    ref, info = transformers.SwinModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    x = pixels()
    assert_outputs_close(run(model, pixel_values=x), run(ref.eval(), pixel_values=x), "fresh")


@pytest.mark.parametrize("class_name,key", [("SwinForImageClassification", "cls"), ("SwinBackbone", "backbone")])
def test_checkpoints_in_the_references_in_memory_layout_load(ckpts, tmp_path, class_name, key):
    # save_original_format=False writes q_proj / o_proj / mlp.fc1 / relative_position_bias.* names.
    ref = reference(class_name, ckpts[key])
    ref.save_pretrained(tmp_path, save_original_format=False)
    assert any(".attention.q_proj." in k for k in load_file(tmp_path / "model.safetensors"))
    ours, info = getattr(swin, class_name).from_pretrained(tmp_path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    x = pixels(36, 36)
    assert_outputs_close(run(ours, pixel_values=x), run(ref, pixel_values=x), f"in-memory-{key}")


def test_window_choice_is_made_per_call(ckpts):
    # A 32x32 image gives stage 2 a 4x4 grid, one window: its shifted block does not shift. A later
    # 36x36 image (5x5 grid) must shift again, as a fresh reference model does.
    ours = SwinModel.from_pretrained(ckpts["base"])
    x = pixels(36, 36)
    run(ours, pixel_values=pixels(32, 32))
    assert_outputs_close(run(ours, pixel_values=x), run(reference("SwinModel", ckpts["base"]), pixel_values=x))


def test_older_checkpoints_with_a_saved_index_load_cleanly(ckpts, tmp_path):
    # Checkpoints written by older versions of the reference carry relative_position_index.
    tensors = load_file(ckpts["cls"] / "model.safetensors")
    model = SwinForImageClassification.from_pretrained(ckpts["cls"])
    for name, buffer in model.named_buffers():
        tensors[name] = buffer.clone()
    assert any(k.endswith("attention.self.relative_position_index") for k in tensors)
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    (tmp_path / "config.json").write_bytes((ckpts["cls"] / "config.json").read_bytes())
    loaded, info = SwinForImageClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    assert torch.equal(run(loaded, pixel_values=pixels()).logits, run(model, pixel_values=pixels()).logits)


# -- errors and training ----------------------------------------------------------------------------------


def test_bad_inputs_raise_input_error(ckpts):
    model = SwinForImageClassification.from_pretrained(ckpts["cls"])
    backbone = SwinBackbone.from_pretrained(ckpts["cls"])
    for target in (model, backbone):
        with pytest.raises(InputError, match="required"):
            target()
        with pytest.raises(InputError, match="torch.Tensor"):
            target([[0.0]])
        with pytest.raises(InputError, match=r"batch dimension"):
            target(pixels()[0])
        with pytest.raises(InputError, match=r"\(batch, 3, height, width\)"):
            target(torch.zeros(1, 4, 32, 32))
        with pytest.raises(InputError, match="floating point"):
            target(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(InputError, match="too small.*window_size=4.*25x25"):
        model(pixels(16, 16))
    run(model, pixel_values=pixels(25, 25))  # the smallest size the message names works
    run(backbone, pixel_values=pixels(8, 8))  # the backbone pads small grids instead
    with pytest.raises(InputError, match="mask token"):
        model.swin(pixels(), bool_masked_pos=torch.zeros(2, 64, dtype=torch.bool))


def test_training_mode_uses_drop_path_and_dropout(ckpts):
    model = SwinForImageClassification.from_pretrained(ckpts["cls"], drop_path_rate=0.5, hidden_dropout_prob=0.1)
    model.train()
    x = pixels(batch=4)
    torch.manual_seed(0)
    first = model(x, labels=torch.tensor([0, 1, 2, 0]))
    second = model(x).logits
    assert not torch.allclose(first.logits, second)
    first.loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    assert torch.equal(run(model, pixel_values=x).logits, run(model, pixel_values=x).logits)


def test_import_names():
    assert swin.__all__[:4] == ["SwinConfig", "SwinModel", "SwinForImageClassification", "SwinBackbone"]

"""ViT: parity with the reference on tiny random checkpoints, loading variants, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

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
from leanformers.errors import ConfigError, InputError, WeightsError
from leanformers.modeling.loading import rename_key
from leanformers.models import vit

TINY = dict(
    image_size=32,
    patch_size=8,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
)
HEADS = ["ViTModel", "ViTForImageClassification"]


def ref_config(**overrides):
    return transformers.ViTConfig(**{**TINY, **overrides})


def pixels(batch: int = 3, height: int = 32, width: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def file_key(key: str) -> str:
    """A key of the reference's in-memory layout (``layers.0.attention.q_proj``) as the file names it."""
    return rename_key(key, vit.ViTPreTrainedModel._conversion.renames)


def assert_same_parameters(ours: torch.nn.Module, ref: torch.nn.Module, keys: set[str]) -> None:
    """Our parameters equal the reference's exactly, for ``keys`` (named as in the files)."""
    ours_sd = ours.state_dict()
    ref_sd = {file_key(k): v for k, v in ref.state_dict().items()}
    assert keys
    for key in sorted(keys):
        assert torch.equal(ours_sd[key], ref_sd[key]), f"{key} differs from the reference"


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """Reference-saved checkpoints, built once per session."""
    root = tmp_path_factory.mktemp("vit")
    specs = {
        "ViTModel": ("ViTModel", ref_config()),
        "ViTForImageClassification": ("ViTForImageClassification", ref_config(num_labels=3)),
        "regression": ("ViTForImageClassification", ref_config(num_labels=1)),
        "multi_label": ("ViTForImageClassification", ref_config(num_labels=4)),
        "non_square": ("ViTModel", ref_config(image_size=[32, 24], pooler_output_size=20)),
    }
    paths = {}
    for seed, (key, (name, config)) in enumerate(specs.items()):
        paths[key] = root / key
        build_reference(name, config, seed).save_pretrained(paths[key])
    paths["bf16"] = root / "bf16"
    model = build_reference("ViTForImageClassification", ref_config(num_labels=3), 20)
    model.to(torch.bfloat16).save_pretrained(paths["bf16"])
    # The reference's own in-memory key layout, with a trained (non-zero) mask token.
    paths["new_layout"] = root / "new_layout"
    torch.manual_seed(21)
    model = transformers.ViTModel(ref_config(), use_mask_token=True).eval()
    with torch.no_grad():
        model.embeddings.mask_token.normal_()
    model.save_pretrained(paths["new_layout"], save_original_format=False)
    return paths


# -- forward parity -------------------------------------------------------------------------------


def _inputs(variant: str) -> dict:
    if variant == "plain":
        return {"pixel_values": pixels()}
    if variant == "hidden":
        return {"pixel_values": pixels(), "output_hidden_states": True}
    if variant == "attentions":
        return {"pixel_values": pixels(), "output_hidden_states": True, "output_attentions": True}
    if variant == "tuple":
        return {"pixel_values": pixels(), "output_hidden_states": True, "output_attentions": True, "return_dict": False}
    if variant == "interpolate":
        return {"pixel_values": pixels(2, 48, 40), "interpolate_pos_encoding": True, "output_hidden_states": True}
    if variant == "interpolate_same_size":
        return {"pixel_values": pixels(), "interpolate_pos_encoding": True}
    if variant == "interpolate_smaller":
        return {"pixel_values": pixels(2, 17, 30), "interpolate_pos_encoding": True, "output_attentions": True}
    raise AssertionError(variant)


VARIANTS = ["plain", "hidden", "attentions", "tuple", "interpolate", "interpolate_same_size", "interpolate_smaller"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name, kwargs", [
    ("ViTModel", {}),
    ("ViTModel", {"add_pooling_layer": False}),
    ("ViTForImageClassification", {}),
])
def test_forward_matches_reference(ckpts, name, kwargs, variant):
    inputs = _inputs(variant)
    ours = getattr(vit, name).from_pretrained(ckpts[name], **kwargs)
    # The reference returns attention weights only from its explicit ("eager") attention.
    ref = load_reference(name, ckpts[name], eager="output_attentions" in inputs, **kwargs)
    ours_out, ref_out = run(ours, **inputs), run(ref, **inputs)
    assert_outputs_close(ours_out, ref_out, f"{name}/{variant}")
    if name == "ViTModel" and not kwargs and not isinstance(ours_out, tuple):
        assert ours_out.pooler_output is not None


def test_non_square_image_and_pooler_width(ckpts):
    path = ckpts["non_square"]
    inputs = {"pixel_values": pixels(2, 32, 24), "output_hidden_states": True}
    ours_out = run(vit.ViTModel.from_pretrained(path), **inputs)
    assert_outputs_close(ours_out, run(load_reference("ViTModel", path), **inputs), "non-square")
    assert ours_out.pooler_output.shape == (2, 20)
    # The classifier is new (random) in both; the encoder's outputs must still agree.
    ours = vit.ViTForImageClassification.from_pretrained(path)
    ref = load_reference("ViTForImageClassification", path)
    assert_tensors_close(run(ours, **inputs).hidden_states, run(ref, **inputs).hidden_states, "non-square")


def test_masked_patches_match_reference(ckpts):
    path = ckpts["new_layout"]
    ours, info = vit.ViTModel.from_pretrained(path, use_mask_token=True, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    ref = load_reference("ViTModel", path, use_mask_token=True)
    assert_same_parameters(ours, ref, set(ours.state_dict()))
    mask = torch.zeros(3, 16, dtype=torch.bool)
    mask[0, :5] = True
    mask[2, 7::2] = True
    inputs = {"pixel_values": pixels(), "bool_masked_pos": mask, "output_hidden_states": True}
    ours_out = run(ours, **inputs)
    assert_outputs_close(ours_out, run(ref, **inputs), "masked")
    unmasked = run(ours, pixel_values=pixels(), output_hidden_states=True)
    assert not torch.equal(ours_out.hidden_states[0][0], unmasked.hidden_states[0][0])
    assert torch.equal(ours_out.hidden_states[0][1], unmasked.hidden_states[0][1])


def test_config_defaults_drive_outputs(ckpts):
    ours = vit.ViTForImageClassification.from_pretrained(
        ckpts["ViTForImageClassification"], output_hidden_states=True, return_dict=False
    )
    out = run(ours, pixel_values=pixels())
    assert isinstance(out, tuple) and len(out) == 2 and len(out[1]) == TINY["num_hidden_layers"] + 1


def test_integer_pixels_are_cast_like_the_reference(ckpts):
    path = ckpts["ViTForImageClassification"]
    image = torch.randint(0, 3, (2, 3, 32, 32), generator=torch.Generator().manual_seed(4))
    ours, ref = vit.ViTForImageClassification.from_pretrained(path), load_reference("ViTForImageClassification", path)
    assert_outputs_close(run(ours, pixel_values=image), run(ref, pixel_values=image), "uint pixels")


# -- losses ---------------------------------------------------------------------------------------


def _labels(case: str) -> tuple[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    if case == "single_label":
        return "ViTForImageClassification", torch.tensor([0, 2, 1])
    if case == "regression":
        return "regression", torch.randn(3, generator=gen)
    if case == "multi_label":
        return "multi_label", torch.randint(0, 2, (3, 4), generator=gen).float()
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["single_label", "regression", "multi_label"])
def test_loss_matches_reference(ckpts, case):
    key, labels = _labels(case)
    ours = vit.ViTForImageClassification.from_pretrained(ckpts[key])
    ref = load_reference("ViTForImageClassification", ckpts[key])
    inputs = {"pixel_values": pixels(), "labels": labels}
    ours_out, ref_out = run(ours, **inputs), run(ref, **inputs)
    assert ours_out.keys()[0] == "loss"
    assert_outputs_close(ours_out, ref_out, case)
    assert run(ours, **inputs, return_dict=False)[0] is not None
    assert ours.config.problem_type == ref.config.problem_type


def test_explicit_problem_type_is_respected(ckpts):
    path = ckpts["ViTForImageClassification"]
    inputs = {"pixel_values": pixels(), "labels": torch.rand(3, 3, generator=torch.Generator().manual_seed(6))}
    for problem in ("regression", "multi_label_classification"):
        ours = vit.ViTForImageClassification.from_pretrained(path, problem_type=problem)
        ref = load_reference("ViTForImageClassification", path, problem_type=problem)
        assert_outputs_close(run(ours, **inputs), run(ref, **inputs), problem)


def test_loss_backpropagates(ckpts):
    model = vit.ViTForImageClassification.from_pretrained(ckpts["ViTForImageClassification"])
    model.train()
    model(pixels(), labels=torch.tensor([0, 1, 2])).loss.backward()
    assert all(p.grad is not None for p in model.parameters())


# -- loading variants -----------------------------------------------------------------------------


def _ref_info(info: dict) -> dict[str, set]:
    return {
        "missing_keys": {file_key(k) for k in info["missing_keys"]},
        "unexpected_keys": {file_key(k) for k in info["unexpected_keys"]},
        "mismatched_keys": {file_key(k) for k, *_ in info["mismatched_keys"]},
    }


def _ours_info(info: dict) -> dict[str, set]:
    return {
        "missing_keys": set(info["missing_keys"]),
        "unexpected_keys": set(info["unexpected_keys"]),
        "mismatched_keys": {k for k, *_ in info["mismatched_keys"]},
    }


def test_base_checkpoint_into_head(ckpts):
    path = ckpts["ViTModel"]
    ours, ours_info = vit.ViTForImageClassification.from_pretrained(path, output_loading_info=True)
    ref, ref_info = transformers.ViTForImageClassification.from_pretrained(path, output_loading_info=True)
    assert _ours_info(ours_info) == _ref_info(ref_info)
    assert set(ours_info["missing_keys"]) == {"classifier.weight", "classifier.bias"}
    loaded = {"vit." + k for k in load_file(path / "model.safetensors")} & set(ours.state_dict())
    assert_same_parameters(ours, ref, loaded)
    assert torch.equal(ours.classifier.bias, torch.zeros(2))
    inputs = {"pixel_values": pixels(), "output_hidden_states": True}
    assert_tensors_close(run(ours, **inputs).hidden_states, run(ref.eval(), **inputs).hidden_states, "hidden_states")
    assert all(not p.is_meta for p in ours.parameters())


def test_head_checkpoint_into_base(ckpts):
    path = ckpts["ViTForImageClassification"]
    ours, ours_info = vit.ViTModel.from_pretrained(path, output_loading_info=True)
    ref, ref_info = transformers.ViTModel.from_pretrained(path, output_loading_info=True)
    assert _ours_info(ours_info) == _ref_info(ref_info)
    assert set(ours_info["missing_keys"]) == {"pooler.dense.weight", "pooler.dense.bias"}
    inputs = {"pixel_values": pixels(), "output_hidden_states": True}
    ours_out, ref_out = run(ours, **inputs), run(ref.eval(), **inputs)
    assert_tensors_close(ours_out.last_hidden_state, ref_out.last_hidden_state, "last_hidden_state")
    assert_tensors_close(ours_out.hidden_states, ref_out.hidden_states, "hidden_states")
    loaded = {k.removeprefix("vit.") for k in load_file(path / "model.safetensors")} & set(ours.state_dict())
    assert_same_parameters(ours, ref, loaded)
    # Without a pooler nothing is missing.
    _, info = vit.ViTModel.from_pretrained(path, add_pooling_layer=False, output_loading_info=True)
    assert info["missing_keys"] == [] and set(info["unexpected_keys"]) == {"classifier.weight", "classifier.bias"}


def test_reference_in_memory_layout_loads(ckpts):
    """Files the reference writes with save_original_format=False name keys its v5 way."""
    path = ckpts["new_layout"]
    assert "layers.0.attention.q_proj.weight" in load_file(path / "model.safetensors")
    ours, info = vit.ViTForImageClassification.from_pretrained(path, output_loading_info=True)
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias"}
    assert set(info["unexpected_keys"]) == {"embeddings.mask_token", "pooler.dense.weight", "pooler.dense.bias"}
    ref = load_reference("ViTModel", path)
    inputs = {"pixel_values": pixels(), "output_hidden_states": True}
    assert_tensors_close(run(ours, **inputs).hidden_states, run(ref, **inputs).hidden_states, "hidden_states")


def test_head_size_mismatch(ckpts):
    path = ckpts["ViTForImageClassification"]
    with pytest.raises(WeightsError, match="ignore_mismatched_sizes"):
        vit.ViTForImageClassification.from_pretrained(path, num_labels=5)
    ours, info = vit.ViTForImageClassification.from_pretrained(
        path, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True
    )
    ref, ref_info = transformers.ViTForImageClassification.from_pretrained(
        path, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True
    )
    assert _ours_info(info) == _ref_info(ref_info)
    assert ours.classifier.weight.shape == (5, TINY["hidden_size"]) and ours.config.num_labels == 5
    assert_same_parameters(ours, ref, {k for k in ours.state_dict() if not k.startswith("classifier.")})
    assert run(ours, pixel_values=pixels()).logits.shape == (3, 5)


def test_bf16_checkpoint(ckpts):
    path, name = ckpts["bf16"], "ViTForImageClassification"
    inputs = {"pixel_values": pixels(), "output_hidden_states": True}
    ours = vit.ViTForImageClassification.from_pretrained(path)  # dtype="auto": the checkpoint's
    ref = load_reference(name, path, dtype="auto")
    assert {p.dtype for p in ours.parameters()} == {torch.bfloat16} and ours.config.dtype == "bfloat16"
    assert_outputs_close(run(ours, **inputs), run(ref, **inputs), "bf16", BF16_TOLERANCE)
    inputs["pixel_values"] = pixels(2, 48, 40)
    inputs["interpolate_pos_encoding"] = True
    assert_outputs_close(run(ours, **inputs), run(ref, **inputs), "bf16 interpolated", BF16_TOLERANCE)
    ours32 = vit.ViTForImageClassification.from_pretrained(path, dtype=torch.float32)
    ref32 = load_reference(name, path, dtype=torch.float32)
    assert {p.dtype for p in ours32.parameters()} == {torch.float32}
    assert_outputs_close(run(ours32, **inputs), run(ref32, **inputs), "bf16 checkpoint as fp32")


def test_fp32_checkpoint_loaded_as_bf16(ckpts):
    path, name = ckpts["ViTModel"], "ViTModel"
    ours, ref = vit.ViTModel.from_pretrained(path, dtype=torch.bfloat16), load_reference(name, path, dtype=torch.bfloat16)
    assert ours.dtype == torch.bfloat16
    inputs = {"pixel_values": pixels()}  # float32 pixels: cast to the model's dtype, as the reference does
    assert_outputs_close(run(ours, **inputs), run(ref, **inputs), "bf16", BF16_TOLERANCE)


@pytest.mark.parametrize("name", HEADS)
def test_save_round_trip(ckpts, tmp_path, name):
    inputs = {"pixel_values": pixels(), "output_hidden_states": True}
    # ours saves -> the reference loads it.
    ours = getattr(vit, name).from_pretrained(ckpts[name])
    ours.save_pretrained(tmp_path / "ours")
    assert set(load_file(tmp_path / "ours" / "model.safetensors")) == set(load_file(ckpts[name] / "model.safetensors"))
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["architectures"] == [name]
    ref, info = getattr(transformers, name).from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    expected = run(ours, **inputs)
    assert_outputs_close(run(ref.eval(), **inputs), expected, f"reference loads ours/{name}")
    # the reference saves what it loaded from ours -> we load it back.
    ref.save_pretrained(tmp_path / "ref")
    again, info = getattr(vit, name).from_pretrained(tmp_path / "ref", output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    assert_outputs_close(run(again, **inputs), expected, f"ours loads the reference's/{name}")
    for key, tensor in ours.state_dict().items():
        assert torch.equal(again.state_dict()[key], tensor), key


def test_auto_classes(ckpts):
    path = ckpts["ViTForImageClassification"]
    inputs = {"pixel_values": pixels()}
    head = auto.AutoModelForImageClassification.from_pretrained(path)
    assert type(head) is vit.ViTForImageClassification
    assert_outputs_close(run(head, **inputs), run(load_reference("ViTForImageClassification", path), **inputs))
    base = auto.AutoModel.from_pretrained(ckpts["ViTModel"])
    assert type(base) is vit.ViTModel and base.pooler is not None
    assert_outputs_close(run(base, **inputs), run(load_reference("ViTModel", ckpts["ViTModel"]), **inputs))
    assert type(auto.AutoConfig.from_pretrained(path)) is vit.ViTConfig
    assert type(auto.AutoModelForImageClassification.from_config(vit.ViTConfig(**TINY))) is vit.ViTForImageClassification


# -- config and initialisation ---------------------------------------------------------------------


def test_config_matches_reference_defaults():
    ours, ref = vit.ViTConfig().to_dict(), transformers.ViTConfig().to_dict()
    for key, value in ref.items():
        if key != "transformers_version":
            assert ours[key] == value, key
    assert vit.ViTConfig(hidden_size=48).pooler_output_size == 48
    assert vit.ViTConfig(hidden_size=48, pooler_output_size=10).pooler_output_size == 10


@pytest.mark.parametrize("overrides, match", [
    ({"hidden_size": 30, "num_attention_heads": 4}, "multiple"),
    ({"patch_size": 0}, "patch_size"),
    ({"image_size": [32]}, "image_size"),
    ({"patch_size": 64, "image_size": 32}, "larger"),
    ({"hidden_act": "nope"}, "hidden_act"),
    ({"pooler_act": "nope"}, "pooler_act"),
    ({"hidden_dropout_prob": 2.0}, "probability"),
    ({"num_channels": 0}, "num_channels"),
])
def test_config_validation(overrides, match):
    with pytest.raises(ConfigError, match=match):
        vit.ViTConfig(**{**TINY, **overrides})


def test_fresh_model_initialisation():
    config = vit.ViTConfig(**{**TINY, "hidden_size": 256, "num_hidden_layers": 1, "intermediate_size": 256})
    model = vit.ViTForImageClassification.from_config(config)
    table = model.vit.embeddings.position_embeddings
    assert abs(table.std().item() - 0.02) < 0.003 and table.abs().max() <= 2.0
    assert abs(model.vit.encoder.layer[0].intermediate.dense.weight.std().item() - 0.02) < 0.003
    assert torch.equal(model.vit.encoder.layer[0].attention.attention.query.bias, torch.zeros(256))
    assert torch.equal(model.vit.layernorm.weight, torch.ones(256))
    masked = vit.ViTModel.from_config(config, use_mask_token=True)
    assert torch.equal(masked.embeddings.mask_token, torch.zeros(1, 1, 256))


# -- errors ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def head(ckpts):
    return vit.ViTForImageClassification.from_pretrained(ckpts["ViTForImageClassification"])


@pytest.mark.parametrize("pixel_values, match", [
    (None, "pixel_values is required"),
    ([[0.0]], "torch.Tensor"),
    (torch.zeros(3, 32, 32), r"pixel_values\[None\]"),
    (torch.zeros(2, 1, 32, 32), r"has 1 channels.*num_channels=3.*\(batch, 3, 32, 32\)"),
    (torch.zeros(0, 3, 32, 32), "empty"),
    (torch.zeros(2, 3, 48, 40), "interpolate_pos_encoding=True"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.complex64), "real"),
])
def test_bad_pixels(head, pixel_values, match):
    with pytest.raises(InputError, match=match):
        head(pixel_values)


def test_too_small_image_with_interpolation(head):
    with pytest.raises(InputError, match="smaller than one"):
        head(torch.zeros(1, 3, 4, 32), interpolate_pos_encoding=True)


def test_bad_masks(ckpts):
    plain = vit.ViTModel.from_pretrained(ckpts["ViTModel"])
    with pytest.raises(InputError, match="use_mask_token=True"):
        plain(pixels(), bool_masked_pos=torch.zeros(3, 16, dtype=torch.bool))
    masked = vit.ViTModel.from_pretrained(ckpts["ViTModel"], use_mask_token=True)
    with pytest.raises(InputError, match=r"\(3, 16\)"):
        masked(pixels(), bool_masked_pos=torch.zeros(3, 15, dtype=torch.bool))

"""SigLIP: parity with the reference on tiny random checkpoints (the full model, its towers, the
image classifier), config round trips, and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from parity import (
    assert_outputs_close,
    build_reference,
    load_reference,
    run,
    transformers,
)
from safetensors.torch import load_file
from test_clip import assert_init_like_reference, assert_nested_close

import leanformers
from leanformers.errors import ConfigError, InputError
from leanformers.models import siglip

VOCAB = 99
TEXT = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=12, pad_token_id=1, bos_token_id=97, eos_token_id=98)
VISION = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=30,
              patch_size=6)
FULL = dict(text_config=TEXT, vision_config=VISION)


def full_config(**overrides):
    return transformers.SiglipConfig(**{**FULL, **overrides})


def pixels(batch: int = 3, height: int = 30, width: int = 30, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def texts(batch: int = 3, seq: int = 9, seed: int = 2) -> dict:
    """Right-padded rows (SigLIP pools the last position, padded or not)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 90, (batch, seq), generator=gen)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[1, seq - 3:] = 0
    if batch > 2:
        mask[2, 4:] = 0
    ids[mask == 0] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _build(name: str, config, seed: int):
    model = build_reference(name, config, seed)
    with torch.no_grad():
        # The reference starts these at zero: set them so that both terms of the logits are exercised.
        if hasattr(model, "logit_scale"):
            model.logit_scale.fill_(1.2)
            model.logit_bias.fill_(-0.8)
    return model


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("siglip")
    specs = {
        "full": ("SiglipModel", full_config()),
        "SiglipTextModel": ("SiglipTextModel", transformers.SiglipTextConfig(**TEXT, projection_size=20)),
        "SiglipVisionModel": ("SiglipVisionModel", transformers.SiglipVisionConfig(**VISION)),
        "no_head": ("SiglipVisionModel", transformers.SiglipVisionConfig(**VISION, vision_use_head=False)),
        "SiglipForImageClassification": ("SiglipForImageClassification", full_config(num_labels=3)),
    }
    paths = {}
    for seed, (key, (name, config)) in enumerate(specs.items()):
        paths[key] = root / key
        _build(name, config, seed).save_pretrained(paths[key])
    return paths


@pytest.mark.parametrize("options", [
    {},
    {"return_loss": True},
    {"output_hidden_states": True, "output_attentions": True},
    {"return_loss": True, "output_hidden_states": True, "output_attentions": True, "return_dict": False},
])
def test_siglip_model_matches_reference(ckpts, options):
    ours = siglip.SiglipModel.from_pretrained(ckpts["full"])
    ref = load_reference("SiglipModel", ckpts["full"], eager="output_attentions" in options)
    inputs = {**texts(), "pixel_values": pixels(), **options}
    ours_out, ref_out = run(ours, **inputs), run(ref, **inputs)
    assert_nested_close(ours_out, ref_out, f"SiglipModel{options}")
    if not isinstance(ours_out, tuple):
        assert ours_out.vision_model_output.pooler_output.std() > 0.05


def test_features_and_sigmoid_loss(ckpts):
    ours = siglip.SiglipModel.from_pretrained(ckpts["full"])
    ref = load_reference("SiglipModel", ckpts["full"])
    assert_nested_close(run(ours.get_text_features, **texts()), run(ref.get_text_features, **texts()), "text")
    assert_nested_close(run(ours.get_image_features, pixel_values=pixels()),
                        run(ref.get_image_features, pixel_values=pixels()), "image")
    # pooled_only asks for the embeddings alone; SigLIP's pooling head reads every position anyway
    assert_nested_close(run(ours.get_image_features, pixel_values=pixels(), pooled_only=True),
                        run(ref.get_image_features, pixel_values=pixels()), "image, pooled_only")
    out = run(ours, **texts(), pixel_values=pixels(), return_loss=True)
    torch.testing.assert_close(
        out.logits_per_text, out.text_embeds @ out.image_embeds.t() * ours.logit_scale.exp() + ours.logit_bias
    )
    labels = 2 * torch.eye(3) - 1
    expected = -torch.nn.functional.logsigmoid(labels * out.logits_per_text).sum(-1).mean()
    torch.testing.assert_close(out.loss, expected)
    inputs = {"input_ids": texts(batch=2)["input_ids"], "pixel_values": pixels(4)}
    mixed = run(ours, **inputs)
    assert mixed.logits_per_image.shape == (4, 2)
    assert_nested_close(mixed, run(ref, **inputs), "2 texts x 4 images")
    with pytest.raises(InputError, match="as many texts as images"):
        run(ours, **inputs, return_loss=True)


def test_text_pools_the_last_position_through_the_head(ckpts):
    ours = siglip.SiglipTextModel.from_pretrained(ckpts["full"])
    out = run(ours, **texts())
    head = ours.text_model.head
    torch.testing.assert_close(out.pooler_output, head(out.last_hidden_state[:, -1]))


TOWERS = ["SiglipTextModel", "SiglipVisionModel"]


@pytest.mark.parametrize("source", ["own", "full", "no_head"])
@pytest.mark.parametrize("name", TOWERS)
def test_tower_matches_reference(ckpts, name, source):
    if source == "no_head" and name != "SiglipVisionModel":
        pytest.skip("the head option is the vision tower's")
    path = ckpts[name if source == "own" else source]
    ours, info = getattr(siglip, name).from_pretrained(path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    for options in ({}, {"output_hidden_states": True, "output_attentions": True}, {"return_dict": False}):
        ref = load_reference(name, path, eager="output_attentions" in options)
        inputs = {**(texts() if "Text" in name else {"pixel_values": pixels()}), **options}
        out = run(ours, **inputs)
        assert_outputs_close(out, run(ref, **inputs), f"{name}/{source}/{options}")
    if source == "no_head":
        assert run(ours, pixel_values=pixels()).pooler_output is None


def test_towers_from_full_checkpoint_equal_the_full_model(ckpts):
    out = run(siglip.SiglipModel.from_pretrained(ckpts["full"]), **texts(), pixel_values=pixels())
    text = run(siglip.SiglipTextModel.from_pretrained(ckpts["full"]), **texts())
    image = run(siglip.SiglipVisionModel.from_pretrained(ckpts["full"]), pixel_values=pixels())
    torch.testing.assert_close(text.pooler_output, out.text_model_output.pooler_output)
    torch.testing.assert_close(image.pooler_output, out.vision_model_output.pooler_output)


@pytest.mark.parametrize("size", [(42, 36), (36, 36), (30, 30), (12, 18)])
def test_interpolate_pos_encoding_matches_reference(ckpts, size):
    ours = siglip.SiglipModel.from_pretrained(ckpts["full"])
    ref = load_reference("SiglipModel", ckpts["full"])
    inputs = {**texts(), "pixel_values": pixels(3, *size), "interpolate_pos_encoding": True,
              "output_hidden_states": True}
    out = run(ours, **inputs)
    assert_nested_close(out, run(ref, **inputs), f"interpolate {size}")
    assert out.vision_model_output.last_hidden_state.shape[1] == (size[0] // 6) * (size[1] // 6)
    if size != (30, 30):
        with pytest.raises(InputError, match="interpolate_pos_encoding=True"):
            run(ours, **texts(), pixel_values=pixels(3, *size))


@pytest.mark.parametrize("labels", [None, torch.tensor([0, 2, 1]), torch.tensor([[1.0, 0, 1], [0, 0, 1], [1, 1, 0]])])
def test_image_classification_matches_reference(ckpts, labels):
    path = ckpts["SiglipForImageClassification"]
    ours = siglip.SiglipForImageClassification.from_pretrained(path)
    ref = load_reference("SiglipForImageClassification", path, eager=True)
    inputs = {"pixel_values": pixels(), "output_hidden_states": True, "output_attentions": True}
    if labels is not None:
        inputs["labels"] = labels
    out = run(ours, **inputs)
    assert_outputs_close(out, run(ref, **inputs), "classification")
    assert ours.config.problem_type == ref.config.problem_type


def test_image_classifier_from_a_siglip_checkpoint(ckpts):
    _, info = siglip.SiglipForImageClassification.from_pretrained(
        ckpts["full"], num_labels=4, output_loading_info=True)
    assert info["missing_keys"] == ["classifier.bias", "classifier.weight"]
    assert info["unexpected_keys"] == []


@pytest.mark.parametrize("name", ["SiglipModel", *TOWERS, "SiglipForImageClassification"])
def test_save_round_trips_through_the_reference(ckpts, tmp_path, name):
    source = ckpts["full" if name == "SiglipModel" else name]
    ours = getattr(siglip, name).from_pretrained(source)
    ours.save_pretrained(tmp_path)
    prefix = {"SiglipTextModel": "text_model.", "SiglipVisionModel": "vision_model."}.get(name, "")
    reference_keys = {key if key.startswith(prefix) else prefix + key for key in load_file(source / "model.safetensors")}
    assert set(load_file(tmp_path / "model.safetensors")) == reference_keys
    saved = json.loads((tmp_path / "config.json").read_text())
    if name in ("SiglipModel", "SiglipForImageClassification"):
        assert saved["vision_config"]["patch_size"] == 6 and saved["text_config"]["projection_size"] == 32
    ref, info = getattr(transformers, name).from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    inputs = {**texts(), "pixel_values": pixels()} if name == "SiglipModel" else (
        {"pixel_values": pixels()} if "Text" not in name else texts())
    assert_nested_close(run(ours, **inputs), run(ref.eval(), **inputs), f"saved {name}")


def test_config_defaults_equal_the_reference():
    ours, ref = siglip.SiglipConfig().to_dict(), transformers.SiglipConfig().to_dict()
    assert ours["initializer_factor"] == ref["initializer_factor"]
    for sub in ("text_config", "vision_config"):
        shared = [k for k in ours[sub] if k in ref[sub] and k not in ("dtype", "id2label", "label2id")]
        assert {k: ours[sub][k] for k in shared} == {k: ref[sub][k] for k in shared}
        own_keys = set(getattr(siglip, type(getattr(siglip.SiglipConfig(), sub)).__name__).defaults)
        assert own_keys <= set(ref[sub]), own_keys - set(ref[sub])
    assert siglip.SiglipTextConfig(hidden_size=64, num_attention_heads=4).projection_size == 64


def test_configs_read_reference_files(ckpts):
    config = siglip.SiglipConfig.from_pretrained(ckpts["full"])
    assert isinstance(config.vision_config, siglip.SiglipVisionConfig) and config.vision_config.image_size == 30
    text = siglip.SiglipTextConfig.from_pretrained(ckpts["full"])
    assert text.max_position_embeddings == 12 and text.model_type == "siglip_text_model"
    assert siglip.SiglipConfig.from_dict(json.loads(config.to_json_string())) == config


@pytest.mark.parametrize("kwargs, match", [
    ({"text_config": {"hidden_size": 30, "num_attention_heads": 4}}, "text_config: hidden_size"),
    ({"vision_config": {"patch_size": 64, "image_size": 32}}, "patch_size"),
    ({"vision_config": {"vision_use_head": "yes"}}, "vision_use_head"),
    ({"text_config": {"projection_size": -1}}, "projection_size"),
    ({"vision_config": 7}, "vision_config must be"),
])
def test_bad_configs_raise(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        siglip.SiglipConfig(**kwargs)


def test_wrong_inputs_raise(ckpts):
    model = siglip.SiglipModel.from_pretrained(ckpts["full"])
    good = {**texts(), "pixel_values": pixels()}
    cases = [
        ({"pixel_values": pixels(3, 32, 32)}, "trained on 30x30"),
        ({"pixel_values": torch.randn(3, 1, 30, 30)}, "channels"),
        ({"input_ids": None}, "input_ids is required"),
        ({"input_ids": torch.ones(3, 13, dtype=torch.long), "attention_mask": None}, "max_position_embeddings"),
        ({"attention_mask": torch.ones(2, 9)}, "attention_mask has shape"),
        ({"input_ids": good["input_ids"].float()}, "integer token ids"),
    ]
    for change, match in cases:
        with pytest.raises(InputError, match=match):
            run(model, **{**good, **change})
    narrow = siglip.SiglipModel(siglip.SiglipConfig(text_config={**TEXT, "projection_size": 16}, vision_config=VISION))
    with pytest.raises(ConfigError, match="projection_size"):
        run(narrow, **good)
    headless = siglip.SiglipModel(siglip.SiglipConfig(text_config=TEXT, vision_config={**VISION, "vision_use_head": False}))
    with pytest.raises(ConfigError, match="vision_use_head"):
        run(headless, **good)


@pytest.mark.skipif("siglip" not in leanformers.registry.MODELS, reason="siglip is not in the registry yet")
def test_auto_classes_load_siglip(ckpts):
    from leanformers import auto

    assert isinstance(auto.AutoModel.from_pretrained(ckpts["full"]), siglip.SiglipModel)
    assert isinstance(auto.AutoConfig.from_pretrained(ckpts["full"]), siglip.SiglipConfig)
    assert isinstance(auto.AutoModel.from_pretrained(ckpts["SiglipTextModel"]), siglip.SiglipTextModel)


@pytest.mark.parametrize("name", ["SiglipModel", "SiglipTextModel", "SiglipVisionModel", "SiglipForImageClassification"])
def test_fresh_weights_follow_the_reference_scheme(name):
    config = {"SiglipModel": FULL, "SiglipForImageClassification": {**FULL, "num_labels": 50}}.get(
        name, TEXT if "Text" in name else VISION)
    config_class = "SiglipConfig" if name in ("SiglipModel", "SiglipForImageClassification") else (
        "SiglipTextConfig" if "Text" in name else "SiglipVisionConfig")
    ours = getattr(siglip, name)(getattr(siglip, config_class)(**config))
    assert_init_like_reference(ours, build_reference(name, getattr(transformers, config_class)(**config)))


def test_missing_classifier_is_initialised_by_the_scheme(ckpts):
    model = siglip.SiglipForImageClassification.from_pretrained(ckpts["full"], num_labels=200)
    std = model.classifier.weight.std().item()
    assert abs(std - 32**-0.5) < 0.1 * 32**-0.5
    assert torch.equal(model.classifier.bias, torch.zeros(200))

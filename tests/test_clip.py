"""CLIP: parity with the reference on tiny random checkpoints (the full model, its towers, with and
without projections, the image classifier), config round trips, and errors."""

from __future__ import annotations

import json
from pathlib import Path

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

import leanformers
from leanformers.errors import ConfigError, InputError
from leanformers.models import clip

VOCAB = 99
EOS = 98
TEXT = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=16, projection_dim=24, initializer_factor=4.0, bos_token_id=97,
            eos_token_id=EOS, pad_token_id=1)
VISION = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=30,
              patch_size=6, projection_dim=24, initializer_range=0.3, initializer_factor=4.0)
# Raised init factors keep the outputs far from flat (a near-constant output would hide errors).
FULL = dict(text_config=TEXT, vision_config=VISION, projection_dim=24, initializer_factor=4.0,
            logit_scale_init_value=1.5)


def full_config(**overrides):
    return transformers.CLIPConfig(**{**FULL, **overrides})


def pixels(batch: int = 3, height: int = 30, width: int = 30, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def texts(batch: int = 3, seq: int = 9, seed: int = 2, eos: int = EOS) -> dict:
    """Right-padded rows, each with an end-of-text token before its padding (row 0 has two)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 90, (batch, seq), generator=gen)
    mask = torch.ones(batch, seq, dtype=torch.long)
    lengths = [seq, seq - 3, 4][:batch] + [seq] * max(0, batch - 3)
    for row, length in enumerate(lengths):
        ids[row, length - 1] = eos
        ids[row, length:] = 1
        mask[row, length:] = 0
    ids[0, 2] = eos
    return {"input_ids": ids, "attention_mask": mask}


def assert_nested_close(ours, ref, what: str) -> None:
    """Every field, including the towers' nested outputs (or nested tuples in the tuple form)."""
    if isinstance(ref, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(ref), what
        for i, (a, b) in enumerate(zip(ours, ref)):
            assert_nested_close(a, b, f"{what}[{i}]")
        return
    if isinstance(ref, torch.Tensor) or ref is None:
        assert_tensors_close(ours, ref, what)
        return
    assert list(ours.keys()) == list(ref.keys()), f"{what}: {list(ours.keys())} != {list(ref.keys())}"
    for key in ref:
        assert_nested_close(ours[key], ref[key], f"{what}.{key}")


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clip")
    text, vision = transformers.CLIPTextConfig(**TEXT), transformers.CLIPVisionConfig(**VISION)
    specs = {
        "full": ("CLIPModel", full_config()),
        "legacy_eos": ("CLIPModel", full_config(text_config={**TEXT, "eos_token_id": 2})),
        "CLIPTextModel": ("CLIPTextModel", text),
        "CLIPVisionModel": ("CLIPVisionModel", vision),
        "CLIPTextModelWithProjection": ("CLIPTextModelWithProjection", text),
        "CLIPVisionModelWithProjection": ("CLIPVisionModelWithProjection", vision),
        "CLIPForImageClassification": ("CLIPForImageClassification", full_config(num_labels=3)),
    }
    paths = {}
    for seed, (key, (name, config)) in enumerate(specs.items()):
        paths[key] = root / key
        build_reference(name, config, seed).save_pretrained(paths[key])
    return paths


# -- the full model -------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [
    {},
    {"return_loss": True},
    {"output_hidden_states": True, "output_attentions": True},
    {"return_loss": True, "output_hidden_states": True, "output_attentions": True, "return_dict": False},
])
def test_clip_model_matches_reference(ckpts, options):
    ours = clip.CLIPModel.from_pretrained(ckpts["full"])
    ref = load_reference("CLIPModel", ckpts["full"], eager="output_attentions" in options)
    inputs = {**texts(), "pixel_values": pixels(), **options}
    ours_out, ref_out = run(ours, **inputs), run(ref, **inputs)
    assert_nested_close(ours_out, ref_out, f"CLIPModel{options}")
    if "return_loss" in options and isinstance(ours_out, tuple):
        assert ours_out[0].ndim == 0
    if not isinstance(ours_out, tuple):
        # Far from flat: the logits tell the pairs apart.
        assert ours_out.logits_per_image.std() > 0.1


def test_features_match_reference(ckpts):
    ours = clip.CLIPModel.from_pretrained(ckpts["full"])
    ref = load_reference("CLIPModel", ckpts["full"])
    assert_nested_close(run(ours.get_text_features, **texts()), run(ref.get_text_features, **texts()), "text")
    assert_nested_close(run(ours.get_image_features, pixel_values=pixels()),
                        run(ref.get_image_features, pixel_values=pixels()), "image")
    features = run(ours.get_text_features, **texts()).pooler_output
    assert features.shape == (3, FULL["projection_dim"])
    image = run(ours.get_image_features, pixel_values=pixels(), return_dict=False)
    assert isinstance(image, tuple) and image[1].shape == (3, FULL["projection_dim"])


@pytest.mark.parametrize("size", [(30, 30), (42, 36)])
def test_pooled_only_image_features_match_reference(ckpts, size):
    """pooled_only runs the last layer for the class token alone: the same embeddings, no final states."""
    ours = clip.CLIPModel.from_pretrained(ckpts["full"])
    ref = load_reference("CLIPModel", ckpts["full"])
    options = {"pixel_values": pixels(4, *size), "interpolate_pos_encoding": size != (30, 30)}
    expected = run(ref.get_image_features, **options).pooler_output
    got = run(ours.get_image_features, **options, pooled_only=True)
    assert got.last_hidden_state is None, "the shortcut did not run"
    assert_tensors_close(got.pooler_output, expected, "pooled_only image features")
    full = run(ours.get_image_features, **options, pooled_only=True, output_hidden_states=True)
    assert full.last_hidden_state is not None and len(full.hidden_states) == VISION["num_hidden_layers"] + 1
    assert_tensors_close(full.pooler_output, expected, "pooled_only with hidden states (the full run)")


def test_batch_of_different_sizes_and_no_mask(ckpts):
    ours = clip.CLIPModel.from_pretrained(ckpts["full"])
    ref = load_reference("CLIPModel", ckpts["full"])
    inputs = {"input_ids": texts(batch=2)["input_ids"], "pixel_values": pixels(4)}
    out = run(ours, **inputs)
    assert out.logits_per_image.shape == (4, 2)
    assert_nested_close(out, run(ref, **inputs), "2 texts x 4 images")
    with pytest.raises(InputError, match="as many texts as images"):
        run(ours, **inputs, return_loss=True)


def test_loss_is_the_symmetric_cross_entropy(ckpts):
    ours = clip.CLIPModel.from_pretrained(ckpts["full"])
    out = run(ours, **texts(), pixel_values=pixels(), return_loss=True)
    targets = torch.arange(3)
    expected = (torch.nn.functional.cross_entropy(out.logits_per_text, targets)
                + torch.nn.functional.cross_entropy(out.logits_per_image, targets)) / 2
    torch.testing.assert_close(out.loss, expected)
    assert torch.allclose(out.logits_per_text, out.logits_per_image.t())
    scale = ours.logit_scale.exp()
    torch.testing.assert_close(out.logits_per_text, out.text_embeds @ out.image_embeds.t() * scale)


# -- text pooling ----------------------------------------------------------------------------------


def test_text_pools_at_the_first_end_of_text_token(ckpts):
    ours = clip.CLIPTextModel.from_pretrained(ckpts["full"])
    inputs = texts()
    out = run(ours, **inputs)
    # Row 0 holds the end-of-text id at positions 2 and 8: the first one counts.
    assert torch.equal(out.pooler_output[0], out.last_hidden_state[0, 2])
    assert torch.equal(out.pooler_output[1], out.last_hidden_state[1, 5])
    no_eos = inputs["input_ids"].clone()
    no_eos[2][no_eos[2] == EOS] = 5
    out = run(ours, input_ids=no_eos, attention_mask=inputs["attention_mask"])
    assert torch.equal(out.pooler_output[2], out.last_hidden_state[2, 0])
    ref = load_reference("CLIPTextModel", ckpts["full"])
    assert_outputs_close(out, run(ref, input_ids=no_eos, attention_mask=inputs["attention_mask"]), "no eos")


def test_legacy_eos_id_pools_at_the_highest_id(ckpts):
    path = ckpts["legacy_eos"]
    ours, ref = clip.CLIPModel.from_pretrained(path), load_reference("CLIPModel", path)
    inputs = texts(eos=EOS)
    inputs["input_ids"][1, 3] = 2  # the configured id itself means nothing under the legacy rule
    out = run(ours, **inputs, pixel_values=pixels(), output_hidden_states=True)
    assert_nested_close(out, run(ref, **inputs, pixel_values=pixels(), output_hidden_states=True), "legacy")
    text = run(clip.CLIPTextModel.from_pretrained(path), **inputs)
    highest = inputs["input_ids"].argmax(-1)
    assert torch.equal(text.pooler_output, text.last_hidden_state[torch.arange(3), highest])


# -- towers -----------------------------------------------------------------------------------------


TOWERS = ["CLIPTextModel", "CLIPVisionModel", "CLIPTextModelWithProjection", "CLIPVisionModelWithProjection"]


def _tower_inputs(name: str, **options) -> dict:
    return {**(texts() if "Text" in name else {"pixel_values": pixels()}), **options}


@pytest.mark.parametrize("source", ["own", "full"])
@pytest.mark.parametrize("name", TOWERS)
def test_tower_matches_reference(ckpts, name, source):
    path = ckpts[name if source == "own" else "full"]
    ours, info = getattr(clip, name).from_pretrained(path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["mismatched_keys"] == []
    assert info["unexpected_keys"] == []
    for options in ({}, {"output_hidden_states": True, "output_attentions": True}, {"return_dict": False}):
        ref = load_reference(name, path, eager="output_attentions" in options)
        inputs = _tower_inputs(name, **options)
        assert_outputs_close(run(ours, **inputs), run(ref, **inputs), f"{name}/{source}/{options}")


def test_towers_from_full_checkpoint_equal_the_full_model(ckpts):
    full = clip.CLIPModel.from_pretrained(ckpts["full"])
    out = run(full, **texts(), pixel_values=pixels())
    text = run(clip.CLIPTextModelWithProjection.from_pretrained(ckpts["full"]), **texts())
    image = run(clip.CLIPVisionModelWithProjection.from_pretrained(ckpts["full"]), pixel_values=pixels())
    torch.testing.assert_close(text.text_embeds, out.text_model_output.pooler_output)
    torch.testing.assert_close(image.image_embeds, out.vision_model_output.pooler_output)


@pytest.mark.parametrize("size", [(42, 36), (36, 36), (30, 30), (12, 18)])
def test_interpolate_pos_encoding_matches_reference(ckpts, size):
    ours = clip.CLIPModel.from_pretrained(ckpts["full"])
    ref = load_reference("CLIPModel", ckpts["full"])
    inputs = {**texts(), "pixel_values": pixels(3, *size), "interpolate_pos_encoding": True,
              "output_hidden_states": True}
    out = run(ours, **inputs)
    assert_nested_close(out, run(ref, **inputs), f"interpolate {size}")
    assert out.vision_model_output.last_hidden_state.shape[1] == (size[0] // 6) * (size[1] // 6) + 1
    if size != (30, 30):
        with pytest.raises(InputError, match="interpolate_pos_encoding=True"):
            run(ours, **texts(), pixel_values=pixels(3, *size))


# -- image classification --------------------------------------------------------------------------


@pytest.mark.parametrize("labels", [None, torch.tensor([0, 2, 1])])
def test_image_classification_matches_reference(ckpts, labels):
    path = ckpts["CLIPForImageClassification"]
    ours, ref = clip.CLIPForImageClassification.from_pretrained(path), load_reference(
        "CLIPForImageClassification", path, eager=True)
    inputs = {"pixel_values": pixels(), "output_hidden_states": True, "output_attentions": True}
    if labels is not None:
        inputs["labels"] = labels
    out = run(ours, **inputs)
    assert_outputs_close(out, run(ref, **inputs), "classification")
    assert out.logits.shape == (3, 3)


def test_image_classifier_from_a_clip_checkpoint(ckpts):
    ours, info = clip.CLIPForImageClassification.from_pretrained(
        ckpts["full"], num_labels=4, output_loading_info=True)
    assert info["missing_keys"] == ["classifier.bias", "classifier.weight"]
    assert info["unexpected_keys"] == []
    full = clip.CLIPModel.from_pretrained(ckpts["full"])
    hidden = run(ours, pixel_values=pixels(), output_hidden_states=True).hidden_states
    assert_tensors_close(hidden, run(full.get_image_features, pixel_values=pixels(),
                                     output_hidden_states=True).hidden_states, "classifier tower")


# -- saving and configs ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["CLIPModel", *TOWERS, "CLIPForImageClassification"])
def test_save_round_trips_through_the_reference(ckpts, tmp_path, name):
    source = ckpts["full" if name == "CLIPModel" else name]
    ours = getattr(clip, name).from_pretrained(source)
    ours.save_pretrained(tmp_path)
    # Files keep the tower's prefix (text_model., as the hub's files do); the reference's own saves
    # of a lone tower drop it, and it reads both.
    prefix = {"CLIPTextModel": "text_model.", "CLIPVisionModel": "vision_model."}.get(name, "")
    written = set(load_file(tmp_path / "model.safetensors"))
    assert written == {prefix + key for key in load_file(source / "model.safetensors")}
    saved = json.loads((tmp_path / "config.json").read_text())
    if name in ("CLIPModel", "CLIPForImageClassification"):
        assert isinstance(saved["text_config"], dict) and saved["vision_config"]["patch_size"] == 6
    ref, info = getattr(transformers, name).from_pretrained(tmp_path, output_loading_info=True)
    ref.eval()
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    inputs = {**texts(), "pixel_values": pixels()} if name == "CLIPModel" else (
        {"pixel_values": pixels()} if "Text" not in name else texts())
    assert_nested_close(run(ours, **inputs), run(ref, **inputs), f"saved {name}")


def test_config_defaults_equal_the_reference():
    ours, ref = clip.CLIPConfig().to_dict(), transformers.CLIPConfig().to_dict()
    for key in ("projection_dim", "logit_scale_init_value", "initializer_factor"):
        assert ours[key] == ref[key], key
    for sub in ("text_config", "vision_config"):
        ref_sub = ref[sub]
        for key, value in ours[sub].items():
            if key in ref_sub and key not in ("dtype", "architectures"):
                assert value == ref_sub[key], f"{sub}.{key}: {value!r} != {ref_sub[key]!r}"
        missing = {k for k in ref_sub if k not in ours[sub]} - {"transformers_version", "_name_or_path",
                                                               "output_attentions", "return_dict"}
        assert not {k for k in missing if not k.startswith(("_", "is_", "chunk", "tie_", "problem"))}, missing
        assert ours[sub]["model_type"] == ref_sub["model_type"]
    for name in ("CLIPTextConfig", "CLIPVisionConfig"):
        ours_one, ref_one = getattr(clip, name)().to_dict(), getattr(transformers, name)().to_dict()
        assert {k: ours_one[k] for k in ours_one if k in ref_one and k != "dtype"} == {
            k: ref_one[k] for k in ours_one if k in ref_one and k != "dtype"}


def test_configs_read_reference_files(ckpts):
    config = clip.CLIPConfig.from_pretrained(ckpts["full"])
    assert isinstance(config.text_config, clip.CLIPTextConfig) and config.text_config.eos_token_id == EOS
    assert config.vision_config.image_size == 30
    text = clip.CLIPTextConfig.from_pretrained(ckpts["full"])  # the nested entry of a full config
    assert text.hidden_size == 32 and text.model_type == "clip_text_model"
    assert clip.CLIPVisionConfig.from_pretrained(ckpts["CLIPVisionModel"]).patch_size == 6
    round_trip = clip.CLIPConfig.from_dict(json.loads(config.to_json_string()))
    assert round_trip == config
    # The reference's legacy keys: every value of the *_dict config wins, defaults included.
    legacy = clip.CLIPConfig(text_config={"hidden_size": 64, "num_attention_heads": 4},
                             text_config_dict={"num_hidden_layers": 3})
    ref_legacy = transformers.CLIPConfig(text_config={"hidden_size": 64, "num_attention_heads": 4},
                                         text_config_dict={"num_hidden_layers": 3})
    assert (legacy.text_config.hidden_size, legacy.text_config.num_hidden_layers) == (
        ref_legacy.text_config.hidden_size, ref_legacy.text_config.num_hidden_layers)


@pytest.mark.parametrize("kwargs, match", [
    ({"text_config": {"hidden_size": 30, "num_attention_heads": 4}}, "text_config: hidden_size"),
    ({"vision_config": {"patch_size": 64, "image_size": 32}}, "patch_size"),
    ({"vision_config": {"image_size": [32, 24]}}, "image_size"),
    ({"text_config": {"eos_token_id": [2, 3]}}, "eos_token_id"),
    ({"logit_scale_init_value": "big"}, "logit_scale_init_value"),
    ({"text_config": {"hidden_act": "nope"}}, "hidden_act"),
    ({"vision_config": {"attention_dropout": 2}}, "attention_dropout"),
    ({"text_config": "big"}, "text_config must be"),
    ({"projection_dim": 0}, "projection_dim"),
])
def test_bad_configs_raise(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        clip.CLIPConfig(**kwargs)


def test_sub_configs_stay_configs_and_eos_none_fails_at_pooling(ckpts):
    config = clip.CLIPConfig(**{**FULL, "text_config": None})
    config.text_config = {**TEXT, "eos_token_id": None}
    assert isinstance(config.text_config, clip.CLIPTextConfig)
    with pytest.raises(ConfigError, match="vision_config must be"):
        config.vision_config = 3
    model = clip.CLIPModel.from_pretrained(ckpts["full"], config=config)
    assert run(model.get_image_features, pixel_values=pixels()).pooler_output.shape == (3, 24)
    with pytest.raises(ConfigError, match="eos_token_id=None"):
        run(model.get_text_features, **texts())


@pytest.mark.parametrize("name", ["CLIPModel", "CLIPTextModel", "CLIPVisionModelWithProjection"])
def test_old_files_with_position_id_buffers_load_cleanly(ckpts, tmp_path, name):
    from safetensors.torch import save_file

    tensors = load_file(ckpts["full"] / "model.safetensors")
    tensors["text_model.embeddings.position_ids"] = torch.arange(16)[None]
    tensors["vision_model.embeddings.position_ids"] = torch.arange(26)[None]
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    (tmp_path / "config.json").write_text((ckpts["full"] / "config.json").read_text())
    _, info = getattr(clip, name).from_pretrained(tmp_path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}


def test_tower_config_of_a_broken_full_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "clip", "text_config": 3}))
    with pytest.raises(ConfigError, match="text_config"):
        clip.CLIPTextConfig.from_pretrained(tmp_path)


def test_wrong_inputs_raise(ckpts):
    model = clip.CLIPModel.from_pretrained(ckpts["full"])
    good = {**texts(), "pixel_values": pixels()}
    cases = [
        ({"pixel_values": pixels(3, 32, 32)}, "trained on 30x30"),
        ({"pixel_values": torch.randn(3, 4, 30, 30)}, "channels"),
        ({"pixel_values": torch.randn(3, 30, 30)}, "pixel_values must have shape"),
        ({"pixel_values": None}, "pixel_values is required"),
        ({"input_ids": None}, "input_ids is required"),
        ({"input_ids": good["input_ids"][0]}, "input_ids must have shape"),
        ({"input_ids": torch.ones(3, 17, dtype=torch.long), "attention_mask": None}, "max_position_embeddings"),
        ({"attention_mask": torch.ones(3, 4)}, "attention_mask has shape"),
        ({"input_ids": torch.full((3, 9), VOCAB)}, "input_ids holds ids"),
        ({"position_ids": torch.zeros(2, 9, dtype=torch.long)}, "position_ids"),
    ]
    for change, match in cases:
        with pytest.raises(InputError, match=match):
            run(model, **{**good, **change})
    with pytest.raises(InputError, match="smaller than one"):
        run(model, **{**good, "pixel_values": pixels(3, 5, 30)}, interpolate_pos_encoding=True)


# -- Auto classes (once the registry names CLIP) ------------------------------------------------


@pytest.mark.skipif("clip" not in leanformers.registry.MODELS, reason="clip is not in the registry yet")
def test_auto_classes_load_clip(ckpts):
    from leanformers import auto

    model = auto.AutoModel.from_pretrained(ckpts["full"])
    assert isinstance(model, clip.CLIPModel)
    assert isinstance(auto.AutoConfig.from_pretrained(ckpts["full"]), clip.CLIPConfig)
    assert isinstance(auto.AutoModel.from_pretrained(ckpts["CLIPTextModel"]), clip.CLIPTextModel)
    assert isinstance(auto.AutoModel.from_pretrained(ckpts["CLIPVisionModel"]), clip.CLIPVisionModel)


def test_left_padded_text_matches_reference(ckpts):
    """Left padding leaves the first padded queries no key to see under causal order; the real
    positions, and the pooled end-of-text state, must still match."""
    ours, ref = clip.CLIPTextModel.from_pretrained(ckpts["full"]), load_reference("CLIPTextModel", ckpts["full"])
    ids = torch.randint(3, 90, (2, 8), generator=torch.Generator().manual_seed(3))
    ids[:, -1] = EOS
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, :3] = 0
    ours_out, ref_out = run(ours, input_ids=ids, attention_mask=mask), run(ref, input_ids=ids, attention_mask=mask)
    assert_tensors_close(ours_out.pooler_output, ref_out.pooler_output, "pooled")
    real = mask.bool()
    assert_tensors_close(ours_out.last_hidden_state[real], ref_out.last_hidden_state[real], "real positions")
    assert torch.isfinite(ours_out.last_hidden_state).all()


def assert_init_like_reference(ours: torch.nn.Module, ref: torch.nn.Module) -> None:
    """A freshly built model's weights spread as the reference's do (per tensor, within sampling noise)."""
    ref_state = ref.state_dict()
    for key, tensor in ours.state_dict().items():
        ref_tensor = ref_state[key] if key in ref_state else ref_state[key.split(".", 1)[1]]
        if tensor.numel() == 1:
            assert torch.equal(tensor.reshape(()), ref_tensor.reshape(())), key
            continue
        ours_std, ref_std = tensor.float().std().item(), ref_tensor.float().std().item()
        assert abs(ours_std - ref_std) <= 0.25 * ref_std + 1e-3, f"{key}: std {ours_std:.4f} vs {ref_std:.4f}"


@pytest.mark.parametrize("name", ["CLIPModel", "CLIPTextModelWithProjection", "CLIPVisionModelWithProjection",
                                  "CLIPForImageClassification"])
def test_fresh_weights_follow_the_reference_scheme(name):
    config = {"CLIPModel": FULL, "CLIPForImageClassification": {**FULL, "num_labels": 50}}.get(
        name, TEXT if "Text" in name else VISION)
    config_class = "CLIPConfig" if name in ("CLIPModel", "CLIPForImageClassification") else (
        "CLIPTextConfig" if "Text" in name else "CLIPVisionConfig")
    ours = getattr(clip, name)(getattr(clip, config_class)(**config))
    assert_init_like_reference(ours, build_reference(name, getattr(transformers, config_class)(**config)))

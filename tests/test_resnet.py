"""ResNet: parity with the reference on tiny random checkpoints (both layer types), the backbone's
stage selection, BatchNorm statistics through load and save, the Auto classes, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import make_hub_cache
from parity import (
    BF16_TOLERANCE,
    assert_outputs_close,
    assert_tensors_close,
    load_reference,
    run,
    state_dicts_equal,
    transformers,
)

from leanformers.auto import AutoBackbone, AutoConfig, AutoModel, AutoModelForImageClassification
from leanformers.errors import ConfigError, InputError, WeightsError
from leanformers.models import resnet

TINY = dict(embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 2, 1], num_labels=3)
# Both layer types, both downsampling switches, and a non-ReLU hidden_act (which the reference
# applies only in the stem and after each residual sum; inner activations stay ReLU).
VARIANTS = {
    "basic": dict(layer_type="basic"),
    "bottleneck": dict(layer_type="bottleneck"),
    "bottleneck_downsample_gelu": dict(
        layer_type="bottleneck", downsample_in_first_stage=True, downsample_in_bottleneck=True, hidden_act="gelu"
    ),
    "basic_downsample": dict(layer_type="basic", downsample_in_first_stage=True),
}
STAGES = ["stem", "stage1", "stage2", "stage3", "stage4"]
CHANNELS = {"stem": 8, "stage1": 8, "stage2": 16, "stage3": 24, "stage4": 32}


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """These convolutions are tiny: a second intra-op thread only adds synchronisation, which costs
    far more than the arithmetic on a busy machine (40x here). Restored for the other test files."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def ref_config(variant: str = "bottleneck", **overrides) -> transformers.ResNetConfig:
    return transformers.ResNetConfig(**{**TINY, **VARIANTS[variant], **overrides})


def randomise_batchnorm(model: torch.nn.Module, seed: int) -> None:
    """Give every BatchNorm non-trivial affine weights and running statistics, so that loading (or
    ignoring) them shows in the outputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.2)
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
                module.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                module.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=gen)))


def build_and_save(class_name: str, config, path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = getattr(transformers, class_name)(config).eval()
    randomise_batchnorm(model, seed)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """Reference-saved checkpoints: a classifier per variant, plus a base model and a backbone."""
    root = tmp_path_factory.mktemp("resnet")
    paths = {}
    for seed, variant in enumerate(VARIANTS):
        paths[variant] = build_and_save("ResNetForImageClassification", ref_config(variant), root / variant, seed)
    paths["base"] = build_and_save("ResNetModel", ref_config("basic"), root / "base", 10)
    paths["backbone"] = build_and_save(
        "ResNetBackbone", ref_config("bottleneck", out_features=["stem", "stage2"]), root / "backbone", 11
    )
    paths["regression"] = build_and_save(
        "ResNetForImageClassification", ref_config("basic", num_labels=1), root / "regression", 12
    )
    return paths


def images(batch: int = 2, size: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


# -- forward parity -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["plain", "hidden_states", "tuple"])
@pytest.mark.parametrize("name", ["ResNetModel", "ResNetForImageClassification"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_matches_reference(ckpts, variant, name, mode):
    inputs = {"pixel_values": images()}
    if mode != "plain":
        inputs["output_hidden_states"] = True
    if mode == "tuple":
        inputs["return_dict"] = False
    ours = getattr(resnet, name).from_pretrained(ckpts[variant])
    ref = load_reference(name, ckpts[variant])
    ours_out, ref_out = run(ours, **inputs), run(ref, **inputs)
    assert_outputs_close(ours_out, ref_out, f"{variant}/{name}/{mode}")
    if mode == "hidden_states":
        assert len(ours_out.hidden_states) == len(STAGES)


def test_odd_image_sizes_and_batch_of_one(ckpts):
    ours = resnet.ResNetModel.from_pretrained(ckpts["bottleneck_downsample_gelu"])
    ref = load_reference("ResNetModel", ckpts["bottleneck_downsample_gelu"])
    for size, batch in ((37, 1), (64, 3), (7, 2)):
        pixels = images(batch, size, seed=size)
        assert_outputs_close(run(ours, pixel_values=pixels), run(ref, pixel_values=pixels), f"{size}x{size}")


def test_base_checkpoint_into_classifier(ckpts):
    path = ckpts["base"]
    ours, info = resnet.ResNetForImageClassification.from_pretrained(path, output_loading_info=True)
    ref, ref_info = transformers.ResNetForImageClassification.from_pretrained(path, output_loading_info=True)
    assert set(info["missing_keys"]) == set(ref_info["missing_keys"]) == {"classifier.1.weight", "classifier.1.bias"}
    assert info["unexpected_keys"] == [] and not ours.training
    loaded = {"resnet." + k for k in load_file(path / "model.safetensors")}
    state_dicts_equal(ours, ref, loaded)
    inputs = {"pixel_values": images(), "output_hidden_states": True}
    assert_tensors_close(run(ours, **inputs).hidden_states, run(ref.eval(), **inputs).hidden_states, "hidden_states")
    bound = 1 / 32**0.5  # torch's default Linear init, as the reference's
    assert ours.classifier[1].weight.abs().max() <= bound and ours.classifier[1].bias.abs().max() <= bound


def test_classifier_checkpoint_into_base(ckpts):
    path = ckpts["basic"]
    ours, info = resnet.ResNetModel.from_pretrained(path, output_loading_info=True)
    ref, ref_info = transformers.ResNetModel.from_pretrained(path, output_loading_info=True)
    assert info["missing_keys"] == [] and not ref_info["missing_keys"]
    classifier_keys = {"classifier.1.weight", "classifier.1.bias"}
    assert set(info["unexpected_keys"]) == set(ref_info["unexpected_keys"]) == classifier_keys
    assert_outputs_close(run(ours, pixel_values=images()), run(ref.eval(), pixel_values=images()))


# -- BatchNorm: eval and train ----------------------------------------------------------------------


def test_eval_mode_uses_running_statistics(ckpts):
    ours = resnet.ResNetForImageClassification.from_pretrained(ckpts["bottleneck"])
    assert not ours.training and not any(m.training for m in ours.modules())
    pixels = images(4)
    # With running statistics every image is computed alone: a batch gives each image's own logits.
    together = run(ours, pixel_values=pixels).logits
    alone = torch.cat([run(ours, pixel_values=pixels[i : i + 1]).logits for i in range(4)])
    assert_tensors_close(together, alone, "batch independence")
    bn = ours.resnet.embedder.embedder.normalization
    stored = load_file(ckpts["bottleneck"] / "model.safetensors")
    prefix = "resnet.embedder.embedder.normalization."
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(bn, name), stored[prefix + name]), name
    assert int(bn.num_batches_tracked) > 0


def test_train_mode_matches_reference_and_updates_statistics(ckpts):
    path = ckpts["basic"]
    ours = resnet.ResNetForImageClassification.from_pretrained(path).train()
    ref = load_reference("ResNetForImageClassification", path).train()
    pixels = images(4)
    labels = torch.tensor([0, 2, 1, 1])
    ours_out, ref_out = ours(pixel_values=pixels, labels=labels), ref(pixel_values=pixels, labels=labels)
    assert_outputs_close(ours_out, ref_out, "train mode")
    ours_out.loss.backward()
    ref_out.loss.backward()
    # Batch statistics were used and the running ones moved, exactly as in the reference.
    state_dicts_equal(ours, ref)
    grads = {n: p.grad for n, p in ref.named_parameters()}
    for name, param in ours.named_parameters():
        assert_tensors_close(param.grad, grads[name], f"grad {name}")
    key = "resnet.embedder.embedder.normalization.running_mean"
    assert not torch.equal(ours.state_dict()[key], load_file(path / "model.safetensors")[key])


# -- losses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["single_label", "multi_label", "regression"])
def test_loss_matches_reference(ckpts, case):
    gen = torch.Generator().manual_seed(5)
    path = ckpts["regression"] if case == "regression" else ckpts["bottleneck"]
    labels = {
        "single_label": torch.tensor([2, 0]),
        "multi_label": torch.randint(0, 2, (2, 3), generator=gen).float(),
        "regression": torch.randn(2, generator=gen),
    }[case]
    ours = resnet.ResNetForImageClassification.from_pretrained(path)
    ref = load_reference("ResNetForImageClassification", path)
    inputs = {"pixel_values": images(), "labels": labels, "output_hidden_states": True}
    ours_out = run(ours, **inputs)
    assert ours_out.keys()[0] == "loss"
    assert_outputs_close(ours_out, run(ref, **inputs), case)
    assert_outputs_close(run(ours, **inputs, return_dict=False), run(ref, **inputs, return_dict=False), case)
    assert ours.config.problem_type == ref.config.problem_type


# -- backbone -------------------------------------------------------------------------------------

CHOICES = {
    "default": {},
    "negative_indices": {"out_indices": [-3, -1]},
    "stem_and_stage2": {"out_features": ["stem", "stage2"]},
    "all_indices_tuple": {"out_indices": (0, 1, 2, 3, 4)},
    "stem_only": {"out_indices": [0]},
    "features_and_indices": {"out_features": ["stage1", "stage3"], "out_indices": [1, 3]},
}


def _assert_backbone_attributes(ours, ref):
    assert ours.stage_names == ref.stage_names == STAGES
    assert ours.out_features == ref.out_features
    assert ours.out_indices == list(ref.out_indices)
    assert ours.channels == ref.channels
    assert ours.out_feature_channels == ref.out_feature_channels == CHANNELS
    assert ours.config.out_features == ref.config.out_features
    assert ours.config.out_indices == list(ref.config.out_indices)


@pytest.mark.parametrize("choice", CHOICES)
@pytest.mark.parametrize("variant", ["basic", "bottleneck_downsample_gelu"])
def test_backbone_matches_reference(ckpts, variant, choice):
    """A classification checkpoint into the backbone, with each way of choosing stages."""
    kwargs = CHOICES[choice]
    ours, info = resnet.ResNetBackbone.from_pretrained(ckpts[variant], output_loading_info=True, **kwargs)
    ref = load_reference("ResNetBackbone", ckpts[variant], **kwargs)
    assert info["missing_keys"] == [] and set(info["unexpected_keys"]) == {"classifier.1.weight", "classifier.1.bias"}
    _assert_backbone_attributes(ours, ref)
    pixels = images()
    out = run(ours, pixel_values=pixels)
    assert out.keys() == ["feature_maps"]
    assert [f.shape[1] for f in out.feature_maps] == ours.channels
    assert_outputs_close(out, run(ref, pixel_values=pixels), f"{variant}/{choice}")
    hidden, no_dict = {"output_hidden_states": True}, {"return_dict": False}
    for extra in (hidden, no_dict, {**hidden, **no_dict}):
        ours_out, ref_out = run(ours, pixel_values=pixels, **extra), run(ref, pixel_values=pixels, **extra)
        assert_outputs_close(ours_out, ref_out, f"{variant}/{choice}/{extra}")


def test_backbone_feature_maps_are_the_models_hidden_states(ckpts):
    path = ckpts["bottleneck"]
    backbone = resnet.ResNetBackbone.from_pretrained(path, out_indices=list(range(5)))
    model = resnet.ResNetModel.from_pretrained(path)
    pixels = images()
    hidden_states = run(model, pixel_values=pixels, output_hidden_states=True).hidden_states
    assert_tensors_close(run(backbone, pixel_values=pixels).feature_maps, hidden_states, "feature maps")


def test_reference_backbone_checkpoint(ckpts):
    path = ckpts["backbone"]
    stored = json.loads((path / "config.json").read_text())
    assert stored["out_features"] == ["stem", "stage2"] and stored["out_indices"] == [0, 2]
    ours, info = resnet.ResNetBackbone.from_pretrained(path, output_loading_info=True)
    ref = load_reference("ResNetBackbone", path)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    _assert_backbone_attributes(ours, ref)
    assert ours.channels == [8, 16]
    assert_outputs_close(run(ours, pixel_values=images()), run(ref, pixel_values=images()), "backbone ckpt")
    # A backbone checkpoint (no "resnet." prefix) into the base model and the classifier.
    model = resnet.ResNetModel.from_pretrained(path)
    ref_model = load_reference("ResNetModel", path)
    assert_outputs_close(run(model, pixel_values=images()), run(ref_model, pixel_values=images()), "into base")
    classifier, info = resnet.ResNetForImageClassification.from_pretrained(path, output_loading_info=True)
    assert set(info["missing_keys"]) == {"classifier.1.weight", "classifier.1.bias"}
    # One of the two linked keys overrides the other stored in the file, as in the reference.
    for kwargs in ({"out_indices": (1,)}, {"out_features": ["stage4"]}, {"out_indices": [-2, -1]}):
        ours = AutoBackbone.from_pretrained(path, **kwargs)
        ref = load_reference("ResNetBackbone", path, **kwargs)
        _assert_backbone_attributes(ours, ref)
        assert_outputs_close(run(ours, pixel_values=images()), run(ref, pixel_values=images()), str(kwargs))


def test_backbone_save_round_trip(ckpts, tmp_path):
    ours = resnet.ResNetBackbone.from_pretrained(ckpts["bottleneck"], out_indices=[-4, -2])
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["out_features"] == ["stage1", "stage3"] and saved["out_indices"] == [-4, -2]
    assert saved["stage_names"] == STAGES and saved["architectures"] == ["ResNetBackbone"]
    ref, info = transformers.ResNetBackbone.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    _assert_backbone_attributes(ours, ref)
    expected = run(ours, pixel_values=images(), output_hidden_states=True)
    assert_outputs_close(run(ref.eval(), pixel_values=images(), output_hidden_states=True), expected, "ref loads ours")
    again = resnet.ResNetBackbone.from_pretrained(tmp_path)
    assert again.out_indices == [-4, -2]
    assert_outputs_close(run(again, pixel_values=images(), output_hidden_states=True), expected, "ours reloads")


def test_changing_stages_on_a_loaded_backbone(ckpts):
    ours = resnet.ResNetBackbone.from_pretrained(ckpts["basic"])
    ref = load_reference("ResNetBackbone", ckpts["basic"])
    ours.out_features = ["stem", "stage3"]
    ref.out_features = ["stem", "stage3"]
    _assert_backbone_attributes(ours, ref)
    assert_outputs_close(run(ours, pixel_values=images()), run(ref, pixel_values=images()), "out_features set")
    ours.out_indices = [2, -1]
    ref.out_indices = [2, -1]
    _assert_backbone_attributes(ours, ref)
    assert_outputs_close(run(ours, pixel_values=images()), run(ref, pixel_values=images()), "out_indices set")
    with pytest.raises(ConfigError):
        ours.out_features = ["stage5"]


def test_assigning_a_stage_choice_on_the_config(ckpts):
    ours, ref = resnet.ResNetConfig(**TINY), ref_config()
    for key, value in (("out_indices", (1, -1)), ("out_features", ["stem", "stage3"]), ("out_indices", [-2])):
        setattr(ours, key, value)
        setattr(ref, key, value)
        assert (ours.out_features, ours.out_indices) == (ref.out_features, list(ref.out_indices)), (key, value)
    with pytest.raises(ConfigError):
        ours.out_indices = [7]
    # A config object plus an override realigns the other key. (The reference passes such an
    # override to the model's constructor, which refuses it; its config is set beforehand here.)
    path = ckpts["basic"]
    ours = resnet.ResNetBackbone.from_pretrained(path, config=AutoConfig.from_pretrained(path), out_indices=(1,))
    ref_config_ = transformers.AutoConfig.from_pretrained(path)
    ref_config_.out_indices = (1,)
    ref = load_reference("ResNetBackbone", path, config=ref_config_)
    _assert_backbone_attributes(ours, ref)
    assert_outputs_close(run(ours, pixel_values=images()), run(ref, pixel_values=images()), "config + override")


BAD_CHOICES = [
    {"out_features": ["stage9"]},
    {"out_features": ["stage2", "stage1"]},
    {"out_features": ["stage1", "stage1"]},
    {"out_indices": [5]},
    {"out_indices": [-6]},
    {"out_indices": [3, 1]},
    {"out_indices": [1, -4]},
    {"out_features": ["stage1"], "out_indices": [2]},
]


@pytest.mark.parametrize("kwargs", BAD_CHOICES, ids=lambda k: json.dumps(k))
def test_invalid_stage_choices(ckpts, kwargs):
    # The reference refuses each too (one, out_indices=[-6], with a bare IndexError).
    with pytest.raises((ValueError, IndexError)):
        transformers.ResNetConfig(**TINY, **kwargs)
    with pytest.raises(ConfigError) as excinfo:
        resnet.ResNetConfig(**TINY, **kwargs)
    assert "stage" in str(excinfo.value)
    with pytest.raises(ConfigError):
        resnet.ResNetBackbone.from_pretrained(ckpts["basic"], **kwargs)


# -- configuration --------------------------------------------------------------------------------


def test_config_matches_reference():
    """Defaults are ResNet-50's (microsoft/resnet-50); the serialised dicts agree key for key."""
    skip = {"transformers_version", "_name_or_path"}
    for ours, ref in (
        (resnet.ResNetConfig(), transformers.ResNetConfig()),
        (resnet.ResNetConfig(**TINY, out_indices=(1, -1)), ref_config("bottleneck", out_indices=(1, -1))),
        (
            resnet.ResNetConfig(embedding_size=4, hidden_sizes=(4, 8), depths=(2, 2), layer_type="basic"),
            transformers.ResNetConfig(embedding_size=4, hidden_sizes=(4, 8), depths=(2, 2), layer_type="basic"),
        ),
    ):
        ours_dict = {k: v for k, v in ours.to_dict().items() if k not in skip}
        ref_dict = {k: v for k, v in ref.to_dict().items() if k not in skip}
        assert {k: ours_dict.get(k) for k in ref_dict} == ref_dict
        # Ours also carries the token ids and tying flag every leanformers config has (all unset/default).
        assert set(ours_dict) - set(ref_dict) <= {"bos_token_id", "eos_token_id", "pad_token_id", "tie_word_embeddings"}
    default = resnet.ResNetConfig()
    assert default.layer_type == "bottleneck" and default.hidden_sizes == [256, 512, 1024, 2048]
    assert default.depths == [3, 4, 6, 3] and default.embedding_size == 64
    assert default.out_features == ["stage4"] and default.out_indices == [4]


def test_stage_names_follow_depths_not_the_file(tmp_path):
    config = resnet.ResNetConfig(embedding_size=4, hidden_sizes=[4, 8], depths=[1, 1])
    config.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    data["stage_names"] = ["stem", "stage1", "stage2", "stage3"]
    (tmp_path / "config.json").write_text(json.dumps(data))
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert loaded.stage_names == ["stem", "stage1", "stage2"] and loaded.out_features == ["stage2"]
    assert resnet.ResNetBackbone.from_config(loaded).channels == [8]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"layer_type": "wide"},
        {"hidden_act": "swoosh"},
        {"hidden_sizes": [8, 16]},
        {"depths": [1, 0, 1, 1]},
        {"hidden_sizes": "8,16,24,32"},
        {"embedding_size": 0},
        {"num_channels": 2.5},
        {"hidden_sizes": [8, 16, 24, 2]},
        {"downsample_in_bottleneck": "yes"},
    ],
    ids=lambda k: json.dumps(k),
)
def test_invalid_config(kwargs):
    with pytest.raises(ConfigError):
        resnet.ResNetConfig(**{**TINY, **kwargs})


def test_architecture_of_resnet_50_defaults():
    """The default config builds the reference's ResNet-50: same keys, same shapes."""
    with torch.device("meta"):
        ours = resnet.ResNetForImageClassification(resnet.ResNetConfig(num_labels=1000))
        ref = transformers.ResNetForImageClassification(transformers.ResNetConfig(num_labels=1000))
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert ours_shapes == {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert "resnet.encoder.stages.3.layers.2.layer.2.normalization.num_batches_tracked" in ours_shapes
    assert ours_shapes["classifier.1.weight"] == (1000, 2048)


# -- saving ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ResNetModel", "ResNetForImageClassification"])
@pytest.mark.parametrize("variant", ["basic", "bottleneck_downsample_gelu"])
def test_save_round_trip(ckpts, tmp_path, variant, name):
    source = ckpts["base"] if name == "ResNetModel" and variant == "basic" else ckpts[variant]
    ours = getattr(resnet, name).from_pretrained(source)
    ours.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    ref_saved = load_file(source / "model.safetensors")
    if name == "ResNetModel" and source != ckpts["base"]:
        ref_saved = {k.removeprefix("resnet."): v for k, v in ref_saved.items() if k.startswith("resnet.")}
    assert set(saved) == set(ref_saved), "ours saves the reference's key set, BatchNorm buffers included"
    for key, tensor in ref_saved.items():
        assert torch.equal(saved[key], tensor), key
    counters = [tensor for key, tensor in saved.items() if key.endswith("num_batches_tracked")]
    assert counters and all(c.dtype == torch.int64 and int(c) > 0 for c in counters)
    ref, info = getattr(transformers, name).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    inputs = {"pixel_values": images(), "output_hidden_states": True}
    expected = run(ours, **inputs)
    assert_outputs_close(run(ref.eval(), **inputs), expected, f"reference loads ours/{name}")
    reloaded = getattr(resnet, name).from_pretrained(tmp_path)
    assert_outputs_close(run(reloaded, **inputs), expected, f"ours reloads/{name}")
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "resnet" and config["architectures"] == [name]


def test_shape_mismatch_and_new_labels(ckpts):
    path = ckpts["basic"]
    with pytest.raises(WeightsError, match="ignore_mismatched_sizes"):
        resnet.ResNetForImageClassification.from_pretrained(path, num_labels=5)
    ours, info = resnet.ResNetForImageClassification.from_pretrained(
        path, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True
    )
    assert {k for k, *_ in info["mismatched_keys"]} == {"classifier.1.weight", "classifier.1.bias"}
    ref = transformers.ResNetForImageClassification.from_pretrained(path, num_labels=5, ignore_mismatched_sizes=True)
    state_dicts_equal(ours, ref, {k for k in ours.state_dict() if not k.startswith("classifier")})
    assert run(ours, pixel_values=images()).logits.shape == (2, 5)


def test_bf16(ckpts):
    path = ckpts["bottleneck"]
    ours = resnet.ResNetForImageClassification.from_pretrained(path, dtype=torch.bfloat16)
    ref = load_reference("ResNetForImageClassification", path, dtype=torch.bfloat16)
    assert ours.dtype == torch.bfloat16
    assert ours.resnet.embedder.embedder.normalization.running_var.dtype == torch.bfloat16
    assert ours.resnet.embedder.embedder.normalization.num_batches_tracked.dtype == torch.int64
    pixels = images().to(torch.bfloat16)
    assert_outputs_close(run(ours, pixel_values=pixels), run(ref, pixel_values=pixels), "bf16", BF16_TOLERANCE)


# -- construction, auto classes, hub ----------------------------------------------------------------


def test_from_config_initialisation():
    config = resnet.ResNetConfig(**TINY, layer_type="bottleneck")
    model = resnet.ResNetForImageClassification.from_config(config)
    assert all(not t.is_meta for t in model.state_dict().values())
    conv = model.resnet.encoder.stages[3].layers[0].layer[1].convolution  # 3x3, 8 -> 8 channels
    fan_out = conv.out_channels * 9
    assert abs(conv.weight.std().item() - (2 / fan_out) ** 0.5) < 0.03  # He-normal, fan-out
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            assert torch.equal(module.weight, torch.ones_like(module.weight))
            assert torch.count_nonzero(module.bias) == 0 and torch.count_nonzero(module.running_mean) == 0
            assert torch.equal(module.running_var, torch.ones_like(module.running_var))
    linear = model.classifier[1]
    assert linear.weight.abs().max() <= 1 / 32**0.5 and linear.bias.abs().max() <= 1 / 32**0.5
    logits = model.eval()(pixel_values=images()).logits
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    backbone = resnet.ResNetBackbone.from_config(resnet.ResNetConfig(**TINY, out_features=["stem", "stage4"]))
    maps = backbone.eval()(images()).feature_maps
    assert [m.shape[1] for m in maps] == backbone.channels == [8, 32]
    assert [tuple(m.shape[2:]) for m in maps] == [(8, 8), (1, 1)]


def test_auto_classes(ckpts):
    path = ckpts["bottleneck"]
    pixels = images()
    model = AutoModel.from_pretrained(path)
    assert type(model) is resnet.ResNetModel
    assert_outputs_close(run(model, pixel_values=pixels), run(load_reference("ResNetModel", path), pixel_values=pixels))
    classifier = AutoModelForImageClassification.from_pretrained(path)
    assert type(classifier) is resnet.ResNetForImageClassification and not classifier.training
    ref_classifier = load_reference("ResNetForImageClassification", path)
    assert_outputs_close(run(classifier, pixel_values=pixels), run(ref_classifier, pixel_values=pixels))
    backbone = AutoBackbone.from_pretrained(path, out_indices=(1,))
    ref = load_reference("ResNetBackbone", path, out_indices=(1,))
    assert type(backbone) is resnet.ResNetBackbone and not backbone.training
    _assert_backbone_attributes(backbone, ref)
    assert backbone.out_features == ["stage1"] and backbone.channels == [8]
    assert_outputs_close(run(backbone, pixel_values=pixels), run(ref, pixel_values=pixels), "AutoBackbone")
    config = AutoConfig.from_pretrained(path)
    assert type(config) is resnet.ResNetConfig
    assert type(AutoBackbone.from_config(config)) is resnet.ResNetBackbone


def test_auto_backbone_from_hub_cache(ckpts, tmp_path, monkeypatch):
    path = ckpts["bottleneck_downsample_gelu"]
    files = {name: path / name for name in ("config.json", "model.safetensors")}
    cache = make_hub_cache(tmp_path / "hub", "microsoft/resnet-tiny", files)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backbone = AutoBackbone.from_pretrained("microsoft/resnet-tiny", out_features=["stage1", "stage3"])
    assert type(backbone) is resnet.ResNetBackbone and backbone.channels == [8, 24]
    ref = load_reference("ResNetBackbone", path, out_features=["stage1", "stage3"])
    _assert_backbone_attributes(backbone, ref)
    assert_outputs_close(run(backbone, pixel_values=images()), run(ref, pixel_values=images()), "hub cache")


# -- input errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ResNetModel", "ResNetForImageClassification", "ResNetBackbone"])
def test_bad_inputs(ckpts, name):
    model = getattr(resnet, name).from_pretrained(ckpts["basic"])
    pixels = images()
    cases = {
        "3-D": (pixels[0], "batch dimension"),
        "channels": (pixels[:, :2], "num_channels=3"),
        "channels last": (pixels.permute(0, 2, 3, 1), "channels"),
        "integer": (pixels.to(torch.uint8), "floating point"),
        "list": (pixels.tolist(), "torch.Tensor"),
        "none": (None, "required"),
    }
    for bad, words in cases.values():
        with pytest.raises(InputError, match=words):
            model(pixel_values=bad)
    # Another float precision is cast to the model's, as the transformer models do.
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values=pixels.double())[0], model(pixel_values=pixels)[0])
    # Under autocast a float32 batch into a bfloat16 model is fine, as in the reference.
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        model.to(torch.bfloat16)(pixel_values=pixels)

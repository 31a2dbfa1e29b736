"""HuBERT: parity with the reference on tiny random checkpoints (the modules are wav2vec2's, tested in
depth in test_wav2vec2.py; here the HuBERT switches, prefixes, outputs and initialisation)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from parity import assert_outputs_close, assert_tensors_close, build_reference, load_reference, run, transformers

from leanformers import auto
from leanformers.errors import InputError
from leanformers.models import hubert, wav2vec2

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
VARIANTS = {
    "group": {},
    # layer-norm convolutions, pre-norm encoder, no LayerNorm in the feature projection, odd position kernel
    "stable": dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True, feat_proj_layer_norm=False,
                   num_conv_pos_embeddings=15),
    # BatchNorm + plain convolution as the position embedding
    "batch_norm": dict(conv_pos_batch_norm=True),
}
HEADS = {
    "HubertModel": ("HubertModel", {}),
    "HubertForSequenceClassification": ("HubertForSequenceClassification", {}),
    "weighted": ("HubertForSequenceClassification", {"use_weighted_layer_sum": True}),
    "HubertForCTC": ("HubertForCTC", {}),
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The models are tiny: one thread is fastest, and spares the intra-op thread pool's stalls on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def ref_config(**overrides):
    return transformers.HubertConfig(**{**TINY, **overrides})


def audio(batch: int = 3, samples: int = 2400, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, samples, generator=torch.Generator().manual_seed(seed))


def padded_mask(batch: int = 3, samples: int = 2400) -> torch.Tensor:
    mask = torch.ones(batch, samples, dtype=torch.long)
    mask[1, samples - 517:] = 0
    mask[2, 1100:] = 0
    return mask


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("hubert")
    paths = {}
    seed = 100
    for variant, variant_overrides in VARIANTS.items():
        for key, (name, overrides) in HEADS.items():
            paths[variant, key] = root / variant / key
            model = build_reference(name, ref_config(**variant_overrides, **overrides), seed)
            norm = model.base_model.encoder.pos_conv_embed.batch_norm
            if norm is not None:  # trained statistics and affine, so that eval-mode BatchNorm does something
                with torch.no_grad():
                    for tensor in (norm.running_mean, norm.weight, norm.bias):
                        tensor.normal_()
                    norm.running_var.uniform_(0.5, 2.0)
            model.save_pretrained(paths[variant, key])
            seed += 1
    # The pre-parametrization weight-norm names (weight_g / weight_v).
    src, dst = paths["group", "HubertForCTC"], root / "old_format"
    dst.mkdir()
    shutil.copy(src / "config.json", dst / "config.json")
    state = {
        k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                           "weight_v"): v
        for k, v in load_file(src / "model.safetensors").items()
    }
    save_file(state, dst / "model.safetensors", metadata={"format": "pt"})
    paths["old_format"] = dst
    return paths


def ours_class(key: str):
    return getattr(hubert, HEADS[key][0])


CASES = {
    "plain": {},
    "padded": {"attention_mask": padded_mask(), "output_hidden_states": True},
    "attentions": {"attention_mask": padded_mask(), "output_hidden_states": True, "output_attentions": True},
    "tuple": {"output_hidden_states": True, "output_attentions": True, "return_dict": False},
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("key", list(HEADS))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_forward_matches_reference(ckpts, variant, key, case):
    inputs = {"input_values": audio(), **CASES[case]}
    path = ckpts[variant, key]
    ours = ours_class(key).from_pretrained(path)
    ref = load_reference(HEADS[key][0], path, eager=bool(inputs.get("output_attentions")))
    assert_outputs_close(run(ours, **inputs), run(ref, **inputs), f"{variant}/{key}/{case}")


def test_base_output_has_no_extract_features(ckpts):
    out = run(hubert.HubertModel.from_pretrained(ckpts["group", "HubertModel"]), input_values=audio())
    assert out.keys() == ["last_hidden_state"]


def test_module_layout_follows_the_switches(ckpts):
    stable = hubert.HubertModel.from_pretrained(ckpts["stable", "HubertModel"])
    assert not hasattr(stable.feature_projection, "layer_norm")
    assert stable.encoder.pos_conv_embed.batch_norm is None
    batch_norm = hubert.HubertModel.from_pretrained(ckpts["batch_norm", "HubertModel"])
    keys = set(batch_norm.state_dict())
    assert "encoder.pos_conv_embed.batch_norm.running_mean" in keys and "encoder.pos_conv_embed.conv.weight" in keys
    assert keys == set(load_file(ckpts["batch_norm", "HubertModel"] / "model.safetensors"))


def test_padding_does_not_change_real_frames(ckpts):
    values, mask = audio(), padded_mask()
    real = int(mask[2].sum())
    frames = int(wav2vec2.conv_output_length(real, hubert.HubertConfig(**TINY)))
    for key in HEADS:
        model = ours_class(key).from_pretrained(ckpts["stable", key])
        batch, alone = run(model, input_values=values, attention_mask=mask), run(model, input_values=values[2:3, :real])
        if key == "HubertModel":
            assert_tensors_close(batch.last_hidden_state[2:3, :frames], alone.last_hidden_state, key)
        elif key == "HubertForCTC":
            assert_tensors_close(batch.logits[2:3, :frames], alone.logits, key)
        else:
            assert_tensors_close(batch.logits[2:3], alone.logits, key)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_losses_match_reference(ckpts, variant):
    labels = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 3, -100, -100], [4, 4, 0, 0, 0]])
    path = ckpts[variant, "HubertForCTC"]
    ours, ref = hubert.HubertForCTC.from_pretrained(path), load_reference("HubertForCTC", path)
    inputs = {"input_values": audio(), "attention_mask": padded_mask(), "labels": labels}
    assert_outputs_close(run(ours, **inputs), run(ref, **inputs), f"ctc/{variant}")
    for key in ("HubertForSequenceClassification", "weighted"):
        path = ckpts[variant, key]
        ours, ref = ours_class(key).from_pretrained(path), load_reference(HEADS[key][0], path)
        inputs = {"input_values": audio(), "attention_mask": padded_mask(), "labels": torch.tensor([2, 0, 1])}
        assert_outputs_close(run(ours, **inputs), run(ref, **inputs), f"{key}/{variant}")


def test_old_weight_norm_keys(ckpts):
    path = ckpts["old_format"]
    assert "hubert.encoder.pos_conv_embed.conv.weight_v" in load_file(path / "model.safetensors")
    ours, info = hubert.HubertForCTC.from_pretrained(path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    inputs = {"input_values": audio(), "attention_mask": padded_mask()}
    assert_outputs_close(run(ours, **inputs), run(load_reference("HubertForCTC", path), **inputs), "old format")


@pytest.mark.parametrize("head", ["HubertForSequenceClassification", "HubertForCTC"])
def test_base_and_head_checkpoints_cross_load(ckpts, head):
    inputs = {"input_values": audio(), "output_hidden_states": True}
    path = ckpts["group", "HubertModel"]
    ours, info = ours_class(head).from_pretrained(path, output_loading_info=True)
    ref, ref_info = getattr(transformers, head).from_pretrained(path, output_loading_info=True)
    assert set(info["missing_keys"]) == set(ref_info["missing_keys"]) and not info["unexpected_keys"]
    assert_tensors_close(run(ours, **inputs).hidden_states, run(ref.eval(), **inputs).hidden_states, "base->head")
    path = ckpts["group", head]
    ours, info = hubert.HubertModel.from_pretrained(path, output_loading_info=True)
    ref, ref_info = transformers.HubertModel.from_pretrained(path, output_loading_info=True)
    assert set(info["unexpected_keys"]) == set(ref_info["unexpected_keys"]) and not info["missing_keys"]
    assert_outputs_close(run(ours, **inputs), run(ref.eval(), **inputs), "head->base")


@pytest.mark.parametrize("variant", ["group", "batch_norm"])
@pytest.mark.parametrize("key", list(HEADS))
def test_save_round_trip(ckpts, tmp_path, variant, key):
    path = ckpts[variant, key]
    inputs = {"input_values": audio(), "attention_mask": padded_mask(), "output_hidden_states": True}
    ours = ours_class(key).from_pretrained(path)
    ours.save_pretrained(tmp_path / "ours")
    assert set(load_file(tmp_path / "ours" / "model.safetensors")) == set(load_file(path / "model.safetensors"))
    saved = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert saved["model_type"] == "hubert" and saved["architectures"] == [HEADS[key][0]]
    ref, info = getattr(transformers, HEADS[key][0]).from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    expected = run(ours, **inputs)
    assert_outputs_close(run(ref.eval(), **inputs), expected, f"reference loads ours/{key}")
    ref.save_pretrained(tmp_path / "ref")
    again = ours_class(key).from_pretrained(tmp_path / "ref")
    for name, tensor in ours.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor), name


def test_auto_classes(ckpts):
    inputs = {"input_values": audio(), "attention_mask": padded_mask()}
    for auto_class, key in (
        (auto.AutoModel, "HubertModel"),
        (auto.AutoModelForAudioClassification, "HubertForSequenceClassification"),
        (auto.AutoModelForCTC, "HubertForCTC"),
    ):
        path = ckpts["group", key]
        model = auto_class.from_pretrained(path)
        assert type(model) is ours_class(key)
        assert_outputs_close(run(model, **inputs), run(load_reference(HEADS[key][0], path), **inputs), key)
    assert type(auto.AutoConfig.from_pretrained(ckpts["group", "HubertModel"])) is hubert.HubertConfig
    assert type(auto.AutoModelForCTC.from_config(hubert.HubertConfig(**TINY))) is hubert.HubertForCTC


def test_config_matches_reference_defaults():
    ours, ref = hubert.HubertConfig().to_dict(), transformers.HubertConfig().to_dict()
    for key, value in ref.items():
        if key != "transformers_version":
            assert ours[key] == (list(value) if isinstance(value, tuple) else value), key
    assert "add_adapter" not in ours and "output_hidden_size" not in ours  # wav2vec2-only keys


def test_fresh_model_initialisation():
    config = hubert.HubertConfig(**{**TINY, "hidden_size": 64, "conv_dim": (64, 64, 64),
                                    "use_weighted_layer_sum": True})
    model = hubert.HubertForSequenceClassification.from_config(config)
    base = model.hubert
    pos = base.encoder.pos_conv_embed.conv
    direction = pos.parametrizations["weight"].original1
    assert abs(direction.std().item() - (2 / (32 * 16)) ** 0.5) < 0.01  # Kaiming normal, fan-in = 32 * 16
    assert torch.allclose(pos.weight, direction, atol=1e-6) and torch.equal(pos.bias, torch.zeros(64))
    projection = base.feature_projection.projection
    assert abs(projection.weight.std().item() - 0.02) < 0.004 and torch.equal(projection.bias, torch.zeros(64))
    assert torch.equal(model.layer_weights, torch.full((3,), 1 / 3))
    batch_norm = hubert.HubertModel.from_config(hubert.HubertConfig(**TINY, conv_pos_batch_norm=True))
    assert torch.equal(batch_norm.encoder.pos_conv_embed.batch_norm.running_var, torch.ones(32))
    assert torch.equal(batch_norm.encoder.pos_conv_embed.conv.bias, torch.zeros(32))


def test_bad_inputs(ckpts):
    model = hubert.HubertForCTC.from_pretrained(ckpts["group", "HubertForCTC"])
    with pytest.raises(InputError, match="at least 40"):
        model(torch.zeros(1, 39))
    with pytest.raises(InputError, match="float samples"):
        model(torch.zeros(1, 800, dtype=torch.long))
    with pytest.raises(InputError, match="vocabulary"):
        model(torch.zeros(1, 800), labels=torch.tensor([[12]]))

"""The loader's per-family conversion hook (renames, base-model prefix, fused tensors, transposed
weights, tied embeddings) both ways, and the per-thread skipping of initialisers while loading."""

import threading
from typing import ClassVar

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from leanformers.configuration import PretrainedConfig
from leanformers.errors import WeightsError
from leanformers.modeling import base
from leanformers.modeling.base import PreTrainedModel
from leanformers.modeling.loading import Conversion, convert_keys, to_checkpoint

CONVERSION = Conversion(
    renames=((r"^(model\.)?old_norm\.", r"\1norm."),),
    transposed=(r"(^|\.)c_fc\.weight$",),
    fused=(("qkv_proj", ("q_proj", "k_proj", "v_proj"), 0), ("gate_up_proj", ("gate_proj", "up_proj"), 0)),
)


class TinyConfig(PretrainedConfig):
    model_type: ClassVar[str] = "tiny-conversion-test"
    defaults: ClassVar[dict] = {"hidden_size": 4, "vocab_size": 10}


class TinyPreTrained(PreTrainedModel):
    config_class = TinyConfig
    base_model_prefix = "model"
    _conversion = CONVERSION


class TinyModel(TinyPreTrained):
    def __init__(self, config: TinyConfig) -> None:
        super().__init__(config)
        self.embed = nn.Embedding(10, 4)
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(4, 4), nn.Linear(4, 2), nn.Linear(4, 2)
        self.gate_proj, self.up_proj = nn.Linear(4, 3, bias=False), nn.Linear(4, 3, bias=False)
        self.c_fc = nn.Linear(4, 6)
        self.norm = nn.LayerNorm(4)


class TinyLM(TinyPreTrained):
    _tied_weights = {"lm_head.weight": "model.embed.weight"}

    def __init__(self, config: TinyConfig) -> None:
        super().__init__(config)
        self.model = TinyModel(config)
        self.lm_head = nn.Linear(4, 10, bias=False)


def _hub_style_checkpoint(folder):
    """Keys as a hub checkpoint of this family has them: no ``model.`` prefix, fused q/k/v and
    gate/up, a Conv1D-style (in, out) weight, legacy gamma/beta and an old name, no lm_head."""
    gen = torch.Generator().manual_seed(0)
    tensors = {
        "embed.weight": torch.randn(10, 4, generator=gen),
        "qkv_proj.weight": torch.randn(8, 4, generator=gen),
        "qkv_proj.bias": torch.randn(8, generator=gen),
        "gate_up_proj.weight": torch.randn(6, 4, generator=gen),
        "c_fc.weight": torch.randn(4, 6, generator=gen),
        "c_fc.bias": torch.randn(6, generator=gen),
        "old_norm.gamma": torch.randn(4, generator=gen),
        "old_norm.beta": torch.randn(4, generator=gen),
    }
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    TinyConfig(tie_word_embeddings=True).save_pretrained(folder)
    return tensors


def test_load_converts_every_kind_of_difference(tmp_path):
    tensors = _hub_style_checkpoint(tmp_path / "ckpt")
    model, info = TinyLM.from_pretrained(tmp_path / "ckpt", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    inner = model.model
    assert torch.equal(inner.q_proj.weight, tensors["qkv_proj.weight"][:4])
    assert torch.equal(inner.k_proj.weight, tensors["qkv_proj.weight"][4:6])
    assert torch.equal(inner.v_proj.bias, tensors["qkv_proj.bias"][6:])
    assert torch.equal(inner.up_proj.weight, tensors["gate_up_proj.weight"][3:])
    assert torch.equal(inner.c_fc.weight, tensors["c_fc.weight"].t())
    assert torch.equal(inner.norm.weight, tensors["old_norm.gamma"])
    assert model.lm_head.weight is inner.embed.weight  # tied: no lm_head tensor in the file


def test_save_walks_the_conversion_backwards(tmp_path):
    tensors = _hub_style_checkpoint(tmp_path / "ckpt")
    TinyLM.from_pretrained(tmp_path / "ckpt").save_pretrained(tmp_path / "saved")
    saved = load_file(str(tmp_path / "saved" / "model.safetensors"))
    assert "lm_head.weight" not in saved and "model.q_proj.weight" not in saved
    for key in ("qkv_proj.weight", "qkv_proj.bias", "gate_up_proj.weight", "c_fc.weight", "embed.weight"):
        assert torch.equal(saved["model." + key], tensors[key]), key
    assert torch.equal(saved["model.norm.weight"], tensors["old_norm.gamma"])
    # a head checkpoint loads into the base model: the prefix is stripped
    base_model = TinyModel.from_pretrained(tmp_path / "saved")
    assert torch.equal(base_model.k_proj.weight, tensors["qkv_proj.weight"][4:6])


def test_convert_keys_leaves_unknown_and_partial_fusions_out():
    shapes = {"q_proj.weight": (4, 4), "k_proj.weight": (2, 4)}  # no v_proj: qkv cannot be split
    assert convert_keys(["qkv_proj.weight", "other"], shapes, "", CONVERSION) == {}
    state = {"q_proj.weight": torch.zeros(4, 4), "k_proj.weight": torch.zeros(2, 4)}
    assert set(to_checkpoint(state, CONVERSION)) == set(state)


def test_fused_tensor_of_the_wrong_size_is_a_weights_error(tmp_path):
    tensors = _hub_style_checkpoint(tmp_path / "ckpt")
    tensors["qkv_proj.weight"] = torch.zeros(7, 4)
    save_file(tensors, str(tmp_path / "ckpt" / "model.safetensors"))
    with pytest.raises(WeightsError, match="qkv_proj"):
        TinyLM.from_pretrained(tmp_path / "ckpt")


def test_skipping_initialisers_is_per_thread():
    inside, release = threading.Event(), threading.Event()
    seen = {}

    def loader():
        with base._skipping_init():
            skipped = torch.zeros(3)
            nn.init.constant_(skipped, 5.0)
            seen["loader"] = skipped.clone()
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=loader)
    thread.start()
    assert inside.wait(10)
    try:
        # while the loader thread skips, this thread's initialisers and modules work as usual
        mine = torch.zeros(3)
        nn.init.constant_(mine, 3.0)
        torch.manual_seed(0)
        layer = nn.Linear(64, 64)
        embedding = nn.Embedding(5, 3, padding_idx=0)
    finally:
        release.set()
        thread.join()
    assert torch.equal(mine, torch.full((3,), 3.0))
    assert torch.equal(seen["loader"], torch.zeros(3))
    assert layer.weight.std() > 0.01 and layer.weight.abs().max() <= 1 / 8
    assert torch.equal(embedding.weight[0], torch.zeros(3)) and embedding.weight[1:].abs().sum() > 0


def test_fused_tensor_larger_than_its_parts_is_a_weights_error(tmp_path):
    tensors = _hub_style_checkpoint(tmp_path / "ckpt")
    tensors["gate_up_proj.weight"] = torch.zeros(9, 4)
    save_file(tensors, str(tmp_path / "ckpt" / "model.safetensors"))
    with pytest.raises(WeightsError, match="gate_up_proj"):
        TinyLM.from_pretrained(tmp_path / "ckpt")

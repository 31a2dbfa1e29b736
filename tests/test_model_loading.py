"""Generic load-path behaviour of PreTrainedModel beyond the per-architecture parity tests."""

from __future__ import annotations

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from leanformers import AutoModel, AutoModelForMaskedLM
from leanformers.errors import InputError


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=4, intermediate_size=37)
    folder = tmp_path_factory.mktemp("mlm")
    transformers.BertForMaskedLM(config).save_pretrained(folder)
    return folder


def test_tied_copy_without_its_source_fills_the_source(mlm_dir, tmp_path):
    state = load_file(mlm_dir / "model.safetensors")
    embedding = state.pop("bert.embeddings.word_embeddings.weight")
    state["cls.predictions.decoder.weight"] = embedding.clone()
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_bytes((mlm_dir / "config.json").read_bytes())
    model = AutoModelForMaskedLM.from_pretrained(tmp_path)
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, embedding)
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_attn_implementation_accepted(mlm_dir, attn):
    assert AutoModel.from_pretrained(mlm_dir, attn_implementation=attn) is not None


def test_attn_implementation_unknown(mlm_dir):
    with pytest.raises(InputError, match="flash_attention_2"):
        AutoModel.from_pretrained(mlm_dir, attn_implementation="flash_attention_2")


def test_loading_info_and_no_partial_files(mlm_dir, tmp_path):
    model, info = AutoModel.from_pretrained(mlm_dir, output_loading_info=True)
    assert info["missing_keys"] == sorted(info["missing_keys"])
    assert any(k.startswith("pooler.") for k in info["missing_keys"])
    assert any(k.startswith("cls.") for k in info["unexpected_keys"])
    model.save_pretrained(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.json", "model.safetensors"]


def test_save_into_a_file_path_is_refused(mlm_dir, tmp_path):
    model = AutoModel.from_pretrained(mlm_dir)
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(InputError, match="is a file"):
        model.save_pretrained(target)


def _tiny_models():
    from leanformers.models import bert, resnet, swin, vit, wav2vec2

    return {
        "bert": lambda: bert.BertForSequenceClassification(bert.BertConfig(
            vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)),
        "vit": lambda: vit.ViTForImageClassification(vit.ViTConfig(
            image_size=8, patch_size=4, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=16)),
        "swin": lambda: swin.SwinModel(swin.SwinConfig(
            image_size=16, patch_size=2, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=2)),
        "resnet": lambda: resnet.ResNetModel(resnet.ResNetConfig(
            embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])),
        "wav2vec2": lambda: wav2vec2.Wav2Vec2Model(wav2vec2.Wav2Vec2Config(
            hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
            conv_dim=[8, 8], conv_stride=[5, 2], conv_kernel=[10, 3], num_conv_pos_embeddings=4,
            num_conv_pos_embedding_groups=2)),
    }


@pytest.mark.parametrize("family", ["bert", "vit", "swin", "resnet", "wav2vec2"])
def test_direct_construction_is_initialised(family):
    """``Model(config)`` initialises every weight, as the reference's constructors do: parameters
    made with torch.empty (class tokens, position tables) hold the init scheme, not stale memory."""
    build = _tiny_models()[family]
    torch.manual_seed(0)
    first = build().state_dict()
    torch.manual_seed(0)
    second = build().state_dict()
    for key, value in first.items():
        assert torch.isfinite(value.float()).all(), key
        assert torch.equal(value, second[key]), f"{key}: not set by the seeded initialisation"

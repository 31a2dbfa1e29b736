"""Configs: parsing, overrides, labels, unknown keys, registry, remote code, round trips."""

from __future__ import annotations

import json

import pytest
import transformers

import leanformers
from leanformers import AutoConfig
from leanformers.configuration import PretrainedConfig
from leanformers.errors import ConfigError, RemoteCodeError, UnsupportedModelError


def write_config(folder, **data):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(data))
    return folder


def test_real_checkpoint_config(minilm_dir):
    config = AutoConfig.from_pretrained(minilm_dir)
    ref = transformers.AutoConfig.from_pretrained(minilm_dir)
    assert type(config).__name__ == "BertConfig"
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
                "layer_norm_eps", "hidden_act", "max_position_embeddings", "type_vocab_size", "pad_token_id"):
        assert getattr(config, key) == getattr(ref, key), key
    assert config.num_labels == ref.num_labels == 2
    assert config.id2label == ref.id2label
    # keys this library does not use are kept
    assert config.gradient_checkpointing is False
    assert "BertConfig {" in repr(config)


@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
def test_defaults_match_reference(model_type):
    ours = AutoConfig.for_model(model_type).to_dict()
    ref = transformers.AutoConfig.for_model(model_type).to_dict()
    for key, value in ours.items():
        if key in ref and key not in ("dtype", "transformers_version", "_name_or_path"):
            assert value == ref[key], key


def test_overrides_and_labels(tmp_path):
    folder = write_config(tmp_path / "c", model_type="bert", hidden_size=32, num_attention_heads=4,
                          id2label={"0": "neg", "1": "pos"})
    config = AutoConfig.from_pretrained(folder)
    assert config.id2label == {0: "neg", 1: "pos"} and config.label2id == {"neg": 0, "pos": 1}
    config3 = AutoConfig.from_pretrained(folder, num_labels=3, hidden_dropout_prob=0.0)
    ref3 = transformers.AutoConfig.from_pretrained(folder, num_labels=3, hidden_dropout_prob=0.0)
    assert config3.num_labels == 3 and config3.id2label == ref3.id2label
    assert config3.hidden_dropout_prob == 0.0
    config, unused = AutoConfig.from_pretrained(folder, foo=1, return_unused_kwargs=True)
    assert unused == {"foo": 1}


def test_unknown_keys_round_trip_with_reference(tmp_path):
    folder = write_config(tmp_path / "c", model_type="bert", hidden_size=64, num_attention_heads=4,
                          my_custom_key={"nested": [1, 2]}, torch_dtype="float16")
    config = AutoConfig.from_pretrained(folder)
    assert config.my_custom_key == {"nested": [1, 2]}
    assert config.dtype == "float16"
    config.save_pretrained(tmp_path / "out")
    ref = transformers.AutoConfig.from_pretrained(tmp_path / "out")
    assert ref.my_custom_key == {"nested": [1, 2]} and ref.hidden_size == 64
    assert str(ref.dtype) == "torch.float16"
    # and the reference's files load here
    ref.save_pretrained(tmp_path / "ref")
    again = AutoConfig.from_pretrained(tmp_path / "ref")
    assert again.my_custom_key == {"nested": [1, 2]} and again.hidden_size == 64
    assert json.loads(config.to_json_string())["hidden_size"] == 64
    assert config.to_dict()["model_type"] == "bert"


def test_attribute_errors():
    config = AutoConfig.for_model("bert")
    with pytest.raises(AttributeError):
        config.does_not_exist
    assert not hasattr(config, "does_not_exist")
    config.new_key = 5
    assert config.to_dict()["new_key"] == 5


def test_distilbert_aliases():
    config = AutoConfig.for_model("distilbert", hidden_size=48, n_heads=4)
    assert config.dim == 48 and config.hidden_size == 48 and config.num_attention_heads == 4


def test_unknown_model_type_lists_supported(tmp_path):
    folder = write_config(tmp_path / "c", model_type="frobnicator")
    with pytest.raises(UnsupportedModelError, match="frobnicator.*bert"):
        AutoConfig.from_pretrained(folder)


def test_missing_model_type(tmp_path):
    with pytest.raises(UnsupportedModelError, match="model_type"):
        AutoConfig.from_pretrained(write_config(tmp_path / "c", hidden_size=3))


def test_remote_code_refused_for_unknown_type(tmp_path):
    folder = write_config(tmp_path / "c", model_type="evil", auto_map={"AutoConfig": "evil.EvilConfig"})
    (folder / "evil.py").write_text("raise SystemExit('this must never run')\n")
    with pytest.raises(RemoteCodeError, match="never runs code"):
        AutoConfig.from_pretrained(folder, trust_remote_code=True)


def test_remote_code_ignored_for_known_type(tmp_path):
    folder = write_config(tmp_path / "c", model_type="bert", auto_map={"AutoModel": "x.Y"})
    assert type(AutoConfig.from_pretrained(folder)).__name__ == "BertConfig"


@pytest.mark.parametrize("content, match", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"model_type": "bert", "id2label": {"x": "a"}}', "id2label"),
    ('{"model_type": "bert", "problem_type": "clustering"}', "problem_type"),
])
def test_malformed_configs(tmp_path, content, match):
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(ConfigError, match=match):
        AutoConfig.from_pretrained(tmp_path)


def test_register_custom_config():
    class TinyConfig(PretrainedConfig):
        model_type = "tiny-test"
        defaults = {"width": 4}

    AutoConfig.register("tiny-test", TinyConfig)
    assert AutoConfig.for_model("tiny-test").width == 4
    with pytest.raises(UnsupportedModelError, match="already registered"):
        AutoConfig.register("tiny-test", TinyConfig)
    with pytest.raises(UnsupportedModelError, match="must match"):
        AutoConfig.register("other-name", TinyConfig)


def test_num_labels_validation():
    with pytest.raises(ConfigError):
        AutoConfig.for_model("bert", num_labels=0)
    with pytest.raises(ConfigError, match="num_labels > 1"):
        AutoConfig.for_model("bert", num_labels=1, problem_type="single_label_classification")
    assert leanformers.AutoConfig is AutoConfig

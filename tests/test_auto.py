"""The Auto classes: table-driven choice of class per task, the offline hub cache, registration,
remote code, from_config, and the argument checks."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

import leanformers
from conftest import make_hub_cache
from leanformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
)
from leanformers.configuration import PretrainedConfig
from leanformers.errors import InputError, RemoteCodeError, UnsupportedModelError
from leanformers.modeling.base import PreTrainedModel

TASKS = {
    AutoModel: "Model",
    AutoModelForSequenceClassification: "ForSequenceClassification",
    AutoModelForTokenClassification: "ForTokenClassification",
    AutoModelForQuestionAnswering: "ForQuestionAnswering",
    AutoModelForMaskedLM: "ForMaskedLM",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny random BERT and DistilBERT base checkpoints written by the reference."""
    root = tmp_path_factory.mktemp("auto")
    torch.manual_seed(0)
    bert = transformers.BertModel(transformers.BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37))
    bert.save_pretrained(root / "bert")
    distil = transformers.DistilBertModel(transformers.DistilBertConfig(
        vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37))
    distil.save_pretrained(root / "distilbert")
    return root


@pytest.mark.parametrize("model_type, prefix", [("bert", "Bert"), ("distilbert", "DistilBert")])
@pytest.mark.parametrize("auto", list(TASKS))
def test_task_picks_class(tiny, auto, model_type, prefix):
    model = auto.from_pretrained(tiny / model_type)
    assert type(model).__name__ == prefix + TASKS[auto]
    assert not model.training
    fresh = auto.from_config(AutoConfig.from_pretrained(tiny / model_type))
    assert type(fresh).__name__ == prefix + TASKS[auto]


def test_hub_cache_offline_model_and_tokenizer(tiny, minilm_dir, tmp_path, monkeypatch):
    files = {name: tiny / "bert" / name for name in ("config.json", "model.safetensors")}
    files.update({name: minilm_dir / name for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")})
    cache = make_hub_cache(tmp_path / "hub", "org/tiny-bert", files)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = AutoModel.from_pretrained("org/tiny-bert")
    ref = transformers.AutoModel.from_pretrained(tiny / "bert").eval()
    ids = torch.tensor([[2, 5, 7, 9]])
    with torch.no_grad():
        assert torch.allclose(model(ids).last_hidden_state, ref(ids).last_hidden_state, atol=1e-5)
    assert AutoTokenizer.from_pretrained("org/tiny-bert")("hobbit")["input_ids"] == [101, 7570, 10322, 4183, 102]
    assert AutoConfig.from_pretrained("org/tiny-bert", local_files_only=True).hidden_size == 32


def test_overrides_reach_the_model(tiny):
    model = AutoModelForSequenceClassification.from_pretrained(tiny / "bert", num_labels=5)
    assert model.classifier.out_features == 5 and model.config.num_labels == 5
    with pytest.raises(InputError, match="unexpected"):
        AutoModel.from_pretrained(tiny / "bert", not_an_option=1)


def test_dtype_and_device(tiny):
    model = AutoModel.from_pretrained(tiny / "bert", dtype=torch.bfloat16, device="cpu")
    assert model.dtype == torch.bfloat16 and model.device.type == "cpu"
    model = AutoModel.from_pretrained(tiny / "bert", torch_dtype="float16")
    assert model.dtype == torch.float16
    with pytest.raises(InputError, match="dtype"):
        AutoModel.from_pretrained(tiny / "bert", dtype="float13")


def test_remote_code_refused_for_models(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mystery", "auto_map": {"AutoModel": "m.M"}}))
    (tmp_path / "m.py").write_text("raise SystemExit('never')\n")
    with pytest.raises(RemoteCodeError, match="mystery"):
        AutoModel.from_pretrained(tmp_path, trust_remote_code=True)


def test_remote_code_ignored_for_known_type(tiny, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    config = json.loads((tiny / "bert" / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes((tiny / "bert" / "model.safetensors").read_bytes())
    (folder / "modeling_evil.py").write_text("raise SystemExit('never')\n")
    assert type(AutoModel.from_pretrained(folder, trust_remote_code=True)).__name__ == "BertModel"


def test_register_custom_architecture(tmp_path):
    class ToyConfig(PretrainedConfig):
        model_type = "toy-auto-test"
        defaults = {"width": 3}

    class ToyModel(PreTrainedModel):
        config_class = ToyConfig

        def __init__(self, config):
            super().__init__(config)
            self.proj = torch.nn.Linear(config.width, config.width)

        def forward(self, x):
            return self.proj(x)

    AutoConfig.register("toy-auto-test", ToyConfig)
    AutoModel.register(ToyConfig, ToyModel)
    model = AutoModel.from_config(ToyConfig(width=4))
    model.save_pretrained(tmp_path / "toy")
    loaded = AutoModel.from_pretrained(tmp_path / "toy")
    assert type(loaded) is ToyModel and torch.equal(loaded.proj.weight, model.proj.weight)
    with pytest.raises(UnsupportedModelError, match="no 'masked-lm' head|toy-auto-test"):
        AutoModelForMaskedLM.from_pretrained(tmp_path / "toy")
    with pytest.raises(UnsupportedModelError, match="already registered"):
        AutoModel.register(ToyConfig, ToyModel)


def test_auto_classes_are_not_instantiable():
    with pytest.raises(InputError):
        AutoModel()
    with pytest.raises(InputError):
        AutoModel.from_config({"model_type": "bert"})
    with pytest.raises(InputError):
        AutoModel.from_pretrained("x", "positional")


def test_public_names_resolve():
    for name in leanformers.__all__:
        assert getattr(leanformers, name) is not None
    with pytest.raises(AttributeError):
        leanformers.NotAThing

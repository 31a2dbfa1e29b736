"""Weights files: the safetensors reader, weights-only .bin loading, shard indexes, corrupt files."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from leanformers.errors import CheckpointNotFoundError, WeightsError
from leanformers.hub import Source
from leanformers.modeling.loading import (
    NO_CONVERSION,
    SafetensorsFile,
    convert_keys,
    open_weights,
    read_bin,
    rename_key,
)


@pytest.fixture
def tensors():
    g = torch.Generator().manual_seed(0)
    return {
        "a.weight": torch.randn(3, 4, generator=g),
        "b.bias": torch.randn(5, generator=g).to(torch.bfloat16),
        "c.ids": torch.arange(6, dtype=torch.int64).view(2, 3),
        "d.empty": torch.zeros(0, 2),
        "e.flag": torch.tensor([True, False]),
    }


def test_safetensors_reader_matches_library(tmp_path, tensors):
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt"})
    opened = SafetensorsFile(str(path))
    assert set(opened) == set(tensors)
    assert opened.metadata == {"format": "pt"}
    for name, tensor in tensors.items():
        assert opened[name].dtype == tensor.dtype and torch.equal(opened[name], tensor)
    # tensors are writable copies-on-write: the file is never modified
    opened["a.weight"].add_(1)
    assert torch.equal(SafetensorsFile(str(path))["a.weight"], tensors["a.weight"])


def test_truncated_safetensors(tmp_path, tensors):
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path))
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(WeightsError, match="truncated"):
        SafetensorsFile(str(path))
    path.write_bytes(data[:5])
    with pytest.raises(WeightsError, match="too short"):
        SafetensorsFile(str(path))
    path.write_bytes((10**9).to_bytes(8, "little") + b"{}")
    with pytest.raises(WeightsError, match="corrupt or truncated header"):
        SafetensorsFile(str(path))
    header = b'{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}'
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 8)
    with pytest.raises(WeightsError, match="corrupt"):
        SafetensorsFile(str(path))
    header = b"not json"
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(WeightsError, match="not valid JSON"):
        SafetensorsFile(str(path))


def test_bin_weights_only(tmp_path, tensors):
    path = tmp_path / "pytorch_model.bin"
    torch.save(tensors, path)
    loaded = read_bin(str(path))
    assert torch.equal(loaded["a.weight"], tensors["a.weight"])


class Exploit:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_bin_with_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "pytorch_model.bin"
    torch.save({"w": torch.zeros(1), "x": Exploit()}, path)
    with pytest.raises(WeightsError, match="weights-only"):
        read_bin(str(path))
    assert not (tmp_path / "PWNED").exists()
    legacy = tmp_path / "legacy.bin"
    legacy.write_bytes(pickle.dumps({"x": Exploit()}))
    with pytest.raises(WeightsError):
        read_bin(str(legacy))
    assert not (tmp_path / "PWNED").exists()


def test_truncated_bin(tmp_path, tensors):
    path = tmp_path / "pytorch_model.bin"
    torch.save(tensors, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(WeightsError):
        read_bin(str(path))


def test_shard_index(tmp_path, tensors):
    save_file({"a.weight": tensors["a.weight"]}, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file({"c.ids": tensors["c.ids"]}, str(tmp_path / "model-00002-of-00002.safetensors"))
    index = {"metadata": {}, "weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                                            "c.ids": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    checkpoint = open_weights(Source.of(str(tmp_path)))
    assert torch.equal(checkpoint.tensors["c.ids"], tensors["c.ids"])
    assert checkpoint.tensors.first_float_dtype() == torch.float32
    assert len(checkpoint.files) == 2


@pytest.mark.parametrize("shard", ["../outside.safetensors", "/etc/passwd", "sub/x.safetensors"])
def test_unsafe_shard_names(tmp_path, shard):
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": shard}}))
    with pytest.raises(WeightsError, match="unsafe"):
        open_weights(Source.of(str(tmp_path)))


def test_missing_shard_and_bad_index(tmp_path):
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "gone.safetensors"}}))
    with pytest.raises(CheckpointNotFoundError, match="gone.safetensors"):
        open_weights(Source.of(str(tmp_path)))
    (tmp_path / "model.safetensors.index.json").write_text("{}")
    with pytest.raises(WeightsError, match="malformed"):
        open_weights(Source.of(str(tmp_path)))


def test_no_weights_at_all(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointNotFoundError, match="has no weights"):
        open_weights(Source.of(str(tmp_path)))


def map_keys(checkpoint_keys, expected, prefix):
    sources = convert_keys(checkpoint_keys, {key: () for key in expected}, prefix, NO_CONVERSION)
    return {key: ckpt_key for key, (ckpt_key, _) in sources.items()}


def test_key_mapping():
    assert rename_key("x.LayerNorm.gamma", []) == "x.LayerNorm.weight"
    assert rename_key("x.LayerNorm.beta", []) == "x.LayerNorm.bias"
    expected = {"bert.a.weight", "classifier.weight"}
    assert map_keys(["a.weight"], expected, "bert") == {"bert.a.weight": "a.weight"}
    assert map_keys(["bert.a.weight", "cls.x"], {"a.weight"}, "bert") == {"a.weight": "bert.a.weight"}
    assert map_keys(["bert.a.weight"], expected, "bert") == {"bert.a.weight": "bert.a.weight"}

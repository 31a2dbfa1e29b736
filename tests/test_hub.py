"""Checkpoint resolution: local folders, the offline hub cache, and the errors for what is missing."""

from __future__ import annotations

import pytest

from conftest import make_hub_cache
from leanformers.errors import CheckpointNotFoundError, InputError
from leanformers.hub import Source, atomic_write, hub_cache_dir, resolve_file


def test_local_folder(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_file(str(tmp_path), "config.json") == str(tmp_path / "config.json")
    assert resolve_file(tmp_path, "absent.json", required=False) is None


def test_local_missing_file_names_folder_and_contents(tmp_path):
    (tmp_path / "vocab.txt").write_text("a\n")
    with pytest.raises(CheckpointNotFoundError, match="config.json.*vocab.txt"):
        resolve_file(str(tmp_path), "config.json")


def test_subfolder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "config.json").write_text("{}")
    assert resolve_file(str(tmp_path), "config.json", subfolder="sub").endswith("sub/config.json")


def test_hub_cache_offline(tmp_path, monkeypatch):
    cache = make_hub_cache(tmp_path / "hub", "org/name", {"config.json": b'{"a": 1}', "sub/x.txt": b"x"})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = resolve_file("org/name", "config.json")
    assert open(path).read() == '{"a": 1}'
    assert resolve_file("org/name", "x.txt", subfolder="sub").endswith("x.txt")
    assert resolve_file("org/name", "absent.json", required=False) is None
    with pytest.raises(CheckpointNotFoundError, match="absent.json.*HF_HUB_OFFLINE"):
        resolve_file("org/name", "absent.json")


def test_hf_home_and_explicit_revision(tmp_path, monkeypatch):
    make_hub_cache(tmp_path / "home" / "hub", "org/name", {"config.json": b"{}"}, commit="b" * 40)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == str(tmp_path / "home" / "hub")
    assert resolve_file("org/name", "config.json", revision="b" * 40)
    with pytest.raises(CheckpointNotFoundError):
        resolve_file("org/name", "config.json", revision="v2")


def test_cache_dir_argument_and_local_files_only(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    cache = make_hub_cache(tmp_path / "c", "solo", {"config.json": b"{}"})
    assert resolve_file("solo", "config.json", cache_dir=str(cache), local_files_only=True)
    with pytest.raises(CheckpointNotFoundError, match="local_files_only"):
        resolve_file("other/repo", "config.json", cache_dir=str(cache), local_files_only=True)


def test_no_exist_marker(tmp_path, monkeypatch):
    cache = make_hub_cache(tmp_path / "hub", "org/name", {"config.json": b"{}"})
    marker = cache / "models--org--name" / ".no_exist" / ("a" * 40)
    marker.mkdir(parents=True)
    (marker / "model.safetensors").write_bytes(b"")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert resolve_file("org/name", "model.safetensors", required=False) is None
    with pytest.raises(CheckpointNotFoundError, match="absent"):
        resolve_file("org/name", "model.safetensors")


@pytest.mark.parametrize("name", ["./does/not/exist", "/abs/missing", "a/b/c", "bad name", "org--x/y", "x/../y"])
def test_not_a_folder_nor_repo_id(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(CheckpointNotFoundError, match="neither an existing folder nor a valid hub repository id"):
        resolve_file(name, "config.json")


@pytest.mark.parametrize("bad", [None, 3, "", "   "])
def test_bad_name_type(bad):
    with pytest.raises(InputError):
        Source.of(bad)


def test_atomic_write_leaves_no_temp(tmp_path):
    target = tmp_path / "f.json"
    atomic_write(target, "hello")
    assert target.read_text() == "hello"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]

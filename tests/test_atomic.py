"""Every file the library writes goes through a temporary name and a rename: a save killed at any
moment leaves the old complete files or the new complete ones, never a half-written one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from leanformers import AutoConfig, AutoFeatureExtractor, AutoImageProcessor, AutoModel, AutoTokenizer
from leanformers.hub import atomic_write

SRC = str(Path(__file__).resolve().parents[1] / "src")

# About 40 MB of weights, so a kill often lands while model.safetensors is being written.
CONFIG = {"model_type": "bert", "vocab_size": 30000, "hidden_size": 256, "num_hidden_layers": 4,
          "num_attention_heads": 4, "intermediate_size": 1024, "max_position_embeddings": 128}

# The saver alternates two versions of the model (every weight 1.0 or 2.0, and a config key saying
# which) and of a tokenizer and preprocessor config, saving all of them into one folder, forever.
SAVER = textwrap.dedent(
    """
    import json, sys
    import torch
    from leanformers import AutoConfig, AutoModel, AutoTokenizer, AutoImageProcessor, AutoFeatureExtractor
    folder, source = sys.argv[1], sys.argv[2]
    model = AutoModel.from_config(AutoConfig.from_pretrained(source))
    tokenizer = AutoTokenizer.from_pretrained(source)
    images = AutoImageProcessor.from_pretrained(source + "/image")
    audio = AutoFeatureExtractor.from_pretrained(source + "/audio")
    version = 0
    while True:
        version = 1 + version % 2
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(version))
        model.config.saved_version = version
        tokenizer.model_max_length = 100 + version
        images.crop_pct = 0.5 + version / 10
        audio.padding_value = float(version)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        images.save_pretrained(folder + "/image")
        audio.save_pretrained(folder + "/audio")
        print("saved", version, flush=True)
    """
)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("source")
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] +
                                                [f"w{i}" for i in range(29995)]) + "\n")
    (folder / "image").mkdir()
    (folder / "image" / "preprocessor_config.json").write_text(json.dumps(
        {"image_processor_type": "ViTImageProcessor", "size": {"height": 8, "width": 8}}))
    (folder / "audio").mkdir()
    (folder / "audio" / "preprocessor_config.json").write_text(json.dumps(
        {"feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1, "sampling_rate": 16000,
         "padding_value": 0.0, "do_normalize": True}))
    return folder


def _check_folder(folder: Path) -> set[int]:
    """Every final-named file is complete and loads; returns the model versions seen."""
    names = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
    assert names <= {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                     "vocab.txt", "special_tokens_map.json", "image", "audio"}, names
    config = AutoConfig.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder)
    values = {float(p.detach().reshape(-1)[0]) for p in model.parameters()}
    assert values <= {1.0, 2.0} and len(values) == 1, "weights from two saves mixed in one file"
    assert config.saved_version in (1, 2)
    if (folder / "tokenizer_config.json").exists():
        AutoTokenizer.from_pretrained(folder)
    if (folder / "image" / "preprocessor_config.json").exists():
        AutoImageProcessor.from_pretrained(folder / "image")
    if (folder / "audio" / "preprocessor_config.json").exists():
        AutoFeatureExtractor.from_pretrained(folder / "audio")
    return values


def _writing(folder: Path) -> bool:
    """Whether a save is under way: a temporary weights file exists and has data in it."""
    try:
        return any(p.stat().st_size > 0 for p in folder.glob(".model.safetensors.*"))
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("when", ["while-writing-weights", 0.0, 0.13, 0.37])
def test_kill_during_save(source, tmp_path, when):
    folder = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen([sys.executable, "-c", SAVER, str(folder), str(source)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Wait for two complete saves (so the folder has an "old" version), then kill the saver
        # part-way through a later one: at a fixed delay, or as soon as the weights are being written.
        for _ in range(2):
            line = proc.stdout.readline()
            assert line.startswith("saved"), proc.stderr.read()
        if when == "while-writing-weights":
            deadline = time.monotonic() + 10
            while not _writing(folder) and time.monotonic() < deadline:
                time.sleep(0.0005)
            assert _writing(folder), "never saw the weights being written through a temporary file"
        else:
            time.sleep(when)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    _check_folder(folder)


def test_failed_save_keeps_the_old_files(source, tmp_path, monkeypatch):
    model = AutoModel.from_config(AutoConfig.from_pretrained(source))
    model.save_pretrained(tmp_path)
    before = (tmp_path / "model.safetensors").read_bytes()

    import safetensors.torch

    def explode(*args, **kwargs):
        Path(args[1]).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", explode)
    with pytest.raises(OSError, match="disk full"):
        model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def test_concurrent_atomic_writes_to_one_file(tmp_path):
    """Threads writing the same file never share a temporary name, so the result is one whole write."""
    target = tmp_path / "config.json"
    payloads = [json.dumps({"writer": i, "pad": "x" * 200_000}) for i in range(8)]
    threads = [threading.Thread(target=atomic_write, args=(target, payload)) for payload in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert target.read_text() in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_every_save_path_writes_through_a_rename(source, tmp_path, monkeypatch):
    """No save opens a final file name for writing: each one is os.replace'd into place."""
    replaced: list[str] = []
    real_replace = os.replace

    def recording_replace(src, dst, *args, **kwargs):
        replaced.append(Path(dst).name)
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", recording_replace)
    model = AutoModel.from_config(AutoConfig.from_pretrained(source))
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(source).save_pretrained(tmp_path)
    AutoImageProcessor.from_pretrained(source / "image").save_pretrained(tmp_path / "image")
    AutoFeatureExtractor.from_pretrained(source / "audio").save_pretrained(tmp_path / "audio")
    written = {p.relative_to(tmp_path).name for p in tmp_path.rglob("*") if p.is_file()}
    assert written <= set(replaced), f"written directly, without a rename: {written - set(replaced)}"
    assert not [p for p in tmp_path.rglob(".*.tmp")], "a temporary file was left behind"


def test_next_save_removes_temporaries_of_a_killed_save(source, tmp_path):
    folder = tmp_path / "out"
    model = AutoModel.from_config(AutoConfig.from_pretrained(source))
    model.save_pretrained(folder)
    # A save killed mid-write leaves its hidden temporary behind, named after its (now gone) process.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = folder / f".model.safetensors.{dead.pid}.0123456789ab.tmp"
    stale.write_bytes(b"half a file")
    live = folder / f".model.safetensors.{os.getppid()}.0123456789ab.tmp"  # a saver still running
    live.write_bytes(b"being written")
    other = folder / f".config.json.{dead.pid}.0123456789ab.tmp"  # another file's: removed by its own save
    other.write_bytes(b"{")
    model.save_pretrained(folder)
    assert not stale.exists() and live.exists()
    assert not other.exists()  # save_pretrained writes config.json too
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp")) == [live.name]

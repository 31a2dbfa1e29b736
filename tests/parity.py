"""Helpers for parity tests against the reference library (``transformers``, the test oracle only).

Checkpoints are tiny random models the reference builds and saves; the tests load them with both
libraries, feed the same inputs, and compare every output with ``assert_outputs_close``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

def tolerance(ref: torch.Tensor) -> dict[str, float]:
    """fp32 tolerance: rtol 1e-5, atol scaled to the reference's magnitude, never looser than 1e-4."""
    scale = ref.detach().abs().max().item() if ref.numel() else 0.0
    return {"rtol": 1e-5, "atol": min(max(1e-5 * scale, 1e-6), 1e-4)}


BF16_TOLERANCE = {"rtol": 1.6e-2, "atol": 1e-2}


def assert_tensors_close(ours: Any, ref: Any, what: str, tol: dict[str, float] | None = None) -> None:
    """Tensors, or (nested) tuples of tensors, close within ``tol`` (default: ``tolerance(ref)``)."""
    if isinstance(ref, (tuple, list)):
        assert isinstance(ours, (tuple, list)), f"{what}: ours is {type(ours).__name__}, reference is a tuple"
        assert len(ours) == len(ref), f"{what}: ours has {len(ours)} entries, reference {len(ref)}"
        for i, (a, b) in enumerate(zip(ours, ref)):
            assert_tensors_close(a, b, f"{what}[{i}]", tol)
        return
    if ref is None:
        assert ours is None, f"{what}: reference is None, ours is {type(ours).__name__}"
        return
    assert isinstance(ours, torch.Tensor), f"{what}: ours is {type(ours).__name__}, reference is a tensor"
    assert ours.shape == ref.shape, f"{what}: shape {tuple(ours.shape)} != reference {tuple(ref.shape)}"
    assert ours.dtype == ref.dtype, f"{what}: dtype {ours.dtype} != reference {ref.dtype}"
    ours, ref = ours.detach(), ref.detach()
    torch.testing.assert_close(ours, ref, **(tol or tolerance(ref)), msg=lambda m: f"{what}: {m}")


def assert_outputs_close(ours: Any, ref: Any, what: str = "", tol: dict[str, float] | None = None) -> None:
    """Every field the reference returns, compared; ours must have the same fields (or tuple layout)."""
    if isinstance(ref, tuple):
        assert_tensors_close(ours, ref, what or "tuple", tol)
        return
    ref_keys = list(ref.keys())
    assert list(ours.keys()) == ref_keys, f"{what}: fields {list(ours.keys())} != reference {ref_keys}"
    for key in ref_keys:
        assert_tensors_close(ours[key], ref[key], f"{what}.{key}" if what else key, tol)


def save_reference(ref_model: Any, path: Path, **save_kwargs: Any) -> Path:
    ref_model.save_pretrained(path, **save_kwargs)
    return path


def build_reference(class_name: str, config: Any, seed: int = 0) -> Any:
    """A freshly initialised reference model, seeded so every session builds the same weights."""
    torch.manual_seed(seed)
    return getattr(transformers, class_name)(config).eval()


def load_reference(class_name: str, path: Path, eager: bool = False, **kwargs: Any) -> Any:
    """The reference's model from ``path``; ``eager`` selects its explicit attention (returns weights)."""
    if eager:
        kwargs["attn_implementation"] = "eager"
    return getattr(transformers, class_name).from_pretrained(path, **kwargs).eval()


def text_inputs(vocab_size: int, batch: int = 3, seq: int = 9, seed: int = 1, pad_row: bool = True) -> dict:
    """input_ids, an attention_mask padding the tail of some rows, token_type_ids with two segments."""
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, vocab_size, (batch, seq), generator=gen)
    attention_mask = torch.ones(batch, seq, dtype=torch.long)
    if pad_row:
        attention_mask[1, seq - 3:] = 0
        if batch > 2:
            attention_mask[2, 2:] = 0
        input_ids[attention_mask == 0] = 0
    token_type_ids = torch.zeros(batch, seq, dtype=torch.long)
    token_type_ids[:, seq // 2:] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


@torch.no_grad()
def run(model: Any, **inputs: Any) -> Any:
    return model(**inputs)


def state_dicts_equal(ours: torch.nn.Module, ref: torch.nn.Module, keys: set[str] | None = None) -> None:
    """Our parameters equal the reference's, exactly, for ``keys`` (default: every key both have)."""
    ours_sd, ref_sd = ours.state_dict(), ref.state_dict()
    keys = keys if keys is not None else set(ours_sd) & set(ref_sd)
    assert keys, "no common keys to compare"
    for key in sorted(keys):
        assert key in ours_sd, f"{key} missing from our model"
        assert torch.equal(ours_sd[key], ref_sd[key]), f"{key} differs from the reference"

"""dtype="auto" on CPUs: a bfloat16 checkpoint loads in bfloat16 where the CPU multiplies bf16
natively (as the reference loads it) and in float32 with one log line where it would only be
emulated; an explicit dtype is always honoured."""

from __future__ import annotations

import logging

import pytest
import torch

from leanformers import AutoModelForCausalLM
from leanformers.modeling import base
from leanformers.models.decoder import LlamaConfig, LlamaForCausalLM

TINY = dict(vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2)


@pytest.fixture(scope="module")
def bf16_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("bf16")
    LlamaForCausalLM.from_config(LlamaConfig(**TINY), dtype=torch.bfloat16).save_pretrained(path)
    return path


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_the_cpu(bf16_checkpoint, monkeypatch, caplog, native):
    monkeypatch.setattr(base, "cpu_has_native_bf16", lambda: native)
    with caplog.at_level(logging.WARNING, logger="leanformers"):
        model = AutoModelForCausalLM.from_pretrained(bf16_checkpoint)
    notes = [r.getMessage() for r in caplog.records if "native bf16" in r.getMessage()]
    if native:
        assert model.dtype == torch.bfloat16 and not notes
    else:
        assert model.dtype == torch.float32 and model.config.dtype == "float32"
        assert len(notes) == 1 and "dtype=torch.bfloat16" in notes[0]


@pytest.mark.parametrize("dtype", [torch.bfloat16, "bfloat16", torch.float16, torch.float32])
def test_explicit_dtype_is_honoured(bf16_checkpoint, monkeypatch, dtype):
    monkeypatch.setattr(base, "cpu_has_native_bf16", lambda: False)
    model = AutoModelForCausalLM.from_pretrained(bf16_checkpoint, dtype=dtype)
    assert model.dtype == base.to_torch_dtype(dtype)


def test_float32_checkpoints_are_untouched(tmp_path, monkeypatch):
    monkeypatch.setattr(base, "cpu_has_native_bf16", lambda: False)
    LlamaForCausalLM.from_config(LlamaConfig(**TINY)).save_pretrained(tmp_path)
    assert AutoModelForCausalLM.from_pretrained(tmp_path).dtype == torch.float32


def test_cpu_flags_are_read(monkeypatch, tmp_path):
    def fake(flags: str):
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        real_open = open
        monkeypatch.setattr("builtins.open", lambda f, *a, **k: real_open(path if f == "/proc/cpuinfo" else f, *a, **k))

    fake("fpu sse avx2 avx512f")
    assert base.cpu_has_native_bf16() is False
    fake("fpu avx512f avx512_bf16")
    assert base.cpu_has_native_bf16() is True
    fake("fpu amx_tile amx_bf16")
    assert base.cpu_has_native_bf16() is True

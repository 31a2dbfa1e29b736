"""The native packed-attention kernel (modeling/_attention.c, used by ``PackedBatch.attend``): equal
to SDPA over each row's real keys for every head size it takes, row layout and thread count; the
models that use it equal the reference and their dense path; and everything it does not cover
falls back to SDPA."""

from __future__ import annotations

import platform
import random
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from parity import build_reference, load_reference, run, transformers
from test_unpadded import compare_real_positions, inputs_for, masks

from leanformers.modeling import attention
from leanformers.models import bert, distilbert

needs_kernel = pytest.mark.skipif(not attention.NATIVE, reason="the native attention kernel does not run here")


def rows_for(spans_lengths: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    starts = np.cumsum([0] + [span for span, _ in spans_lengths[:-1]]).astype(np.int64)
    spans = np.array([span for span, _ in spans_lengths], np.int64)
    lengths = np.array([length for _, length in spans_lengths], np.int64)
    return starts, spans, lengths


def sdpa_rows(q, k, v, rows, heads: int, head_dim: int) -> torch.Tensor:
    """Each row's queries (all its slots) over its first ``length`` keys, by torch's SDPA."""
    out = torch.empty_like(q)
    for start, span, length in zip(*rows):
        qq = q[start : start + span].view(span, heads, head_dim).transpose(0, 1)
        kk, vv = (x[start : start + length].view(length, heads, head_dim).transpose(0, 1) for x in (k, v))
        out[start : start + span] = F.scaled_dot_product_attention(qq, kk, vv).transpose(0, 1).reshape(span, -1)
    return out


def native_rows(q, k, v, rows, heads: int, head_dim: int, threads: int) -> torch.Tensor:
    out = torch.empty_like(q)
    attention._attention.attend(q.numpy(), k.numpy(), v.numpy(), out.numpy(), *rows, heads, head_dim,
                                head_dim**-0.5, threads)
    return out


@needs_kernel
@pytest.mark.parametrize("head_dim", [32, 64, 128])
def test_kernel_equals_sdpa_over_random_rows(head_dim):
    rng = random.Random(head_dim)
    gen = torch.Generator().manual_seed(head_dim)
    for case in range(12):
        heads = rng.choice([1, 2, 3, 12])
        # Rows with pad slots (span > length, as bucketed rows have), single tokens, long rows.
        layout = []
        for _ in range(rng.randint(1, 9)):
            length = rng.choice([1, 2, 15, 16, 17, rng.randint(1, 150)])
            layout.append((length + rng.choice([0, 0, 1, 7]), length))
        rows = rows_for(layout)
        slots = int(rows[0][-1] + rows[1][-1])
        q, k, v = (torch.randn(slots, heads * head_dim, generator=gen) * rng.choice([0.3, 1.0, 4.0])
                   for _ in range(3))
        expected = sdpa_rows(q, k, v, rows, heads, head_dim)
        for threads in (1, 2, 3):
            got = native_rows(q, k, v, rows, heads, head_dim, threads)
            scale = expected.abs().max().item()
            assert (got - expected).abs().max().item() <= max(1e-5 * scale, 1e-6), (case, layout, threads)


@needs_kernel
def test_more_threads_than_work_or_than_the_cap():
    """A thread count over the number of (row, head) items, or over the kernel's cap of 64 (a big
    machine's torch thread count), still gives the same result (with at most one thread per item)."""
    gen = torch.Generator().manual_seed(6)
    rows = rows_for([(7, 7), (3, 2), (1, 1)])
    q, k, v = (torch.randn(11, 32, generator=gen) for _ in range(3))
    expected = sdpa_rows(q, k, v, rows, 1, 32)
    for threads in (3, 4, 500):
        assert (native_rows(q, k, v, rows, 1, 32, threads) - expected).abs().max().item() <= 1e-6


@needs_kernel
def test_kernel_keeps_large_scores_finite():
    """Scores in the thousands: the softmax subtracts the row maximum before the exponential."""
    gen = torch.Generator().manual_seed(5)
    rows = rows_for([(20, 13), (5, 5)])
    q, k, v = (torch.randn(25, 64, generator=gen) * 30 for _ in range(3))
    got = native_rows(q, k, v, rows, 1, 64, 2)
    expected = sdpa_rows(q, k, v, rows, 1, 64)
    assert torch.isfinite(got).all()
    assert (got - expected).abs().max().item() <= 1e-5 * expected.abs().max().item()


@needs_kernel
def test_kernel_refuses_rows_and_shapes_it_does_not_fit():
    """Rows index memory: a row past the end, a length over its span, an empty row, an unsupported
    head size or mismatched buffers raise instead of reading or writing out of bounds."""
    q = torch.zeros(10, 64)
    native = attention._attention

    def call(rows, head_dim=64, out=None, key=None):
        native.attend(q.numpy(), (key if key is not None else q).numpy(), q.numpy(),
                      (out if out is not None else torch.zeros(10, 64)).numpy(), *rows, 64 // head_dim, head_dim,
                      0.125, 2)

    call(rows_for([(4, 4), (6, 3)]))
    for bad in ([(4, 4), (7, 3)], [(4, 5)], [(4, 0)]):
        with pytest.raises(ValueError, match="not supported"):
            call(rows_for(bad))
    with pytest.raises(ValueError, match="not supported"):
        call(rows_for([(4, 4)]), head_dim=16)
    with pytest.raises(ValueError, match="not supported"):
        call(rows_for([(4, 4)]), key=torch.zeros(9, 64))
    with pytest.raises(ValueError, match="not supported"):
        native.attend(q.numpy(), q.numpy(), q.numpy(), torch.zeros(10, 64).numpy(), *rows_for([(4, 4)]), 1, 64,
                      0.125, 0)
    with pytest.raises(TypeError):  # read-only output
        native.attend(q.numpy(), q.numpy(), q.numpy(), bytes(2560), *rows_for([(4, 4)]), 1, 64, 0.125, 1)


def test_the_kernel_is_built_where_ci_runs():
    """CI installs on x86-64 with gcc; a C file that failed to compile is skipped silently (it is
    optional), so that fails here instead."""
    if platform.machine() != "x86_64" or shutil.which("gcc") is None:
        pytest.skip("no x86-64 compiler here")
    assert attention._attention is not None, "modeling/_attention.c did not build"


@needs_kernel
def test_the_work_runs_on_torchs_threads():
    """Threads of its own would compete with torch's spinning OpenMP team; on Linux torch's libgomp
    is found and used."""
    assert attention._attention.shares_torch_threads()


# -- models ------------------------------------------------------------------------------------

VOCAB = 99
# Head size 32: the kernel's smallest (the packed-path tests in test_unpadded.py use 8, so SDPA).
NATIVE_FAMILIES = {
    "bert": (bert, lambda: transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        max_position_embeddings=64), ["BertModel", "BertForSequenceClassification", "BertForTokenClassification"]),
    "distilbert": (distilbert, lambda: transformers.DistilBertConfig(
        vocab_size=VOCAB, dim=64, n_layers=2, n_heads=2, hidden_dim=37, max_position_embeddings=64),
        ["DistilBertModel", "DistilBertForSequenceClassification"]),
}
CASES = [(family, name) for family, (_, _, names) in NATIVE_FAMILIES.items() for name in names]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("native_attention")
    paths = {}
    for seed, (family, name) in enumerate(CASES):
        paths[name] = root / name
        build_reference(name, NATIVE_FAMILIES[family][1](), seed).save_pretrained(paths[name])
    return paths


@pytest.fixture
def kernel_calls(monkeypatch):
    calls = []
    original = attention._attention.attend if attention._attention is not None else None

    def counting(*args):
        calls.append(len(args[4]))  # rows
        return original(*args)

    if original is not None:
        monkeypatch.setattr(attention._attention, "attend", counting)
    return calls


def load(family: str, name: str, path, unpad: bool):
    model = getattr(NATIVE_FAMILIES[family][0], name).from_pretrained(path)
    model.config.unpad_inputs = unpad
    return model


@needs_kernel
@pytest.mark.parametrize("case", list(masks()))
@pytest.mark.parametrize("family,name", CASES)
def test_models_with_the_kernel_match_reference_and_dense(checkpoints, kernel_calls, family, name, case):
    mask = masks()[case]
    inputs = inputs_for(mask)
    if family == "distilbert":
        inputs.pop("token_type_ids")
    ref = run(load_reference(name, checkpoints[name]), **inputs)
    dense = run(load(family, name, checkpoints[name], unpad=False), **inputs)
    assert not kernel_calls
    packed = run(load(family, name, checkpoints[name], unpad=True), **inputs)
    assert kernel_calls == [mask.shape[0]] * 2, "one kernel call per layer, one row per text"
    compare_real_positions(packed, ref, mask, f"{name}/{case}")
    compare_real_positions(packed, dense, mask, f"{name}/{case}/vs-dense")


@needs_kernel
def test_with_the_kernel_every_row_keeps_its_own_length():
    mask = masks()["many_lengths"]
    native = attention.pack_batch(mask, *mask.shape, torch.device("cpu"), True, 1000, native=True)
    grouped = attention.pack_batch(mask, *mask.shape, torch.device("cpu"), True, 1000, native=False)
    starts, spans, lengths = native.rows
    assert native.real is None and list(spans) == list(lengths) == sorted(mask.sum(1).tolist())
    assert list(starts) == list(np.cumsum([0, *lengths[:-1]]))
    # Without the kernel a call costs something, so rows of close lengths share a padded bucket.
    assert len(grouped.groups) < len(native.groups)


@needs_kernel
def test_what_the_kernel_does_not_cover_goes_to_sdpa(checkpoints, kernel_calls, monkeypatch):
    mask = masks()["mixed"]
    inputs = inputs_for(mask)
    name = "BertForSequenceClassification"
    model = load("bert", name, checkpoints[name], unpad=True)
    ref = run(load_reference(name, checkpoints[name]), **inputs)

    def logits(**kwargs):
        with torch.no_grad():
            return model(**inputs, **kwargs).logits

    baseline = logits()
    assert kernel_calls
    # Gradients: the kernel has no backward.
    kernel_calls.clear()
    with torch.enable_grad():
        grad_logits = model(**inputs).logits
    assert not kernel_calls and grad_logits.requires_grad
    torch.testing.assert_close(grad_logits.detach(), baseline, rtol=1e-5, atol=1e-5)
    # Dropout in training mode.
    model.train()
    with torch.no_grad():
        model(**inputs)
    assert not kernel_calls
    model.eval()
    # Float64, and the switch.
    with torch.no_grad():
        model.double()(**inputs)
    model.float()
    assert not kernel_calls
    monkeypatch.setattr(attention, "NATIVE", False)
    off = logits()
    assert not kernel_calls
    torch.testing.assert_close(off, baseline, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(baseline, ref.logits, rtol=1e-5, atol=1e-5)

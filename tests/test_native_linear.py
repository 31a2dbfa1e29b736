"""The native linear kernel (modeling/_linear.c, used by ``fused_linear`` for layers prepacked in
MKL's layout): equal to ``F.linear`` plus the activation or the residual for every shape, block
boundary and thread count; exact-erf GELU to float rounding; refuses buffers that do not fit; and
the layers and models that use it equal plain torch and the reference."""

from __future__ import annotations

import os
import platform
import random
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from parity import assert_tensors_close, build_reference, load_reference, run, transformers
from torch import nn

from leanformers.modeling import linear

needs_kernel = pytest.mark.skipif(not linear.NATIVE, reason="the native linear kernel does not run here")
BUILT_HERE = platform.machine() == "x86_64" and shutil.which("gcc") is not None


def cpu_flags() -> tuple[str, set[str]]:
    """(vendor, flags) from /proc/cpuinfo, or ("", set()) where there is none."""
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return "", set()
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    return fields.get("vendor_id", ""), set(fields.get("flags", "").split())
ACTIVATIONS = {0: lambda y: y, 1: F.gelu, 2: F.relu}


def packed_weight(weight: torch.Tensor) -> torch.Tensor:
    rows, depth = weight.shape
    packed = torch.empty(linear._linear.pack_size(rows, depth), dtype=torch.uint8)
    linear._linear.pack(weight.numpy(), rows, depth, packed.numpy())
    return packed


def native(x, weight, bias, residual, activation: int, threads: int, packed=None) -> torch.Tensor:
    m, (n, k) = x.shape[0], weight.shape
    out = torch.empty(m, n)
    linear._linear.linear(
        x.numpy(), (packed_weight(weight) if packed is None else packed).numpy(),
        None if bias is None else bias.numpy(), None if residual is None else residual.numpy(),
        out.numpy(), m, n, k, activation, threads,
    )
    return out


def plain(x, weight, bias, residual, activation: int) -> torch.Tensor:
    y = F.linear(x, weight, bias)
    return ACTIVATIONS[activation](y if residual is None else y + residual)


def test_the_kernel_is_built_and_runs_where_ci_runs():
    """CI installs on x86-64 with gcc, and a C file that failed to compile is skipped silently
    (it is optional): here that fails instead. On an Intel CPU with AVX-512 it must also run."""
    if not BUILT_HERE:
        pytest.skip("no x86-64 compiler here")
    assert linear._linear is not None, "modeling/_linear.c did not build"
    vendor, flags = cpu_flags()
    if vendor == "GenuineIntel" and "avx512f" in flags and os.environ.get("LEANFORMERS_NATIVE_LINEAR", "1") != "0":
        assert linear.NATIVE and linear._linear.available()


@needs_kernel
def test_kernel_equals_plain_torch_over_random_shapes():
    """Row counts around the 256-row block and the thread split, widths around the 16-lane vector
    (masked tails), depths from 1, with and without bias, residual and activation."""
    rng = random.Random(0)
    gen = torch.Generator().manual_seed(0)
    shapes = [(1, 1, 1), (1, 17, 5), (255, 16, 48), (256, 15, 48), (257, 80, 37), (513, 33, 64), (700, 768, 96)]
    shapes += [(rng.randint(1, 900), rng.randint(1, 200), rng.randint(1, 200)) for _ in range(12)]
    for m, n, k in shapes:
        x = torch.randn(m, k, generator=gen)
        weight = torch.randn(n, k, generator=gen) / k**0.5
        packed = packed_weight(weight)
        for activation in (0, 1, 2):
            bias = torch.randn(n, generator=gen) if rng.random() < 0.7 else None
            residual = torch.randn(m, n, generator=gen) if rng.random() < 0.5 else None
            threads = rng.choice([1, 2, 3])
            got = native(x, weight, bias, residual, activation, threads, packed)
            assert_tensors_close(got, plain(x, weight, bias, residual, activation),
                                 f"m={m} n={n} k={k} act={activation} bias={bias is not None} "
                                 f"residual={residual is not None} threads={threads}")


@needs_kernel
def test_layer_norm_after_the_block_equals_torchs():
    """Rows normalised in the kernel: with and without the norm's weight and bias, widths with a
    masked tail, a large eps (so a misplaced one shows), rows far from zero mean (the variance is
    taken around the mean), and after an activation or a residual."""
    gen = torch.Generator().manual_seed(2)
    for m, n, k, activation, with_residual, affine, eps in [
        (300, 80, 48, 0, True, (True, True), 1e-12), (257, 17, 33, 1, False, (True, False), 0.5),
        (9, 768, 64, 2, False, (False, True), 1e-5), (600, 48, 48, 0, True, (False, False), 1e-6),
    ]:
        x = torch.randn(m, k, generator=gen)
        weight, bias = torch.randn(n, k, generator=gen) / k**0.5, torch.randn(n, generator=gen) + 20.0
        residual = torch.randn(m, n, generator=gen) if with_residual else None
        scale = torch.randn(n, generator=gen) if affine[0] else None
        shift = torch.randn(n, generator=gen) if affine[1] else None
        out = torch.empty(m, n)
        linear._linear.linear(x.numpy(), packed_weight(weight).numpy(), bias.numpy(),
                              None if residual is None else residual.numpy(), out.numpy(), m, n, k, activation, 2,
                              None if scale is None else scale.numpy(), None if shift is None else shift.numpy(), eps)
        want = F.layer_norm(plain(x, weight, bias, residual, activation), (n,), scale, shift, eps)
        assert_tensors_close(out, want, f"m={m} n={n} act={activation} residual={with_residual} affine={affine}")
    with pytest.raises(ValueError, match="linear:"):  # a norm weight without an eps
        linear._linear.linear(x.numpy(), packed_weight(weight).numpy(), None, None, out.numpy(), m, n, k, 0, 1,
                              np.ones(n, np.float32))


@needs_kernel
def test_fused_linear_applies_the_norm_on_every_path(kernel_calls, monkeypatch):
    """The same ``norm(layer(x) + residual)`` from the kernel, from oneDNN and from plain torch, and
    for a norm the kernel does not take (another width's module runs on the result)."""
    layer, norm, grouped = prepacked_layer(48, 80), nn.LayerNorm(80, eps=1e-3), nn.GroupNorm(1, 80)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x, residual = torch.randn(2, 7, 48), torch.randn(2, 7, 80)
    want = norm(F.linear(x, layer.weight, layer.bias) + residual).detach()
    with torch.inference_mode():
        native = linear.fused_linear(x, layer, residual=residual, norm=norm)
        assert kernel_calls == [0]
        monkeypatch.setattr(linear, "NATIVE", False)
        onednn = linear.fused_linear(x, layer, residual=residual, norm=norm)
        monkeypatch.setattr(linear, "ENABLED", False)
        torch_only = linear.fused_linear(x, layer, residual=residual, norm=norm)
        monkeypatch.setattr(linear, "ENABLED", True)
        monkeypatch.setattr(linear, "NATIVE", True)
        # Not a LayerNorm: the kernel computes without it and the module runs on the result.
        other = linear.fused_linear(x.view(14, 48), layer, residual=residual.view(14, 80), norm=grouped)
    for got, what in ((native, "kernel"), (onednn, "oneDNN"), (torch_only, "plain torch")):
        assert_tensors_close(got, want, what)
    with torch.no_grad():
        want_grouped = grouped(F.linear(x.view(14, 48), layer.weight, layer.bias) + residual.view(14, 80))
    assert_tensors_close(other, want_grouped, "GroupNorm")
    assert kernel_calls == [0, 0]


@needs_kernel
def test_thread_counts_give_the_same_rows():
    """Each thread takes a share of the rows; more threads than rows, or than the cap, still cover
    every row exactly once."""
    gen = torch.Generator().manual_seed(1)
    x, weight, bias = torch.randn(5, 32, generator=gen), torch.randn(24, 32, generator=gen), torch.randn(24)
    want = plain(x, weight, bias, None, 1)
    for threads in (1, 2, 5, 9, 200):
        assert_tensors_close(native(x, weight, bias, None, 1, threads), want, f"threads={threads}")


@needs_kernel
def test_gelu_is_the_erf_form_to_float_rounding():
    """An identity weight passes the inputs straight to the activation: the kernel's GELU against
    the exact one (in float64) over a dense sweep, including far tails and zero, and against
    torch's for non-finite values."""
    values = torch.cat([torch.linspace(-12, 12, 24001), torch.tensor([0.0, -0.0, 1e-30, -1e-30, 30.0, -30.0])])
    values = torch.cat([values, torch.zeros(-values.numel() % 16)]).view(-1, 16)
    eye = torch.eye(16)
    got = native(values, eye, None, None, 1, 2).double()
    exact = F.gelu(values.double())
    error = ((got - exact).abs() / exact.abs().clamp(min=1.0)).max().item()
    # torch's own float32 GELU is off the exact value by up to 9.4e-7 on this sweep; ours by 4.5e-7.
    assert error < 6e-7
    assert torch.equal(got[values == 0], exact[values == 0])
    # One row per value times a 1 x 1 unit weight: non-finite inputs reach the activation alone.
    special, unit = torch.tensor([[float("nan")], [float("inf")], [float("-inf")], [1.0]]), torch.ones(1, 1)
    gelu, relu = (native(special, unit, None, None, activation, 1).flatten().tolist() for activation in (1, 2))
    assert np.isnan(gelu[0]) and np.isnan(relu[0]), "NaN stays NaN"
    assert gelu[1] == relu[1] == float("inf") and relu[2] == 0.0  # (torch's vectorised GELU gives NaN at inf)
    assert gelu[3] == pytest.approx(F.gelu(torch.tensor(1.0)).item(), rel=1e-6)


@needs_kernel
def test_kernel_refuses_what_does_not_fit():
    x, weight = torch.randn(4, 8), torch.randn(6, 8)
    packed, out = packed_weight(weight), torch.empty(4, 6)

    def call(**change):
        args = dict(x=x.numpy(), packed=packed.numpy(), bias=None, residual=None, out=out.numpy(), m=4, n=6, k=8,
                    activation=0, threads=1)
        args.update(change)
        linear._linear.linear(*args.values())

    call()
    for change in [{"m": 5}, {"k": 7}, {"n": 0}, {"m": 2**31}, {"activation": 3}, {"activation": -1},
                   {"threads": 0}, {"x": np.zeros(3, np.float32)}, {"out": np.zeros((4, 5), np.float32)},
                   {"bias": np.zeros(5, np.float32)}, {"residual": np.zeros((4, 5), np.float32)},
                   {"packed": np.zeros(16, np.uint8)}]:
        with pytest.raises(ValueError, match="linear:"):
            call(**change)
    read_only = np.zeros((4, 6), np.float32)
    read_only.flags.writeable = False
    with pytest.raises((BufferError, TypeError, ValueError)):
        call(out=read_only)
    with pytest.raises(ValueError, match="linear:"):
        linear._linear.pack(weight.numpy(), 6, 8, np.zeros(16, np.uint8))
    with pytest.raises(ValueError, match="linear:"):
        linear._linear.pack(weight.numpy(), 5, 8, packed.numpy())


# -- fused_linear with the native engine ---------------------------------------------------------


@pytest.fixture
def kernel_calls(monkeypatch):
    calls = []
    original = linear._linear.linear

    def counting(*args):
        calls.append(args[8])  # activation
        return original(*args)

    monkeypatch.setattr(linear._linear, "linear", counting)
    return calls


def prepacked_layer(n_in: int = 48, n_out: int = 80, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    layer = nn.Linear(n_in, n_out)
    linear.prepack(layer)
    return layer


@needs_kernel
def test_fused_linear_takes_the_kernel_for_prepacked_layers(kernel_calls):
    layer = prepacked_layer()
    x, residual = torch.randn(2, 7, 48), torch.randn(2, 7, 80)
    with torch.inference_mode():
        for activation in (None, "gelu", "relu"):
            want = F.linear(x, layer.weight, layer.bias)
            want = want if activation is None else getattr(F, activation)(want)
            assert_tensors_close(linear.fused_linear(x, layer, activation), want, f"{activation}")
        assert_tensors_close(linear.fused_linear(x, layer, residual=residual),
                             F.linear(x, layer.weight, layer.bias) + residual, "residual")
    assert kernel_calls == [0, 1, 2, 0]
    assert linear._PACKED[layer][0].dtype == torch.uint8


@needs_kernel
def test_what_the_kernel_does_not_take_goes_to_onednn(kernel_calls):
    """Other activations, a residual that broadcasts, gradients and float64 run elsewhere, with
    the plain weight (the packed bytes are MKL's, not oneDNN's)."""
    layer = prepacked_layer()
    x = torch.randn(5, 48)
    with torch.inference_mode():
        linear.fused_linear(x, layer)
        assert kernel_calls == [0]
        kernel_calls.clear()
        for activation in ("tanh", "gelu_new"):
            got = linear.fused_linear(x, layer, activation)
            want = torch.tanh(F.linear(x, layer.weight, layer.bias)) if activation == "tanh" else None
            if want is not None:
                assert_tensors_close(got, want, activation)
        broadcast = torch.randn(80)
        assert_tensors_close(linear.fused_linear(x, layer, residual=broadcast),
                             F.linear(x, layer.weight, layer.bias) + broadcast, "broadcast residual")
        linear.fused_linear(x.double(), layer.double())
        empty = nn.Linear(48, 0)  # nothing to pack: plain torch
        linear.prepack(empty)
        assert linear.fused_linear(x, empty).shape == (5, 0) and linear._PACKED[empty] is None
    assert kernel_calls == []
    with torch.enable_grad():
        y = linear.fused_linear(torch.randn(5, 48), prepacked_layer(seed=2))
    assert y.requires_grad and kernel_calls == []


@needs_kernel
def test_switching_engines_repacks(kernel_calls, monkeypatch):
    layer = prepacked_layer()
    x = torch.randn(3, 48)
    want = F.linear(x, layer.weight, layer.bias).detach()
    with torch.no_grad():
        assert_tensors_close(linear.fused_linear(x, layer), want, "native")
        assert linear._PACKED[layer][0].dtype == torch.uint8
        monkeypatch.setattr(linear, "NATIVE", False)
        assert_tensors_close(linear.fused_linear(x, layer), want, "oneDNN")
        assert linear._PACKED[layer][0].layout == torch._mkldnn
        monkeypatch.setattr(linear, "NATIVE", True)
        assert_tensors_close(linear.fused_linear(x, layer), want, "native again")
        assert linear._PACKED[layer][0].dtype == torch.uint8
    assert kernel_calls == [0, 0]


# -- models --------------------------------------------------------------------------------------

VOCAB = 99
FAMILIES = {
    "BertForSequenceClassification": lambda: transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        max_position_embeddings=64),
    "DistilBertForSequenceClassification": lambda: transformers.DistilBertConfig(
        vocab_size=VOCAB, dim=64, n_layers=2, n_heads=2, hidden_dim=37, max_position_embeddings=64,
        activation="relu"),
    "ViTForImageClassification": lambda: transformers.ViTConfig(
        image_size=16, patch_size=4, num_channels=3, hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
        intermediate_size=40, num_labels=3),
    "Wav2Vec2ForCTC": lambda: transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, vocab_size=12,
        conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=4),
}


def model_inputs(name: str) -> dict:
    gen = torch.Generator().manual_seed(5)
    if name.startswith("ViT"):
        return {"pixel_values": torch.randn(3, 3, 16, 16, generator=gen)}
    if name.startswith("Wav2Vec2"):
        return {"input_values": torch.randn(2, 400, generator=gen)}
    mask = torch.ones(3, 11, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 2:] = 0
    return {"input_ids": torch.randint(0, VOCAB, (3, 11), generator=gen), "attention_mask": mask}


@needs_kernel
@pytest.mark.parametrize("name", list(FAMILIES))
def test_models_on_the_kernel_match_the_reference(tmp_path, kernel_calls, name):
    """Every fused linear of the encoder runs on the kernel (the weights prepacked explicitly, as
    the test's files may not be page-mapped), and the outputs equal the reference's."""
    import leanformers

    path = tmp_path / name
    build_reference(name, FAMILIES[name](), seed=3).save_pretrained(path)
    inputs = model_inputs(name)
    ref = run(load_reference(name, path), **inputs)
    model = getattr(leanformers, name).from_pretrained(path).prepack_weights()
    ours = run(model, **inputs)
    assert_tensors_close(ours.logits, ref.logits, name)
    # Two layers of six: query, key, value, attention output, feed-forward up and down.
    assert len(kernel_calls) == 12


@needs_kernel
def test_concurrent_callers_each_get_their_own_rows():
    """Two Python threads in the kernel at once (each starts its own OpenMP team): both results stay
    right."""
    from concurrent.futures import ThreadPoolExecutor

    layer = prepacked_layer(64, 96)
    gen = torch.Generator().manual_seed(7)
    inputs = [torch.randn(300 + 37 * i, 64, generator=gen) for i in range(8)]
    with torch.no_grad():
        want = [F.gelu(F.linear(x, layer.weight, layer.bias)) for x in inputs]
        linear.fused_linear(inputs[0], layer, "gelu")  # packed before the threads start

        def run(x):
            with torch.no_grad():
                return linear.fused_linear(x, layer, "gelu")

        with ThreadPoolExecutor(2) as pool:
            got = list(pool.map(run, inputs * 3))
    for index, out in enumerate(got):
        assert_tensors_close(out, want[index % len(inputs)], f"call {index}")

"""The oneDNN fused linear (modeling/linear.py): same function as F.linear + op, used only where
nothing needs gradients, and plain torch everywhere else."""

from __future__ import annotations

import parity
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from leanformers.modeling import linear as fused
from leanformers.modeling.activations import ACTIVATIONS

pytestmark = pytest.mark.skipif(not fused._onednn_available(), reason="torch built without oneDNN")


def layer(n_in: int = 48, n_out: int = 80, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(n_in, n_out)


@pytest.mark.parametrize("activation", [None, "gelu", "relu", "tanh", "gelu_new"])
@pytest.mark.parametrize("shape", [(7, 48), (3, 5, 48), (1, 1, 48)])
def test_matches_plain_torch(activation, shape):
    lin = layer()
    x = torch.randn(shape)
    with torch.inference_mode():
        got = fused.fused_linear(x, lin, activation)
        want = F.linear(x, lin.weight, lin.bias)
        want = want if activation is None else ACTIVATIONS[activation](want)
    assert got.shape == want.shape
    parity.assert_tensors_close(got, want, f"{activation} {shape}")


@pytest.mark.parametrize("shape", [(9, 48), (2, 6, 48)])
def test_residual_add(shape):
    lin = layer(48, 48)
    x, residual = torch.randn(shape), torch.randn(shape)
    with torch.no_grad():
        got = fused.fused_linear(x, lin, residual=residual)
    parity.assert_tensors_close(got, F.linear(x, lin.weight, lin.bias) + residual, "residual")


def spy_on_onednn(monkeypatch) -> list[str]:
    """Record each oneDNN call ("unary" / "binary") from now on."""
    calls: list[str] = []
    real = torch.ops.mkldnn._linear_pointwise

    class Spy:
        def __call__(self, *args):
            calls.append("unary")
            return real(*args)

        def binary(self, *args):
            calls.append("binary")
            return real.binary(*args)

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", Spy())
    return calls


def test_takes_the_onednn_path_without_grad(monkeypatch):
    calls = spy_on_onednn(monkeypatch)
    lin, x = layer(48, 48), torch.randn(4, 48)
    with torch.no_grad():
        fused.fused_linear(x, lin, "gelu")
        fused.fused_linear(x, lin, residual=x)
    assert calls == ["unary", "binary"]


@pytest.mark.parametrize(
    "case",
    ["grad enabled", "float64", "disabled", "empty", "strided bias", "strided weight"],
)
def test_plain_torch_otherwise_bit_for_bit(case, monkeypatch):
    lin = layer()
    x = torch.randn(0, 48) if case == "empty" else torch.randn(6, 48)
    if case == "float64":
        lin, x = lin.double(), x.double()
    if case == "strided bias":  # oneDNN would read the raw memory and give wrong numbers
        lin.bias = nn.Parameter(torch.randn(160)[::2])
    if case == "strided weight":
        lin.weight = nn.Parameter(torch.randn(48, 80).t())
    if case == "disabled":
        monkeypatch.setattr(fused, "ENABLED", False)
    grad = torch.enable_grad() if case == "grad enabled" else torch.no_grad()
    with grad:
        got = fused.fused_linear(x, lin, "gelu")
        want = F.gelu(F.linear(x, lin.weight, lin.bias))
    assert torch.equal(got, want)
    if case == "grad enabled":
        got.sum().backward()  # the plain path keeps autograd working
        assert lin.weight.grad is not None


def test_unknown_activation_is_a_config_error():
    from leanformers.errors import ConfigError

    with pytest.raises(ConfigError, match="not a known activation"):
        fused.fused_linear(torch.randn(2, 48), layer(), "nonsense")


@pytest.mark.parametrize("family", ["bert", "distilbert", "vit"])
def test_model_outputs_fused_and_plain_agree(family, monkeypatch):
    """A whole encoder with the fused linears equals the plain-torch run to float tolerance, and in
    training mode (dropout active) the residual is never fused past the dropout."""
    from leanformers.models import bert, distilbert, vit

    if family == "vit":
        config = vit.ViTConfig(image_size=8, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=4, intermediate_size=37, hidden_dropout_prob=0.5, num_labels=3)
        model = vit.ViTForImageClassification.from_config(config)
    elif family == "bert":
        config = bert.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=37, hidden_dropout_prob=0.5)
        model = bert.BertForSequenceClassification(config)
    else:
        config = distilbert.DistilBertConfig(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37,
                                             dropout=0.5)
        model = distilbert.DistilBertForSequenceClassification(config)
    model.eval()
    if family == "vit":
        inputs = {"pixel_values": torch.randn(3, 3, 8, 8)}
    else:
        mask = torch.ones(3, 9, dtype=torch.long)
        mask[1, 6:] = 0
        inputs = {"input_ids": torch.randint(0, 99, (3, 9)), "attention_mask": mask}
    with torch.inference_mode():
        fast = model(**inputs).logits
        fused.ENABLED = False
        try:
            plain = model(**inputs).logits
        finally:
            fused.ENABLED = True
    parity.assert_tensors_close(fast, plain, family)
    model.train()
    calls = spy_on_onednn(monkeypatch)
    with torch.no_grad():
        model(**inputs)
    # In training, dropout sits between BERT's and ViT's output projections and their residuals, and
    # between DistilBERT's feed-forward and its residual; only DistilBERT's attention (no dropout
    # there) may still fuse its residual: once per layer.
    assert "unary" in calls
    assert calls.count("binary") == (config.n_layers if family == "distilbert" else 0)

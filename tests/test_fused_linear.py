"""The oneDNN fused linear (modeling/linear.py): same function as F.linear + op, used only where
nothing needs gradients, and plain torch everywhere else."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

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


def spy_on_onednn(monkeypatch, op: str = "_linear_pointwise") -> list[str]:
    """Record each call ("unary" / "binary") of a oneDNN fused op from now on."""
    calls: list[str] = []
    real = getattr(torch.ops.mkldnn, op)

    class Spy:
        def __call__(self, *args):
            calls.append("unary")
            return real(*args)

        def binary(self, *args):
            calls.append("binary")
            return real.binary(*args)

    monkeypatch.setattr(torch.ops.mkldnn, op, Spy())
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


@pytest.mark.parametrize("family", ["bert", "distilbert", "vit", "wav2vec2", "wav2vec2-stable"])
def test_model_outputs_fused_and_plain_agree(family, monkeypatch):
    """A whole encoder with the fused linears equals the plain-torch run to float tolerance, and in
    training mode (dropout active) the residual is never fused past the dropout."""
    from leanformers.models import bert, distilbert, vit, wav2vec2

    if family.startswith("wav2vec2"):
        stable = family.endswith("stable")
        config = wav2vec2.Wav2Vec2Config(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, vocab_size=12,
            conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=8,
            num_conv_pos_embedding_groups=4, hidden_dropout=0.5, activation_dropout=0.0, attention_dropout=0.0,
            feat_proj_dropout=0.0, do_stable_layer_norm=stable, feat_extract_norm="layer" if stable else "group",
        )
        model = wav2vec2.Wav2Vec2ForCTC(config)
    elif family == "vit":
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
    elif family.startswith("wav2vec2"):
        inputs = {"input_values": torch.randn(2, 400)}
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
    # In training, dropout sits between BERT's, ViT's and wav2vec2's output projections and their
    # residuals, and between DistilBERT's feed-forward and its residual; only DistilBERT's attention
    # (no dropout there) may still fuse its residual: once per layer.
    assert "unary" in calls
    assert calls.count("binary") == (config.n_layers if family == "distilbert" else 0)
    if family.startswith("wav2vec2"):  # and in eval mode both residuals of every layer are fused
        model.eval()
        calls.clear()
        with torch.no_grad():
            model(**inputs)
        assert calls.count("binary") == 2 * config.num_hidden_layers


# -- prepacked weights (opt-in) ------------------------------------------------------------------


def packed_copy(lin: nn.Linear):
    entry = fused._PACKED.get(lin)
    return None if entry is None else entry[0]


# Prepacked layers run on the native kernel (MKL's layout) where it runs, else on oneDNN (its own).
@pytest.fixture(params=["onednn", "native"])
def engine(request, monkeypatch):
    if request.param == "native" and not fused.NATIVE:
        pytest.skip("the native linear kernel does not run here")
    monkeypatch.setattr(fused, "NATIVE", request.param == "native")
    return request.param


def in_engine_layout(copy: torch.Tensor, engine: str) -> bool:
    return copy.dtype == torch.uint8 if engine == "native" else copy.layout == torch._mkldnn


@pytest.mark.parametrize("activation", [None, "gelu"])
def test_prepacked_layer_computes_the_same(activation, engine):
    lin = layer(48, 80)
    x = torch.randn(2, 5, 48)
    with torch.inference_mode():
        plain = fused.fused_linear(x, lin, activation)
        assert fused.prepack(lin) == 1 and fused.is_prepacked(lin)
        assert packed_copy(lin) is None  # made on the first fused call, not before
        packed = fused.fused_linear(x, lin, activation)
        assert packed_copy(lin) is not None and in_engine_layout(packed_copy(lin), engine)
        residual = torch.randn(2, 5, 80)
        with_residual = fused.fused_linear(x, layer(48, 80, seed=1), residual=residual)
    parity.assert_tensors_close(packed, plain, f"prepacked {activation}")
    want = F.linear(x, lin.weight, lin.bias)
    parity.assert_tensors_close(packed, want if activation is None else F.gelu(want), "prepacked vs F.linear")
    assert with_residual.shape == residual.shape


def test_prepacked_residual_add(engine):
    lin = layer(48, 48)
    fused.prepack(lin)
    x, residual = torch.randn(9, 48), torch.randn(9, 48)
    with torch.no_grad():
        got = fused.fused_linear(x, lin, residual=residual)
    assert packed_copy(lin) is not None
    parity.assert_tensors_close(got, F.linear(x, lin.weight, lin.bias) + residual, "prepacked residual")


@pytest.mark.parametrize("change", ["in place", "load_state_dict", "new data", "new parameter", "deleted and replaced"])
def test_prepacked_copy_follows_weight_changes(change, engine):
    """A stale packed copy would silently compute with old weights: every way of changing the
    weight must be seen."""
    lin, other = layer(48, 80), layer(48, 80, seed=7)
    fused.prepack(lin)
    x = torch.randn(6, 48)
    with torch.no_grad():
        fused.fused_linear(x, lin)
        first = packed_copy(lin)
        if change == "in place":
            lin.weight.mul_(-2.0)
        elif change == "load_state_dict":
            lin.load_state_dict(other.state_dict())
        elif change == "new data":
            lin.weight.data = other.weight.detach().clone()
        elif change == "deleted and replaced":  # the new weight may land at the freed address
            del lin.weight
            lin.weight = nn.Parameter(other.weight.detach().clone())
        else:
            lin.weight = nn.Parameter(other.weight.detach().clone())
        got = fused.fused_linear(x, lin)
    assert packed_copy(lin) is not first
    parity.assert_tensors_close(got, F.linear(x, lin.weight, lin.bias), change)


def test_release_and_paths_that_never_pack(engine):
    lin = layer()
    x = torch.randn(3, 48, requires_grad=True)
    fused.prepack(lin)
    out = fused.fused_linear(x, lin)  # grad enabled: plain torch, nothing packed, autograd works
    out.sum().backward()
    assert packed_copy(lin) is None and lin.weight.grad is not None
    with torch.inference_mode():
        born_in_inference = layer()
        fused.prepack(born_in_inference)
        got = fused.fused_linear(x.detach(), born_in_inference)
    # An inference tensor has no version counter to notice changes: it is never packed.
    assert packed_copy(born_in_inference) is None
    parity.assert_tensors_close(got, F.linear(x.detach(), born_in_inference.weight, born_in_inference.bias), "inference")
    with torch.no_grad():
        fused.fused_linear(x, lin)
    assert packed_copy(lin) is not None
    assert fused.prepack(lin, False) == 1 and not fused.is_prepacked(lin)
    assert fused.prepack(lin, False) == 0


def test_model_prepack_weights(tmp_path, engine):
    """Whole model: the same logits, the same state dict and saved files, copies unpacked."""
    import copy

    from leanformers.errors import InputError
    from leanformers.models import bert

    config = bert.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                             intermediate_size=37)
    model = bert.BertForSequenceClassification(config).eval()
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    inputs = {"input_ids": torch.randint(0, 99, (3, 9)), "attention_mask": mask}
    keys = list(model.state_dict())
    with torch.inference_mode():
        plain = model(**inputs).logits
        assert model.prepack_weights() is model
        packed = model(**inputs).logits
    parity.assert_tensors_close(packed, plain, "prepacked model")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    made = [m for m in linears if packed_copy(m) is not None]
    assert len(made) == 2 * 6  # the encoder's fused linears; the pooler and classifier run plain
    assert list(model.state_dict()) == keys
    model.save_pretrained(tmp_path)
    reloaded = bert.BertForSequenceClassification.from_pretrained(tmp_path).eval()
    with torch.inference_mode():
        parity.assert_tensors_close(reloaded(**inputs).logits, plain, "saved from a prepacked model")
    twin = copy.deepcopy(model)
    assert not any(fused.is_prepacked(m) for m in twin.modules())
    model.prepack_weights(False)
    assert not any(fused.is_prepacked(m) for m in linears)
    with pytest.raises(InputError, match="True or False"):
        model.prepack_weights("yes")


# -- prepacked by default: weights still mapped from their safetensors file ----------------------

WIDE = {"vocab_size": 99, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 128}  # every encoder weight spans whole 4 KiB pages of the file


def wide_inputs():
    torch.manual_seed(3)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    return {"input_ids": torch.randint(0, 99, (3, 9)), "attention_mask": mask}


def encoder_linears(model) -> list[nn.Linear]:
    return [m for name, m in model.named_modules() if isinstance(m, nn.Linear) and ".encoder." in f".{name}"]


def mapped_rss_kb(tensor) -> int:
    """Resident KiB of the file mapping that holds ``tensor`` (from /proc/self/smaps)."""
    from leanformers.modeling import loading

    base = next(b for b, (n, _) in loading._MAPS.items() if b <= tensor.data_ptr() < b + n)
    with open("/proc/self/smaps") as handle:
        lines = handle.read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{base:x}-"))
    return next(int(line.split()[1]) for line in lines[start + 1:] if line.startswith("Rss:"))


@pytest.fixture(scope="module")
def wide_bert(tmp_path_factory):
    from leanformers.models import bert

    torch.manual_seed(0)
    model = bert.BertForSequenceClassification(bert.BertConfig(**WIDE)).eval()
    path = tmp_path_factory.mktemp("wide-bert")
    model.save_pretrained(path)
    return path, {k: v.clone() for k, v in model.state_dict().items()}


def test_file_backed_weights_prepack_by_default(wide_bert, tmp_path):
    """from_pretrained marks the linears mapped from the file; eval-mode inference packs them and hands
    the plain pages back to the OS; the numbers, state dict and saved files stay the same."""
    from leanformers.modeling import loading
    from leanformers.models import bert

    path, saved = wide_bert
    if not loading.can_release_pages() or loading.in_memory_filesystem(str(path)):
        pytest.skip("no page-out advice here, or the file is memory itself: nothing is prepacked by default")
    model = bert.BertForSequenceClassification.from_pretrained(path)
    plain = bert.BertForSequenceClassification.from_pretrained(path).prepack_weights(False)
    linears = encoder_linears(model)
    assert len(linears) == 12 and all(fused.is_prepacked(m) for m in linears)
    assert not fused.is_prepacked(model.classifier)  # 2 x 64 floats: no whole page to hand back
    assert not any(fused.is_prepacked(m) for m in plain.modules())
    released = sum(loading.file_pages(m.weight)[2] for m in linears) // 1024
    for tensor in model.state_dict().values():  # every page resident
        tensor.sum()
    before = mapped_rss_kb(linears[0].weight)
    inputs = wide_inputs()
    with torch.inference_mode():
        got = model(**inputs).logits
        want = plain(**inputs).logits
    assert all(packed_copy(m) is not None for m in linears)
    assert mapped_rss_kb(linears[0].weight) <= before - released
    parity.assert_tensors_close(got, want, "prepacked by default")
    for key, value in model.state_dict().items():  # read back from the file
        assert torch.equal(value, saved[key]), key
    model.save_pretrained(tmp_path)
    again = bert.BertForSequenceClassification.from_pretrained(tmp_path)
    with torch.inference_mode():
        assert torch.equal(again(**inputs).logits, got)


def test_default_prepack_leaves_memory_alone_elsewhere(wide_bert, tmp_path, monkeypatch):
    """No default copy where it would add memory: converted or tied weights, training mode, a weight
    written to; and LEANFORMERS_PREPACK=0's switch turns the default off."""
    from leanformers.models import bert

    path, _ = wide_bert
    inputs = wide_inputs()
    converted = bert.BertForSequenceClassification.from_pretrained(path, dtype=torch.float64).float()
    assert not any(fused.is_prepacked(m) for m in converted.modules())

    torch.manual_seed(1)
    bert.BertForMaskedLM(bert.BertConfig(**WIDE)).save_pretrained(tmp_path)
    mlm = bert.BertForMaskedLM.from_pretrained(tmp_path)
    assert mlm.cls.predictions.decoder.weight is mlm.bert.embeddings.word_embeddings.weight
    assert not fused.is_prepacked(mlm.cls.predictions.decoder)  # tied: its pages serve the lookups
    assert all(fused.is_prepacked(m) for m in encoder_linears(mlm))

    model = bert.BertForSequenceClassification.from_pretrained(path)
    linears = encoder_linears(model)
    model.train()
    with torch.no_grad():
        model(**inputs)
    assert all(packed_copy(m) is None for m in linears)  # training mode: never packed by default
    model.eval()
    with torch.inference_mode():
        model(**inputs)
    assert all(packed_copy(m) is not None for m in linears)
    model.train()
    assert all(packed_copy(m) is None for m in linears)  # entering training frees the copies
    model.eval()
    with torch.inference_mode():
        model(**inputs)
    model.double()
    assert all(packed_copy(m) is None for m in linears)  # converted: stale copies freed
    model.float()
    with torch.inference_mode():
        model(**inputs)  # in-memory weights now: they stay plain
    assert all(packed_copy(m) is None for m in linears)

    model = bert.BertForSequenceClassification.from_pretrained(path)
    linears = encoder_linears(model)
    with torch.no_grad():
        linears[0].weight.mul_(-1.0)  # written (copy-on-write pages): plain from now on
        got = model(**inputs).logits
    assert packed_copy(linears[0]) is None and all(packed_copy(m) is not None for m in linears[1:])
    reference = bert.BertForSequenceClassification.from_pretrained(path).prepack_weights(False)
    with torch.no_grad():
        reference.bert.encoder.layer[0].attention.self.query.weight.mul_(-1.0)
        parity.assert_tensors_close(got, reference(**inputs).logits, "written weight")

    from leanformers.modeling import loading

    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):  # a file that is memory itself
        shm = tempfile.mkdtemp(dir="/dev/shm")
        try:
            shutil.copytree(path, shm, dirs_exist_ok=True)
            assert loading.in_memory_filesystem(shm) == loading.in_memory_filesystem("/dev/shm/")
            in_memory = bert.BertForSequenceClassification.from_pretrained(shm)
            assert any(fused.is_prepacked(m) for m in in_memory.modules()) != loading.in_memory_filesystem(shm)
        finally:
            shutil.rmtree(shm, ignore_errors=True)
    monkeypatch.setattr(loading, "_can_release", False)  # an OS without page-out advice: a copy would add
    unreleasable = bert.BertForSequenceClassification.from_pretrained(path)
    assert not any(fused.is_prepacked(m) for m in unreleasable.modules())
    monkeypatch.undo()
    monkeypatch.setattr(fused, "AUTO_PREPACK", False)
    off = bert.BertForSequenceClassification.from_pretrained(path)
    assert not any(fused.is_prepacked(m) for m in off.modules())


# -- feed-forward blocks in pieces ---------------------------------------------------------------


def test_feed_forward_pieces():
    calls: list[tuple[int, ...]] = []

    def block(x):
        calls.append(tuple(x.shape))
        return x * 2 + 1

    x = torch.randn(3, 1500, 8)
    with torch.no_grad():
        out = fused.feed_forward(x, block)
    assert torch.equal(out, x * 2 + 1) and out.shape == x.shape
    assert [c[0] for c in calls] == [1125] * 4  # 4,500 rows -> 4 pieces of 1,024..2,047 rows
    calls.clear()
    with torch.no_grad():
        fused.feed_forward(torch.randn(2047, 8), block)  # fewer than two pieces' worth: whole
    assert calls == [(2047, 8)]
    calls.clear()
    fused.feed_forward(x, block)  # gradients on (training): whole, dropout draws unchanged
    assert calls == [(3, 1500, 8)]


@pytest.mark.parametrize("family", ["bert", "distilbert", "vit", "swin"])
def test_model_feed_forward_in_pieces_agrees(family, monkeypatch):
    """Whole models with the feed-forward blocks cut into pieces of a few rows: same outputs."""
    from leanformers.models import bert, distilbert, swin, vit

    if family == "swin":
        config = swin.SwinConfig(image_size=16, patch_size=2, embed_dim=8, depths=[2, 1], num_heads=[2, 4],
                                 window_size=4)
        model, inputs = swin.SwinModel(config), {"pixel_values": torch.randn(2, 3, 16, 16)}
    elif family == "vit":
        config = vit.ViTConfig(image_size=8, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                               num_attention_heads=4, intermediate_size=37)
        model, inputs = vit.ViTModel(config), {"pixel_values": torch.randn(3, 3, 8, 8)}
    else:
        mask = torch.ones(3, 9, dtype=torch.long)
        mask[1, 6:] = 0
        inputs = {"input_ids": torch.randint(0, 99, (3, 9)), "attention_mask": mask}
        if family == "bert":
            model = bert.BertModel(bert.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
                                                   num_attention_heads=4, intermediate_size=37))
        else:
            model = distilbert.DistilBertModel(distilbert.DistilBertConfig(vocab_size=99, dim=32, n_layers=2,
                                                                          n_heads=4, hidden_dim=37))
    model.eval()
    with torch.inference_mode():
        whole = model(**inputs).last_hidden_state
        monkeypatch.setattr(fused, "FEED_FORWARD_ROWS", 4)
        pieces = model(**inputs).last_hidden_state
    parity.assert_tensors_close(pieces, whole, family)


# -- convolution + activation ----------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["gelu", "relu", "gelu_new"])
@pytest.mark.parametrize("options", [{"stride": 2}, {"stride": 1, "padding": 3, "groups": 2}, {"dilation": 2}])
def test_fused_conv1d_matches_plain_torch(activation, options, monkeypatch):
    calls = []
    real = torch.ops.mkldnn._convolution_pointwise

    def spy(*args):
        calls.append(args[7])
        return real(*args)

    monkeypatch.setattr(torch.ops.mkldnn, "_convolution_pointwise", spy)
    torch.manual_seed(0)
    conv = nn.Conv1d(4, 6, kernel_size=5, **options)
    x = torch.randn(3, 4, 40)
    want = ACTIVATIONS[activation](conv(x)).detach()
    with torch.inference_mode():
        got = fused.fused_conv1d(x, conv, activation)
    parity.assert_tensors_close(got, want, f"{activation} {options}")
    # gelu_new (tanh approximation) is not one oneDNN computes the same way: plain torch
    assert calls == ([] if activation == "gelu_new" else [activation])
    out = fused.fused_conv1d(x, conv, "gelu")  # gradients on: plain torch, autograd intact
    out.sum().backward()
    assert conv.weight.grad is not None and len(calls) == (0 if activation == "gelu_new" else 1)


@pytest.mark.parametrize("activation", [None, "relu", "gelu"])
@pytest.mark.parametrize("with_residual", [False, True])
@pytest.mark.parametrize("layout", ["plain", "conv bias, no affine", "strided 3x3, grouped"])
def test_fused_conv_bn_matches_plain_torch(activation, with_residual, layout, monkeypatch):
    calls = spy_on_onednn(monkeypatch, "_convolution_pointwise")
    torch.manual_seed(0)
    if layout == "strided 3x3, grouped":
        conv, norm = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, bias=False), nn.BatchNorm2d(6)
    else:
        conv = nn.Conv2d(4, 6, 1, bias=layout != "plain")
        norm = nn.BatchNorm2d(6, affine=layout == "plain")
    with torch.no_grad():  # statistics and affine parameters far from the identity
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
        if norm.affine:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    norm.eval()
    x = torch.randn(2, 4, 8, 8)
    residual = torch.randn(2, 6, *((4, 4) if layout.startswith("strided") else (8, 8))) if with_residual else None
    want = norm(conv(x)).detach()
    if residual is not None:
        want = want + residual
    want = want if activation is None else ACTIVATIONS[activation](want)
    with torch.inference_mode():
        got = fused.fused_conv_bn(x, conv, norm, activation, residual)
    parity.assert_tensors_close(got, want, f"{activation} {with_residual} {layout}")
    assert calls == ["binary" if with_residual else "unary"]
    norm.train()  # training: BatchNorm uses the batch's statistics, so nothing folds
    with torch.no_grad():
        fused.fused_conv_bn(x, conv, norm, activation, residual)
    assert len(calls) == 1


def test_prepacked_copies_go_with_the_model(engine):
    """The packed copies live beside the model, so deleting the model must free them too."""
    import gc

    lin = layer()
    fused.prepack(lin)
    with torch.no_grad():
        fused.fused_linear(torch.randn(4, 48), lin)
    assert packed_copy(lin) is not None
    before = len(fused._PACKED)
    del lin
    gc.collect()
    assert len(fused._PACKED) == before - 1


def test_each_packed_copy_trims_the_heap(engine, monkeypatch):
    """Packed copies are made between a first forward's activations; the heap's free pages go back
    to the OS after each (else BERT-base kept 250-350 MB of free heap resident)."""
    from leanformers.modeling import loading

    calls = []
    monkeypatch.setattr(loading, "trim_heap", lambda: calls.append(1))
    layers = [layer(48, 80, seed) for seed in range(3)]
    for lin in layers:
        fused.prepack(lin)
    with torch.no_grad():
        for lin in layers * 2:  # the second round reuses the copies
            fused.fused_linear(torch.randn(4, 48), lin)
    assert len(calls) == 3


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_trim_heap_finds_glibc():
    from leanformers.modeling import loading

    loading.trim_heap()
    loading.trim_heap()  # looked up once, then kept
    assert loading._malloc_trim

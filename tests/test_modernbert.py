"""ModernBERT: parity with the reference on tiny random checkpoints (global and local layers, rotary
bases per layer kind, windows that matter at these lengths), the unpadded path, loading and saving,
configs, and the bidirectional sliding window of the attention interface."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from parity import (
    BF16_TOLERANCE,
    assert_outputs_close,
    assert_tensors_close,
    build_reference,
    load_reference,
    run,
    transformers,
)

from leanformers import auto
from leanformers.errors import ConfigError, InputError
from leanformers.modeling.attention import Mask, attend, pack_batch
from leanformers.models import modernbert

HEADS = [
    "ModernBertModel",
    "ModernBertForSequenceClassification",
    "ModernBertForTokenClassification",
    "ModernBertForQuestionAnswering",
    "ModernBertForMaskedLM",
]
# Layers: global, local, global, local. A local query sees 2 keys on each side (local_attention=4),
# so at 12 tokens the windows change every output; the rotary bases differ from the defaults and
# from each other, so a layer using the other kind's base would show. Weights drawn 15x wider than
# the default make attention far from uniform: windows and rotary angles then move outputs by
# ~0.1-1 rather than ~1e-5, well beyond the parity tolerance.
TINY = dict(
    initializer_range=0.3,
    vocab_size=99,
    hidden_size=32,
    intermediate_size=40,
    num_hidden_layers=4,
    num_attention_heads=4,
    global_attn_every_n_layers=2,
    local_attention=4,
    max_position_embeddings=64,
    global_rope_theta=500.0,
    local_rope_theta=40.0,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
    cls_token_id=1,
    sep_token_id=2,
)
VOCAB, SEQ = TINY["vocab_size"], 12
# Every switch the reference has for biases, the other pooling, and the 5.23 layout of layer kinds.
VARIANT = dict(
    {k: v for k, v in TINY.items() if k not in ("global_attn_every_n_layers", "global_rope_theta", "local_rope_theta")},
    layer_types=["sliding_attention", "full_attention", "sliding_attention", "sliding_attention"],
    rope_parameters={
        "full_attention": {"rope_type": "default", "rope_theta": 1000.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 20.0},
    },
    norm_bias=True, attention_bias=True, mlp_bias=True, classifier_bias=True, decoder_bias=False,
    classifier_pooling="mean", classifier_activation="silu", hidden_activation="gelu_pytorch_tanh",
)


def ref_config(**overrides):
    return transformers.ModernBertConfig(**{**TINY, **overrides})


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("modernbert")
    paths = {}
    for seed, name in enumerate(HEADS):
        paths[name] = root / name
        build_reference(name, ref_config(), seed).save_pretrained(paths[name])
    specs = {
        "variant_seq": ("ModernBertForSequenceClassification", transformers.ModernBertConfig(**VARIANT)),
        "variant_mlm": ("ModernBertForMaskedLM", transformers.ModernBertConfig(**VARIANT)),
        "regression": ("ModernBertForSequenceClassification", ref_config(num_labels=1)),
        "untied_mlm": ("ModernBertForMaskedLM", ref_config(tie_word_embeddings=False)),
    }
    for seed, (key, (name, config)) in enumerate(specs.items(), start=10):
        paths[key] = root / key
        build_reference(name, config, seed).save_pretrained(paths[key])
    return paths


def inputs(batch: int = 3, seed: int = 1, hole: bool = False) -> dict:
    """Rows of 12, 7 and 3 real tokens (right padding); ``hole`` also pads two positions inside the
    first row, which rotary positions and windows must still count."""
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, VOCAB, (batch, SEQ), generator=gen)
    attention_mask = torch.ones(batch, SEQ, dtype=torch.long)
    attention_mask[1, 7:] = 0
    attention_mask[2, 3:] = 0
    if hole:
        attention_mask[0, 4:6] = 0
    input_ids[attention_mask == 0] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def _variant(kind: str) -> dict:
    base = inputs()
    if kind == "plain":
        return {"input_ids": base["input_ids"]}
    if kind == "padded":
        return {**base, "output_hidden_states": True}
    if kind == "attentions":
        return {**base, "output_attentions": True, "output_hidden_states": True}
    if kind == "tuple":
        return {**base, "output_hidden_states": True, "return_dict": False}
    if kind == "embeds":
        embeds = torch.randn(3, SEQ, TINY["hidden_size"], generator=torch.Generator().manual_seed(3))
        return {"inputs_embeds": embeds, "attention_mask": base["attention_mask"]}
    if kind == "positions":
        return {**base, "position_ids": (torch.arange(SEQ - 1, -1, -1) * 3 + 5)[None]}
    raise AssertionError(kind)


# -- forward parity -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["plain", "padded", "attentions", "tuple", "embeds", "positions"])
@pytest.mark.parametrize("name", HEADS)
def test_forward_matches_reference(ckpts, name, kind):
    """Dense path: every output equals the reference's, padded positions included."""
    batch = _variant(kind)
    ours = getattr(modernbert, name).from_pretrained(ckpts[name])
    ref = load_reference(name, ckpts[name], eager=kind == "attentions")
    assert_outputs_close(run(ours, **batch), run(ref, **batch), f"{name}/{kind}")


@pytest.mark.parametrize("key", ["variant_seq", "variant_mlm"])
def test_biases_mean_pooling_and_layer_types_match_reference(ckpts, key):
    name = "ModernBertForSequenceClassification" if key == "variant_seq" else "ModernBertForMaskedLM"
    ours = getattr(modernbert, name).from_pretrained(ckpts[key])
    assert ours.config.classifier_pooling == "mean" and ours.model.layers[0].attn.Wqkv.bias is not None
    ref = load_reference(name, ckpts[key])
    for batch in (inputs(), inputs(hole=True), {"input_ids": inputs()["input_ids"]}):
        assert_outputs_close(run(ours, **batch, output_hidden_states=True),
                             run(ref, **batch, output_hidden_states=True), key)


def test_windows_and_rotary_bases_matter(ckpts):
    """The parity tests could not pass with the window or the per-kind bases ignored."""
    path, batch = ckpts["ModernBertModel"], inputs()
    expected = run(modernbert.ModernBertModel.from_pretrained(path), **batch).last_hidden_state
    for change in ({"local_attention": 64}, {"local_rope_theta": 500.0}, {"global_rope_theta": 40.0}):
        config = ref_config(**change).to_dict()
        changed = modernbert.ModernBertModel.from_pretrained(path, config=modernbert.ModernBertConfig(**config))
        assert not torch.allclose(run(changed, **batch).last_hidden_state, expected, atol=0.05), change


# -- unpadded execution ----------------------------------------------------------------------------


def _real(tensor: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return tensor[mask.bool()]


@pytest.mark.parametrize("name", HEADS)
def test_packed_path_matches_reference_on_real_tokens(ckpts, packed_calls, name):
    """``unpad_inputs=True``: the real tokens of every row, a row with holes included, give the
    reference's numbers; padded positions of per-token outputs read zero."""
    batch = {**inputs(hole=True), "output_hidden_states": True}
    mask = batch["attention_mask"]
    ours = getattr(modernbert, name).from_pretrained(ckpts[name])
    ours.config.unpad_inputs = True
    got, want = run(ours, **batch), run(load_reference(name, ckpts[name]), **batch)
    assert len(packed_calls) == TINY["num_hidden_layers"], "every layer ran packed"
    for state, ref_state in zip(got.hidden_states[1:], want.hidden_states[1:]):
        assert_tensors_close(_real(state, mask), _real(ref_state, mask), "hidden_states")
        assert not state[~mask.bool()].any()
    for key in want.keys():
        if key == "hidden_states":
            continue
        if name == "ModernBertForSequenceClassification":
            assert_tensors_close(got[key], want[key], key)
        else:
            assert_tensors_close(_real(got[key], mask), _real(want[key], mask), key)
            assert not got[key][~mask.bool()].any(), f"{key} at padded positions"


def test_mean_pooling_packed_equals_dense(ckpts, packed_calls):
    """Mean pooling over a row with holes: packed, dense and the reference agree."""
    path = ckpts["variant_seq"]
    ours = modernbert.ModernBertForSequenceClassification.from_pretrained(path)
    batch = inputs(hole=True)
    ours.config.unpad_inputs = False
    dense = run(ours, **batch).logits
    assert packed_calls == []
    ours.config.unpad_inputs = True
    assert_tensors_close(run(ours, **batch).logits, dense, "packed mean pooling")
    assert packed_calls
    assert_tensors_close(dense, run(load_reference("ModernBertForSequenceClassification", path), **batch).logits, "ref")


def test_padding_does_not_change_real_positions(ckpts):
    model = modernbert.ModernBertForTokenClassification.from_pretrained(ckpts["ModernBertForTokenClassification"])
    full = inputs()["input_ids"][:1, :8]
    padded = torch.cat([full, torch.full((1, 4), 7)], dim=1)
    mask = torch.tensor([[1] * 8 + [0] * 4])
    assert_tensors_close(run(model, input_ids=padded, attention_mask=mask).logits[:, :8],
                         run(model, input_ids=full).logits, "unpadded positions")


# -- the attention interface's bidirectional window --------------------------------------------------


def test_bidirectional_window_dense_and_packed():
    """Without causal order a window of w keeps keys fewer than w positions away on either side; packed,
    distances are the padded grid's, holes included."""
    gen = torch.Generator().manual_seed(0)
    batch, seq, heads, dim, window = 3, 10, 2, 4, 3
    q, k, v = (torch.randn(batch, seq, heads * dim, generator=gen, dtype=torch.float64) for _ in range(3))
    keep = torch.ones(batch, seq, dtype=torch.bool)
    keep[1, 6:] = False
    keep[2, 2:4] = False
    pos = torch.arange(seq)
    allowed = ((pos[:, None] - pos[None, :]).abs() < window)[None, None] & keep[:, None, None, :]
    qh, kh, vh = (x.view(batch, seq, heads, dim).transpose(1, 2) for x in (q, k, v))
    scores = (qh @ kh.transpose(-1, -2) * dim**-0.5).masked_fill(~allowed, float("-inf"))
    expected = (scores.softmax(-1) @ vh).transpose(1, 2).reshape(batch, seq, -1)

    dense, weights = attend(q, k, v, Mask(keep), heads=heads, window=window, need_weights=True)
    assert_tensors_close(_real(dense, keep), _real(expected, keep), "dense")
    # Padded queries may see no key at all; every real query's weights vanish outside its window.
    outside = (~allowed & keep[:, None, :, None]).expand_as(weights)
    assert not weights[outside].any() and weights[allowed.expand_as(weights)].all()
    unmasked, _ = attend(q, k, v, None, heads=heads, window=window)
    assert not torch.allclose(unmasked, attend(q, k, v, None, heads=heads)[0]), "the window applies without a mask"

    packing = pack_batch(keep.long(), batch, seq, q.device, True, 1)
    packed = attend(*(packing.pack(x) for x in (q, k, v)), packing, heads=heads, window=window)[0]
    assert_tensors_close(_real(packing.unpack(packed), keep), _real(expected, keep), "packed")


def test_window_covering_every_key_is_no_window():
    q, k, v = (torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(i)) for i in range(3))
    assert torch.equal(attend(q, k, v, None, heads=2, window=5)[0], attend(q, k, v, None, heads=2)[0])
    causal = Mask(None, causal=True)
    assert torch.equal(attend(q, k, v, causal, heads=2, window=5)[0], attend(q, k, v, causal, heads=2)[0])


# -- labels and losses --------------------------------------------------------------------------------


def _labels_case(case: str, ckpts):
    gen = torch.Generator().manual_seed(5)
    batch = inputs()
    if case == "single_label":
        return "ModernBertForSequenceClassification", ckpts["ModernBertForSequenceClassification"], {
            **batch, "labels": torch.tensor([0, 1, 1])}
    if case == "regression":
        return "ModernBertForSequenceClassification", ckpts["regression"], {
            **batch, "labels": torch.randn(3, generator=gen)}
    if case == "token":
        labels = torch.randint(0, 2, (3, SEQ), generator=gen)
        labels[batch["attention_mask"] == 0] = -100
        name = "ModernBertForTokenClassification"
        return name, ckpts[name], {**batch, "labels": labels}
    if case == "qa":
        return "ModernBertForQuestionAnswering", ckpts["ModernBertForQuestionAnswering"], {
            **batch, "start_positions": torch.tensor([1, 40, 3]), "end_positions": torch.tensor([2, 50, 5])}
    if case == "mlm":
        labels = torch.full((3, SEQ), -100)
        labels[:, 2] = torch.tensor([5, 17, 80])
        labels[0, 9] = 3
        return "ModernBertForMaskedLM", ckpts["ModernBertForMaskedLM"], {**batch, "labels": labels}
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["single_label", "regression", "token", "qa", "mlm"])
def test_loss_matches_reference(ckpts, case):
    name, path, batch = _labels_case(case, ckpts)
    ours, ref = getattr(modernbert, name).from_pretrained(path), load_reference(name, path)
    got, want = run(ours, **batch), run(ref, **batch)
    assert got.keys()[0] == "loss"
    assert_outputs_close(got, want, case)
    assert ours.config.problem_type == ref.config.problem_type


def test_sparse_prediction_matches_reference(ckpts):
    _, path, batch = _labels_case("mlm", ckpts)
    ours = modernbert.ModernBertForMaskedLM.from_pretrained(path, sparse_prediction=True)
    ref = load_reference("ModernBertForMaskedLM", path, sparse_prediction=True)
    got = run(ours, **batch)
    assert got.logits.shape == (4, VOCAB)
    assert_outputs_close(got, run(ref, **batch), "sparse")
    assert run(ours, **inputs()).logits.shape == (3, SEQ, VOCAB), "without labels: every position"
    with pytest.raises(InputError, match="one label per input position"):
        ours(**{**batch, "labels": batch["labels"][:, :5]})


# -- loading and saving ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HEADS)
def test_save_round_trip(ckpts, tmp_path, name):
    ours = getattr(modernbert, name).from_pretrained(ckpts[name])
    ours.save_pretrained(tmp_path)
    assert set(load_file(tmp_path / "model.safetensors")) == set(load_file(ckpts[name] / "model.safetensors"))
    ref, info = getattr(transformers, name).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    batch = {**inputs(), "output_hidden_states": True}
    expected = run(ours, **batch)
    assert_outputs_close(run(ref.eval(), **batch), expected, f"reference loads ours/{name}")
    assert_outputs_close(run(getattr(modernbert, name).from_pretrained(tmp_path), **batch), expected, "ours reloads")


@pytest.mark.parametrize("name", HEADS[1:])
def test_base_checkpoint_into_head(ckpts, name):
    ours, info = getattr(modernbert, name).from_pretrained(ckpts["ModernBertModel"], output_loading_info=True)
    _, ref_info = getattr(transformers, name).from_pretrained(ckpts["ModernBertModel"], output_loading_info=True)
    assert set(info["missing_keys"]) <= set(ref_info["missing_keys"]) and info["missing_keys"]
    assert not info["unexpected_keys"] and all(not p.is_meta for p in ours.parameters())
    batch = {**inputs(), "output_hidden_states": True}
    base = run(modernbert.ModernBertModel.from_pretrained(ckpts["ModernBertModel"]), **batch)
    assert_tensors_close(run(ours, **batch).hidden_states, base.hidden_states, "hidden_states")


def test_tied_and_untied_decoder(ckpts):
    ours = modernbert.ModernBertForMaskedLM.from_pretrained(ckpts["ModernBertForMaskedLM"])
    assert ours.decoder.weight is ours.model.embeddings.tok_embeddings.weight
    assert ours.get_output_embeddings() is ours.decoder
    assert ours.get_input_embeddings() is ours.model.embeddings.tok_embeddings
    path = ckpts["untied_mlm"]
    untied, info = modernbert.ModernBertForMaskedLM.from_pretrained(path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    assert untied.decoder.weight is not untied.model.embeddings.tok_embeddings.weight
    batch = inputs()
    assert_outputs_close(run(untied, **batch), run(load_reference("ModernBertForMaskedLM", path), **batch))


def test_auto_classes_pick_modernbert(ckpts):
    pairs = {
        auto.AutoModel: "ModernBertModel",
        auto.AutoModelForSequenceClassification: "ModernBertForSequenceClassification",
        auto.AutoModelForTokenClassification: "ModernBertForTokenClassification",
        auto.AutoModelForQuestionAnswering: "ModernBertForQuestionAnswering",
        auto.AutoModelForMaskedLM: "ModernBertForMaskedLM",
    }
    for auto_class, name in pairs.items():
        model = auto_class.from_pretrained(ckpts[name])
        assert type(model) is getattr(modernbert, name), auto_class
    assert isinstance(auto.AutoConfig.from_pretrained(ckpts["ModernBertModel"]), modernbert.ModernBertConfig)


def test_bf16(ckpts):
    path, name = ckpts["ModernBertForMaskedLM"], "ModernBertForMaskedLM"
    ours = modernbert.ModernBertForMaskedLM.from_pretrained(path, dtype=torch.bfloat16)
    assert ours.dtype == torch.bfloat16
    batch = inputs()
    assert_outputs_close(run(ours, **batch), run(load_reference(name, path, dtype=torch.bfloat16), **batch),
                         "bf16", BF16_TOLERANCE)


# -- configs, construction, errors ------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["legacy", "layer_types"])
def test_config_layout_matches_reference(layout):
    kwargs = TINY if layout == "legacy" else VARIANT
    ours, ref = modernbert.ModernBertConfig(**kwargs), transformers.ModernBertConfig(**kwargs)
    assert ours.layer_types == ref.layer_types
    assert ours.rope_parameters == ref.rope_parameters
    defaults, ref_defaults = modernbert.ModernBertConfig(), transformers.ModernBertConfig()
    for key in modernbert.ModernBertConfig.defaults:
        assert getattr(defaults, key) == getattr(ref_defaults, key), key


def test_from_config_builds_a_working_model():
    config = modernbert.ModernBertConfig(**TINY)
    model = modernbert.ModernBertForMaskedLM.from_config(config)
    assert model.decoder.weight is model.model.embeddings.tok_embeddings.weight
    layer = model.model.layers[1]
    assert isinstance(model.model.layers[0].attn_norm, torch.nn.Identity) and layer.attn.window == 3
    assert model.model.layers[0].attn.window is None
    # Residual outputs start narrower (initializer_range / sqrt(2 * layers)), all cut at two deviations.
    assert layer.attn.Wo.weight.std() < 0.7 * layer.attn.Wqkv.weight.std()
    assert layer.attn.Wqkv.weight.abs().max() <= 2 * config.initializer_range
    out = model(**inputs())
    assert out.logits.shape == (3, SEQ, VOCAB) and torch.isfinite(out.logits).all()
    for name in HEADS:
        model = getattr(modernbert, name).from_config(modernbert.ModernBertConfig(**VARIANT))
        out = model(**inputs(), return_dict=False)
        assert all(torch.isfinite(t).all() for t in out if isinstance(t, torch.Tensor))


def test_training_mode_and_backward(ckpts):
    model = modernbert.ModernBertForSequenceClassification.from_pretrained(
        ckpts["ModernBertForSequenceClassification"], classifier_dropout=0.5, attention_dropout=0.2
    )
    model.train()
    batch = {**inputs(), "labels": torch.tensor([0, 1, 0])}
    torch.manual_seed(0)
    first, second = model(**batch), model(**batch)
    assert not torch.equal(first.logits, second.logits), "dropout is active in training mode"
    first.loss.backward()
    assert model.model.layers[1].attn.Wqkv.weight.grad is not None


def test_bad_inputs_raise_input_error(ckpts):
    model = modernbert.ModernBertModel.from_pretrained(ckpts["ModernBertModel"])
    ids, mask = inputs()["input_ids"], inputs()["attention_mask"]
    for bad in (
        dict(input_ids=ids[0]),
        dict(input_ids=ids, attention_mask=mask[:, :5]),
        dict(input_ids=ids, position_ids=torch.arange(4)[None]),
        dict(input_ids=torch.full((1, 4), VOCAB)),
        dict(attention_mask=mask),
    ):
        with pytest.raises(InputError):
            model(**bad)


@pytest.mark.parametrize(
    "overrides",
    [
        {"classifier_pooling": "max"},
        {"layer_types": ["full_attention"] * 3},
        {"layer_types": ["full_attention", "chunked", "full_attention", "full_attention"]},
        {"rope_parameters": {"full_attention": {"rope_type": "yarn", "factor": 2.0}}},
        {"rope_parameters": {"rope_theta": 10.0}},
        {"local_rope_theta": -1.0},
        {"global_attn_every_n_layers": 0},
        {"hidden_size": 30},
        {"hidden_size": 24, "num_attention_heads": 8},
        {"norm_eps": 0},
        {"hidden_activation": "nope"},
        {"classifier_activation": "nope"},
        {"attention_dropout": 2.0},
        {"local_attention": 0},
        {"mlp_bias": "yes"},
    ],
)
def test_invalid_config_raises_config_error(overrides):
    with pytest.raises(ConfigError):
        modernbert.ModernBertConfig(**{**TINY, **overrides})


def test_question_answering_needs_two_labels():
    with pytest.raises(ConfigError, match="num_labels=2"):
        modernbert.ModernBertForQuestionAnswering.from_config(modernbert.ModernBertConfig(**TINY, num_labels=3))

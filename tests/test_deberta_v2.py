"""DeBERTa-v2/v3: parity with the reference on tiny random checkpoints over the config variants
(absolute positions only; v3-style shared-key log-bucketed c2p+p2c; v2-xlarge-style separate
position projections with the convolution; c2p with a narrower embedding; p2c alone), padded rows
included, loss quirks, loading variants, the Auto classes, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from parity import (
    assert_outputs_close,
    assert_tensors_close,
    build_reference,
    load_reference,
    run,
    state_dicts_equal,
    text_inputs,
    transformers,
)

import leanformers
from leanformers.errors import ConfigError, InputError
from leanformers.models import deberta_v2

HEADS = [
    "DebertaV2Model",
    "DebertaV2ForSequenceClassification",
    "DebertaV2ForTokenClassification",
    "DebertaV2ForQuestionAnswering",
    "DebertaV2ForMaskedLM",
]
AUTO = {
    "DebertaV2Model": "AutoModel",
    "DebertaV2ForSequenceClassification": "AutoModelForSequenceClassification",
    "DebertaV2ForTokenClassification": "AutoModelForTokenClassification",
    "DebertaV2ForQuestionAnswering": "AutoModelForQuestionAnswering",
    "DebertaV2ForMaskedLM": "AutoModelForMaskedLM",
}
TINY = dict(
    vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
    max_position_embeddings=64,
)
VOCAB = TINY["vocab_size"]
SEQ = 24  # past position_buckets / 2, so log-spaced buckets and the table's clamping are exercised
V3 = dict(
    relative_attention=True, position_buckets=8, norm_rel_ebd="layer_norm", share_att_key=True,
    pos_att_type=["p2c", "c2p"], position_biased_input=False, max_relative_positions=-1,
)
VARIANTS = {
    # pos_att_type without relative_attention only changes the scale, as in the reference.
    "absolute": dict(type_vocab_size=2, pos_att_type=["c2p"]),
    "v3": V3,
    "conv": dict(
        relative_attention=True, position_buckets=8, norm_rel_ebd="layer_norm", share_att_key=False,
        pos_att_type="p2c|c2p", position_biased_input=False, conv_kernel_size=3, conv_act="gelu",
        max_relative_positions=48,
    ),
    "c2p_narrow": dict(
        relative_attention=True, pos_att_type=["c2p"], max_relative_positions=10, type_vocab_size=2, embedding_size=24,
    ),
    "p2c": dict(relative_attention=True, pos_att_type=["p2c"], position_buckets=16, hidden_act="gelu_new"),
}


def ref_config(variant: str = "v3", **overrides):
    return transformers.DebertaV2Config(**{**TINY, **VARIANTS[variant], **overrides})


def inputs(seq: int = SEQ, **kwargs) -> dict:
    return text_inputs(VOCAB, seq=seq, **kwargs)


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """Reference-saved checkpoints: every head in every variant, plus label and head variants."""
    root = tmp_path_factory.mktemp("deberta-v2")
    specs = {(variant, name): (name, ref_config(variant)) for variant in VARIANTS for name in HEADS}
    specs.update({
        "regression": ("DebertaV2ForSequenceClassification", ref_config(num_labels=1)),
        "three_labels": ("DebertaV2ForSequenceClassification", ref_config(num_labels=3, cls_dropout=0.2)),
        "mlm_new": ("DebertaV2ForMaskedLM", ref_config(legacy=False)),
        "mlm_untied": ("DebertaV2ForMaskedLM", ref_config(tie_word_embeddings=False)),
    })
    paths = {}
    for seed, (key, (name, config)) in enumerate(specs.items()):
        paths[key] = root / ("-".join(key) if isinstance(key, tuple) else key)
        build_reference(name, config, seed).save_pretrained(paths[key])
    return paths


def _compare(ours_class: str, path: Path, batch: dict, what: str) -> None:
    ours = getattr(deberta_v2, ours_class).from_pretrained(path)
    assert_outputs_close(run(ours, **batch), run(load_reference(ours_class, path), **batch), what)


# -- forward parity -------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("name", HEADS)
def test_forward_matches_reference(ckpts, name, variant):
    """Padded rows included: hidden states and attention weights at padded positions match too."""
    batch = {**inputs(), "output_attentions": True, "output_hidden_states": True}
    _compare(name, ckpts[variant, name], batch, f"{variant}/{name}")


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "conv"])
@pytest.mark.parametrize("name", HEADS)
def test_unpadded_path_matches_reference(ckpts, name, variant, packed_calls):
    """Packed execution, the disentangled terms built per length bucket from its queries and keys:
    the reference's numbers at every real position."""
    batch = inputs()
    batch["attention_mask"][1, 7:] = 0  # three lengths, so more than one bucket may form
    ours = getattr(deberta_v2, name).from_pretrained(ckpts[variant, name])
    ours.config.unpad_inputs = True
    ref = load_reference(name, ckpts[variant, name])
    if variant != "absolute":  # at the initial scale the relative terms barely move the outputs
        with torch.no_grad():
            for model in (ours, ref):
                model.base_model.encoder.rel_embeddings.weight.mul_(30)
    got, want = run(ours, **batch), run(ref, **batch)
    assert packed_calls, "the packed path did not run"
    real = batch["attention_mask"].bool()
    for key in want.keys():
        if want[key].dim() < 2 or want[key].shape[:2] != real.shape:
            assert_tensors_close(got[key], want[key], f"{variant}/{name}.{key}")
        else:
            assert_tensors_close(got[key][real], want[key][real], f"{variant}/{name}.{key} (real positions)")


def test_convolution_keeps_the_dense_path(ckpts, packed_calls):
    """The convolution reaches across neighbouring tokens, which packing would make another row's."""
    model = deberta_v2.DebertaV2ForSequenceClassification.from_pretrained(ckpts["conv", "DebertaV2ForSequenceClassification"])
    model.config.unpad_inputs = True
    run(model, **inputs())
    assert not packed_calls


def _input_variant(kind: str, variant: str) -> dict:
    batch = inputs()
    if kind == "plain":
        return {"input_ids": batch["input_ids"]}
    if kind == "tuple":
        return {**batch, "output_hidden_states": True, "output_attentions": True, "return_dict": False}
    if kind == "embeds":
        width = VARIANTS[variant].get("embedding_size", TINY["hidden_size"])
        embeds = torch.randn(3, SEQ, width, generator=torch.Generator().manual_seed(3))
        return {"inputs_embeds": embeds, "attention_mask": batch["attention_mask"]}
    if kind == "positions":
        return {**batch, "position_ids": torch.arange(SEQ - 1, -1, -1).repeat(3, 1) + 5}
    if kind == "fully_masked_row":
        batch["attention_mask"][0] = 0
        return {**batch, "output_attentions": True}
    raise AssertionError(kind)


@pytest.mark.parametrize("variant", ["c2p_narrow", "conv"])
@pytest.mark.parametrize("kind", ["plain", "tuple", "embeds", "positions", "fully_masked_row"])
def test_input_variants_match_reference(ckpts, kind, variant):
    _compare("DebertaV2ForMaskedLM", ckpts[variant, "DebertaV2ForMaskedLM"], _input_variant(kind, variant), kind)


def test_longer_than_max_position_embeddings_without_absolute_positions(ckpts):
    """Relative positions only: the reference takes any length, and so do we (the buckets saturate)."""
    batch = inputs(seq=TINY["max_position_embeddings"] + 16)
    _compare("DebertaV2Model", ckpts["v3", "DebertaV2Model"], batch, "long")
    with pytest.raises(InputError, match="max_position_embeddings"):
        deberta_v2.DebertaV2Model.from_pretrained(ckpts["absolute", "DebertaV2Model"])(**batch)


def test_relative_positions_match_reference():
    reference = transformers.models.deberta_v2.modeling_deberta_v2.build_relative_position
    for length, buckets, largest in ((300, 256, 512), (40, 8, 64), (9, -1, -1)):
        states = torch.zeros(1, length, 1)
        expected = reference(states, states, bucket_size=buckets, max_position=largest)[0]
        assert torch.equal(deberta_v2.relative_positions(length, buckets, largest, torch.device("cpu")), expected)


# -- losses ---------------------------------------------------------------------------------------


def _labels_case(case: str, ckpts):
    gen = torch.Generator().manual_seed(5)
    batch = inputs()
    seq_cls = "DebertaV2ForSequenceClassification"
    if case == "single_label":
        return seq_cls, ckpts["v3", seq_cls], {**batch, "labels": torch.tensor([0, 1, 1])}
    if case == "negative_label_skipped":
        return seq_cls, ckpts["three_labels"], {**batch, "labels": torch.tensor([2, -1, 0])}
    if case == "all_labels_negative":
        return seq_cls, ckpts["three_labels"], {**batch, "labels": torch.tensor([-1, -1, -1])}
    if case == "regression":  # the reference returns flattened logits here
        return seq_cls, ckpts["regression"], {**batch, "labels": torch.randn(3, generator=gen)}
    if case == "soft_labels":
        return seq_cls, ckpts["three_labels"], {**batch, "labels": torch.rand(3, 3, generator=gen)}
    if case == "token":
        labels = torch.randint(0, 2, (3, SEQ), generator=gen)
        labels[batch["attention_mask"] == 0] = -100
        name = "DebertaV2ForTokenClassification"
        return name, ckpts["v3", name], {**batch, "labels": labels}
    if case == "qa":
        return "DebertaV2ForQuestionAnswering", ckpts["v3", "DebertaV2ForQuestionAnswering"], {
            **batch, "start_positions": torch.tensor([1, 70, 3]), "end_positions": torch.tensor([2, 80, 5])}
    if case in ("mlm", "mlm_new"):
        labels = torch.full((3, SEQ), -100)
        labels[:, 1] = torch.tensor([5, 17, 80])
        path = ckpts["mlm_new"] if case == "mlm_new" else ckpts["v3", "DebertaV2ForMaskedLM"]
        return "DebertaV2ForMaskedLM", path, {**batch, "labels": labels}
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    ["single_label", "negative_label_skipped", "all_labels_negative", "regression", "soft_labels", "token", "qa",
     "mlm", "mlm_new"],
)
def test_loss_matches_reference(ckpts, case):
    name, path, batch = _labels_case(case, ckpts)
    ours, ref = getattr(deberta_v2, name).from_pretrained(path), load_reference(name, path)
    ours_out, ref_out = run(ours, **batch), run(ref, **batch)
    assert ours_out.keys()[0] == "loss"
    assert_outputs_close(ours_out, ref_out, case)
    assert ours.config.problem_type is None and ref.config.problem_type is None  # nothing written back


@pytest.mark.parametrize("problem", ["single_label_classification", "multi_label_classification", "regression"])
def test_explicit_problem_type_matches_reference(ckpts, problem):
    path = ckpts["three_labels"]
    labels = torch.tensor([2, 0, 1]) if problem == "single_label_classification" else torch.rand(3, 3)
    batch = {**inputs(), "labels": labels}
    ours = deberta_v2.DebertaV2ForSequenceClassification.from_pretrained(path, problem_type=problem)
    ref = load_reference("DebertaV2ForSequenceClassification", path, problem_type=problem)
    assert_outputs_close(run(ours, **batch), run(ref, **batch), problem)


# -- loading --------------------------------------------------------------------------------------


def _assert_reports_match(ours_info: dict, ref_info: dict, tied_targets: set[str]) -> None:
    assert set(ours_info["unexpected_keys"]) == set(ref_info["unexpected_keys"])
    ours_missing, ref_missing = set(ours_info["missing_keys"]), set(ref_info["missing_keys"])
    assert ours_missing <= ref_missing and ref_missing - ours_missing <= tied_targets, (ours_missing, ref_missing)


@pytest.mark.parametrize("name", HEADS[1:])
def test_base_checkpoint_into_head(ckpts, name):
    path = ckpts["conv", "DebertaV2Model"]
    ours, ours_info = getattr(deberta_v2, name).from_pretrained(path, output_loading_info=True)
    ref, ref_info = getattr(transformers, name).from_pretrained(path, output_loading_info=True)
    _assert_reports_match(ours_info, ref_info, set(getattr(deberta_v2, name)._tied_weights))
    state_dicts_equal(ours, ref.eval(), {"deberta." + k for k in load_file(path / "model.safetensors")})
    batch = {**inputs(), "output_hidden_states": True}
    assert_tensors_close(run(ours, **batch).hidden_states, run(ref.eval(), **batch).hidden_states, "hidden_states")


@pytest.mark.parametrize("name", HEADS[1:])
def test_head_checkpoint_into_base(ckpts, name):
    path = ckpts["v3", name]
    ours, ours_info = deberta_v2.DebertaV2Model.from_pretrained(path, output_loading_info=True)
    ref, ref_info = transformers.DebertaV2Model.from_pretrained(path, output_loading_info=True)
    _assert_reports_match(ours_info, ref_info, set())
    assert ours_info["missing_keys"] == []
    batch = inputs()
    assert_outputs_close(run(ours, **batch), run(ref.eval(), **batch), name)


def test_masked_lm_heads_and_tying(ckpts):
    legacy = deberta_v2.DebertaV2ForMaskedLM.from_pretrained(ckpts["v3", "DebertaV2ForMaskedLM"])
    predictions = legacy.cls.predictions
    assert predictions.decoder.weight is legacy.deberta.embeddings.word_embeddings.weight
    assert predictions.decoder.bias is predictions.bias
    assert legacy.get_output_embeddings() is predictions.decoder
    new, info = deberta_v2.DebertaV2ForMaskedLM.from_pretrained(ckpts["mlm_new"], output_loading_info=True)
    assert not hasattr(new, "cls") and info["missing_keys"] == [] and info["unexpected_keys"] == []
    assert new.get_output_embeddings() is new.lm_predictions.lm_head.dense
    untied = deberta_v2.DebertaV2ForMaskedLM.from_pretrained(ckpts["mlm_untied"])
    assert untied.cls.predictions.decoder.weight is not untied.deberta.embeddings.word_embeddings.weight
    _compare("DebertaV2ForMaskedLM", ckpts["mlm_untied"], inputs(), "untied")


def test_v3_style_checkpoint_keys(ckpts, tmp_path):
    """A DeBERTa-v3 file holds ``lm_predictions.lm_head`` and a ``mask_predictions`` head: with the
    default legacy=True both libraries leave the new head's keys unused and drop mask_predictions."""
    state = load_file(ckpts["mlm_new"] / "model.safetensors")
    state["mask_predictions.classifier.weight"] = torch.zeros(1, TINY["hidden_size"])
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    ref_config("v3").save_pretrained(tmp_path)
    _, ours_info = deberta_v2.DebertaV2ForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    _, ref_info = transformers.DebertaV2ForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    _assert_reports_match(ours_info, ref_info, set(deberta_v2.DebertaV2ForMaskedLM._tied_weights))
    assert not any(k.startswith("mask_predictions") for k in ours_info["unexpected_keys"])
    assert any(k.startswith("lm_predictions") for k in ours_info["unexpected_keys"])


@pytest.mark.parametrize("variant", ["v3", "conv"])
@pytest.mark.parametrize("name", HEADS)
def test_save_round_trip_and_auto_class(ckpts, tmp_path, name, variant):
    ours = getattr(leanformers, AUTO[name]).from_pretrained(ckpts[variant, name])
    assert type(ours) is getattr(deberta_v2, name)
    ours.save_pretrained(tmp_path)
    assert set(load_file(tmp_path / "model.safetensors")) == set(load_file(ckpts[variant, name] / "model.safetensors"))
    ref, info = getattr(transformers, name).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    batch = {**inputs(), "output_hidden_states": True}
    assert_outputs_close(run(ref.eval(), **batch), run(ours, **batch), f"reference loads ours/{variant}/{name}")


# -- construction, errors -------------------------------------------------------------------------


def test_config_matches_reference():
    ours, ref = deberta_v2.DebertaV2Config(), transformers.DebertaV2Config()
    for key in deberta_v2.DebertaV2Config.defaults:
        if hasattr(ref, key):
            assert getattr(ours, key) == getattr(ref, key), key
    assert deberta_v2.DebertaV2Config(pos_att_type="P2C| c2p").pos_att_type == ["p2c", "c2p"]
    assert transformers.DebertaV2Config(pos_att_type="P2C| c2p").pos_att_type == ["p2c", "c2p"]


def test_from_config_builds_working_models():
    for variant, overrides in VARIANTS.items():
        config = deberta_v2.DebertaV2Config(**TINY, **overrides)
        for name in HEADS:
            out = getattr(deberta_v2, name).from_config(config)(**inputs(), return_dict=False)
            assert all(torch.isfinite(t).all() for t in out if isinstance(t, torch.Tensor)), (variant, name)


@pytest.mark.parametrize(
    "overrides",
    [
        {"hidden_size": 30},
        {"pos_att_type": ["c2p", "p2p"]},
        {"pos_att_type": 3},
        {"norm_rel_ebd": "batch_norm"},
        {"conv_kernel_size": 2},
        {"conv_kernel_size": 3, "conv_groups": 5},
        {"position_buckets": 128},  # half of it reaches max_relative_positions
        {"attention_head_size": 16},
        {"pooler_hidden_size": 16},
        {"legacy": False, "embedding_size": 24},
        {"pooler_hidden_act": "nope"},
        {"relative_attention": "yes"},
        {"type_vocab_size": -1},
        {"cls_dropout": 2.0},
    ],
)
def test_invalid_config_raises_config_error(overrides):
    with pytest.raises(ConfigError):
        deberta_v2.DebertaV2Config(**{**TINY, **V3, **overrides})


def test_bad_inputs_raise_input_error(ckpts):
    model = deberta_v2.DebertaV2Model.from_pretrained(ckpts["c2p_narrow", "DebertaV2Model"])
    ids = inputs()["input_ids"]
    bad_calls = {
        "embeds of hidden_size, not embedding_size": dict(inputs_embeds=torch.zeros(3, SEQ, TINY["hidden_size"])),
        "token_type_ids shape": dict(input_ids=ids, token_type_ids=torch.zeros(3, 5, dtype=torch.long)),
        "mask shape": dict(input_ids=ids, attention_mask=torch.ones(2, SEQ)),
        "token type out of range": dict(input_ids=ids, token_type_ids=torch.full_like(ids, 2)),
        "too long": dict(input_ids=torch.ones(1, TINY["max_position_embeddings"] + 1, dtype=torch.long)),
    }
    for what, kwargs in bad_calls.items():
        with pytest.raises(InputError):
            model(**kwargs)
            pytest.fail(f"no InputError for {what}")

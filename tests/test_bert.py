"""BERT: parity with the reference on tiny random checkpoints, loading variants, errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from parity import (
    BF16_TOLERANCE,
    assert_outputs_close,
    assert_tensors_close,
    build_reference,
    load_reference,
    run,
    state_dicts_equal,
    text_inputs,
    transformers,
)

from leanformers.errors import ConfigError, InputError, WeightsError
from leanformers.models import bert

HEADS = [
    "BertModel",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
    "BertForMaskedLM",
]
TINY = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    type_vocab_size=2,
)
VOCAB = TINY["vocab_size"]


def ref_config(**overrides):
    return transformers.BertConfig(**{**TINY, **overrides})


def ours_class(name: str):
    return getattr(bert, name)


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """One reference-saved checkpoint per head, built once per session."""
    root = tmp_path_factory.mktemp("bert")
    paths = {}
    for seed, name in enumerate(HEADS):
        paths[name] = root / name
        build_reference(name, ref_config(), seed).save_pretrained(paths[name])
    return paths


@pytest.fixture(scope="session")
def special_ckpts(tmp_path_factory) -> dict[str, Path]:
    """Checkpoints for label variants and storage formats."""
    root = tmp_path_factory.mktemp("bert-special")
    paths = {}
    specs = {
        "regression": ("BertForSequenceClassification", ref_config(num_labels=1)),
        "multi_label": ("BertForSequenceClassification", ref_config(num_labels=3)),
        "untied_mlm": ("BertForMaskedLM", ref_config(tie_word_embeddings=False)),
    }
    for seed, (key, (name, config)) in enumerate(specs.items(), start=10):
        paths[key] = root / key
        build_reference(name, config, seed).save_pretrained(paths[key])
    paths["bf16"] = root / "bf16"
    build_reference("BertForSequenceClassification", ref_config(), 20).to(torch.bfloat16).save_pretrained(paths["bf16"])
    paths["sharded"] = root / "sharded"
    build_reference("BertForMaskedLM", ref_config(), 21).save_pretrained(paths["sharded"], max_shard_size="20KB")
    return paths


def _inputs(variant: str) -> dict:
    inputs = text_inputs(VOCAB)
    if variant == "plain":
        return {"input_ids": inputs["input_ids"]}
    if variant == "padded":
        return {**inputs, "output_hidden_states": True}
    if variant == "attentions":
        return {**inputs, "output_attentions": True, "output_hidden_states": True}
    if variant == "tuple":
        return {**inputs, "output_hidden_states": True, "output_attentions": True, "return_dict": False}
    if variant == "embeds":
        embeds = torch.randn(3, 9, TINY["hidden_size"], generator=torch.Generator().manual_seed(3))
        return {"inputs_embeds": embeds, "attention_mask": inputs["attention_mask"]}
    if variant == "positions":
        positions = torch.arange(8, -1, -1).repeat(3, 1) + 5
        token_types = inputs["token_type_ids"][:1]  # one row, broadcast over the batch
        return {"input_ids": inputs["input_ids"], "position_ids": positions, "token_type_ids": token_types}
    raise AssertionError(variant)


# -- forward parity -------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["plain", "padded", "attentions", "tuple", "embeds", "positions"])
@pytest.mark.parametrize("name", HEADS)
def test_forward_matches_reference(ckpts, name, variant):
    inputs = _inputs(variant)
    ours = ours_class(name).from_pretrained(ckpts[name])
    # The reference returns attention weights only from its explicit ("eager") attention.
    ref = load_reference(name, ckpts[name], eager="output_attentions" in inputs)
    assert_outputs_close(run(ours, **inputs), run(ref, **inputs), f"{name}/{variant}")


def test_fully_masked_row_matches_reference(ckpts):
    """A row with no attended token: SDPA and explicit attention differ there, each like the reference's."""
    inputs = text_inputs(VOCAB)
    inputs["attention_mask"][0] = 0
    ours = bert.BertModel.from_pretrained(ckpts["BertModel"])
    assert_outputs_close(run(ours, **inputs), run(load_reference("BertModel", ckpts["BertModel"]), **inputs))
    eager = load_reference("BertModel", ckpts["BertModel"], eager=True)
    assert_outputs_close(run(ours, **inputs, output_attentions=True), run(eager, **inputs, output_attentions=True))


def test_padding_does_not_change_unpadded_outputs(ckpts):
    model = bert.BertForTokenClassification.from_pretrained(ckpts["BertForTokenClassification"])
    inputs = text_inputs(VOCAB, pad_row=False)
    short = {k: v[:, :6] for k, v in inputs.items()}
    padded = {k: v.clone() for k, v in inputs.items()}
    padded["attention_mask"][:, 6:] = 0
    padded["input_ids"][:, 6:] = 7
    assert_tensors_close(run(model, **padded).logits[:, :6], run(model, **short).logits, "unpadded positions")


def test_config_defaults_drive_outputs(ckpts):
    ours = bert.BertForSequenceClassification.from_pretrained(
        ckpts["BertForSequenceClassification"], output_hidden_states=True, return_dict=False
    )
    out = run(ours, **text_inputs(VOCAB))
    assert isinstance(out, tuple) and len(out) == 2 and len(out[1]) == TINY["num_hidden_layers"] + 1


# -- losses ---------------------------------------------------------------------------------------


def _labels_case(case: str, ckpts, special_ckpts):
    gen = torch.Generator().manual_seed(5)
    inputs = text_inputs(VOCAB)
    if case == "single_label":
        return "BertForSequenceClassification", ckpts["BertForSequenceClassification"], {
            **inputs, "labels": torch.tensor([0, 1, 1])}
    if case == "regression":
        return "BertForSequenceClassification", special_ckpts["regression"], {
            **inputs, "labels": torch.randn(3, generator=gen)}
    if case == "multi_label":
        return "BertForSequenceClassification", special_ckpts["multi_label"], {
            **inputs, "labels": torch.randint(0, 2, (3, 3), generator=gen).float()}
    if case == "token":
        labels = torch.randint(0, 2, (3, 9), generator=gen)
        labels[inputs["attention_mask"] == 0] = -100
        return "BertForTokenClassification", ckpts["BertForTokenClassification"], {**inputs, "labels": labels}
    if case == "qa":
        # The second example's answer lies beyond the sequence: clamped and ignored, as in the reference.
        return "BertForQuestionAnswering", ckpts["BertForQuestionAnswering"], {
            **inputs, "start_positions": torch.tensor([1, 40, 3]), "end_positions": torch.tensor([[2], [50], [5]])}
    if case == "mlm":
        labels = torch.full((3, 9), -100)
        labels[:, 2] = torch.tensor([5, 17, 80])
        labels[0, 4] = 3
        return "BertForMaskedLM", ckpts["BertForMaskedLM"], {**inputs, "labels": labels}
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["single_label", "regression", "multi_label", "token", "qa", "mlm"])
def test_loss_matches_reference(ckpts, special_ckpts, case):
    name, path, inputs = _labels_case(case, ckpts, special_ckpts)
    ours, ref = ours_class(name).from_pretrained(path), load_reference(name, path)
    ours_out, ref_out = run(ours, **inputs), run(ref, **inputs)
    assert ours_out.keys()[0] == "loss"
    assert_outputs_close(ours_out, ref_out, case)
    assert run(ours, **inputs, return_dict=False)[0] is not None
    # The inferred problem type is written back to the config, as the reference does.
    assert ours.config.problem_type == ref.config.problem_type


def test_explicit_problem_type_is_respected(ckpts):
    path = ckpts["BertForSequenceClassification"]
    inputs = {**text_inputs(VOCAB), "labels": torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])}
    for problem in ("regression", "multi_label_classification"):
        ours = bert.BertForSequenceClassification.from_pretrained(path, problem_type=problem)
        ref = load_reference("BertForSequenceClassification", path, problem_type=problem)
        assert_outputs_close(run(ours, **inputs), run(ref, **inputs), problem)


# -- loading variants -----------------------------------------------------------------------------


def _assert_reports_match(ours_info: dict, ref_info: dict, tied_targets: set[str]) -> None:
    assert set(ours_info["unexpected_keys"]) == set(ref_info["unexpected_keys"])
    ours_missing, ref_missing = set(ours_info["missing_keys"]), set(ref_info["missing_keys"])
    # The reference also lists a tied copy whose source is missing; ours lists only the source.
    assert ours_missing <= ref_missing and ref_missing - ours_missing <= tied_targets, (ours_missing, ref_missing)
    assert {k for k, *_ in ours_info["mismatched_keys"]} == {k for k, *_ in ref_info["mismatched_keys"]}


@pytest.mark.parametrize("name", HEADS[1:])
def test_base_checkpoint_into_head(ckpts, name):
    path = ckpts["BertModel"]
    ours, ours_info = ours_class(name).from_pretrained(path, output_loading_info=True)
    ref, ref_info = getattr(transformers, name).from_pretrained(path, output_loading_info=True)
    _assert_reports_match(ours_info, ref_info, set(ours_class(name)._tied_weights))
    loaded = {"bert." + k for k in load_file(path / "model.safetensors")} & set(ours.state_dict())
    state_dicts_equal(ours, ref.eval(), loaded)
    inputs = {**text_inputs(VOCAB), "output_hidden_states": True}
    assert_tensors_close(run(ours, **inputs).hidden_states, run(ref.eval(), **inputs).hidden_states, "hidden_states")
    assert all(not p.is_meta for p in ours.parameters())


@pytest.mark.parametrize("name", HEADS[1:])
def test_head_checkpoint_into_base(ckpts, name):
    path = ckpts[name]
    ours, ours_info = bert.BertModel.from_pretrained(path, output_loading_info=True)
    ref, ref_info = transformers.BertModel.from_pretrained(path, output_loading_info=True)
    _assert_reports_match(ours_info, ref_info, set())
    inputs = text_inputs(VOCAB)
    ours_out, ref_out = run(ours, **inputs), run(ref.eval(), **inputs)
    assert_tensors_close(ours_out.last_hidden_state, ref_out.last_hidden_state, "last_hidden_state")
    if name == "BertForSequenceClassification":  # the only head checkpoint with a pooler
        assert ours_info["missing_keys"] == []
        assert_tensors_close(ours_out.pooler_output, ref_out.pooler_output, "pooler_output")


def test_base_model_without_pooler(ckpts):
    ours, info = bert.BertModel.from_pretrained(ckpts["BertModel"], add_pooling_layer=False, output_loading_info=True)
    assert ours.pooler is None and "pooler.dense.weight" in info["unexpected_keys"]
    out = run(ours, **text_inputs(VOCAB))
    assert out.pooler_output is None and out.keys() == ["last_hidden_state"]


def test_bf16_checkpoint(special_ckpts):
    path, name = special_ckpts["bf16"], "BertForSequenceClassification"
    inputs = {**text_inputs(VOCAB), "output_hidden_states": True}
    ours = bert.BertForSequenceClassification.from_pretrained(path)  # dtype="auto": the checkpoint's
    ref = load_reference(name, path, dtype="auto")
    assert {p.dtype for p in ours.parameters()} == {torch.bfloat16} and ours.config.dtype == "bfloat16"
    # bf16 keeps 8 bits of mantissa; the two libraries agree within bf16 rounding (here: exactly).
    assert_outputs_close(run(ours, **inputs), run(ref, **inputs), "bf16", BF16_TOLERANCE)
    ref32 = load_reference(name, path, dtype=torch.float32)
    for kwargs in ({"dtype": torch.float32}, {"torch_dtype": torch.float32}, {"dtype": "float32"}):
        ours32 = bert.BertForSequenceClassification.from_pretrained(path, **kwargs)
        assert {p.dtype for p in ours32.parameters()} == {torch.float32}, kwargs
        assert_outputs_close(run(ours32, **inputs), run(ref32, **inputs), f"fp32 {kwargs}")


def test_fp32_checkpoint_loaded_as_bf16(ckpts):
    path, name = ckpts["BertForMaskedLM"], "BertForMaskedLM"
    ours = bert.BertForMaskedLM.from_pretrained(path, dtype=torch.bfloat16)
    ref = load_reference(name, path, dtype=torch.bfloat16)
    assert ours.dtype == torch.bfloat16
    assert ours.cls.predictions.decoder.weight is ours.bert.embeddings.word_embeddings.weight
    inputs = text_inputs(VOCAB)
    assert_outputs_close(run(ours, **inputs), run(ref, **inputs), "bf16", BF16_TOLERANCE)


def test_tied_weights(ckpts, special_ckpts):
    ours = bert.BertForMaskedLM.from_pretrained(ckpts["BertForMaskedLM"])
    predictions = ours.cls.predictions
    assert predictions.decoder.weight is ours.bert.embeddings.word_embeddings.weight
    assert predictions.decoder.bias is predictions.bias
    assert ours.get_output_embeddings() is predictions.decoder
    assert ours.get_input_embeddings() is ours.bert.embeddings.word_embeddings

    path = special_ckpts["untied_mlm"]
    untied, info = bert.BertForMaskedLM.from_pretrained(path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    assert untied.cls.predictions.decoder.weight is not untied.bert.embeddings.word_embeddings.weight
    assert not torch.equal(untied.cls.predictions.decoder.weight, untied.bert.embeddings.word_embeddings.weight)
    inputs = text_inputs(VOCAB)
    assert_outputs_close(run(untied, **inputs), run(load_reference("BertForMaskedLM", path), **inputs))


@pytest.mark.parametrize("name", HEADS)
def test_save_round_trip(ckpts, tmp_path, name):
    ours = ours_class(name).from_pretrained(ckpts[name])
    ours.save_pretrained(tmp_path)
    saved = set(load_file(tmp_path / "model.safetensors"))
    assert saved == set(load_file(ckpts[name] / "model.safetensors")), "ours saves the reference's key set"
    ref, info = getattr(transformers, name).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    inputs = {**text_inputs(VOCAB), "output_hidden_states": True}
    expected = run(ours, **inputs)
    assert_outputs_close(run(ref.eval(), **inputs), expected, f"reference loads ours/{name}")
    assert_outputs_close(run(ours_class(name).from_pretrained(tmp_path), **inputs), expected, f"ours reloads/{name}")


def _legacy_copy(src: Path, dst: Path, extra: dict[str, torch.Tensor]) -> Path:
    state = load_file(src / "model.safetensors")
    renamed = {}
    for key, tensor in state.items():
        key = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        renamed[key] = tensor
    renamed.update(extra)
    dst.mkdir()
    save_file(renamed, dst / "model.safetensors", metadata={"format": "pt"})
    shutil.copy(src / "config.json", dst / "config.json")
    return dst


def test_legacy_layernorm_names_and_position_ids(ckpts, tmp_path):
    positions = torch.arange(TINY["max_position_embeddings"])[None]
    path = _legacy_copy(ckpts["BertModel"], tmp_path / "legacy", {"embeddings.position_ids": positions})
    assert any(k.endswith("gamma") for k in load_file(path / "model.safetensors"))
    ours, info = bert.BertModel.from_pretrained(path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    inputs = text_inputs(VOCAB)
    assert_outputs_close(run(ours, **inputs), run(load_reference("BertModel", ckpts["BertModel"]), **inputs))


def test_legacy_mlm_checkpoint_with_explicit_decoder(ckpts, tmp_path):
    """Old hub MLM files store the decoder matrix (a copy of the embeddings), position ids and an NSP head."""
    src = ckpts["BertForMaskedLM"]
    state = load_file(src / "model.safetensors")
    extra = {
        "cls.predictions.decoder.weight": state["bert.embeddings.word_embeddings.weight"].clone(),
        "bert.embeddings.position_ids": torch.arange(TINY["max_position_embeddings"])[None],
        "cls.seq_relationship.weight": torch.zeros(2, TINY["hidden_size"]),
        "cls.seq_relationship.bias": torch.zeros(2),
    }
    path = _legacy_copy(src, tmp_path / "legacy", extra)
    ours, info = bert.BertForMaskedLM.from_pretrained(path, output_loading_info=True)
    assert info["missing_keys"] == []
    assert set(info["unexpected_keys"]) == {"cls.seq_relationship.weight", "cls.seq_relationship.bias"}
    assert ours.cls.predictions.decoder.weight is ours.bert.embeddings.word_embeddings.weight
    inputs = text_inputs(VOCAB)
    assert_outputs_close(run(ours, **inputs), run(load_reference("BertForMaskedLM", src), **inputs))


def test_pytorch_bin_checkpoint(ckpts, tmp_path):
    src = ckpts["BertForTokenClassification"]
    torch.save(load_file(src / "model.safetensors"), tmp_path / "pytorch_model.bin")
    shutil.copy(src / "config.json", tmp_path / "config.json")
    ours = bert.BertForTokenClassification.from_pretrained(tmp_path)
    inputs = text_inputs(VOCAB)
    assert_outputs_close(run(ours, **inputs), run(load_reference("BertForTokenClassification", src), **inputs))


def test_sharded_checkpoint(special_ckpts):
    path = special_ckpts["sharded"]
    index = json.loads((path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1 and not (path / "model.safetensors").exists()
    ours = bert.BertForMaskedLM.from_pretrained(path)
    inputs = text_inputs(VOCAB)
    assert_outputs_close(run(ours, **inputs), run(load_reference("BertForMaskedLM", path), **inputs))


def test_shape_mismatch(ckpts):
    path = ckpts["BertForSequenceClassification"]
    with pytest.raises(WeightsError) as excinfo:
        bert.BertForSequenceClassification.from_pretrained(path, num_labels=3)
    message = str(excinfo.value)
    assert re.search(r"classifier\.weight.*\(2, 32\).*\(3, 32\)|classifier\.bias.*\(2,\).*\(3,\)", message), message
    assert "ignore_mismatched_sizes" in message

    ours, info = bert.BertForSequenceClassification.from_pretrained(
        path, num_labels=3, ignore_mismatched_sizes=True, output_loading_info=True
    )
    ref, ref_info = transformers.BertForSequenceClassification.from_pretrained(
        path, num_labels=3, ignore_mismatched_sizes=True, output_loading_info=True
    )
    _assert_reports_match(info, ref_info, set())
    assert ours.classifier.weight.shape == (3, 32) and ours.config.num_labels == 3
    state_dicts_equal(ours, ref, {k for k in ours.state_dict() if not k.startswith("classifier")})
    assert run(ours, **text_inputs(VOCAB)).logits.shape == (3, 3)


# -- construction, errors ---------------------------------------------------------------------------


def test_from_config_builds_a_working_model():
    config = bert.BertConfig(**TINY)
    model = bert.BertForMaskedLM.from_config(config)
    assert all(not p.is_meta for p in model.parameters())
    predictions = model.cls.predictions
    assert predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert torch.count_nonzero(predictions.bias) == 0
    assert torch.count_nonzero(model.bert.embeddings.word_embeddings.weight[config.pad_token_id]) == 0
    assert torch.equal(model.bert.embeddings.LayerNorm.weight, torch.ones(32))
    std = model.bert.encoder.layer[0].attention.self.query.weight.std().item()
    assert 0.01 < std < 0.03
    out = model(**text_inputs(VOCAB))
    assert out.logits.shape == (3, 9, VOCAB) and torch.isfinite(out.logits).all()

    for name in HEADS:
        model = ours_class(name).from_config(bert.BertConfig(**TINY, num_labels=2))
        out = model(**text_inputs(VOCAB), return_dict=False)
        assert all(torch.isfinite(t).all() for t in out if isinstance(t, torch.Tensor))


def test_config_matches_reference_defaults():
    ours, ref = bert.BertConfig(), transformers.BertConfig()
    for key in bert.BertConfig.defaults:
        assert getattr(ours, key) == getattr(ref, key), key


def test_training_mode_and_backward(ckpts):
    model = bert.BertForSequenceClassification.from_pretrained(ckpts["BertForSequenceClassification"])
    model.train()
    inputs = {**text_inputs(VOCAB), "labels": torch.tensor([0, 1, 0])}
    torch.manual_seed(0)
    first = model(**inputs)
    second = model(**inputs)
    assert not torch.equal(first.logits, second.logits), "dropout is active in training mode"
    first.loss.backward()
    assert model.bert.embeddings.word_embeddings.weight.grad is not None
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, model(**inputs).logits)


def test_bad_inputs_raise_input_error(ckpts):
    model = bert.BertModel.from_pretrained(ckpts["BertModel"])
    inputs = text_inputs(VOCAB)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    bad_calls = {
        "3-D input_ids": dict(input_ids=ids[None]),
        "1-D input_ids": dict(input_ids=ids[0]),
        "float input_ids": dict(input_ids=ids.float()),
        "list input_ids": dict(input_ids=ids.tolist()),
        "mask shape": dict(input_ids=ids, attention_mask=mask[:, :5]),
        "3-D mask": dict(input_ids=ids, attention_mask=mask[None]),
        "both": dict(input_ids=ids, inputs_embeds=torch.zeros(3, 9, 32)),
        "neither": dict(attention_mask=mask),
        "embeds width": dict(inputs_embeds=torch.zeros(3, 9, 16)),
        "too long": dict(input_ids=torch.ones(1, TINY["max_position_embeddings"] + 1, dtype=torch.long)),
        "id out of vocab": dict(input_ids=torch.full((1, 4), VOCAB)),
        "negative id": dict(input_ids=torch.full((1, 4), -1)),
        "token type out of range": dict(input_ids=ids, token_type_ids=torch.full_like(ids, 2)),
        "token type shape": dict(input_ids=ids, token_type_ids=inputs["token_type_ids"][:, :4]),
        "position ids shape": dict(input_ids=ids, position_ids=torch.arange(4)[None]),
    }
    for what, kwargs in bad_calls.items():
        with pytest.raises(InputError):
            model(**kwargs)
            pytest.fail(f"no InputError for {what}")


@pytest.mark.parametrize(
    "overrides",
    [
        {"hidden_size": 30},
        {"num_attention_heads": 0},
        {"vocab_size": -1},
        {"hidden_act": "no_such_activation"},
        {"hidden_dropout_prob": 1.5},
        {"position_embedding_type": "relative_key"},
        {"pad_token_id": 500},
    ],
)
def test_invalid_config_raises_config_error(overrides):
    with pytest.raises(ConfigError):
        bert.BertConfig(**{**TINY, **overrides})


def test_decoder_configs_are_refused():
    for flag in ("is_decoder", "add_cross_attention"):
        with pytest.raises(ConfigError, match=flag):
            bert.BertModel.from_config(bert.BertConfig(**TINY, **{flag: True}))


def test_question_answering_needs_two_labels():
    with pytest.raises(ConfigError, match="num_labels=2"):
        bert.BertForQuestionAnswering.from_config(bert.BertConfig(**TINY, num_labels=3))


@pytest.mark.parametrize("act", ["gelu_new", "gelu_pytorch_tanh", "relu", "silu", "gelu_fast", "quick_gelu", "tanh"])
def test_hidden_act_variants_match_reference(tmp_path, act):
    build_reference("BertForMaskedLM", ref_config(hidden_act=act), 30).save_pretrained(tmp_path)
    inputs = text_inputs(VOCAB)
    ours = bert.BertForMaskedLM.from_pretrained(tmp_path)
    assert_outputs_close(run(ours, **inputs), run(load_reference("BertForMaskedLM", tmp_path), **inputs), act)


def test_activations_match_reference_bitwise():
    from transformers.activations import ACT2FN

    from leanformers.modeling.activations import ACTIVATIONS, get_activation

    x = torch.linspace(-12, 12, 2001)
    for name in ACTIVATIONS:
        assert torch.equal(get_activation(name)(x), ACT2FN[name](x)), name
    with pytest.raises(ConfigError):
        get_activation("nope")


def test_package_does_not_import_the_reference():
    code = (
        "import sys, leanformers.models.bert, leanformers.models.distilbert; "
        "assert 'transformers' not in sys.modules, 'transformers was imported'"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)

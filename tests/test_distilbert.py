"""DistilBERT: parity with the reference on tiny random checkpoints, loading variants, errors."""

from __future__ import annotations

import json
import re
import shutil
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
from leanformers.models import distilbert

HEADS = [
    "DistilBertModel",
    "DistilBertForSequenceClassification",
    "DistilBertForTokenClassification",
    "DistilBertForQuestionAnswering",
    "DistilBertForMaskedLM",
]
TINY = dict(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64)
VOCAB = TINY["vocab_size"]


def ref_config(**overrides):
    return transformers.DistilBertConfig(**{**TINY, **overrides})


def ours_class(name: str):
    return getattr(distilbert, name)


def inputs_without_token_types(**kwargs) -> dict:
    inputs = text_inputs(VOCAB, **kwargs)
    del inputs["token_type_ids"]
    return inputs


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """One reference-saved checkpoint per head, plus label, dtype, tying and storage variants."""
    root = tmp_path_factory.mktemp("distilbert")
    paths = {}
    for seed, name in enumerate(HEADS):
        paths[name] = root / name
        build_reference(name, ref_config(), seed).save_pretrained(paths[name])
    specs = {
        "regression": ("DistilBertForSequenceClassification", ref_config(num_labels=1)),
        "multi_label": ("DistilBertForSequenceClassification", ref_config(num_labels=3)),
        "untied_mlm": ("DistilBertForMaskedLM", ref_config(tie_word_embeddings=False)),
        "sinusoidal": ("DistilBertForSequenceClassification", ref_config(sinusoidal_pos_embds=True)),
        "relu": ("DistilBertForMaskedLM", ref_config(activation="relu")),
    }
    for seed, (key, (name, config)) in enumerate(specs.items(), start=10):
        paths[key] = root / key
        build_reference(name, config, seed).save_pretrained(paths[key])
    paths["bf16"] = root / "bf16"
    build_reference("DistilBertForMaskedLM", ref_config(), 20).to(torch.bfloat16).save_pretrained(paths["bf16"])
    paths["sharded"] = root / "sharded"
    build_reference("DistilBertForMaskedLM", ref_config(), 21).save_pretrained(paths["sharded"], max_shard_size="20KB")
    return paths


def _inputs(variant: str) -> dict:
    inputs = inputs_without_token_types()
    if variant == "plain":
        return {"input_ids": inputs["input_ids"]}
    if variant == "padded":
        return {**inputs, "output_hidden_states": True}
    if variant == "attentions":
        return {**inputs, "output_attentions": True, "output_hidden_states": True}
    if variant == "tuple":
        return {**inputs, "output_hidden_states": True, "output_attentions": True, "return_dict": False}
    if variant == "embeds":
        embeds = torch.randn(3, 9, TINY["dim"], generator=torch.Generator().manual_seed(3))
        return {"inputs_embeds": embeds, "attention_mask": inputs["attention_mask"]}
    if variant == "positions":
        return {"input_ids": inputs["input_ids"], "position_ids": torch.arange(8, -1, -1).repeat(3, 1) + 5}
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


@pytest.mark.parametrize("key", ["sinusoidal", "relu"])
def test_config_variants_match_reference(ckpts, key):
    name = json.loads((ckpts[key] / "config.json").read_text())["architectures"][0]
    inputs = {**inputs_without_token_types(), "output_hidden_states": True}
    ours = ours_class(name).from_pretrained(ckpts[key])
    assert_outputs_close(run(ours, **inputs), run(load_reference(name, ckpts[key]), **inputs), key)


def test_fully_masked_row_matches_reference(ckpts):
    inputs = inputs_without_token_types()
    inputs["attention_mask"][0] = 0
    path = ckpts["DistilBertModel"]
    ours = distilbert.DistilBertModel.from_pretrained(path)
    assert_outputs_close(run(ours, **inputs), run(load_reference("DistilBertModel", path), **inputs))
    eager = load_reference("DistilBertModel", path, eager=True)
    assert_outputs_close(run(ours, **inputs, output_attentions=True), run(eager, **inputs, output_attentions=True))


def test_token_type_ids_are_ignored_like_the_reference(ckpts):
    path = ckpts["DistilBertForSequenceClassification"]
    inputs = text_inputs(VOCAB)  # with token_type_ids, as BERT tokenizers return them
    ours = distilbert.DistilBertForSequenceClassification.from_pretrained(path)
    ref = load_reference("DistilBertForSequenceClassification", path)
    assert_outputs_close(run(ours, **inputs), run(ref, **inputs))


def test_padding_does_not_change_unpadded_outputs(ckpts):
    model = distilbert.DistilBertForTokenClassification.from_pretrained(ckpts["DistilBertForTokenClassification"])
    inputs = inputs_without_token_types(pad_row=False)
    short = {k: v[:, :6] for k, v in inputs.items()}
    padded = {k: v.clone() for k, v in inputs.items()}
    padded["attention_mask"][:, 6:] = 0
    padded["input_ids"][:, 6:] = 7
    assert_tensors_close(run(model, **padded).logits[:, :6], run(model, **short).logits, "unpadded positions")


# -- sinusoidal positions ---------------------------------------------------------------------------


def test_sinusoidal_table_matches_reference(ckpts, tmp_path):
    torch.manual_seed(0)
    reference = transformers.DistilBertModel(ref_config(sinusoidal_pos_embds=True))
    reference_table = reference.embeddings.position_embeddings.weight
    ours = distilbert.DistilBertModel.from_config(distilbert.DistilBertConfig(**TINY, sinusoidal_pos_embds=True))
    assert torch.equal(ours.embeddings.position_embeddings.weight, reference_table)
    learned = distilbert.DistilBertModel.from_config(distilbert.DistilBertConfig(**TINY))
    assert not torch.equal(learned.embeddings.position_embeddings.weight, reference_table)

    # A checkpoint without the table gets it computed, not drawn at random.
    state = load_file(ckpts["sinusoidal"] / "model.safetensors")
    del state["distilbert.embeddings.position_embeddings.weight"]
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    shutil.copy(ckpts["sinusoidal"] / "config.json", tmp_path / "config.json")
    loaded, info = distilbert.DistilBertForSequenceClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == ["distilbert.embeddings.position_embeddings.weight"]
    assert torch.equal(loaded.distilbert.embeddings.position_embeddings.weight, reference_table)


# -- losses ---------------------------------------------------------------------------------------


def _labels_case(case: str, ckpts):
    gen = torch.Generator().manual_seed(5)
    inputs = inputs_without_token_types()
    seq_cls = "DistilBertForSequenceClassification"
    if case == "single_label":
        return seq_cls, ckpts[seq_cls], {**inputs, "labels": torch.tensor([0, 1, 1])}
    if case == "regression":
        return seq_cls, ckpts["regression"], {**inputs, "labels": torch.randn(3, generator=gen)}
    if case == "multi_label":
        return seq_cls, ckpts["multi_label"], {**inputs, "labels": torch.randint(0, 2, (3, 3), generator=gen).float()}
    if case == "token":
        labels = torch.randint(0, 2, (3, 9), generator=gen)
        labels[inputs["attention_mask"] == 0] = -100
        name = "DistilBertForTokenClassification"
        return name, ckpts[name], {**inputs, "labels": labels}
    if case == "qa":
        name = "DistilBertForQuestionAnswering"
        return name, ckpts[name], {
            **inputs, "start_positions": torch.tensor([1, 40, 3]), "end_positions": torch.tensor([2, 50, 5])}
    if case == "mlm":
        labels = torch.full((3, 9), -100)
        labels[:, 2] = torch.tensor([5, 17, 80])
        name = "DistilBertForMaskedLM"
        return name, ckpts[name], {**inputs, "labels": labels}
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["single_label", "regression", "multi_label", "token", "qa", "mlm"])
def test_loss_matches_reference(ckpts, case):
    name, path, inputs = _labels_case(case, ckpts)
    ours, ref = ours_class(name).from_pretrained(path), load_reference(name, path)
    ours_out, ref_out = run(ours, **inputs), run(ref, **inputs)
    assert ours_out.keys()[0] == "loss"
    assert_outputs_close(ours_out, ref_out, case)
    assert ours.config.problem_type == ref.config.problem_type


# -- loading variants -----------------------------------------------------------------------------


def _assert_reports_match(ours_info: dict, ref_info: dict, tied_targets: set[str]) -> None:
    assert set(ours_info["unexpected_keys"]) == set(ref_info["unexpected_keys"])
    ours_missing, ref_missing = set(ours_info["missing_keys"]), set(ref_info["missing_keys"])
    assert ours_missing <= ref_missing and ref_missing - ours_missing <= tied_targets, (ours_missing, ref_missing)
    assert {k for k, *_ in ours_info["mismatched_keys"]} == {k for k, *_ in ref_info["mismatched_keys"]}


@pytest.mark.parametrize("name", HEADS[1:])
def test_base_checkpoint_into_head(ckpts, name):
    path = ckpts["DistilBertModel"]
    ours, ours_info = ours_class(name).from_pretrained(path, output_loading_info=True)
    ref, ref_info = getattr(transformers, name).from_pretrained(path, output_loading_info=True)
    _assert_reports_match(ours_info, ref_info, set(ours_class(name)._tied_weights))
    loaded = {"distilbert." + k for k in load_file(path / "model.safetensors")}
    state_dicts_equal(ours, ref.eval(), loaded)
    inputs = {**inputs_without_token_types(), "output_hidden_states": True}
    assert_tensors_close(run(ours, **inputs).hidden_states, run(ref.eval(), **inputs).hidden_states, "hidden_states")


@pytest.mark.parametrize("name", HEADS[1:])
def test_head_checkpoint_into_base(ckpts, name):
    path = ckpts[name]
    ours, ours_info = distilbert.DistilBertModel.from_pretrained(path, output_loading_info=True)
    ref, ref_info = transformers.DistilBertModel.from_pretrained(path, output_loading_info=True)
    _assert_reports_match(ours_info, ref_info, set())
    assert ours_info["missing_keys"] == []
    inputs = inputs_without_token_types()
    assert_outputs_close(run(ours, **inputs), run(ref.eval(), **inputs), name)


def test_bf16_checkpoint(ckpts):
    path, name = ckpts["bf16"], "DistilBertForMaskedLM"
    inputs = {**inputs_without_token_types(), "output_hidden_states": True}
    ours = distilbert.DistilBertForMaskedLM.from_pretrained(path)
    assert {p.dtype for p in ours.parameters()} == {torch.bfloat16}
    assert ours.vocab_projector.weight is ours.distilbert.embeddings.word_embeddings.weight
    ref = load_reference(name, path, dtype="auto")
    assert_outputs_close(run(ours, **inputs), run(ref, **inputs), "bf16", BF16_TOLERANCE)
    ref32 = load_reference(name, path, dtype=torch.float32)
    for kwargs in ({"dtype": torch.float32}, {"torch_dtype": torch.float32}):
        ours32 = distilbert.DistilBertForMaskedLM.from_pretrained(path, **kwargs)
        assert {p.dtype for p in ours32.parameters()} == {torch.float32}
        assert_outputs_close(run(ours32, **inputs), run(ref32, **inputs), f"fp32 {kwargs}")


def test_tied_weights(ckpts):
    ours = distilbert.DistilBertForMaskedLM.from_pretrained(ckpts["DistilBertForMaskedLM"])
    assert ours.vocab_projector.weight is ours.distilbert.embeddings.word_embeddings.weight
    assert ours.get_output_embeddings() is ours.vocab_projector
    path = ckpts["untied_mlm"]
    untied, info = distilbert.DistilBertForMaskedLM.from_pretrained(path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    assert untied.vocab_projector.weight is not untied.distilbert.embeddings.word_embeddings.weight
    inputs = inputs_without_token_types()
    assert_outputs_close(run(untied, **inputs), run(load_reference("DistilBertForMaskedLM", path), **inputs))


@pytest.mark.parametrize("name", HEADS)
def test_save_round_trip(ckpts, tmp_path, name):
    ours = ours_class(name).from_pretrained(ckpts[name])
    ours.save_pretrained(tmp_path)
    assert set(load_file(tmp_path / "model.safetensors")) == set(load_file(ckpts[name] / "model.safetensors"))
    ref, info = getattr(transformers, name).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    inputs = {**inputs_without_token_types(), "output_hidden_states": True}
    expected = run(ours, **inputs)
    assert_outputs_close(run(ref.eval(), **inputs), expected, f"reference loads ours/{name}")
    assert_outputs_close(run(ours_class(name).from_pretrained(tmp_path), **inputs), expected, f"ours reloads/{name}")


def test_legacy_names_position_ids_and_bin(ckpts, tmp_path):
    src = ckpts["DistilBertForQuestionAnswering"]
    state = {}
    for key, tensor in load_file(src / "model.safetensors").items():
        key = re.sub(r"(LayerNorm|layer_norm)\.weight$", r"\1.gamma", key)
        state[re.sub(r"(LayerNorm|layer_norm)\.bias$", r"\1.beta", key)] = tensor
    assert sum(k.endswith(".gamma") for k in state) == 1 + 2 * TINY["n_layers"]
    state["distilbert.embeddings.position_ids"] = torch.arange(TINY["max_position_embeddings"])[None]
    inputs = inputs_without_token_types()
    expected = run(load_reference("DistilBertForQuestionAnswering", src), **inputs)
    for fmt in ("safetensors", "bin"):
        folder = tmp_path / fmt
        folder.mkdir()
        if fmt == "bin":
            torch.save(state, folder / "pytorch_model.bin")
        else:
            save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
        shutil.copy(src / "config.json", folder / "config.json")
        ours, info = distilbert.DistilBertForQuestionAnswering.from_pretrained(folder, output_loading_info=True)
        assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}, fmt
        assert_outputs_close(run(ours, **inputs), expected, fmt)


def test_sharded_checkpoint(ckpts):
    path = ckpts["sharded"]
    index = json.loads((path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    ours = distilbert.DistilBertForMaskedLM.from_pretrained(path)
    inputs = inputs_without_token_types()
    assert_outputs_close(run(ours, **inputs), run(load_reference("DistilBertForMaskedLM", path), **inputs))


def test_shape_mismatch(ckpts):
    path = ckpts["DistilBertForSequenceClassification"]
    with pytest.raises(WeightsError, match=r"classifier\.(weight|bias).*\(2(, 32)?,?\).*\(3(, 32)?,?\)"):
        distilbert.DistilBertForSequenceClassification.from_pretrained(path, num_labels=3)
    ours, info = distilbert.DistilBertForSequenceClassification.from_pretrained(
        path, num_labels=3, ignore_mismatched_sizes=True, output_loading_info=True
    )
    ref, ref_info = transformers.DistilBertForSequenceClassification.from_pretrained(
        path, num_labels=3, ignore_mismatched_sizes=True, output_loading_info=True
    )
    _assert_reports_match(info, ref_info, set())
    state_dicts_equal(ours, ref, {k for k in ours.state_dict() if not k.startswith("classifier")})
    assert run(ours, **inputs_without_token_types()).logits.shape == (3, 3)


# -- construction, errors ---------------------------------------------------------------------------


def test_from_config_builds_a_working_model():
    config = distilbert.DistilBertConfig(**TINY)
    assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers) == (32, 4, 2)
    for name in HEADS:
        model = ours_class(name).from_config(config)
        assert all(not p.is_meta for p in model.parameters())
        out = model(**inputs_without_token_types(), return_dict=False)
        assert all(torch.isfinite(t).all() for t in out if isinstance(t, torch.Tensor))
    mlm = distilbert.DistilBertForMaskedLM.from_config(config)
    assert mlm.vocab_projector.weight is mlm.distilbert.embeddings.word_embeddings.weight
    assert torch.count_nonzero(mlm.vocab_projector.bias) == 0


def test_config_matches_reference():
    ours, ref = distilbert.DistilBertConfig(), transformers.DistilBertConfig()
    for key in distilbert.DistilBertConfig.defaults:
        assert getattr(ours, key) == getattr(ref, key), key
    aliased = distilbert.DistilBertConfig(hidden_size=64, num_attention_heads=8, num_hidden_layers=3)
    assert (aliased.dim, aliased.n_heads, aliased.n_layers) == (64, 8, 3)


def test_bad_inputs_raise_input_error(ckpts):
    model = distilbert.DistilBertModel.from_pretrained(ckpts["DistilBertModel"])
    inputs = inputs_without_token_types()
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    bad_calls = {
        "3-D input_ids": dict(input_ids=ids[None]),
        "mask shape": dict(input_ids=ids, attention_mask=mask[:, :5]),
        "both": dict(input_ids=ids, inputs_embeds=torch.zeros(3, 9, 32)),
        "neither": dict(),
        "too long": dict(input_ids=torch.ones(1, TINY["max_position_embeddings"] + 1, dtype=torch.long)),
        "id out of vocab": dict(input_ids=torch.full((1, 4), VOCAB)),
    }
    for what, kwargs in bad_calls.items():
        with pytest.raises(InputError):
            model(**kwargs)
            pytest.fail(f"no InputError for {what}")


@pytest.mark.parametrize(
    "overrides", [{"dim": 30}, {"n_layers": 0}, {"activation": "nope"}, {"dropout": -0.1}, {"hidden_dim": 0}]
)
def test_invalid_config_raises_config_error(overrides):
    with pytest.raises(ConfigError):
        distilbert.DistilBertConfig(**{**TINY, **overrides})


def test_question_answering_needs_two_labels():
    with pytest.raises(ConfigError, match="num_labels=2"):
        distilbert.DistilBertForQuestionAnswering.from_config(distilbert.DistilBertConfig(**TINY, num_labels=3))

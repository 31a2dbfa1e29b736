"""ELECTRA: parity with the reference on tiny random checkpoints (every head, the discriminator and
the generator, embeddings narrower than and as wide as the encoder, dense and unpadded), losses,
saving, the Auto classes, legacy files and errors."""

from __future__ import annotations

import json
import shutil
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
    text_inputs,
    transformers,
)

from leanformers import auto
from leanformers.errors import ConfigError, InputError
from leanformers.models import electra

HEADS = [
    "ElectraModel",
    "ElectraForSequenceClassification",
    "ElectraForTokenClassification",
    "ElectraForQuestionAnswering",
    "ElectraForMaskedLM",
    "ElectraForPreTraining",
]
AUTO = {
    "ElectraModel": "AutoModel",
    "ElectraForSequenceClassification": "AutoModelForSequenceClassification",
    "ElectraForTokenClassification": "AutoModelForTokenClassification",
    "ElectraForQuestionAnswering": "AutoModelForQuestionAnswering",
    "ElectraForMaskedLM": "AutoModelForMaskedLM",
    "ElectraForPreTraining": "AutoModelForPreTraining",
}
VOCAB, HIDDEN, EMBEDDING, LAYERS, MAX_POSITIONS = 99, 32, 16, 2, 64
TINY = dict(
    vocab_size=VOCAB, embedding_size=EMBEDDING, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=4,
    intermediate_size=37, max_position_embeddings=MAX_POSITIONS,
    # Wider than the default 0.02, so that activations see values where their variants differ.
    initializer_range=0.2,
)
# "projected": embeddings narrower than the encoder (embeddings_project); "same": as wide, no projection.
SIZES = {"projected": {}, "same": {"embedding_size": HIDDEN}}


def ref_config(size: str = "projected", **overrides):
    return transformers.ElectraConfig(**{**TINY, **SIZES[size], **overrides})


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """One reference-saved checkpoint per head and embedding width, built once per session."""
    root = tmp_path_factory.mktemp("electra")
    paths = {}
    for seed, (size, name) in enumerate((size, name) for size in SIZES for name in HEADS):
        paths[size, name] = root / size / name
        build_reference(name, ref_config(size), seed).save_pretrained(paths[size, name])
    return paths


def load_both(name: str, path: Path, eager: bool = False, **kwargs):
    return getattr(electra, name).from_pretrained(path, **kwargs), load_reference(name, path, eager=eager, **kwargs)


def variant_inputs(variant: str, width: int) -> dict:
    inputs = text_inputs(VOCAB)
    if variant == "plain":
        return {"input_ids": inputs["input_ids"][:1, :5]}
    if variant == "padded":
        return {**inputs, "output_hidden_states": True}
    if variant == "attentions":
        return {**inputs, "output_attentions": True, "output_hidden_states": True}
    if variant == "tuple":
        return {**inputs, "output_hidden_states": True, "output_attentions": True, "return_dict": False}
    if variant == "embeds":
        # inputs_embeds enter before the projection: embedding_size wide.
        embeds = torch.randn(3, 9, width, generator=torch.Generator().manual_seed(3))
        return {"inputs_embeds": embeds, "attention_mask": inputs["attention_mask"], "output_hidden_states": True}
    if variant == "positions":
        return {**inputs, "position_ids": torch.arange(8, -1, -1).repeat(3, 1) + 5}
    raise AssertionError(variant)


# -- forward parity -------------------------------------------------------------------------------

VARIANTS = [("projected", v) for v in ("plain", "padded", "attentions", "tuple", "embeds", "positions")]
VARIANTS += [("same", v) for v in ("padded", "attentions", "embeds")]


@pytest.mark.parametrize("name", HEADS)
@pytest.mark.parametrize("size,variant", VARIANTS)
def test_forward_matches_reference(ckpts, size, variant, name):
    width = EMBEDDING if size == "projected" else HIDDEN
    inputs = variant_inputs(variant, width)
    # The reference returns attention weights only from its explicit ("eager") attention.
    ours, ref = load_both(name, ckpts[size, name], eager="output_attentions" in inputs)
    assert_outputs_close(run(ours, **inputs), run(ref, **inputs), f"{name}/{size}/{variant}")


@pytest.mark.parametrize("size", SIZES)
def test_embeddings_projection_only_when_widths_differ(ckpts, size):
    ours = electra.ElectraModel.from_pretrained(ckpts[size, "ElectraModel"])
    keys = set(load_file(ckpts[size, "ElectraModel"] / "model.safetensors"))
    assert (ours.embeddings_project is not None) == (size == "projected") == ("embeddings_project.weight" in keys)
    assert ours.embeddings.word_embeddings.weight.shape == (VOCAB, EMBEDDING if size == "projected" else HIDDEN)


def test_discriminator_scores_every_token(ckpts):
    ours, ref = load_both("ElectraForPreTraining", ckpts["projected", "ElectraForPreTraining"])
    inputs = text_inputs(VOCAB)
    out, expected = run(ours, **inputs), run(ref, **inputs)
    assert type(out).__name__ == type(expected).__name__ == "ElectraForPreTrainingOutput"
    assert out.logits.shape == (3, 9) and out.logits.dtype == torch.float32
    assert_tensors_close(out.logits, expected.logits, "logits")
    # The logits are the head on the encoder's last hidden state: dense -> hidden_act -> one score.
    hidden = run(ours.electra, **inputs).last_hidden_state
    head = ours.discriminator_predictions
    manual = torch.nn.functional.gelu(hidden @ head.dense.weight.T + head.dense.bias) @ head.dense_prediction.weight.T
    assert_tensors_close(out.logits, (manual + head.dense_prediction.bias).squeeze(-1), "logits by hand")
    assert out.logits.std() > 0.1, "scores vary across tokens"


@pytest.mark.parametrize("name", HEADS[1:])
def test_heads_use_their_own_activations(tmp_path, name):
    """The encoder and the discriminator follow hidden_act; the classifier's and the generator's GELU
    stay fixed."""
    build_reference(name, ref_config(hidden_act="relu"), 50).save_pretrained(tmp_path)
    ours, ref = load_both(name, tmp_path)
    inputs = text_inputs(VOCAB)
    assert_outputs_close(run(ours, **inputs), run(ref, **inputs), name)


@pytest.mark.parametrize("name", HEADS)
def test_unpadded_path_matches_reference(ckpts, packed_calls, name):
    """Forced packing (config.unpad_inputs): per-token outputs equal the reference on real positions
    (zero, or the head applied to zero, at padded ones); sequence-level outputs and losses in full."""
    mask = torch.tensor([[1] * 9, [1] * 6 + [0] * 3, [1] + [0] * 8, [1] * 6 + [0] * 3, [1] * 3 + [0] * 6])
    inputs = {**text_inputs(VOCAB, batch=5), "attention_mask": mask, "output_hidden_states": True}
    inputs["input_ids"] = inputs["input_ids"].masked_fill(mask == 0, 0)
    real = mask.bool()
    if name == "ElectraForSequenceClassification":
        inputs["labels"] = torch.tensor([0, 1, 1, 0, 1])
    elif name in ("ElectraForTokenClassification", "ElectraForMaskedLM"):
        labels = inputs["input_ids"] % 2 if "Token" in name else inputs["input_ids"].clone()
        inputs["labels"] = labels.masked_fill(~real, -100)
    elif name == "ElectraForPreTraining":
        inputs["labels"] = inputs["input_ids"] % 2  # padded positions are left out by the attention mask
    ours, ref = load_both(name, ckpts["projected", name])
    ours.config.unpad_inputs = True
    packed, expected = run(ours, **inputs), run(ref, **inputs)
    assert len(packed_calls) == LAYERS, "the packed path ran in every layer"
    assert list(packed.keys()) == list(expected.keys())
    for key in expected:
        what = f"{name}.{key}"
        if key == "hidden_states":
            assert_tensors_close(packed[key][0], expected[key][0], what)  # the projected embeddings: dense
            for ours_state, ref_state in zip(packed[key][1:], expected[key][1:], strict=True):
                assert_tensors_close(ours_state[real], ref_state[real], what)
                assert not ours_state[~real].any()
        elif key == "loss" or name == "ElectraForSequenceClassification":
            assert_tensors_close(packed[key], expected[key], what)
        else:
            assert_tensors_close(packed[key][real], expected[key][real], what)


# -- losses ---------------------------------------------------------------------------------------


def _labels_case(case: str):
    gen = torch.Generator().manual_seed(5)
    inputs = text_inputs(VOCAB)
    if case == "single_label":
        return "ElectraForSequenceClassification", {**inputs, "labels": torch.tensor([0, 1, 1])}
    if case == "multi_label":
        labels = torch.randint(0, 2, (3, 2), generator=gen).float()
        return "ElectraForSequenceClassification", {**inputs, "labels": labels}
    if case == "token":
        labels = torch.randint(0, 2, (3, 9), generator=gen).masked_fill(inputs["attention_mask"] == 0, -100)
        return "ElectraForTokenClassification", {**inputs, "labels": labels}
    if case == "qa":
        return "ElectraForQuestionAnswering", {
            **inputs, "start_positions": torch.tensor([1, 40, 3]), "end_positions": torch.tensor([2, 50, 5])}
    if case == "mlm":
        labels = torch.full((3, 9), -100)
        labels[:, 1] = torch.tensor([5, 17, 80])
        return "ElectraForMaskedLM", {**inputs, "labels": labels}
    if case == "replaced_masked":
        return "ElectraForPreTraining", {**inputs, "labels": torch.randint(0, 2, (3, 9), generator=gen)}
    if case == "replaced_unmasked":
        labels = torch.randint(0, 2, (3, 9), generator=gen)
        return "ElectraForPreTraining", {"input_ids": inputs["input_ids"], "labels": labels}
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case", ["single_label", "multi_label", "token", "qa", "mlm", "replaced_masked", "replaced_unmasked"]
)
def test_loss_matches_reference(ckpts, case):
    name, inputs = _labels_case(case)
    ours, ref = load_both(name, ckpts["projected", name])
    ours_out, ref_out = run(ours, **inputs), run(ref, **inputs)
    assert ours_out.keys()[0] == "loss"
    assert_outputs_close(ours_out, ref_out, case)
    assert_outputs_close(run(ours, **inputs, return_dict=False), run(ref, **inputs, return_dict=False), case)


def test_replaced_token_loss_ignores_padding(ckpts):
    model = electra.ElectraForPreTraining.from_pretrained(ckpts["projected", "ElectraForPreTraining"])
    inputs = text_inputs(VOCAB)
    labels = torch.zeros(3, 9, dtype=torch.long)
    base = run(model, **inputs, labels=labels).loss
    changed = labels.masked_fill(inputs["attention_mask"] == 0, 1)
    assert torch.equal(run(model, **inputs, labels=changed).loss, base)
    with pytest.raises(InputError, match="labels"):
        model(**inputs, labels=labels[:, :4])


# -- saving, Auto classes, loading variants -------------------------------------------------------


@pytest.mark.parametrize("size,name", [("projected", name) for name in HEADS] + [("same", "ElectraForMaskedLM")])
def test_save_round_trip(ckpts, tmp_path, size, name):
    path = ckpts[size, name]
    ours = getattr(electra, name).from_pretrained(path)
    ours.save_pretrained(tmp_path)
    assert set(load_file(tmp_path / "model.safetensors")) == set(load_file(path / "model.safetensors"))
    ref, info = getattr(transformers, name).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs = {**text_inputs(VOCAB), "output_hidden_states": True}
    expected = run(ours, **inputs)
    assert_outputs_close(run(ref.eval(), **inputs), expected, "the reference loads ours")
    assert_outputs_close(run(getattr(electra, name).from_pretrained(tmp_path), **inputs), expected, "reloaded")


@pytest.mark.parametrize("name", HEADS)
def test_auto_classes_pick_our_class(ckpts, name):
    path = ckpts["projected", name]
    model = getattr(auto, AUTO[name]).from_pretrained(path)
    assert type(model) is getattr(electra, name)
    assert type(auto.AutoConfig.from_pretrained(path)) is electra.ElectraConfig
    inputs = text_inputs(VOCAB)
    assert_outputs_close(run(model, **inputs), run(load_reference(name, path), **inputs))


def test_generator_head_is_tied(ckpts):
    model = electra.ElectraForMaskedLM.from_pretrained(ckpts["projected", "ElectraForMaskedLM"])
    assert model.generator_lm_head.weight is model.electra.embeddings.word_embeddings.weight
    assert model.get_output_embeddings() is model.generator_lm_head
    assert model.get_input_embeddings() is model.electra.embeddings.word_embeddings


def test_legacy_checkpoint_with_position_buffers_and_decoder_matrix(ckpts, tmp_path):
    """Hub ELECTRA files carry the position_ids buffer, and generators the output matrix; both load."""
    src = ckpts["projected", "ElectraForMaskedLM"]
    state = load_file(src / "model.safetensors")
    state["electra.embeddings.position_ids"] = torch.arange(MAX_POSITIONS)[None]
    state["generator_lm_head.weight"] = state["electra.embeddings.word_embeddings.weight"].clone()
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    shutil.copy(src / "config.json", tmp_path / "config.json")
    ours, info = electra.ElectraForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    inputs = text_inputs(VOCAB)
    assert_outputs_close(run(ours, **inputs), run(load_reference("ElectraForMaskedLM", src), **inputs))


def test_discriminator_checkpoint_into_token_classifier(ckpts):
    path = ckpts["projected", "ElectraForPreTraining"]
    ours, info = electra.ElectraForTokenClassification.from_pretrained(path, output_loading_info=True)
    ref, ref_info = transformers.ElectraForTokenClassification.from_pretrained(path, output_loading_info=True)
    for key in ("missing_keys", "unexpected_keys"):
        assert set(info[key]) == set(ref_info[key]), key
    inputs = {**text_inputs(VOCAB), "output_hidden_states": True}
    assert_tensors_close(run(ours, **inputs).hidden_states, run(ref.eval(), **inputs).hidden_states, "hidden_states")


# -- construction, errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_from_config_builds_a_working_model(size):
    config = electra.ElectraConfig(**{**TINY, **SIZES[size]})
    for name in HEADS:
        model = getattr(electra, name).from_config(config)
        assert (model.base_model.embeddings_project is None) == (size == "same")
        out = model(**text_inputs(VOCAB), return_dict=False)
        assert all(torch.isfinite(t).all() for t in out if isinstance(t, torch.Tensor))
    assert model.base_model.embeddings.word_embeddings.weight.shape[1] == config.embedding_size


def test_config_matches_reference_defaults():
    ours, ref = electra.ElectraConfig(), transformers.ElectraConfig()
    assert ours.model_type == ref.model_type == "electra"
    for key in electra.ElectraConfig.defaults:
        assert getattr(ours, key) == getattr(ref, key), key


@pytest.mark.parametrize(
    "overrides",
    [
        {"embedding_size": 0},
        {"embedding_size": 16.0},
        {"hidden_size": 30},
        {"hidden_act": "no_such_activation"},
        {"hidden_dropout_prob": 2},
        {"pad_token_id": VOCAB},
        {"layer_norm_eps": 0},
    ],
)
def test_invalid_config_raises_config_error(overrides):
    with pytest.raises(ConfigError):
        electra.ElectraConfig(**{**TINY, **overrides})


def test_bad_config_file_raises_config_error(ckpts, tmp_path):
    shutil.copytree(ckpts["projected", "ElectraModel"], tmp_path, dirs_exist_ok=True)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "embedding_size": -4}))
    with pytest.raises(ConfigError, match="embedding_size"):
        auto.AutoModelForPreTraining.from_pretrained(tmp_path)


def test_bad_inputs_raise_input_error(ckpts):
    model = electra.ElectraModel.from_pretrained(ckpts["projected", "ElectraModel"])
    ids = text_inputs(VOCAB)["input_ids"]
    for kwargs in (
        {"inputs_embeds": torch.zeros(3, 9, HIDDEN)},  # hidden_size wide: embeddings are embedding_size wide
        {"input_ids": ids[0]},
        {"input_ids": torch.ones(1, MAX_POSITIONS + 1, dtype=torch.long)},
        {"input_ids": ids, "token_type_ids": ids[:, :3]},
    ):
        with pytest.raises(InputError):
            model(**kwargs)


def test_decoder_configs_are_refused():
    for flag in ("is_decoder", "add_cross_attention"):
        with pytest.raises(ConfigError, match=flag):
            electra.ElectraModel.from_config(electra.ElectraConfig(**TINY, **{flag: True}))


def test_training_mode_and_backward(ckpts):
    model = electra.ElectraForPreTraining.from_pretrained(ckpts["projected", "ElectraForPreTraining"])
    model.train()
    inputs = {**text_inputs(VOCAB), "labels": torch.randint(0, 2, (3, 9), generator=torch.Generator().manual_seed(4))}
    torch.manual_seed(0)
    first, second = model(**inputs), model(**inputs)
    assert not torch.equal(first.logits, second.logits), "dropout is active in training mode"
    first.loss.backward()
    assert model.electra.embeddings_project.weight.grad.abs().sum() > 0
    assert model.electra.embeddings.word_embeddings.weight.grad.abs().sum() > 0

"""RoBERTa, XLM-RoBERTa and CamemBERT: parity with the reference on tiny random checkpoints (every
head, dense and unpadded), losses, saving, the Auto classes, legacy files and errors."""

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
    transformers,
)

from leanformers import auto
from leanformers.errors import ConfigError, InputError
from leanformers.models import camembert, roberta, xlm_roberta

# family -> (our module, class-name prefix, reference config class name, config overrides)
FAMILIES = {
    "roberta": (roberta, "Roberta", "RobertaConfig", {"type_vocab_size": 2}),
    # XLM-R and CamemBERT checkpoints have a single token type, as the real ones do.
    "xlm-roberta": (xlm_roberta, "XLMRoberta", "XLMRobertaConfig", {"type_vocab_size": 1}),
    "camembert": (camembert, "Camembert", "CamembertConfig", {"type_vocab_size": 1}),
}
HEADS = ["Model", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering", "ForMaskedLM"]
AUTO = {
    "Model": "AutoModel",
    "ForSequenceClassification": "AutoModelForSequenceClassification",
    "ForTokenClassification": "AutoModelForTokenClassification",
    "ForQuestionAnswering": "AutoModelForQuestionAnswering",
    "ForMaskedLM": "AutoModelForMaskedLM",
}
CASES = [(family, head) for family in FAMILIES for head in HEADS]
VOCAB, PAD, HIDDEN, LAYERS, MAX_POSITIONS = 99, 1, 32, 2, 64
TINY = dict(
    vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=4, intermediate_size=37,
    max_position_embeddings=MAX_POSITIONS, pad_token_id=PAD,
    # Wider than the default 0.02, so that activations see values where their variants differ.
    initializer_range=0.2,
)


def ref_config(family: str, **overrides):
    _, _, config_name, extra = FAMILIES[family]
    return getattr(transformers, config_name)(**{**TINY, **extra, **overrides})


def name_of(family: str, head: str) -> str:
    return FAMILIES[family][1] + head


def ours_class(family: str, head: str):
    return getattr(FAMILIES[family][0], name_of(family, head))


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """One reference-saved checkpoint per family and head, built once per session."""
    root = tmp_path_factory.mktemp("roberta")
    paths = {}
    for seed, (family, head) in enumerate(CASES):
        paths[family, head] = root / name_of(family, head)
        build_reference(name_of(family, head), ref_config(family), seed).save_pretrained(paths[family, head])
    paths["regression"] = root / "regression"
    build_reference("RobertaForSequenceClassification", ref_config("roberta", num_labels=1), 40).save_pretrained(
        paths["regression"]
    )
    return paths


def text(family: str, mask: torch.Tensor | None = None, seed: int = 1) -> dict[str, torch.Tensor]:
    """Token ids (never the pad id) with padding ids where ``mask`` is 0; token types for RoBERTa."""
    mask = mask if mask is not None else torch.tensor([[1] * 9, [1] * 6 + [0] * 3, [1] * 2 + [0] * 7])
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(PAD + 2, VOCAB, mask.shape, generator=gen)
    input_ids[mask == 0] = PAD
    inputs = {"input_ids": input_ids, "attention_mask": mask.clone()}
    if family == "roberta":
        inputs["token_type_ids"] = (torch.arange(mask.shape[1]) >= mask.shape[1] // 2).long().expand_as(mask)
    return inputs


def variant_inputs(family: str, variant: str) -> dict:
    inputs = text(family)
    if variant == "plain":
        return {"input_ids": inputs["input_ids"][:1, :5]}
    if variant == "padded":
        return {**inputs, "output_hidden_states": True}
    if variant == "left_padded":
        # Positions come from the ids: a left-padded row's first real token sits at pad + 1.
        mask = torch.tensor([[1] * 9, [0] * 3 + [1] * 6, [0] * 7 + [1] * 2])
        return text(family, mask)
    if variant == "attentions":
        return {**inputs, "output_attentions": True, "output_hidden_states": True}
    if variant == "tuple":
        return {**inputs, "output_hidden_states": True, "output_attentions": True, "return_dict": False}
    if variant == "embeds":
        embeds = torch.randn(3, 9, HIDDEN, generator=torch.Generator().manual_seed(3))
        return {"inputs_embeds": embeds, "attention_mask": inputs["attention_mask"]}
    if variant == "positions":
        return {**inputs, "position_ids": torch.arange(8, -1, -1).repeat(3, 1) + 5}
    raise AssertionError(variant)


def load_both(family: str, head: str, path: Path, eager: bool = False, **kwargs):
    ours = ours_class(family, head).from_pretrained(path, **kwargs)
    return ours, load_reference(name_of(family, head), path, eager=eager, **kwargs)


# -- forward parity -------------------------------------------------------------------------------

VARIANTS = [("roberta", v) for v in ("plain", "padded", "left_padded", "attentions", "tuple", "embeds", "positions")]
VARIANTS += [(f, v) for f in ("xlm-roberta", "camembert") for v in ("padded", "left_padded", "attentions")]


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("family,variant", VARIANTS)
def test_forward_matches_reference(ckpts, family, variant, head):
    inputs = variant_inputs(family, variant)
    # The reference returns attention weights only from its explicit ("eager") attention.
    ours, ref = load_both(family, head, ckpts[family, head], eager="output_attentions" in inputs)
    assert type(ours).__name__ == type(ref).__name__
    assert_outputs_close(run(ours, **inputs), run(ref, **inputs), f"{name_of(family, head)}/{variant}")


def test_position_ids_count_from_the_padding_id(ckpts):
    ids = torch.tensor([[5, 6, PAD, 7, PAD], [PAD, PAD, 8, 9, 10]])
    expected = torch.tensor([[2, 3, PAD, 4, PAD], [PAD, PAD, 2, 3, 4]])
    model = roberta.RobertaModel.from_pretrained(ckpts["roberta", "Model"])
    assert torch.equal(model.padding_offset_positions(ids, None), expected)
    embeds = torch.zeros(2, 5, HIDDEN)
    assert torch.equal(model.padding_offset_positions(None, embeds), torch.arange(2, 7)[None])


@pytest.mark.parametrize("family,head", CASES)
def test_unpadded_path_matches_reference(ckpts, packed_calls, family, head):
    """Forced packing (config.unpad_inputs): per-token outputs equal the reference on real positions
    (zero, or the head applied to zero, at padded ones); sequence-level outputs and losses in full."""
    mask = torch.tensor([[1] * 9, [1] * 6 + [0] * 3, [1] + [0] * 8, [1] * 6 + [0] * 3, [1] * 3 + [0] * 6])
    inputs = {**text(family, mask), "output_hidden_states": True}
    real = mask.bool()
    if head == "ForSequenceClassification":
        inputs["labels"] = torch.tensor([0, 1, 1, 0, 1])
    elif head in ("ForTokenClassification", "ForMaskedLM"):
        labels = inputs["input_ids"] % 2 if head == "ForTokenClassification" else inputs["input_ids"].clone()
        inputs["labels"] = labels.masked_fill(~real, -100)
    ours, ref = load_both(family, head, ckpts[family, head])
    ours.config.unpad_inputs = True
    packed, expected = run(ours, **inputs), run(ref, **inputs)
    assert len(packed_calls) == LAYERS, "the packed path ran in every layer"
    assert list(packed.keys()) == list(expected.keys())
    for key in expected:
        what = f"{name_of(family, head)}.{key}"
        if key == "hidden_states":
            assert_tensors_close(packed[key][0], expected[key][0], what)  # embeddings: computed densely
            for ours_state, ref_state in zip(packed[key][1:], expected[key][1:], strict=True):
                assert_tensors_close(ours_state[real], ref_state[real], what)
                assert not ours_state[~real].any()
        elif key in ("loss", "pooler_output") or head == "ForSequenceClassification":
            assert_tensors_close(packed[key], expected[key], what)
        else:
            assert_tensors_close(packed[key][real], expected[key][real], what)


# -- losses ---------------------------------------------------------------------------------------


def _labels_case(case: str):
    gen = torch.Generator().manual_seed(5)
    inputs = text("roberta")
    if case == "single_label":
        return "ForSequenceClassification", {**inputs, "labels": torch.tensor([0, 1, 1])}
    if case == "multi_label":
        return "ForSequenceClassification", {**inputs, "labels": torch.randint(0, 2, (3, 2), generator=gen).float()}
    if case == "regression":
        return "regression", {**inputs, "labels": torch.randn(3, generator=gen)}
    if case == "token":
        labels = torch.randint(0, 2, (3, 9), generator=gen).masked_fill(inputs["attention_mask"] == 0, -100)
        return "ForTokenClassification", {**inputs, "labels": labels}
    if case == "qa":
        return "ForQuestionAnswering", {
            **inputs, "start_positions": torch.tensor([1, 40, 3]), "end_positions": torch.tensor([2, 50, 5])}
    if case == "mlm":
        labels = torch.full((3, 9), -100)
        labels[:, 1] = torch.tensor([5, 17, 80])
        return "ForMaskedLM", {**inputs, "labels": labels}
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["single_label", "multi_label", "regression", "token", "qa", "mlm"])
def test_loss_matches_reference(ckpts, case):
    head, inputs = _labels_case(case)
    path = ckpts["regression"] if head == "regression" else ckpts["roberta", head]
    head = "ForSequenceClassification" if head == "regression" else head
    ours, ref = load_both("roberta", head, path)
    ours_out, ref_out = run(ours, **inputs), run(ref, **inputs)
    assert ours_out.keys()[0] == "loss"
    assert_outputs_close(ours_out, ref_out, case)
    assert ours.config.problem_type == ref.config.problem_type


# -- saving, Auto classes, loading variants -------------------------------------------------------


@pytest.mark.parametrize("family,head", CASES)
def test_save_round_trip(ckpts, tmp_path, family, head):
    ours = ours_class(family, head).from_pretrained(ckpts[family, head])
    ours.save_pretrained(tmp_path)
    saved = set(load_file(tmp_path / "model.safetensors"))
    assert saved == set(load_file(ckpts[family, head] / "model.safetensors")), "the reference's key set"
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == family
    ref, info = getattr(transformers, name_of(family, head)).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs = {**text(family), "output_hidden_states": True}
    expected = run(ours, **inputs)
    assert_outputs_close(run(ref.eval(), **inputs), expected, "the reference loads ours")
    assert_outputs_close(run(ours_class(family, head).from_pretrained(tmp_path), **inputs), expected, "reloaded")


@pytest.mark.parametrize("family,head", CASES)
def test_auto_classes_pick_our_class(ckpts, family, head):
    path = ckpts[family, head]
    model = getattr(auto, AUTO[head]).from_pretrained(path)
    assert type(model) is ours_class(family, head)
    assert type(auto.AutoConfig.from_pretrained(path)) is getattr(FAMILIES[family][0], FAMILIES[family][2])
    inputs = text(family)
    assert_outputs_close(run(model, **inputs), run(load_reference(name_of(family, head), path), **inputs))


@pytest.mark.parametrize("family", FAMILIES)
def test_heads_keep_the_roberta_prefix(ckpts, family):
    model = ours_class(family, "ForMaskedLM").from_pretrained(ckpts[family, "ForMaskedLM"])
    assert type(model.roberta) is ours_class(family, "Model") and model.base_model is model.roberta
    assert model.lm_head.decoder.weight is model.roberta.embeddings.word_embeddings.weight
    assert model.lm_head.decoder.bias is model.lm_head.bias
    assert model.get_output_embeddings() is model.lm_head.decoder
    assert all(k.startswith(("roberta.", "lm_head.")) for k in model.state_dict())


def test_legacy_checkpoint_with_position_buffers_and_gamma_beta(ckpts, tmp_path):
    """Older files carry the position_ids / token_type_ids buffers, LayerNorm gamma/beta and the
    decoder matrix; all load (the buffers silently), with the reference's outputs."""
    src = ckpts["roberta", "ForMaskedLM"]
    state = {
        k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
        for k, v in load_file(src / "model.safetensors").items()
    }
    state["roberta.embeddings.position_ids"] = torch.arange(MAX_POSITIONS)[None]
    state["roberta.embeddings.token_type_ids"] = torch.zeros(1, MAX_POSITIONS, dtype=torch.long)
    state["lm_head.decoder.weight"] = state["roberta.embeddings.word_embeddings.weight"].clone()
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    shutil.copy(src / "config.json", tmp_path / "config.json")
    ours, info = roberta.RobertaForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    inputs = text("roberta")
    assert_outputs_close(run(ours, **inputs), run(load_reference("RobertaForMaskedLM", src), **inputs))


def test_base_checkpoint_into_classifier(ckpts):
    path = ckpts["xlm-roberta", "Model"]
    ours, info = xlm_roberta.XLMRobertaForSequenceClassification.from_pretrained(path, output_loading_info=True)
    ref, ref_info = transformers.XLMRobertaForSequenceClassification.from_pretrained(path, output_loading_info=True)
    assert set(info["missing_keys"]) == set(ref_info["missing_keys"])
    unexpected = {"pooler.dense.weight", "pooler.dense.bias"}
    assert set(info["unexpected_keys"]) == set(ref_info["unexpected_keys"]) == unexpected
    inputs = {**text("xlm-roberta"), "output_hidden_states": True}
    assert_tensors_close(run(ours, **inputs).hidden_states, run(ref.eval(), **inputs).hidden_states, "hidden_states")


# -- construction, errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_from_config_builds_a_working_model(family):
    module, prefix, config_name, extra = FAMILIES[family]
    config = getattr(module, config_name)(**TINY, **extra)
    model = getattr(module, prefix + "ForMaskedLM").from_config(config)
    embeddings = model.roberta.embeddings
    assert torch.count_nonzero(embeddings.position_embeddings.weight[PAD]) == 0, "the padding position row is zero"
    assert torch.count_nonzero(embeddings.word_embeddings.weight[PAD]) == 0
    assert torch.count_nonzero(model.lm_head.bias) == 0
    out = model(**text(family))
    assert out.logits.shape == (3, 9, VOCAB) and torch.isfinite(out.logits).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_config_matches_reference_defaults(family):
    module, _, config_name, _ = FAMILIES[family]
    ours, ref = getattr(module, config_name)(), getattr(transformers, config_name)()
    assert ours.model_type == ref.model_type == family
    for key in type(ours).defaults:
        assert getattr(ours, key) == getattr(ref, key), key


@pytest.mark.parametrize(
    "overrides",
    [
        {"hidden_size": 30},
        {"hidden_act": "no_such_activation"},
        {"attention_probs_dropout_prob": -0.1},
        {"pad_token_id": None},
        {"pad_token_id": MAX_POSITIONS - 1},
        {"pad_token_id": -1},
        {"position_embedding_type": "relative_key"},
    ],
)
@pytest.mark.parametrize("family", FAMILIES)
def test_invalid_config_raises_config_error(family, overrides):
    module, _, config_name, _ = FAMILIES[family]
    with pytest.raises(ConfigError):
        getattr(module, config_name)(**{**TINY, **overrides})


def test_bad_config_file_raises_config_error(ckpts, tmp_path):
    shutil.copytree(ckpts["camembert", "Model"], tmp_path, dirs_exist_ok=True)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "pad_token_id": MAX_POSITIONS}))
    with pytest.raises(ConfigError, match="pad_token_id"):
        auto.AutoModel.from_pretrained(tmp_path)


def test_longest_input_and_one_more(ckpts):
    """Positions start after the padding id, so the table holds max_position_embeddings - pad - 1 tokens."""
    path = ckpts["roberta", "Model"]
    ours, ref = load_both("roberta", "Model", path)
    longest = torch.randint(PAD + 2, VOCAB, (1, MAX_POSITIONS - PAD - 1), generator=torch.Generator().manual_seed(2))
    assert_outputs_close(run(ours, input_ids=longest), run(ref, input_ids=longest))
    with pytest.raises(InputError, match="at most 62"):
        ours(input_ids=torch.cat([longest, longest[:, :1]], 1))
    with pytest.raises(InputError):
        ours(input_ids=longest[0])


def test_decoder_configs_are_refused():
    with pytest.raises(ConfigError, match="is_decoder"):
        roberta.RobertaModel.from_config(roberta.RobertaConfig(**TINY, is_decoder=True))


@pytest.mark.parametrize("head", ["ForSequenceClassification", "ForMaskedLM"])
def test_heads_keep_their_own_activation_whatever_hidden_act(tmp_path, head):
    """The encoder follows hidden_act; the classifier's tanh and the LM head's GELU stay fixed."""
    build_reference("Roberta" + head, ref_config("roberta", hidden_act="relu"), 50).save_pretrained(tmp_path)
    ours, ref = load_both("roberta", head, tmp_path)
    inputs = text("roberta")
    assert_outputs_close(run(ours, **inputs), run(ref, **inputs), head)


def test_training_mode_and_backward(ckpts):
    model = roberta.RobertaForSequenceClassification.from_pretrained(ckpts["roberta", "ForSequenceClassification"])
    model.train()
    inputs = {**text("roberta"), "labels": torch.tensor([0, 1, 0])}
    torch.manual_seed(0)
    first, second = model(**inputs), model(**inputs)
    assert not torch.equal(first.logits, second.logits), "dropout is active in training mode"
    first.loss.backward()
    positions = model.roberta.embeddings.position_embeddings.weight.grad
    assert positions[PAD + 1].abs().sum() > 0
    assert not positions[PAD].any(), "the padding position's row gets no gradient, as in the reference"

"""MPNet: parity with the reference on tiny random checkpoints and on the real all-mpnet-base-v2,
loading variants, the Auto classes, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

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
from leanformers.models import mpnet

HEADS = [
    "MPNetModel",
    "MPNetForSequenceClassification",
    "MPNetForTokenClassification",
    "MPNetForQuestionAnswering",
    "MPNetForMaskedLM",
]
AUTO = {
    "MPNetModel": "AutoModel",
    "MPNetForSequenceClassification": "AutoModelForSequenceClassification",
    "MPNetForTokenClassification": "AutoModelForTokenClassification",
    "MPNetForQuestionAnswering": "AutoModelForQuestionAnswering",
    "MPNetForMaskedLM": "AutoModelForMaskedLM",
}
TINY = dict(
    vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
    max_position_embeddings=64,
)
VOCAB = TINY["vocab_size"]
SEQ = 40  # past the 8 exact distances, so the log-spaced buckets are used too


def ref_config(**overrides):
    return transformers.MPNetConfig(**{**TINY, **overrides})


def inputs(seq: int = SEQ, **kwargs) -> dict:
    """A padded batch; MPNet pads with id 1, which also decides its position ids."""
    batch = text_inputs(VOCAB, seq=seq, **kwargs)
    del batch["token_type_ids"]
    batch["input_ids"][batch["attention_mask"] == 0] = mpnet.PADDING_IDX
    return batch


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """One reference-saved checkpoint per head, plus label and tying variants."""
    root = tmp_path_factory.mktemp("mpnet")
    specs = {name: (name, ref_config()) for name in HEADS}
    specs.update({
        "regression": ("MPNetForSequenceClassification", ref_config(num_labels=1)),
        "multi_label": ("MPNetForSequenceClassification", ref_config(num_labels=3)),
        "untied_mlm": ("MPNetForMaskedLM", ref_config(tie_word_embeddings=False)),
    })
    paths = {}
    for seed, (key, (name, config)) in enumerate(specs.items()):
        paths[key] = root / key
        build_reference(name, config, seed).save_pretrained(paths[key])
    return paths


def _variant(variant: str) -> dict:
    batch = inputs()
    if variant == "plain":
        return {"input_ids": batch["input_ids"]}
    if variant == "attentions":
        return {**batch, "output_attentions": True, "output_hidden_states": True}
    if variant == "tuple":
        return {**batch, "output_hidden_states": True, "output_attentions": True, "return_dict": False}
    if variant == "embeds":
        embeds = torch.randn(3, SEQ, TINY["hidden_size"], generator=torch.Generator().manual_seed(3))
        return {"inputs_embeds": embeds, "attention_mask": batch["attention_mask"]}
    if variant == "positions":
        return {"input_ids": batch["input_ids"], "position_ids": torch.arange(SEQ + 1, 1, -1).repeat(3, 1)}
    raise AssertionError(variant)


# -- forward parity -------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["plain", "attentions", "tuple", "embeds", "positions"])
@pytest.mark.parametrize("name", HEADS)
def test_forward_matches_reference(ckpts, name, variant):
    batch = _variant(variant)
    ours = getattr(mpnet, name).from_pretrained(ckpts[name])
    ref = load_reference(name, ckpts[name], eager=True)
    assert_outputs_close(run(ours, **batch), run(ref, **batch), f"{name}/{variant}")


def test_fully_masked_row_and_token_types_match_reference(ckpts):
    batch = inputs()
    batch["attention_mask"][0] = 0
    # MPNet tokenizers return no token types, but callers may pass BERT-style ones: ignored by both.
    batch["token_type_ids"] = torch.ones_like(batch["input_ids"])
    path = ckpts["MPNetModel"]
    ours, ref = mpnet.MPNetModel.from_pretrained(path), load_reference("MPNetModel", path)
    assert_outputs_close(run(ours, **batch, output_attentions=True), run(ref, **batch, output_attentions=True))


def test_relative_buckets_match_reference():
    length = 300  # beyond MAX_DISTANCE, where the buckets saturate
    positions = torch.arange(length)
    relative = positions[None, :] - positions[:, None]
    expected = transformers.models.mpnet.modeling_mpnet.MPNetEncoder.relative_position_bucket(relative)
    ours = mpnet.relative_buckets(length, torch.device("cpu"))
    assert torch.equal(ours, expected)
    assert int(ours.max()) == mpnet.BUCKETS - 1


def test_padding_does_not_change_real_positions(ckpts):
    model = mpnet.MPNetForTokenClassification.from_pretrained(ckpts["MPNetForTokenClassification"])
    batch = inputs(pad_row=False)
    short = {k: v[:, :30] for k, v in batch.items()}
    padded = {k: v.clone() for k, v in batch.items()}
    padded["attention_mask"][:, 30:] = 0
    padded["input_ids"][:, 30:] = mpnet.PADDING_IDX
    assert_tensors_close(run(model, **padded).logits[:, :30], run(model, **short).logits, "real positions")


@pytest.mark.parametrize("name", HEADS)
def test_unpadded_path_matches_reference(ckpts, name, packed_calls):
    """Packed execution, the relative bias built per length bucket: the reference's numbers on
    every real position (a sequence head reads position 0 only, so it packs on its own)."""
    batch = inputs()
    batch["attention_mask"][1, 12:] = 0  # three lengths, so more than one bucket may form
    batch["input_ids"][1, 12:] = mpnet.PADDING_IDX
    ours = getattr(mpnet, name).from_pretrained(ckpts[name])
    ours.config.unpad_inputs = True
    ref = load_reference(name, ckpts[name])
    with torch.no_grad():  # at the initial scale the relative bias barely moves the outputs
        for model in (ours, ref):
            model.base_model.encoder.relative_attention_bias.weight.mul_(100)
    got, want = run(ours, **batch), run(ref, **batch)
    assert packed_calls, "the packed path did not run"
    real = batch["attention_mask"].bool()
    for key in want.keys():
        if key == "pooler_output" or want[key].dim() < 2 or want[key].shape[:2] != real.shape:
            assert_tensors_close(got[key], want[key], f"{name}.{key}")
        else:
            assert_tensors_close(got[key][real], want[key][real], f"{name}.{key} (real positions)")


# -- losses ---------------------------------------------------------------------------------------


def _labels_case(case: str, ckpts):
    gen = torch.Generator().manual_seed(5)
    batch = inputs()
    seq_cls = "MPNetForSequenceClassification"
    if case == "single_label":
        return seq_cls, ckpts[seq_cls], {**batch, "labels": torch.tensor([0, 1, 1])}
    if case == "regression":
        return seq_cls, ckpts["regression"], {**batch, "labels": torch.randn(3, generator=gen)}
    if case == "multi_label":
        return seq_cls, ckpts["multi_label"], {**batch, "labels": torch.randint(0, 2, (3, 3), generator=gen).float()}
    if case == "token":
        labels = torch.randint(0, 2, (3, SEQ), generator=gen)
        labels[batch["attention_mask"] == 0] = -100
        return "MPNetForTokenClassification", ckpts["MPNetForTokenClassification"], {**batch, "labels": labels}
    if case == "qa":
        return "MPNetForQuestionAnswering", ckpts["MPNetForQuestionAnswering"], {
            **batch, "start_positions": torch.tensor([1, 70, 3]), "end_positions": torch.tensor([2, 80, 5])}
    if case == "mlm":
        labels = torch.full((3, SEQ), -100)
        labels[:, 1] = torch.tensor([5, 17, 80])
        return "MPNetForMaskedLM", ckpts["MPNetForMaskedLM"], {**batch, "labels": labels}
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["single_label", "regression", "multi_label", "token", "qa", "mlm"])
def test_loss_matches_reference(ckpts, case):
    name, path, batch = _labels_case(case, ckpts)
    ours, ref = getattr(mpnet, name).from_pretrained(path), load_reference(name, path)
    ours_out, ref_out = run(ours, **batch), run(ref, **batch)
    assert ours_out.keys()[0] == "loss"
    assert_outputs_close(ours_out, ref_out, case)
    assert ours.config.problem_type == ref.config.problem_type


# -- loading --------------------------------------------------------------------------------------


def _assert_reports_match(ours_info: dict, ref_info: dict, tied_targets: set[str]) -> None:
    assert set(ours_info["unexpected_keys"]) == set(ref_info["unexpected_keys"])
    ours_missing, ref_missing = set(ours_info["missing_keys"]), set(ref_info["missing_keys"])
    assert ours_missing <= ref_missing and ref_missing - ours_missing <= tied_targets, (ours_missing, ref_missing)


@pytest.mark.parametrize("name", HEADS[1:])
def test_base_checkpoint_into_head(ckpts, name):
    path = ckpts["MPNetModel"]
    ours, ours_info = getattr(mpnet, name).from_pretrained(path, output_loading_info=True)
    ref, ref_info = getattr(transformers, name).from_pretrained(path, output_loading_info=True)
    _assert_reports_match(ours_info, ref_info, set(getattr(mpnet, name)._tied_weights))
    loaded = {"mpnet." + k for k in load_file(path / "model.safetensors")} & set(ours.state_dict())
    state_dicts_equal(ours, ref.eval(), loaded)
    batch = {**inputs(), "output_hidden_states": True}
    assert_tensors_close(run(ours, **batch).hidden_states, run(ref.eval(), **batch).hidden_states, "hidden_states")


@pytest.mark.parametrize("name", HEADS[1:])
def test_head_checkpoint_into_base(ckpts, name):
    ours, ours_info = mpnet.MPNetModel.from_pretrained(ckpts[name], output_loading_info=True)
    ref, ref_info = transformers.MPNetModel.from_pretrained(ckpts[name], output_loading_info=True)
    _assert_reports_match(ours_info, ref_info, set())
    batch = inputs()
    assert_tensors_close(run(ours, **batch).last_hidden_state, run(ref.eval(), **batch).last_hidden_state, name)


def test_tied_weights(ckpts):
    ours = mpnet.MPNetForMaskedLM.from_pretrained(ckpts["MPNetForMaskedLM"])
    assert ours.lm_head.decoder.weight is ours.mpnet.embeddings.word_embeddings.weight
    assert ours.lm_head.decoder.bias is ours.lm_head.bias
    assert ours.get_output_embeddings() is ours.lm_head.decoder
    untied, info = mpnet.MPNetForMaskedLM.from_pretrained(ckpts["untied_mlm"], output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    assert untied.lm_head.decoder.weight is not untied.mpnet.embeddings.word_embeddings.weight
    batch = inputs()
    assert_outputs_close(run(untied, **batch), run(load_reference("MPNetForMaskedLM", ckpts["untied_mlm"]), **batch))


@pytest.mark.parametrize("name", HEADS)
def test_save_round_trip_and_auto_class(ckpts, tmp_path, name):
    ours = getattr(leanformers, AUTO[name]).from_pretrained(ckpts[name])
    assert type(ours) is getattr(mpnet, name)
    ours.save_pretrained(tmp_path)
    assert set(load_file(tmp_path / "model.safetensors")) == set(load_file(ckpts[name] / "model.safetensors"))
    ref, info = getattr(transformers, name).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    batch = {**inputs(), "output_hidden_states": True}
    assert_outputs_close(run(ref.eval(), **batch), run(ours, **batch), f"reference loads ours/{name}")


# -- the real checkpoint --------------------------------------------------------------------------


def test_all_mpnet_base_v2_matches_reference(mpnet_dir):
    """A base-model checkpoint (keys without ``mpnet.``) on real sentences, tokenised by the reference."""
    sentences = ["A man is eating food.", "The new movie is awesome, and everybody should see it twice!", "Hi"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(mpnet_dir)
    batch = dict(tokenizer(sentences, padding=True, return_tensors="pt"))
    assert batch["attention_mask"].min() == 0  # a padded batch
    ours, info = mpnet.MPNetModel.from_pretrained(mpnet_dir, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    ref = load_reference("MPNetModel", mpnet_dir)
    ours_out, ref_out = run(ours, **batch), run(ref, **batch)
    assert_tensors_close(ours_out.last_hidden_state, ref_out.last_hidden_state, "last_hidden_state")
    assert_tensors_close(ours_out.pooler_output, ref_out.pooler_output, "pooler_output")


# -- construction, errors -------------------------------------------------------------------------


def test_from_config_and_defaults():
    ours, ref = mpnet.MPNetConfig(), transformers.MPNetConfig()
    for key in mpnet.MPNetConfig.defaults:
        assert getattr(ours, key) == getattr(ref, key), key
    config = mpnet.MPNetConfig(**TINY)
    for name in HEADS:
        out = getattr(mpnet, name).from_config(config)(**inputs(), return_dict=False)
        assert all(torch.isfinite(t).all() for t in out if isinstance(t, torch.Tensor))
    mlm = mpnet.MPNetForMaskedLM.from_config(config)
    assert mlm.lm_head.decoder.weight is mlm.mpnet.embeddings.word_embeddings.weight
    assert torch.count_nonzero(mlm.lm_head.bias) == 0


@pytest.mark.parametrize(
    "overrides",
    [{"hidden_size": 30}, {"relative_attention_num_buckets": 16}, {"max_position_embeddings": 2},
     {"hidden_act": "nope"}, {"layer_norm_eps": 0}, {"hidden_dropout_prob": 1.5}],
)
def test_invalid_config_raises_config_error(overrides):
    with pytest.raises(ConfigError):
        mpnet.MPNetConfig(**{**TINY, **overrides})


def test_bad_inputs_raise_input_error(ckpts):
    model = mpnet.MPNetModel.from_pretrained(ckpts["MPNetModel"])
    ids = inputs()["input_ids"]
    bad_calls = {
        "1-D input_ids": dict(input_ids=ids[0]),
        "mask shape": dict(input_ids=ids, attention_mask=torch.ones(3, 5)),
        # positions count from 2, so 62 tokens are the most 64 position embeddings hold
        "too long": dict(input_ids=torch.full((1, TINY["max_position_embeddings"] - 1), 5)),
        "id out of vocab": dict(input_ids=torch.full((1, 4), VOCAB)),
    }
    for what, kwargs in bad_calls.items():
        with pytest.raises(InputError):
            model(**kwargs)
            pytest.fail(f"no InputError for {what}")
    model(input_ids=torch.full((1, TINY["max_position_embeddings"] - 2), 5))

"""BART against the reference on tiny random checkpoints: two configurations (default; scaled
embeddings, another activation and unequal head counts), padded encoder and decoder inputs, every
output field, the loss from labels, the denoising default (input shifted right), cached
step-by-step decoding, the encoder alone, the sequence classifier, saving, config defaults and errors.

init_std=0.2, random LayerNorm weights and biases and a random final_logits_bias keep attention far
from uniform and make every parameter matter beyond the 1e-5 tolerance.
"""

from __future__ import annotations

import pytest
import torch
from parity import (
    assert_tensors_close,
    build_reference,
    load_reference,
    run,
    transformers,
)

from leanformers.errors import ConfigError, InputError
from leanformers.modeling.seq2seq import Seq2SeqCache
from leanformers.models import bart

TINY = dict(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=41, max_position_embeddings=40,
            init_std=0.2, pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)
CASES = {"default": {}, "scaled": dict(scale_embedding=True, activation_function="relu", decoder_attention_heads=2)}


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    built: dict = {}

    def get(name: str):
        if name not in built:
            ref = build_reference("BartForSequenceClassification", transformers.BartConfig(**{**TINY, **CASES[name]}))
            with torch.no_grad():
                for key, param in ref.named_parameters():
                    if "layer_norm" in key or "layernorm" in key:
                        param.normal_(1.0 if key.endswith("weight") else 0.0, 0.3)
            path = tmp_path_factory.mktemp(name)
            ref.save_pretrained(path / "cls")
            lm = build_reference("BartForConditionalGeneration", transformers.BartConfig(**{**TINY, **CASES[name]}))
            with torch.no_grad():
                lm.model.load_state_dict(ref.model.state_dict())
                lm.final_logits_bias.normal_(0.0, 0.5)
            lm.save_pretrained(path / "lm")
            built[name] = path
        return built[name]

    return get


def inputs(seed: int = 1) -> dict:
    """A (3, 12) source ending in </s>, one row right-padded; a (3, 6) target, one row right-padded."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, TINY["vocab_size"], (3, 12), generator=gen)
    ids[:, 0] = 0
    mask = torch.ones(3, 12, dtype=torch.long)
    ids[:, -1] = 2
    ids[1, 7] = 2
    ids[1, 8:] = 1
    mask[1, 8:] = 0
    ids[1, -1] = 2  # the classifier needs equal </s> counts: two per row
    ids[0, 5] = ids[2, 5] = 2
    decoder_ids = torch.randint(3, TINY["vocab_size"], (3, 6), generator=gen)
    decoder_ids[:, 0] = 2
    decoder_mask = torch.ones(3, 6, dtype=torch.long)
    decoder_mask[1, 4:] = 0
    return {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": decoder_ids,
            "decoder_attention_mask": decoder_mask}


def compare(ours, ref, what: str) -> None:
    ref_keys = list(ref.keys())
    assert list(ours.keys()) == ref_keys, f"{what}: {list(ours.keys())} != {ref_keys}"
    for key in ref_keys:
        if key == "past_key_values":
            assert isinstance(ours[key], Seq2SeqCache)
            continue
        assert_tensors_close(ours[key], ref[key], f"{what}.{key}")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", ["BartModel", "BartForConditionalGeneration", "BartForSequenceClassification"])
def test_forward_matches_reference(checkpoints, case, name):
    path = checkpoints(case) / ("cls" if name == "BartForSequenceClassification" else "lm")
    ours, info = getattr(bart, name).from_pretrained(path, output_loading_info=True)
    assert not any(info.values()), info
    ref = load_reference(name, path, eager=True)
    batch = inputs()
    source = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if name == "BartForSequenceClassification":
        batch = source  # it pools the decoder at the source's </s>: the decoder reads the source shifted
    compare(run(ours, **batch), run(ref, **batch), name)
    kwargs = dict(output_hidden_states=True, output_attentions=True)
    ours_out = run(ours, **batch, **kwargs)
    assert len(ours_out.cross_attentions) == TINY["decoder_layers"]
    compare(ours_out, run(ref, **batch, **kwargs), name + " (all outputs)")
    assert len(run(ours, **batch, return_dict=False)) == len(run(ref, **batch, return_dict=False))
    if "decoder_input_ids" in batch:
        given = ref.get_input_embeddings()(batch["decoder_input_ids"])
        embeds = {**batch, "decoder_input_ids": None, "decoder_inputs_embeds": given}
        compare(run(ours, **embeds), run(ref, **embeds), name + " (decoder_inputs_embeds)")
    # Without decoder inputs the decoder reads the source shifted right.
    if name != "BartForSequenceClassification":
        compare(run(ours, **source), run(ref, **source), name + " (shifted source)")


def test_final_logits_bias_is_used(checkpoints):
    path = checkpoints("default") / "lm"
    ours = bart.BartForConditionalGeneration.from_pretrained(path)
    assert ours.final_logits_bias.abs().sum() > 0
    assert ours.lm_head.weight is ours.model.shared.weight is ours.model.encoder.embed_tokens.weight


@pytest.mark.parametrize("case", CASES)
def test_loss_from_labels(checkpoints, case):
    path = checkpoints(case) / "lm"
    ours = bart.BartForConditionalGeneration.from_pretrained(path)
    ref = load_reference("BartForConditionalGeneration", path)
    batch = inputs()
    labels = torch.randint(3, TINY["vocab_size"], (3, 5), generator=torch.Generator().manual_seed(3))
    labels[0, 3:] = -100
    feed = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": labels}
    ours_out, ref_out = run(ours, **feed), run(ref, **feed)
    assert ours_out.past_key_values is None  # labels: no cache, as the reference
    compare(ours_out, ref_out, "labels")
    shifted = ours.prepare_decoder_input_ids_from_labels(labels)
    assert torch.equal(shifted, ref.prepare_decoder_input_ids_from_labels(labels))
    assert shifted[0, 0] == 2 and shifted[0, 4] == 1


@pytest.mark.parametrize("num_labels", [1, 3])
def test_classifier_loss(checkpoints, num_labels, tmp_path):
    config = transformers.BartConfig(**TINY, num_labels=num_labels)
    ref = build_reference("BartForSequenceClassification", config)
    ref.save_pretrained(tmp_path)
    ours = bart.BartForSequenceClassification.from_pretrained(tmp_path)
    batch = {k: v for k, v in inputs().items() if not k.startswith("decoder")}
    labels = torch.tensor([0.5, -1.0, 2.0]) if num_labels == 1 else torch.tensor([0, 2, 1])
    compare(run(ours, **batch, labels=labels), run(ref, **batch, labels=labels), "classifier loss")
    bad = {**batch, "input_ids": batch["input_ids"].clone()}
    bad["input_ids"][0, -1] = 5
    with pytest.raises(InputError):
        run(ours, **bad)


@torch.no_grad()
@pytest.mark.parametrize("case", CASES)
def test_cached_decoding_equals_full_forward(checkpoints, case):
    path = checkpoints(case) / "lm"
    ours = bart.BartForConditionalGeneration.from_pretrained(path)
    ref = load_reference("BartForConditionalGeneration", path)
    batch = inputs()
    source = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    target = batch["decoder_input_ids"]
    full = ours(**source, decoder_input_ids=target, use_cache=False)
    assert full.past_key_values is None
    assert_tensors_close(full.logits, ref(**source, decoder_input_ids=target).logits, "full logits")
    encoded = ours.get_encoder()(**source)
    cache, steps, cross = None, [], None
    for start, stop in ((0, 2), (2, 3), (3, 4), (4, 6)):
        out = ours(encoder_outputs=encoded, attention_mask=source["attention_mask"],
                   decoder_input_ids=target[:, start:stop], past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        assert cache.get_seq_length() == stop
        cross = cache.cross[1][1] if cross is None else cross
        assert cache.cross[1][1] is cross  # the encoder's projections were computed once
        steps.append(out.logits)
    assert_tensors_close(torch.cat(steps, 1), full.logits, "cached logits")
    cache = ours(**source, decoder_input_ids=target[:, :3], use_cache=True).past_key_values
    rows = torch.tensor([1, 0, 0])
    cache.reorder(rows)
    picked = {k: v[rows] for k, v in source.items()}
    step = ours(**picked, decoder_input_ids=target[rows, 3:4], past_key_values=cache).logits
    assert_tensors_close(step, full.logits[rows, 3:4], "reordered step")


def test_encoder_alone(checkpoints):
    path = checkpoints("scaled") / "lm"
    ours = bart.BartForConditionalGeneration.from_pretrained(path)
    ref = load_reference("BartForConditionalGeneration", path, eager=True)
    source = {k: v for k, v in inputs().items() if not k.startswith("decoder")}
    kwargs = dict(output_hidden_states=True, output_attentions=True)
    compare(run(ours.get_encoder(), **source, **kwargs), run(ref.get_encoder(), **source, **kwargs), "encoder")
    embeds = ref.get_encoder().embed_tokens(source["input_ids"])  # already scaled, as the reference takes it
    assert_tensors_close(run(ours.get_encoder(), inputs_embeds=embeds).last_hidden_state,
                         run(ref.get_encoder(), inputs_embeds=embeds).last_hidden_state, "inputs_embeds")


@pytest.mark.parametrize("name", ["BartForConditionalGeneration", "BartForSequenceClassification"])
def test_save_round_trips_through_reference(checkpoints, name, tmp_path):
    path = checkpoints("scaled") / ("cls" if name == "BartForSequenceClassification" else "lm")
    ours = getattr(bart, name).from_pretrained(path)
    ours.save_pretrained(tmp_path)
    ref = load_reference(name, tmp_path)
    batch = {k: v for k, v in inputs().items() if name.endswith("Generation") or not k.startswith("decoder")}
    assert_tensors_close(run(ours, **batch).logits, run(ref, **batch).logits, "saved")


def test_fresh_model():
    model = bart.BartForConditionalGeneration(bart.BartConfig(**TINY)).eval()
    assert model.lm_head.weight is model.model.shared.weight
    assert torch.all(model.model.shared.weight[TINY["pad_token_id"]] == 0)
    assert torch.isfinite(run(model, **inputs()).logits).all()


def test_config_defaults_match_reference():
    ours, ref = bart.BartConfig().to_dict(), transformers.BartConfig().to_dict()
    for key in ("transformers_version", "architectures", "id2label", "label2id"):
        ref.pop(key, None)
    assert {k: ours.get(k) for k in ref} == ref
    assert bart.BartConfig().num_labels == transformers.BartConfig().num_labels == 3
    assert bart.BartConfig(num_labels=5).num_labels == 5


@pytest.mark.parametrize("bad", [
    dict(d_model=30, encoder_attention_heads=4), dict(decoder_attention_heads=0), dict(dropout=1.5),
    dict(activation_function="nope"), dict(vocab_size=10, pad_token_id=20), dict(max_position_embeddings=0),
])
def test_bad_configs(bad):
    with pytest.raises(ConfigError):
        bart.BartConfig(**{**TINY, **bad})


def test_bad_inputs(checkpoints):
    model = bart.BartForConditionalGeneration.from_pretrained(checkpoints("default") / "lm")
    batch = inputs()
    source = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    target = batch["decoder_input_ids"]
    cases = [
        {"decoder_input_ids": target},  # no encoder input at all
        {**source, "decoder_input_ids": torch.full((3, 2), 500)},
        {**source, "decoder_input_ids": target, "attention_mask": torch.ones(3, 5)},
        {**source, "decoder_input_ids": target, "past_key_values": ((1, 2),)},
        {**source, "labels": torch.zeros(3, dtype=torch.long)},
        {**source, "decoder_input_ids": target, "encoder_outputs": "x"},
        {"input_ids": torch.ones(1, 41, dtype=torch.long), "decoder_input_ids": target[:1]},
        {**source, "decoder_input_ids": torch.ones(3, 41, dtype=torch.long)},
    ]
    for case in cases:
        with pytest.raises(InputError):
            model(**case)


def test_auto_classes(checkpoints):
    from leanformers import auto, registry

    if "bart" not in registry.MODELS:
        pytest.skip("bart is not in leanformers.registry.MODELS yet")
    path = checkpoints("default")
    assert type(auto.AutoModel.from_pretrained(path / "lm")) is bart.BartModel
    assert type(auto.AutoModelForSequenceClassification.from_pretrained(path / "cls")) is \
        bart.BartForSequenceClassification
    if hasattr(auto, "AutoModelForSeq2SeqLM"):
        assert type(auto.AutoModelForSeq2SeqLM.from_pretrained(path / "lm")) is bart.BartForConditionalGeneration


@torch.no_grad()
def test_greedy_loop_matches_reference_generate(checkpoints):
    from test_t5 import greedy

    path = checkpoints("scaled") / "lm"
    ours = bart.BartForConditionalGeneration.from_pretrained(path)
    ref = load_reference("BartForConditionalGeneration", path)
    batch = inputs()
    source = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    # Only the model's own choices: no forced first or last token.
    expected = ref.generate(**source, max_new_tokens=8, do_sample=False, num_beams=1, forced_eos_token_id=None,
                            forced_bos_token_id=None, no_repeat_ngram_size=0)
    got = greedy(ours, source, expected.shape[1] - 1, start=2, eos=2, pad=1)
    assert torch.equal(got, expected)

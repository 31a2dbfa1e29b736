"""T5 against the reference on tiny random checkpoints: the original ("relu", tied and scaled head)
and the v1.1 / FLAN form ("gated-gelu", an untied head, no scaling); padded encoder and decoder
inputs, every output field (hidden states and attentions of both stacks, cross-attentions), the
loss from labels, cached step-by-step decoding, the encoder alone, saving, config defaults and errors.

Eight buckets with a max distance of 12 and 14-token sources put distances in the exact, the
log-spaced and the last bucket. initializer_factor=4 and random norm weights keep attention far from
uniform, so a wrong bucket, a missing bias or a scaled score moves outputs far beyond tolerance.
"""

from __future__ import annotations

import json

import pytest
import torch
from parity import (
    assert_tensors_close,
    build_reference,
    load_reference,
    run,
    transformers,
)
from safetensors.torch import load_file, save_file

from leanformers.errors import ConfigError, InputError
from leanformers.modeling.seq2seq import Seq2SeqCache
from leanformers.models import t5

TINY = dict(vocab_size=99, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_decoder_layers=3, num_heads=4,
            relative_attention_num_buckets=8, relative_attention_max_distance=12, initializer_factor=4.0,
            decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
CASES = {"relu": {}, "gated": dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False)}


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """name -> folder with the reference's T5ForConditionalGeneration; "gated" gets its own lm_head."""
    built: dict = {}

    def get(name: str):
        if name not in built:
            ref = build_reference("T5ForConditionalGeneration", transformers.T5Config(**TINY, **CASES[name]))
            with torch.no_grad():
                for key, param in ref.named_parameters():
                    if "layer_norm" in key:
                        param.normal_(1.0, 0.3)
            path = tmp_path_factory.mktemp(name)
            ref.save_pretrained(path)
            if name == "gated":
                # FLAN-T5's files: an output matrix of their own beside the shared embedding.
                weights = load_file(path / "model.safetensors")
                weights["lm_head.weight"] = 0.1 * torch.randn(TINY["vocab_size"], TINY["d_model"])
                save_file(weights, path / "model.safetensors", metadata={"format": "pt"})
                config = json.loads((path / "config.json").read_text())
                config["tie_word_embeddings"] = False
                del config["scale_decoder_outputs"]
                (path / "config.json").write_text(json.dumps(config))
            built[name] = path
        return built[name]

    return get


def inputs(seed: int = 1) -> dict:
    """A (3, 14) source with a right-padded and a left-padded row; a (3, 6) target, one row right-padded."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, TINY["vocab_size"], (3, 14), generator=gen)
    mask = torch.ones(3, 14, dtype=torch.long)
    mask[1, 9:] = 0
    mask[2, :4] = 0
    decoder_ids = torch.randint(2, TINY["vocab_size"], (3, 6), generator=gen)
    decoder_ids[:, 0] = 0
    decoder_mask = torch.ones(3, 6, dtype=torch.long)
    decoder_mask[1, 4:] = 0
    return {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": decoder_ids,
            "decoder_attention_mask": decoder_mask}


def compare(ours, ref, what: str) -> None:
    """Every field the reference returns; the caches are compared by use (see the decoding test)."""
    ref_keys = list(ref.keys())
    assert list(ours.keys()) == ref_keys, f"{what}: {list(ours.keys())} != {ref_keys}"
    for key in ref_keys:
        if key == "past_key_values":
            assert isinstance(ours[key], Seq2SeqCache)
            continue
        assert_tensors_close(ours[key], ref[key], f"{what}.{key}")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", ["T5Model", "T5ForConditionalGeneration"])
def test_forward_matches_reference(checkpoints, case, name):
    path = checkpoints(case)
    ours = getattr(t5, name).from_pretrained(path)
    ref = load_reference(name, path, eager=True)
    batch = inputs()
    compare(run(ours, **batch), run(ref, **batch), name)
    kwargs = dict(output_hidden_states=True, output_attentions=True)
    ours_out, ref_out = run(ours, **batch, **kwargs), run(ref, **batch, **kwargs)
    assert len(ours_out.decoder_hidden_states) == TINY["num_decoder_layers"] + 1
    assert len(ours_out.cross_attentions) == TINY["num_decoder_layers"]
    compare(ours_out, ref_out, name + " (all outputs)")
    assert len(run(ours, **batch, return_dict=False)) == len(run(ref, **batch, return_dict=False))
    embeds = {**batch, "decoder_input_ids": None, "decoder_inputs_embeds": ref.shared(batch["decoder_input_ids"])}
    compare(run(ours, **embeds), run(ref, **embeds), name + " (decoder_inputs_embeds)")


def test_flan_head_is_untied_and_unscaled(checkpoints):
    path = checkpoints("gated")
    ours = t5.T5ForConditionalGeneration.from_pretrained(path)
    assert ours.lm_head.weight is not ours.shared.weight
    assert ours.encoder.embed_tokens.weight is ours.shared.weight
    assert not ours.config.scale_decoder_outputs and ours.config.is_gated_act
    assert torch.equal(ours.lm_head.weight, load_file(path / "model.safetensors")["lm_head.weight"])
    tied = t5.T5ForConditionalGeneration.from_pretrained(checkpoints("relu"))
    assert tied.lm_head.weight is tied.shared.weight and tied.config.scale_decoder_outputs


@pytest.mark.parametrize("case", CASES)
def test_loss_from_labels(checkpoints, case):
    path = checkpoints(case)
    ours = t5.T5ForConditionalGeneration.from_pretrained(path)
    ref = load_reference("T5ForConditionalGeneration", path)
    batch = inputs()
    labels = torch.randint(2, TINY["vocab_size"], (3, 5), generator=torch.Generator().manual_seed(3))
    labels[0, 3:] = -100
    feed = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": labels}
    ours_out, ref_out = run(ours, **feed), run(ref, **feed)
    compare(ours_out, ref_out, "labels")
    shifted = ours.prepare_decoder_input_ids_from_labels(labels)
    assert torch.equal(shifted, ref.prepare_decoder_input_ids_from_labels(labels))
    assert shifted[0, 4] == 0 and shifted[0, 0] == 0  # start token; -100 became padding
    assert ours_out.loss.ndim == 0 and ours_out[0] is ours_out.loss


@torch.no_grad()
@pytest.mark.parametrize("case", CASES)
def test_cached_decoding_equals_full_forward(checkpoints, case):
    path = checkpoints(case)
    ours = t5.T5ForConditionalGeneration.from_pretrained(path)
    ref = load_reference("T5ForConditionalGeneration", path)
    batch = inputs()
    source = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    target = batch["decoder_input_ids"]
    full = ours(**source, decoder_input_ids=target, use_cache=False)
    assert full.past_key_values is None
    assert_tensors_close(full.logits, ref(**source, decoder_input_ids=target).logits, "full logits")
    encoded = ours.get_encoder()(**source)
    cache, steps, cross = None, [], None
    for start, stop in ((0, 2), (2, 3), (3, 4), (4, 6)):  # a two-token prefill, single steps, a pair
        out = ours(encoder_outputs=encoded, attention_mask=source["attention_mask"],
                   decoder_input_ids=target[:, start:stop], past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        assert cache.get_seq_length() == stop
        cross = cache.cross[0][0] if cross is None else cross
        assert cache.cross[0][0] is cross  # the encoder's projections were computed once
        steps.append(out.logits)
    assert_tensors_close(torch.cat(steps, 1), full.logits, "cached logits")
    # Beam search reorders rows: the cache follows.
    cache = ours(**source, decoder_input_ids=target[:, :3], use_cache=True).past_key_values
    rows = torch.tensor([2, 2, 0])
    cache.reorder(rows)
    picked = {k: v[rows] for k, v in source.items()}
    step = ours(**picked, decoder_input_ids=target[rows, 3:4], past_key_values=cache).logits
    assert_tensors_close(step, full.logits[rows, 3:4], "reordered step")


@pytest.mark.parametrize("case", CASES)
def test_encoder_model(checkpoints, case):
    path = checkpoints(case)
    ours, info = t5.T5EncoderModel.from_pretrained(path, output_loading_info=True)
    assert not any(info.values()), info
    ref = load_reference("T5EncoderModel", path, eager=True)
    batch = {k: v for k, v in inputs().items() if not k.startswith("decoder")}
    for kwargs in ({}, dict(output_hidden_states=True, output_attentions=True)):
        compare(run(ours, **batch, **kwargs), run(ref, **batch, **kwargs), "encoder")
    embeds = ours.shared(batch["input_ids"])
    assert_tensors_close(run(ours, inputs_embeds=embeds, attention_mask=batch["attention_mask"]).last_hidden_state,
                         run(ref, inputs_embeds=embeds, attention_mask=batch["attention_mask"]).last_hidden_state,
                         "inputs_embeds")


@pytest.mark.parametrize("case", CASES)
def test_save_round_trips_through_reference(checkpoints, case, tmp_path):
    ours = t5.T5ForConditionalGeneration.from_pretrained(checkpoints(case))
    ours.save_pretrained(tmp_path)
    ref = load_reference("T5ForConditionalGeneration", tmp_path)
    batch = inputs()
    assert_tensors_close(run(ours, **batch).logits, run(ref, **batch).logits, "saved")
    again = t5.T5ForConditionalGeneration.from_pretrained(tmp_path)
    assert torch.equal(run(again, **batch).logits, run(ours, **batch).logits)


def test_fresh_model_and_buckets():
    config = t5.T5Config(**TINY)
    model = t5.T5ForConditionalGeneration(config).eval()
    assert model.lm_head.weight is model.shared.weight is model.decoder.embed_tokens.weight
    assert model.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight.std() < 4.0
    assert not hasattr(model.encoder.block[1].layer[0].SelfAttention, "relative_attention_bias")
    out = run(model, **inputs())
    assert torch.isfinite(out.logits).all()
    relative = torch.arange(-40, 41)[None, :]
    for bidirectional in (True, False):
        ours = t5.relative_position_bucket(relative, bidirectional, 8, 12)
        ref = transformers.models.t5.modeling_t5.T5Attention._relative_position_bucket(relative, bidirectional, 8, 12)
        assert torch.equal(ours, ref)


def test_config_defaults_match_reference():
    ours, ref = t5.T5Config().to_dict(), transformers.T5Config().to_dict()
    for key in ("transformers_version", "architectures", "id2label", "label2id"):
        ref.pop(key, None)
    assert {k: ours.get(k) for k in ref} == ref
    for kwargs in (dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False), dict(num_layers=3)):
        ours, ref = t5.T5Config(**kwargs), transformers.T5Config(**kwargs)
        for key in ("dense_act_fn", "is_gated_act", "num_decoder_layers", "tie_word_embeddings",
                    "scale_decoder_outputs", "hidden_size", "num_hidden_layers"):
            assert getattr(ours, key) == getattr(ref, key), key


@pytest.mark.parametrize("bad", [
    dict(feed_forward_proj="gated-gelu-x"), dict(feed_forward_proj="fast-gelu"), dict(feed_forward_proj="nope"),
    dict(num_heads=0), dict(d_kv=-1), dict(dropout_rate=2), dict(layer_norm_epsilon=0),
    dict(relative_attention_num_buckets=2), dict(relative_attention_max_distance=4), dict(vocab_size=100, pad_token_id=500),
])
def test_bad_configs(bad):
    with pytest.raises(ConfigError):
        t5.T5Config(**bad)


def test_bad_inputs(checkpoints):
    model = t5.T5ForConditionalGeneration.from_pretrained(checkpoints("relu"))
    batch = inputs()
    source = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    cases = [
        dict(source),  # no decoder inputs, no labels
        {**source, "decoder_input_ids": torch.full((3, 2), 500)},
        {**source, "decoder_input_ids": batch["decoder_input_ids"], "attention_mask": torch.ones(3, 5)},
        {**source, "decoder_input_ids": batch["decoder_input_ids"], "past_key_values": ((1, 2),)},
        {**source, "labels": torch.zeros(3, dtype=torch.long)},
        {**source, "decoder_input_ids": batch["decoder_input_ids"], "labels": torch.zeros(3, 2, dtype=torch.long)},
        {**source, "decoder_input_ids": batch["decoder_input_ids"], "encoder_outputs": "x"},
        {"input_ids": batch["input_ids"][0], "decoder_input_ids": batch["decoder_input_ids"]},
    ]
    for case in cases:
        with pytest.raises(InputError):
            model(**case)
    config = t5.T5Config(**{**TINY, "decoder_start_token_id": None})
    with pytest.raises(ConfigError):
        t5.T5ForConditionalGeneration(config)(**source, labels=batch["decoder_input_ids"])


def test_auto_classes(checkpoints):
    from leanformers import auto, registry

    if "t5" not in registry.MODELS:
        pytest.skip("t5 is not in leanformers.registry.MODELS yet")
    path = checkpoints("relu")
    assert type(auto.AutoModel.from_pretrained(path)) is t5.T5Model
    if hasattr(auto, "AutoModelForSeq2SeqLM"):
        assert type(auto.AutoModelForSeq2SeqLM.from_pretrained(path)) is t5.T5ForConditionalGeneration


@pytest.mark.parametrize("case", CASES)
def test_float16_keeps_feed_forward_output_in_float32(checkpoints, case):
    path = checkpoints(case)
    ours = t5.T5ForConditionalGeneration.from_pretrained(path, dtype=torch.float16)
    ref = load_reference("T5ForConditionalGeneration", path, dtype=torch.float16)
    wo = ours.decoder.block[1].layer[2].DenseReluDense.wo.weight
    assert wo.dtype == torch.float32 and ours.shared.weight.dtype == torch.float16
    stored = load_file(path / "model.safetensors")["decoder.block.1.layer.2.DenseReluDense.wo.weight"]
    assert torch.equal(wo, stored)  # read at full precision, not through float16
    batch = inputs()
    kwargs = {"output_hidden_states": True}
    ours_out, ref_out = run(ours, **batch, **kwargs), run(ref, **batch, **kwargs)
    assert ours_out.logits.dtype == torch.float16
    for key in ("logits", "encoder_hidden_states", "decoder_hidden_states"):
        assert_tensors_close(ours_out[key], ref_out[key], key, {"rtol": 1e-3, "atol": 1e-2})


def greedy(model, source: dict, steps: int, start: int, eos: int, pad: int) -> torch.Tensor:
    """The loop a generator runs: encode once, then one token per step through the cache."""
    encoded = model.get_encoder()(**source)
    tokens = torch.full((source["input_ids"].shape[0], 1), start)
    done = torch.zeros(tokens.shape[0], dtype=torch.bool)
    cache = None
    for _ in range(steps):
        out = model(encoder_outputs=encoded, attention_mask=source["attention_mask"],
                    decoder_input_ids=tokens[:, -1:], past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        chosen = out.logits[:, -1].argmax(-1).masked_fill(done, pad)
        done |= chosen == eos
        tokens = torch.cat([tokens, chosen[:, None]], 1)
    return tokens


@torch.no_grad()
@pytest.mark.parametrize("case", CASES)
def test_greedy_loop_matches_reference_generate(case, tmp_path):
    # The reference's generate sizes its cache by num_layers, so it needs equal stack depths here.
    config = transformers.T5Config(**{**TINY, **CASES[case], "num_decoder_layers": TINY["num_layers"]})
    build_reference("T5ForConditionalGeneration", config).save_pretrained(tmp_path)
    ours = t5.T5ForConditionalGeneration.from_pretrained(tmp_path)
    ref = load_reference("T5ForConditionalGeneration", tmp_path)
    batch = inputs()
    source = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    expected = ref.generate(**source, max_new_tokens=8, do_sample=False, num_beams=1)
    got = greedy(ours, source, expected.shape[1] - 1, start=0, eos=1, pad=0)
    assert torch.equal(got, expected)

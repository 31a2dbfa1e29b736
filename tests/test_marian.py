"""Marian against the reference on tiny random checkpoints: one shared vocabulary (scaled
embeddings, as OPUS-MT) and separate source and target vocabularies; padded inputs, every output
field, the loss from labels, cached step-by-step decoding, saving (the sinusoidal tables are never
stored), the sinusoidal table itself (odd widths too), config defaults and errors.
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
from safetensors.torch import load_file

from leanformers.errors import ConfigError, InputError
from leanformers.modeling.seq2seq import Seq2SeqCache
from leanformers.models import marian

TINY = {"vocab_size": 99, "d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
        "decoder_attention_heads": 2, "encoder_ffn_dim": 37, "decoder_ffn_dim": 41, "max_position_embeddings": 40,
        "init_std": 0.2, "pad_token_id": 98, "eos_token_id": 0, "decoder_start_token_id": 98,
        "scale_embedding": True}
CASES = {"shared": {}, "separate": {"share_encoder_decoder_embeddings": False, "decoder_vocab_size": 77,
                                    "pad_token_id": 70, "decoder_start_token_id": 70}}


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    built: dict = {}

    def get(name: str):
        if name not in built:
            ref = build_reference("MarianMTModel", transformers.MarianConfig(**{**TINY, **CASES[name]}))
            with torch.no_grad():
                for key, param in ref.named_parameters():
                    if "layer_norm" in key:
                        param.normal_(1.0 if key.endswith("weight") else 0.0, 0.3)
                ref.final_logits_bias.normal_(0.0, 0.5)
            path = tmp_path_factory.mktemp(name)
            ref.save_pretrained(path)
            built[name] = path
        return built[name]

    return get


def inputs(case: str, seed: int = 1) -> dict:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 60, (3, 12), generator=gen)
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1, 8:] = 0
    decoder_ids = torch.randint(1, 60, (3, 6), generator=gen)
    decoder_ids[:, 0] = {**TINY, **CASES[case]}["decoder_start_token_id"]
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
@pytest.mark.parametrize("name", ["MarianModel", "MarianMTModel"])
def test_forward_matches_reference(checkpoints, case, name):
    path = checkpoints(case)
    ours, info = getattr(marian, name).from_pretrained(path, output_loading_info=True)
    assert not any(info.values()), info
    ref = load_reference(name, path, eager=True)
    batch = inputs(case)
    compare(run(ours, **batch), run(ref, **batch), name)
    kwargs = {"output_hidden_states": True, "output_attentions": True}
    compare(run(ours, **batch, **kwargs), run(ref, **batch, **kwargs), name + " (all outputs)")
    embeds = ref.get_input_embeddings()(batch["decoder_input_ids"]) if case == "shared" else None
    if embeds is not None:  # the decoder scales given embeddings too
        feed = {**batch, "decoder_input_ids": None, "decoder_inputs_embeds": embeds}
        compare(run(ours, **feed), run(ref, **feed), name + " (decoder_inputs_embeds)")


def test_vocabularies_and_ties(checkpoints):
    separate = marian.MarianMTModel.from_pretrained(checkpoints("separate"))
    assert separate.lm_head.weight is separate.model.decoder.embed_tokens.weight
    assert separate.model.encoder.embed_tokens.weight.shape[0] == 99
    assert separate.lm_head.weight.shape[0] == separate.final_logits_bias.shape[1] == 77
    assert not hasattr(separate.model, "shared")
    shared = marian.MarianMTModel.from_pretrained(checkpoints("shared"))
    assert shared.lm_head.weight is shared.model.shared.weight is shared.model.decoder.embed_tokens.weight


@pytest.mark.parametrize("case", CASES)
def test_loss_from_labels(checkpoints, case):
    path = checkpoints(case)
    ours = marian.MarianMTModel.from_pretrained(path)
    ref = load_reference("MarianMTModel", path)
    batch = inputs(case)
    labels = torch.randint(1, 60, (3, 5), generator=torch.Generator().manual_seed(3))
    labels[0, 3:] = -100
    feed = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": labels}
    compare(run(ours, **feed), run(ref, **feed), "labels")


@torch.no_grad()
@pytest.mark.parametrize("case", CASES)
def test_cached_decoding_equals_full_forward(checkpoints, case):
    ours = marian.MarianMTModel.from_pretrained(checkpoints(case))
    batch = inputs(case)
    source = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    target = batch["decoder_input_ids"]
    full = ours(**source, decoder_input_ids=target, use_cache=False)
    encoded = ours.get_encoder()(**source)
    cache, steps = None, []
    for start, stop in ((0, 1), (1, 2), (2, 5), (5, 6)):
        out = ours(encoder_outputs=encoded, attention_mask=source["attention_mask"],
                   decoder_input_ids=target[:, start:stop], past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        steps.append(out.logits)
    assert_tensors_close(torch.cat(steps, 1), full.logits, "cached logits")


@pytest.mark.parametrize("case", CASES)
def test_save_round_trips_through_reference(checkpoints, case, tmp_path):
    ours = marian.MarianMTModel.from_pretrained(checkpoints(case))
    ours.save_pretrained(tmp_path)
    assert not any("embed_positions" in key for key in load_file(tmp_path / "model.safetensors"))
    ref = load_reference("MarianMTModel", tmp_path)
    batch = inputs(case)
    assert_tensors_close(run(ours, **batch).logits, run(ref, **batch).logits, "saved")


@pytest.mark.parametrize("width", [32, 7])
def test_sinusoidal_table(width):
    module = transformers.models.marian.modeling_marian.MarianSinusoidalPositionalEmbedding(20, width)
    assert_tensors_close(marian.MarianSinusoidalPositionalEmbedding.table(20, width), module.create_weight(), "table")


def test_fresh_model():
    model = marian.MarianMTModel(marian.MarianConfig(**TINY)).eval()
    table = model.model.encoder.embed_positions.weight
    assert torch.equal(table, marian.MarianSinusoidalPositionalEmbedding.table(40, 32))
    assert torch.isfinite(run(model, **inputs("shared")).logits).all()


def test_config_defaults_match_reference():
    ours, ref = marian.MarianConfig().to_dict(), transformers.MarianConfig().to_dict()
    for key in ("transformers_version", "architectures", "id2label", "label2id"):
        ref.pop(key, None)
    assert {k: ours.get(k) for k in ref} == ref
    assert marian.MarianConfig().num_labels == transformers.MarianConfig().num_labels


@pytest.mark.parametrize("bad", [
    {"decoder_vocab_size": 50}, {"decoder_vocab_size": -1}, {"d_model": 30}, {"pad_token_id": 200},
])
def test_bad_configs(bad):
    with pytest.raises(ConfigError):
        marian.MarianConfig(**{**TINY, **bad})


def test_bad_inputs(checkpoints):
    model = marian.MarianMTModel.from_pretrained(checkpoints("separate"))
    batch = inputs("separate")
    source = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    for case in (dict(source), {**source, "decoder_input_ids": torch.full((3, 2), 80)}):
        with pytest.raises(InputError):
            model(**case)


def test_auto_classes(checkpoints):
    from leanformers import auto, registry

    if "marian" not in registry.MODELS:
        pytest.skip("marian is not in leanformers.registry.MODELS yet")
    path = checkpoints("separate")
    assert type(auto.AutoModel.from_pretrained(path)) is marian.MarianModel
    if hasattr(auto, "AutoModelForSeq2SeqLM"):
        assert type(auto.AutoModelForSeq2SeqLM.from_pretrained(path)) is marian.MarianMTModel

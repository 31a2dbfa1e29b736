"""The speed paths of encoder-decoder generation and of Whisper's features, each checked to run and to
change nothing: beam search's copies of a source share one cross-attention projection (and it is
not reordered), the self-attention cache reorders in place, BART's encoder skips the source's padding
inside generate, padded source positions are not projected; the log-mel framing reads the clip in
place. Ids equal to the reference's, features within 1e-5."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from parity import assert_tensors_close, build_reference, load_reference, transformers

from leanformers import AutoModelForSeq2SeqLM
from leanformers.modeling import attention
from leanformers.modeling.attention import KVCache
from leanformers.modeling.seq2seq import Seq2SeqCache, repeated_rows
from leanformers.models import bart
from leanformers.processing.audio import LogMelFeatureExtractor

BART = {"vocab_size": 100, "d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
        "decoder_attention_heads": 4, "encoder_ffn_dim": 48, "decoder_ffn_dim": 48, "max_position_embeddings": 64,
        "init_std": 0.3, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "decoder_start_token_id": 2,
        "forced_eos_token_id": 2}
BEAMS = {"max_new_tokens": 20, "num_beams": 4, "no_repeat_ngram_size": 3, "length_penalty": 2.0,
         "early_stopping": True}


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict:
    built = {}
    for name, extra in {"auto": {}, "unpadded": {"unpad_inputs": True}}.items():
        ref = build_reference("BartForConditionalGeneration", transformers.BartConfig(**BART))
        path = tmp_path_factory.mktemp(f"bart-{name}")
        ref.save_pretrained(path)
        ours = AutoModelForSeq2SeqLM.from_pretrained(path)
        for key, value in extra.items():
            setattr(ours.config, key, value)
        built[name] = load_reference("BartForConditionalGeneration", path), ours
    return built


def sources() -> tuple[torch.Tensor, torch.Tensor]:
    """Four right-padded sources of 11, 7, 3 and 9 tokens."""
    ids = torch.randint(3, 98, (4, 11), generator=torch.Generator().manual_seed(5))
    mask = torch.ones_like(ids)
    for row, length in enumerate((11, 7, 3, 9)):
        mask[row, length:] = 0
    return ids.masked_fill(mask == 0, 1), mask


def test_repeated_rows():
    rows = torch.randn(3, 5, 4)
    assert repeated_rows(rows.repeat_interleave(4, 0), None) == 4
    assert repeated_rows(rows, None) == 1
    assert repeated_rows(rows[:1].expand(6, 5, 4), None) == 6
    # Runs of 6 then 2 equal rows: no common run length.
    assert repeated_rows(torch.cat([rows[:1].expand(6, 5, 4), rows[1:3]]), None) == 1
    # Runs of 4, then 2 and 2: runs of 2 fit.
    assert repeated_rows(torch.cat([rows[:1].expand(4, 5, 4), rows[1:2].expand(2, 5, 4),
                                    rows[2:3].expand(2, 5, 4)]), None) == 2
    mask = torch.ones(12, 5)
    assert repeated_rows(rows.repeat_interleave(4, 0), mask) == 4
    mask[1, 4] = 0  # the masks differ inside the first run
    assert repeated_rows(rows.repeat_interleave(4, 0), mask) == 1


def test_kv_cache_reorders_in_place():
    cache = KVCache(2, capacity=16)
    keys = torch.randn(4, 2, 5, 3)
    for layer in range(2):
        cache.update(layer, keys + layer, -keys - layer)
    buffers = [cache.keys[0].data_ptr(), cache.values[1].data_ptr()]
    rows = torch.tensor([1, 1, 3, 0])
    cache.reorder(rows)
    assert [cache.keys[0].data_ptr(), cache.values[1].data_ptr()] == buffers  # moved in place
    for layer in range(2):
        got_keys, got_values = cache.update(layer, keys[:, :, :1], keys[:, :, :1])
        assert torch.equal(got_keys[:, :, :5], (keys + layer)[rows])
        assert torch.equal(got_values[:, :, :5], (-keys - layer)[rows])
    cache.reorder(torch.tensor([2, 0]))  # fewer rows: new buffers
    assert cache.keys[0].shape[0] == 2 and torch.equal(cache.keys[0][:, :, :5], (keys[rows])[[2, 0]])


def _spy(monkeypatch, owner, name):
    calls = []
    original = getattr(owner, name)

    def spy(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append((args, kwargs, result))
        return result

    monkeypatch.setattr(owner, name, spy)
    return calls


@pytest.mark.parametrize("name", ["auto", "unpadded"])
def test_beam_search_shares_the_source_projections(models, monkeypatch, name):
    ref, ours = models[name]
    ids, mask = sources()
    shared = _spy(monkeypatch, Seq2SeqCache, "share_source_rows")
    encoders = _spy(monkeypatch, bart, "run_encoder")
    packings = _spy(monkeypatch, attention, "pack_batch")
    expected = ref.generate(input_ids=ids, attention_mask=mask, **BEAMS)
    got = ours.generate(input_ids=ids, attention_mask=mask, **BEAMS)
    assert torch.equal(got, expected)
    assert shared and all(result == 4 for _, _, result in shared)
    # Inside generate the encoder is told nobody reads its padded positions.
    assert encoders and encoders[0][1]["padding_in_output"] is False
    packed = [result for _, _, result in packings if result is not None]
    assert bool(packed) == (name == "unpadded")
    # Outside generate the automatic choice computes the padded positions, as the reference (with
    # unpad_inputs=True they read zero).
    out = ours.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    expected = ref.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    if name == "unpadded":
        expected = expected * mask[:, :, None]
    assert_tensors_close(out, expected, "encoder")


def test_greedy_and_sampling_are_unchanged(models):
    ref, ours = models["unpadded"]
    ids, mask = sources()
    for options in ({"max_new_tokens": 16}, {"max_new_tokens": 12, "num_beams": 3, "num_return_sequences": 2}):
        assert torch.equal(ours.generate(input_ids=ids, attention_mask=mask, **options),
                           ref.generate(input_ids=ids, attention_mask=mask, **options))


def test_grouped_cache_follows_rows_across_sources(models):
    """Rows that take another source's row expand the shared projections first."""
    ref, ours = models["auto"]
    ids, mask = sources()
    ids, mask = ids[:2].repeat_interleave(2, 0), mask[:2].repeat_interleave(2, 0)
    target = torch.randint(3, 98, (4, 5), generator=torch.Generator().manual_seed(6))
    full = ref(input_ids=ids, attention_mask=mask, decoder_input_ids=target).logits
    encoded = ours.get_encoder()(input_ids=ids, attention_mask=mask)
    step = ours(encoder_outputs=encoded, attention_mask=mask, decoder_input_ids=target[:, :3], use_cache=True)
    cache = step.past_key_values
    assert cache.shared_rows == 2 and cache.cross[0][0].shape[0] == 2
    assert_tensors_close(step.logits, full[:, :3], "grouped prefix")
    cache.reorder(torch.tensor([1, 0, 3, 2]))  # within each source: nothing to move
    assert cache.shared_rows == 2
    rows = torch.tensor([2, 0, 1, 3])
    cache.reorder(rows)
    assert cache.shared_rows == 1 and cache.cross[0][0].shape[0] == 4
    # Rows 0 and 1 swapped (same source) first, then rows taken across sources.
    order = torch.tensor([1, 0, 3, 2])[rows]
    out = ours(encoder_outputs=(encoded.last_hidden_state[order],), attention_mask=mask[order],
               decoder_input_ids=target[order, 3:4], past_key_values=cache)
    assert_tensors_close(out.logits, full[order, 3:4], "reordered step")


@pytest.mark.parametrize("samples", [401, 561, 16000 * 3 + 17, 480000, 480161])
def test_log_mel_framing_matches_the_reference(samples):
    rng = np.random.default_rng(samples)
    clip = (0.1 * rng.standard_normal(samples)).astype(np.float32)
    ref, ours = transformers.WhisperFeatureExtractor(), LogMelFeatureExtractor()
    for options in ({"truncation": False, "padding": "longest"}, {}):
        expected = ref(clip, sampling_rate=16000, return_tensors="np", **options)["input_features"]
        got = ours(clip, sampling_rate=16000, return_tensors="np", **options)["input_features"]
        assert got.shape == expected.shape and got.flags["C_CONTIGUOUS"]
        assert np.abs(got - expected).max() <= 1e-5

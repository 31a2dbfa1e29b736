"""generate() on encoder-decoder models (T5, BART, Marian) against the reference's generate, on tiny
random checkpoints: the source is encoded once, the decoder starts from decoder_start_token_id, and
greedy, sampled and beam-search ids (4 beams, no_repeat_ngram_size 3, a length penalty) are equal
token for token, with and without the cache."""

from __future__ import annotations

import pytest
import torch
from parity import build_reference, load_reference, transformers

from leanformers import AutoModelForSeq2SeqLM
from leanformers.errors import ConfigError

COMMON = {"vocab_size": 100, "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0}
CASES = {
    "t5": ("T5ForConditionalGeneration", "T5Config", dict(
        COMMON, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
        initializer_factor=3.0)),
    "t5-gated": ("T5ForConditionalGeneration", "T5Config", dict(
        COMMON, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
        feed_forward_proj="gated-gelu", tie_word_embeddings=False, initializer_factor=3.0)),
    "bart": ("BartForConditionalGeneration", "BartConfig", dict(
        vocab_size=100, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=64,
        init_std=0.3, pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
        forced_eos_token_id=2)),
    "marian": ("MarianMTModel", "MarianConfig", dict(
        vocab_size=100, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=64,
        init_std=0.3, pad_token_id=99, eos_token_id=0, decoder_start_token_id=99, forced_eos_token_id=0)),
}


@pytest.fixture(scope="session")
def seq2seq(tmp_path_factory) -> dict:
    built = {}
    for name, (model_class, config_class, settings) in CASES.items():
        ref = build_reference(model_class, getattr(transformers, config_class)(**settings))
        path = tmp_path_factory.mktemp(name)
        ref.save_pretrained(path)
        built[name] = load_reference(model_class, path), AutoModelForSeq2SeqLM.from_pretrained(path)
    return built


def sources(pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three right-padded sources of 9, 6 and 3 tokens."""
    ids = torch.randint(3, 98, (3, 9), generator=torch.Generator().manual_seed(4))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    return ids.masked_fill(mask == 0, pad), mask


SETTINGS = [
    {"max_new_tokens": 32},
    {"max_new_tokens": 20, "use_cache": False},
    {"max_new_tokens": 24, "num_beams": 4, "no_repeat_ngram_size": 3, "length_penalty": 1.5},
    {"max_new_tokens": 16, "num_beams": 3, "early_stopping": True, "num_return_sequences": 2,
     "forced_bos_token_id": 5},
    {"max_new_tokens": 16, "do_sample": True, "top_k": 8, "num_return_sequences": 2},
    {"min_new_tokens": 6, "max_new_tokens": 12, "repetition_penalty": 1.3},
]


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("settings", range(len(SETTINGS)))
def test_generate_matches_reference(seq2seq, name, settings):
    ref, ours = seq2seq[name]
    ids, mask = sources(ref.config.pad_token_id)
    torch.manual_seed(7)
    expected = ref.generate(input_ids=ids, attention_mask=mask, **SETTINGS[settings])
    torch.manual_seed(7)
    got = ours.generate(ids, mask, **SETTINGS[settings])
    assert got.shape == expected.shape and torch.equal(got, expected), f"\nours:\n{got}\nreference:\n{expected}"


def test_the_decoder_starts_from_its_start_token(seq2seq):
    ref, ours = seq2seq["bart"]
    ids, mask = sources(ref.config.pad_token_id)
    out = ours.generate(ids, mask, max_new_tokens=5)
    assert (out[:, 0] == 2).all()
    # The generation config can name another start token; without any the call is refused.
    assert (ours.generate(ids, mask, max_new_tokens=3, decoder_start_token_id=7)[:, 0] == 7).all()
    saved = ours.generation_config
    try:
        ours.generation_config = type(saved)(eos_token_id=2, pad_token_id=1)
        with pytest.raises(ConfigError, match="decoder_start_token_id"):
            ours.generate(ids, mask, max_new_tokens=3)
    finally:
        ours.generation_config = saved


def test_default_length_counts_the_start_token(seq2seq):
    ref, ours = seq2seq["t5"]
    ids, mask = sources(0)
    expected = ref.generate(input_ids=ids, attention_mask=mask)  # the default max_length of 20
    assert torch.equal(ours.generate(ids, mask), expected)

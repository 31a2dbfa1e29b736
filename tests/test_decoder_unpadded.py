"""Unpadded (packed) prefill of the decoder: a left-padded prompt batch runs on its real tokens only
and fills the KV cache in the padded layout that later one-token steps read. Compared with the
reference on tiny random checkpoints: the last position's logits, the cache at real positions, and
generate's ids; plus the choice between packed and dense.

Packing is forced with ``config.unpad_inputs = True`` (the automatic choice keeps models this small
dense, where one attention call costs more than the padding), and a spy checks that it ran.
"""

from __future__ import annotations

import pytest
import torch
from parity import build_reference, load_reference, transformers

from leanformers.modeling import attention
from leanformers.models import decoder

TINY = {
    "vocab_size": 100, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 3, "num_attention_heads": 4,
    "num_key_value_heads": 2, "initializer_range": 0.3, "max_position_embeddings": 64, "pad_token_id": 0,
    "bos_token_id": 1, "eos_token_id": 2,
}
FULL, SLIDING = "full_attention", "sliding_attention"
# name -> (reference config class, causal LM class in both libraries, config overrides).
CASES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    # Windows shorter than the longest prompt: packed attention is then causal and windowed.
    "mistral-window": ("MistralConfig", "MistralForCausalLM", {"sliding_window": 4, "rope_theta": 100.0}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 16, "tie_word_embeddings": True}),
    # Soft-capped scores (the explicit softmax) in windowed and global layers.
    "gemma2-caps-window": ("Gemma2Config", "Gemma2ForCausalLM", {
        "head_dim": 8, "query_pre_attn_scalar": 16, "sliding_window": 3, "attn_logit_softcapping": 1.0,
        "final_logit_softcapping": 2.0, "tie_word_embeddings": False}),
    # Two rotary tables, one per layer type.
    "gemma3-local-base": ("Gemma3TextConfig", "Gemma3ForCausalLM", {
        "head_dim": 8, "query_pre_attn_scalar": 8, "sliding_window": 4, "layer_types": [SLIDING, FULL, SLIDING],
        "rope_parameters": {FULL: {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000.0},
                            SLIDING: {"rope_type": "default", "rope_theta": 10.0}}}),
}


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict:
    """case -> (reference, ours with unpad_inputs=True)."""
    built = {}
    for case, (config_class, lm_class, overrides) in CASES.items():
        config = getattr(transformers, config_class)(**{**TINY, **overrides})
        path = tmp_path_factory.mktemp(case)
        build_reference(lm_class, config).save_pretrained(path)
        ours = getattr(decoder, lm_class).from_pretrained(path)
        ours.config.unpad_inputs = True
        built[case] = load_reference(lm_class, path), ours
    return built


def prompts() -> tuple[torch.Tensor, torch.Tensor]:
    """Four left-padded prompts of 11, 3, 7 and 1 real tokens."""
    gen = torch.Generator().manual_seed(5)
    input_ids = torch.randint(3, TINY["vocab_size"], (4, 11), generator=gen)
    attention_mask = torch.ones_like(input_ids)
    for row, length in enumerate((11, 3, 7, 1)):
        attention_mask[row, : 11 - length] = 0
    return input_ids.masked_fill(attention_mask == 0, 0), attention_mask


@pytest.fixture
def packed_calls(monkeypatch) -> list[int]:
    calls = []
    original = attention.PackedBatch.attend

    def spy(self, *args, **kwargs):
        calls.append(self.causal)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(attention.PackedBatch, "attend", spy)
    return calls


@pytest.mark.parametrize("case", CASES)
def test_packed_prefill_logits_and_cache_match_reference(models, case, packed_calls):
    ref, ours = models[case]
    input_ids, attention_mask = prompts()
    positions = decoder.left_padded_positions(attention_mask)
    with torch.no_grad():
        expected = ref(input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=True)
        got = ours(input_ids, attention_mask=attention_mask, position_ids=positions, logits_to_keep=1)
    assert packed_calls == [True] * TINY["num_hidden_layers"], "the packed causal path did not run"
    assert got.logits.shape == (4, 1, TINY["vocab_size"])
    assert (got.logits - expected.logits[:, -1:]).abs().max() <= 1e-5 * expected.logits.abs().max()
    real = attention_mask.bool()
    for layer in range(TINY["num_hidden_layers"]):
        cached = got.past_key_values.keys[layer][:, :, :11], got.past_key_values.values[layer][:, :, :11]
        theirs = expected.past_key_values.layers[layer].keys, expected.past_key_values.layers[layer].values
        for mine, want in zip(cached, theirs):
            kept = want.shape[2]  # a sliding-window layer's cache keeps only the last positions
            gap = (mine[:, :, -kept:] - want).abs().amax(dim=(1, 3))  # (batch, positions)
            assert gap[real[:, -kept:]].max() <= 1e-5 * want.abs().max()
            assert torch.equal(mine.transpose(1, 2)[~real], torch.zeros_like(mine.transpose(1, 2)[~real]))


@pytest.mark.parametrize("case", CASES)
def test_generate_after_packed_prefill_matches_reference(models, case, packed_calls):
    ref, ours = models[case]
    input_ids, attention_mask = prompts()
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "max_new_tokens": 12, "min_new_tokens": 12,
              "do_sample": False}
    expected = ref.generate(**kwargs)
    got = ours.generate(**kwargs)
    assert packed_calls, "the prefill did not run packed"
    assert torch.equal(got, expected), f"\nours:\n{got}\nreference:\n{expected}"


def test_automatic_choice_packs_only_when_no_padding_is_read(models, packed_calls, monkeypatch):
    _, ours = models["llama"]
    input_ids, attention_mask = prompts()
    # Free attention calls: the automatic choice then packs any batch with enough padding.
    monkeypatch.setattr(attention, "PACK_CALL_COST_MACS", 0)
    ours.config.unpad_inputs = None
    try:
        with torch.no_grad():
            ours(input_ids, attention_mask=attention_mask, logits_to_keep=1)
            assert packed_calls, "the automatic choice should pack a left-padded prompt whose last logits are read"
            packed_calls.clear()
            ours(input_ids, attention_mask=attention_mask)  # every position's logits: padded ones are read
            ours(input_ids, attention_mask=attention_mask, logits_to_keep=1, output_hidden_states=True)
            # Right padding: the last position of some rows is padding, and its logits would be read.
            ours(input_ids, attention_mask=attention_mask.flip(1), logits_to_keep=1)
            assert packed_calls == []
            ours.config.unpad_inputs = False
            ours(input_ids, attention_mask=attention_mask, logits_to_keep=1)
    finally:
        ours.config.unpad_inputs = True
    assert packed_calls == []


def test_packed_attention_fills_only_an_empty_cache():
    keep = torch.tensor([[0, 1, 1], [1, 1, 1]])
    packing = attention.pack_batch(keep, 2, 3, torch.device("cpu"), True, macs_per_token=1, causal=True)
    assert packing is not None and packing.causal
    slots = packing.index.numel()
    q, k = torch.randn(slots, 8), torch.randn(slots, 4)
    cache = attention.KVCache(1)
    attention.attend(q, k, k, packing, heads=2, kv_heads=1, cache=cache)
    assert cache.get_seq_length() == 3
    with pytest.raises(attention.InputError, match="empty cache"):
        attention.attend(q, k, k, packing, heads=2, kv_heads=1, cache=cache)
    bidirectional = attention.pack_batch(keep.flip(1), 2, 3, torch.device("cpu"), True, macs_per_token=1)
    with pytest.raises(attention.InputError, match="only when causal"):
        attention.attend(q, k, k, bidirectional, heads=2, kv_heads=1, cache=attention.KVCache(1))

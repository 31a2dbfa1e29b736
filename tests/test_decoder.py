"""The Llama-family decoder (llama, mistral, qwen2, qwen3): parity with the reference on tiny random
checkpoints, for every rotary scaling type, sliding windows shorter than the input, projection
biases, q/k norms, tied and untied embeddings; cached (incremental) decoding; loss; saving; the
Auto class; config errors.

The batch is left padded (rows with 0, 3 and 6 pads in 12 positions). Every position is compared,
padded query rows included: those rows see no key, and both libraries then give the same finite
numbers there, so nothing needs excluding. Weights are drawn with initializer_range=0.3, 15x the
default, so attention is far from uniform: a wrong rotary angle, window edge or missing bias moves
the logits by ~0.1-1, far beyond the 1e-5 tolerance.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from parity import (
    assert_tensors_close,
    build_reference,
    load_reference,
    run,
    transformers,
)

from leanformers import auto
from leanformers.errors import ConfigError, InputError
from leanformers.modeling.attention import KVCache
from leanformers.models import decoder

TINY = dict(
    vocab_size=100, hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
    num_key_value_heads=2, initializer_range=0.3, max_position_embeddings=64, pad_token_id=0,
)
SEQ = 12
LONGROPE = dict(rope_type="longrope", short_factor=[1.0, 1.5, 2.0, 3.0], long_factor=[2.0, 3.0, 5.0, 8.0],
                original_max_position_embeddings=8)
# name -> (family, config overrides). Windows of 3-4 positions are far shorter than the 12-token batch.
CASES = {
    "llama": ("Llama", {}),
    "llama-tied-biases": ("Llama", dict(tie_word_embeddings=True, attention_bias=True, mlp_bias=True)),
    "llama-linear": ("Llama", dict(rope_scaling={"rope_type": "linear", "factor": 3.0})),
    # max_position_embeddings below the batch's length makes the NTK base grow.
    "llama-dynamic": ("Llama", dict(max_position_embeddings=8, rope_scaling={"type": "dynamic", "factor": 2.0})),
    "llama-llama3": ("Llama", dict(rope_theta=500.0, rope_scaling={
        "rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 32})),
    "llama-yarn": ("Llama", dict(rope_parameters={
        "rope_type": "yarn", "rope_theta": 1000.0, "factor": 4.0, "original_max_position_embeddings": 16})),
    # Wider heads and slow betas put the ramp's ends between channels, where truncation matters.
    "llama-yarn-mscale": ("Llama", dict(rope_parameters={
        "rope_type": "yarn", "rope_theta": 1000.0, "factor": 4.0, "original_max_position_embeddings": 16,
        "mscale": 1.0, "mscale_all_dim": 0.5, "beta_fast": 1, "beta_slow": 0.25, "truncate": False},
        head_dim=16)),
    # The long factors apply once the input passes 8 positions; so does attention scaling.
    "llama-longrope": ("Llama", dict(max_position_embeddings=32, rope_parameters={"rope_theta": 1000.0, **LONGROPE})),
    "mistral-window": ("Mistral", dict(sliding_window=4, rope_theta=100.0)),
    "qwen2-window": ("Qwen2", dict(use_sliding_window=True, sliding_window=3, max_window_layers=1)),
    "qwen3": ("Qwen3", dict(head_dim=16, tie_word_embeddings=True)),
    "qwen3-window-bias": ("Qwen3", dict(head_dim=8, attention_bias=True, use_sliding_window=True, sliding_window=3,
                                        layer_types=["sliding_attention", "full_attention", "sliding_attention"])),
}


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict:
    """name -> (family, folder holding the reference's ForCausalLM, the reference model), built lazily."""
    built: dict = {}

    def get(name: str):
        if name not in built:
            family, overrides = CASES[name]
            config = getattr(transformers, f"{family}Config")(**{**TINY, **overrides})
            ref = build_reference(f"{family}ForCausalLM", config)
            # The reference starts biases at 0 and norm weights at 1, where a missing bias or norm
            # weight would not show: draw them at random too.
            with torch.no_grad():
                for key, param in ref.named_parameters():
                    if key.endswith("bias"):
                        param.normal_(0.0, 0.3)
                    elif key.endswith("norm.weight"):
                        param.normal_(1.0, 0.3)
            path = tmp_path_factory.mktemp(name)
            ref.save_pretrained(path)
            built[name] = family, path, ref
        return built[name]

    return get


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, TINY["vocab_size"], (3, SEQ), generator=gen)
    attention_mask = torch.ones(3, SEQ, dtype=torch.long)
    attention_mask[1, :3] = 0
    attention_mask[2, :6] = 0
    input_ids[attention_mask == 0] = 0
    return input_ids, attention_mask


def ours(family: str, path: Path, head: str = "ForCausalLM"):
    return getattr(decoder, f"{family}{head}").from_pretrained(path)


@pytest.mark.parametrize("name", list(CASES))
def test_logits_and_hidden_states_match_reference(checkpoints, name):
    family, path, ref = checkpoints(name)
    model = ours(family, path)
    input_ids, attention_mask = batch()
    # The reference's forward counts positions through the padding; its generation loop counts real
    # tokens only. Both must match.
    for positions in (None, decoder.left_padded_positions(attention_mask)):
        inputs = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                      output_hidden_states=True)
        expected, got = run(ref, **inputs), run(model, **inputs)
        assert list(got.keys()) == list(expected.keys())
        assert_tensors_close(got.logits, expected.logits, f"{name}.logits")
        assert_tensors_close(got.hidden_states, expected.hidden_states, f"{name}.hidden_states")
        assert isinstance(got.past_key_values, KVCache)


@pytest.mark.parametrize("name", ["llama-tied-biases", "qwen3-window-bias"])
def test_base_model_matches_reference(checkpoints, name):
    family, path, _ = checkpoints(name)
    ref = load_reference(f"{family}Model", path)
    model = ours(family, path, "Model")
    input_ids, attention_mask = batch(2)
    expected = run(ref, input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    got = run(model, input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    assert list(got.keys()) == list(expected.keys()) == ["last_hidden_state"]
    assert_tensors_close(got.last_hidden_state, expected.last_hidden_state, "last_hidden_state")
    as_tuple = run(model, input_ids=input_ids, attention_mask=attention_mask, use_cache=False, return_dict=False)
    assert_tensors_close(as_tuple[0], expected.last_hidden_state, "tuple[0]")


def test_left_padded_positions_count_real_tokens_only():
    _, attention_mask = batch()
    assert decoder.left_padded_positions(attention_mask)[1:].tolist() == [
        [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
        [0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5],
    ]


def test_attention_weights_match_reference_eager(checkpoints):
    family, path, _ = checkpoints("qwen2-window")
    ref = load_reference(f"{family}ForCausalLM", path, eager=True)
    input_ids, attention_mask = batch()
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
    expected, got = run(ref, **inputs), run(ours(family, path), **inputs)
    real = attention_mask.bool()[:, None, :, None]  # padded query rows: the eager softmax is uniform there
    for i, (a, b) in enumerate(zip(got.attentions, expected.attentions)):
        assert_tensors_close(a * real, b * real, f"attentions[{i}]")
    assert_tensors_close(got.logits, expected.logits, "logits")


@pytest.mark.parametrize("name", ["llama-tied-biases", "llama-dynamic", "llama-longrope", "mistral-window",
                                  "qwen2-window", "qwen3-window-bias"])
def test_incremental_decoding_equals_full_forward_and_reference(checkpoints, name):
    """Prefill 6 positions, then one token per call through the cache: each step's logits equal the
    reference's own cached steps and, where the rotary angles do not depend on the input's length
    (all types but dynamic and longrope), the full forward's at that position."""
    family, path, ref = checkpoints(name)
    length_free = name not in ("llama-dynamic", "llama-longrope")
    model = ours(family, path)
    input_ids, attention_mask = batch(3)
    positions = decoder.left_padded_positions(attention_mask)
    full = run(model, input_ids=input_ids, attention_mask=attention_mask, position_ids=positions).logits
    prefill = 6
    step = dict(input_ids=input_ids[:, :prefill], attention_mask=attention_mask[:, :prefill],
                position_ids=positions[:, :prefill], use_cache=True)
    got, expected = run(model, **step), run(ref, **step)
    if length_free:
        assert_tensors_close(got.logits, full[:, :prefill], "prefill vs full")
    assert_tensors_close(got.logits, expected.logits, "prefill vs reference")
    cache, ref_cache = got.past_key_values, expected.past_key_values
    for t in range(prefill, SEQ):
        step = dict(input_ids=input_ids[:, t:t + 1], attention_mask=attention_mask[:, :t + 1],
                    position_ids=positions[:, t:t + 1], use_cache=True)
        got = run(model, past_key_values=cache, **step)
        expected = run(ref, past_key_values=ref_cache, **step)
        assert got.past_key_values is cache and cache.get_seq_length() == t + 1
        if length_free:
            assert_tensors_close(got.logits[:, 0], full[:, t], f"step {t} vs full")
        assert_tensors_close(got.logits, expected.logits, f"step {t} vs reference")


def test_loss_with_labels_matches_reference(checkpoints):
    family, path, ref = checkpoints("qwen3")
    model = ours(family, path)
    input_ids, attention_mask = batch()
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=False)
    expected, got = run(ref, **inputs), run(model, **inputs)
    assert list(got.keys()) == list(expected.keys()) == ["loss", "logits"]
    assert_tensors_close(got.loss, expected.loss, "loss")
    assert_tensors_close(got[0], expected[0], "out[0]")
    with pytest.raises(InputError, match="labels"):
        model(input_ids, labels=labels[:, :4])


def test_logits_to_keep_and_cache_off(checkpoints):
    family, path, ref = checkpoints("llama")
    model = ours(family, path)
    input_ids, attention_mask = batch()
    full = run(model, input_ids=input_ids, attention_mask=attention_mask).logits
    last = run(model, input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=1)
    assert_tensors_close(last.logits, full[:, -1:], "logits_to_keep=1")
    embedded = run(model, inputs_embeds=model.get_input_embeddings()(input_ids), attention_mask=attention_mask)
    assert_tensors_close(embedded.logits, full, "inputs_embeds")
    no_cache = run(model, input_ids=input_ids, use_cache=False)
    assert list(no_cache.keys()) == list(run(ref, input_ids=input_ids, use_cache=False).keys()) == ["logits"]
    with pytest.raises(InputError, match="past_key_values"):
        model(input_ids, past_key_values=((torch.zeros(1),),))
    with pytest.raises(InputError, match="attention_mask"):
        model(input_ids, attention_mask=attention_mask[:, :5])


@pytest.mark.parametrize("name", ["llama", "llama-tied-biases", "qwen3"])
def test_save_pretrained_round_trips_through_reference(checkpoints, tmp_path, name):
    family, path, ref = checkpoints(name)
    model = ours(family, path)
    model.save_pretrained(tmp_path)
    reloaded = load_reference(f"{family}ForCausalLM", tmp_path)
    for key, value in ref.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key
    input_ids, attention_mask = batch()
    expected = run(ref, input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    assert_tensors_close(run(reloaded, input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits,
                         expected, "reloaded")
    tied = CASES[name][1].get("tie_word_embeddings", False)
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied


@pytest.mark.parametrize("name", ["llama", "mistral-window", "qwen2-window", "qwen3"])
def test_auto_classes_pick_the_family(checkpoints, name):
    family, path, _ = checkpoints(name)
    model = auto.AutoModelForCausalLM.from_pretrained(path)
    assert type(model) is getattr(decoder, f"{family}ForCausalLM")
    assert type(auto.AutoModel.from_pretrained(path)) is getattr(decoder, f"{family}Model")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(num_attention_heads=4, num_key_value_heads=3), "multiple of num_key_value_heads"),
        (dict(rope_scaling={"rope_type": "ntk-by-parts", "factor": 2.0}), "rope_type 'ntk-by-parts'"),
        (dict(rope_scaling={"rope_type": "linear"}), "needs factor"),
        (dict(rope_scaling={"rope_type": "llama3", "factor": 8.0}), "low_freq_factor"),
        (dict(rope_parameters={**LONGROPE, "short_factor": [1.0]}), "short_factor"),
        (dict(rms_norm_eps=0), "rms_norm_eps"),
        (dict(hidden_act="swiglu-ish"), "hidden_act"),
        (dict(head_dim=7), "head_dim"),
        (dict(attention_dropout=1.5), "attention_dropout"),
    ],
)
def test_bad_configs_raise_config_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        decoder.LlamaConfig(**{**TINY, **overrides})


def test_qwen_layer_types_must_fit_the_layers():
    with pytest.raises(ConfigError, match="layer_types"):
        decoder.Qwen2Config(**TINY, layer_types=["full_attention"])
    with pytest.raises(ConfigError, match="sliding_window"):
        decoder.MistralConfig(**TINY, sliding_window=0)
    # Windows only where use_sliding_window and the layer kind say so, as in the reference.
    config = decoder.Qwen2Config(**TINY, sliding_window=3, max_window_layers=1)
    assert config.layer_windows() == [None, None, None]
    config = decoder.Qwen2Config(**TINY, use_sliding_window=True, sliding_window=3, max_window_layers=1)
    assert config.layer_windows() == [None, 3, 3]


@pytest.mark.parametrize("family", ["Llama", "Mistral", "Qwen2", "Qwen3"])
def test_config_defaults_match_reference(family):
    # The reference's Mistral config takes no explicit None for num_key_value_heads; the others do.
    kv_heads = {"num_key_value_heads": 2} if family == "Mistral" else {"num_key_value_heads": None}
    for kwargs in ({}, dict(hidden_size=64, num_attention_heads=4, use_sliding_window=True, max_window_layers=30,
                            **kv_heads)):
        ours = getattr(decoder, f"{family}Config")(**kwargs)
        ref = getattr(transformers, f"{family}Config")(**kwargs)
        for key in ("vocab_size", "num_key_value_heads", "rope_parameters", "tie_word_embeddings", "rms_norm_eps",
                    "max_position_embeddings", "intermediate_size", "layer_types"):
            assert getattr(ours, key, None) == getattr(ref, key, None), key
        assert ours.head_dim == (getattr(ref, "head_dim", None) or ref.hidden_size // ref.num_attention_heads)

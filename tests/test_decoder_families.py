"""Gemma, Gemma 2, Gemma 3 (text), Phi-3 and OLMo 2 through the one config-driven decoder: parity
with the reference on tiny random checkpoints (logits and hidden states of a left-padded batch,
cached decoding, greedy and top_k=1 generation), saving, the Auto classes, config defaults and
older config layouts, config errors.

The cases exercise what each family changes: Gemma's (1 + w) norms, scaled embeddings and GeGLU;
Gemma 2's sandwich norms, query_pre_attn_scalar, attention and final soft-caps (small enough that
the inputs reach them: ``test_soft_caps_and_windows_bite`` proves it) and a window shorter than the
input; Gemma 3's per-head q/k norms and separate rotary settings for sliding and full layers;
Phi-3's fused projections, partial rotary dimensions and longrope; OLMo 2's post-norms and
full-width q/k norms. Weights are drawn with initializer_range=0.3 and norm weights and biases at
random, so a wrong step moves the logits far beyond the 1e-5 tolerance.
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
from leanformers.errors import ConfigError
from leanformers.modeling.attention import KVCache
from leanformers.models import decoder

TINY = {
    "vocab_size": 100, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 3,
    "num_attention_heads": 4, "num_key_value_heads": 2, "initializer_range": 0.3, "max_position_embeddings": 64,
    "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
}
SEQ = 12
FULL, SLIDING = "full_attention", "sliding_attention"
# Phi-3 rotates half of each 8-channel head: 2 channel pairs, so 2 factors each. The prompt of the
# generation tests (7 positions) already passes original_max_position_embeddings=6: the long factors
# apply from the prefill on (crossing it mid-generation, the reference recomputes its cache).
PHI3_LONGROPE = {"rope_type": "longrope", "short_factor": [1.0, 2.5], "long_factor": [3.0, 7.0]}
# name -> (reference config class, our family prefix, config overrides).
CASES = {
    "gemma": ("GemmaConfig", "Gemma", {"head_dim": 8}),
    "gemma2-caps-window": ("Gemma2Config", "Gemma2", {
        "head_dim": 8, "query_pre_attn_scalar": 16, "sliding_window": 3, "attn_logit_softcapping": 1.0,
        "final_logit_softcapping": 2.0, "tie_word_embeddings": False}),
    "gemma3-local-base": ("Gemma3TextConfig", "Gemma3Text", {
        "head_dim": 8, "query_pre_attn_scalar": 8, "sliding_window": 4, "final_logit_softcapping": 3.0,
        "layer_types": [SLIDING, FULL, SLIDING],
        "rope_parameters": {FULL: {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000.0},
                         SLIDING: {"rope_type": "default", "rope_theta": 10.0}}}),
    "phi3-longrope-partial": ("Phi3Config", "Phi3", {
        "partial_rotary_factor": 0.5, "original_max_position_embeddings": 6, "rope_theta": 100.0,
        "rope_scaling": PHI3_LONGROPE}),
    "phi3-window-partial": ("Phi3Config", "Phi3", {"partial_rotary_factor": 0.75, "sliding_window": 4,
                                                         "tie_word_embeddings": True}),
    "olmo2": ("Olmo2Config", "Olmo2", {"attention_bias": True}),
}
LENGTH_DEPENDENT = {"phi3-longrope-partial"}  # rotary angles depend on the input's longest position


def lm_class(family: str) -> str:
    return "Gemma3ForCausalLM" if family == "Gemma3Text" else f"{family}ForCausalLM"


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict:
    """name -> (family, folder holding the reference's ForCausalLM, the reference model), built lazily."""
    built: dict = {}

    def get(name: str):
        if name not in built:
            ref_config, family, overrides = CASES[name]
            config = getattr(transformers, ref_config)(**{**TINY, **overrides})
            ref = build_reference(lm_class(family), config)
            # The reference starts biases at 0 and norm weights at 1 (Gemma: 0), where a missing bias
            # or a norm's offset would not show: draw them at random too.
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
    """Three rows of 12 positions, left padded by 0, 3 and 6."""
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, TINY["vocab_size"], (3, SEQ), generator=gen)
    attention_mask = torch.ones(3, SEQ, dtype=torch.long)
    attention_mask[1, :3] = 0
    attention_mask[2, :6] = 0
    return input_ids.masked_fill(attention_mask == 0, 0), attention_mask


def prompts() -> tuple[torch.Tensor, torch.Tensor]:
    """Three left-padded prompts of 7, 4 and 2 real tokens."""
    gen = torch.Generator().manual_seed(3)
    input_ids = torch.randint(3, TINY["vocab_size"], (3, 7), generator=gen)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, :3] = 0
    attention_mask[2, :5] = 0
    return input_ids.masked_fill(attention_mask == 0, 0), attention_mask


def ours(family: str, path: Path, head: str = "ForCausalLM"):
    name = lm_class(family) if head == "ForCausalLM" else f"{family}{head}"
    return getattr(decoder, name).from_pretrained(path)


@pytest.mark.parametrize("name", list(CASES))
def test_logits_and_hidden_states_match_reference(checkpoints, name):
    family, path, ref = checkpoints(name)
    model = ours(family, path)
    input_ids, attention_mask = batch()
    # The reference's forward counts positions through the padding, its generation loop real tokens only.
    for positions in (None, decoder.left_padded_positions(attention_mask)):
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": positions,
                      "output_hidden_states": True}
        expected, got = run(ref, **inputs), run(model, **inputs)
        assert list(got.keys()) == list(expected.keys())
        assert_tensors_close(got.logits, expected.logits, f"{name}.logits")
        assert_tensors_close(got.hidden_states, expected.hidden_states, f"{name}.hidden_states")
        assert isinstance(got.past_key_values, KVCache)


@pytest.mark.parametrize("name", ["gemma", "gemma3-local-base", "olmo2"])
def test_base_model_and_inputs_embeds_match_reference(checkpoints, name):
    family, path, _ = checkpoints(name)
    ref = load_reference(f"{family}Model", path)
    model = ours(family, path, "Model")
    input_ids, attention_mask = batch(2)
    expected = run(ref, input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    got = run(model, input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    assert list(got.keys()) == list(expected.keys()) == ["last_hidden_state"]
    assert_tensors_close(got.last_hidden_state, expected.last_hidden_state, "last_hidden_state")
    # Gemma scales inside its embedding module: embeddings passed directly are used as they are.
    embeds = model.get_input_embeddings()(input_ids)
    assert_tensors_close(embeds, ref.get_input_embeddings()(input_ids), "embeddings")
    got = run(model, inputs_embeds=embeds * 0.5, attention_mask=attention_mask, use_cache=False)
    expected = run(ref, inputs_embeds=embeds * 0.5, attention_mask=attention_mask, use_cache=False)
    assert_tensors_close(got.last_hidden_state, expected.last_hidden_state, "from inputs_embeds")


@pytest.mark.parametrize("name", ["gemma3-local-base", "olmo2"])
def test_bfloat16_embeddings_and_norms_equal_reference(checkpoints, name):
    """In bfloat16 Gemma's embedding factor is rounded to the weights' dtype (sqrt(32) -> 5.65625)
    and Gemma's and OLMo 2's norms scale in float32 before casting: bit for bit the reference's.
    (Whole forwards differ by a few bfloat16 steps: the attention kernels sum in other orders.)"""
    family, path, _ = checkpoints(name)
    ref = load_reference(lm_class(family), path, dtype=torch.bfloat16)
    model = getattr(decoder, lm_class(family)).from_pretrained(path, dtype=torch.bfloat16)
    input_ids, _ = batch()
    assert torch.equal(model.get_input_embeddings()(input_ids), ref.get_input_embeddings()(input_ids))
    hidden = torch.randn(3, SEQ, TINY["hidden_size"], generator=torch.Generator().manual_seed(0)) * 3
    hidden = hidden.to(torch.bfloat16)
    with torch.no_grad():
        for key in ("model.norm", "model.layers.0.post_feedforward_layernorm", "model.layers.1.self_attn.k_norm"):
            width = model.get_submodule(key).weight.shape[0]
            got = model.get_submodule(key)(hidden[..., :width])
            assert torch.equal(got, ref.get_submodule(key)(hidden[..., :width])), key
            assert got.dtype == torch.bfloat16


def test_phi3_residual_dropout_applies_in_training_only(checkpoints):
    _, path, ref = checkpoints("phi3-window-partial")
    model = decoder.Phi3ForCausalLM.from_pretrained(path, resid_pdrop=0.5)
    assert [layer.residual_dropout for layer in model.model.layers] == [0.5] * 3
    input_ids, attention_mask = batch()
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
    assert_tensors_close(run(model, **inputs).logits, run(ref, **inputs).logits, "eval")
    model.train()
    assert (run(model, **inputs).logits - run(model, **inputs).logits).abs().max() > 1e-2


def test_soft_caps_and_windows_bite(checkpoints):
    """The Gemma 2 case's inputs reach both soft-caps and its window: removing either changes the
    logits far beyond the tolerance, so the parity above checks them."""
    family, path, _ = checkpoints("gemma2-caps-window")
    model = ours(family, path)
    input_ids, attention_mask = batch()
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False}
    capped = run(model, **inputs).logits
    assert capped.abs().max() > 0.9 * model.config.final_logit_softcapping
    attentions = [layer.self_attn for layer in model.model.layers]
    assert [a.window for a in attentions] == [3, None, 3]
    assert all(a.softcap == 1.0 for a in attentions)
    for a in attentions:
        a.softcap = None
    assert (run(model, **inputs).logits - capped).abs().max() > 1e-2
    for a in attentions:
        a.softcap, a.window = 1.0, None
    assert (run(model, **inputs).logits - capped).abs().max() > 1e-2
    model.config.final_logit_softcapping = None
    assert run(model, **inputs).logits.abs().max() > 1.5 * 2.0


@pytest.mark.parametrize("name", list(CASES))
def test_incremental_decoding_equals_full_forward_and_reference(checkpoints, name):
    """Prefill 6 positions, then one token per call through the cache: each step equals the
    reference's own cached step and, where the rotary angles do not depend on the input's length,
    the full forward at that position."""
    family, path, ref = checkpoints(name)
    model = ours(family, path)
    input_ids, attention_mask = batch(3)
    positions = decoder.left_padded_positions(attention_mask)
    full = run(model, input_ids=input_ids, attention_mask=attention_mask, position_ids=positions).logits
    length_free = name not in LENGTH_DEPENDENT
    # Against our own full forward (another kernel, another summation order) the reference itself
    # drifts by up to 1.2e-5 of the logits' scale (Gemma's scaled embeddings make them large).
    drift = {"rtol": 1e-5, "atol": 2e-5 * full.abs().max().item()}
    prefill = 6
    step = {"input_ids": input_ids[:, :prefill], "attention_mask": attention_mask[:, :prefill],
                "position_ids": positions[:, :prefill], "use_cache": True}
    got, expected = run(model, **step), run(ref, **step)
    if length_free:
        # Padded query rows see no key at all; the explicit (soft-capped) softmax spreads them over
        # every key, so they differ between lengths (in the reference too) and are not compared.
        real = attention_mask[:, :prefill, None].bool()
        assert_tensors_close(got.logits * real, full[:, :prefill] * real, "prefill vs full", drift)
    assert_tensors_close(got.logits, expected.logits, "prefill vs reference")
    cache, ref_cache = got.past_key_values, expected.past_key_values
    for t in range(prefill, SEQ):
        step = {"input_ids": input_ids[:, t:t + 1], "attention_mask": attention_mask[:, :t + 1],
                    "position_ids": positions[:, t:t + 1], "use_cache": True}
        got = run(model, past_key_values=cache, **step)
        expected = run(ref, past_key_values=ref_cache, **step)
        assert got.past_key_values is cache and cache.get_seq_length() == t + 1
        if length_free:
            assert_tensors_close(got.logits[:, 0], full[:, t], f"step {t} vs full", drift)
        assert_tensors_close(got.logits, expected.logits, f"step {t} vs reference")


@pytest.mark.parametrize("name", list(CASES))
def test_greedy_and_top_k_1_generation_match_reference(checkpoints, name):
    family, path, _ = checkpoints(name)
    ref, model = load_reference(lm_class(family), path), ours(family, path)
    input_ids, attention_mask = prompts()
    # No EOS: every row runs the full 32 steps, through the window and (Phi-3) the long factors.
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "max_new_tokens": 32, "eos_token_id": None,
                  "pad_token_id": 0}
    expected = ref.generate(**inputs, do_sample=False)
    got = model.generate(**inputs, do_sample=False)
    assert got.shape == expected.shape == (3, 7 + 32)
    assert torch.equal(got, expected), f"\nours:\n{got}\nreference:\n{expected}"
    assert len(set(got[0, 7:].tolist())) > 3, "degenerate continuation: the check would be weak"
    torch.manual_seed(0)
    assert torch.equal(model.generate(**inputs, do_sample=True, top_k=1), expected)


@pytest.mark.parametrize("name", list(CASES))
def test_save_pretrained_round_trips_through_reference(checkpoints, tmp_path, name):
    family, path, ref = checkpoints(name)
    model = ours(family, path)
    model.save_pretrained(tmp_path)
    reloaded = load_reference(lm_class(family), tmp_path)
    for key, value in ref.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key
    input_ids, attention_mask = batch()
    expected = run(ref, input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    got = run(reloaded, input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    assert_tensors_close(got, expected, "reloaded")
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == ref.config.tie_word_embeddings
    saved, loaded = model.config.to_dict(), ours(family, tmp_path).config.to_dict()
    assert {**loaded, "_name_or_path": None} == {**saved, "_name_or_path": None}


@pytest.mark.parametrize("name", ["gemma", "gemma2-caps-window", "gemma3-local-base", "phi3-window-partial",
                                  "olmo2"])
def test_auto_classes_pick_the_family(checkpoints, name):
    family, path, _ = checkpoints(name)
    assert type(auto.AutoModelForCausalLM.from_pretrained(path)) is getattr(decoder, lm_class(family))
    assert type(auto.AutoModel.from_pretrained(path)) is getattr(decoder, f"{family}Model")


DEFAULT_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "rope_parameters", "tie_word_embeddings", "rms_norm_eps",
                "max_position_embeddings", "layer_types", "sliding_window", "query_pre_attn_scalar",
                "attn_logit_softcapping", "final_logit_softcapping", "hidden_act", "hidden_activation",
                "pad_token_id", "bos_token_id", "eos_token_id", "attention_bias", "original_max_position_embeddings")


@pytest.mark.parametrize(
    ("family", "kwargs"),
    [
        ("Gemma", {}),
        ("Gemma", {"hidden_act": "gelu", "rope_theta": 500.0}),  # the original files' "gelu" means tanh
        ("Gemma2", {}),
        ("Gemma2", {"num_hidden_layers": 5, "layer_types": None}),
        ("Gemma3Text", {}),
        # The older layout: one base and scaling for full layers, a local base, a pattern of layers.
        ("Gemma3Text", {"num_hidden_layers": 7, "rope_theta": 20000.0, "rope_local_base_freq": 500.0,
                            "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "sliding_window_pattern": 3}),
        ("Phi3", {}),
        ("Phi3", {"partial_rotary_factor": 0.5, "rope_scaling": {"type": "longrope", "short_factor": [1.0] * 24,
                                                               "long_factor": [2.0] * 24}}),
        ("Olmo2", {}),
    ],
)
def test_config_defaults_and_older_layouts_match_reference(family, kwargs):
    ours_config = getattr(decoder, f"{family}Config")(**kwargs)
    ref = getattr(transformers, f"{family}Config")(**kwargs)
    for key in DEFAULT_KEYS:
        if hasattr(ref, key):  # ours may keep shared keys (attention_bias) a family does not read
            assert getattr(ours_config, key, None) == getattr(ref, key), key
    assert ours_config.head_dim == (getattr(ref, "head_dim", None) or ref.hidden_size // ref.num_attention_heads)
    layers = ours_config.num_hidden_layers
    assert ours_config.layer_windows() == [
        ref.sliding_window if getattr(ref, "layer_types", None) and ref.layer_types[i] == SLIDING
        or family == "Phi3" else None for i in range(layers)
    ]


@pytest.mark.parametrize(
    ("family", "overrides", "message"),
    [
        ("Phi3", {"partial_rotary_factor": 0.375}, "3 channels"),
        ("Phi3", {"partial_rotary_factor": 1.5}, "partial_rotary_factor"),
        ("Phi3", {"partial_rotary_factor": 0.5, "rope_scaling": {**PHI3_LONGROPE, "short_factor": [1.0] * 4}},
         "short_factor.*2 numbers"),
        ("Phi3", {"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "rope_type 'linear' is not supported"),
        ("Llama", {"partial_rotary_factor": 0.5}, "partial_rotary_factor other than 1.0"),
        ("Gemma2", {"head_dim": 8, "attn_logit_softcapping": -1.0}, "attn_logit_softcapping"),
        ("Gemma2", {"head_dim": 8, "final_logit_softcapping": "big"}, "final_logit_softcapping"),
        ("Gemma2", {"head_dim": 8, "query_pre_attn_scalar": 0}, "query_pre_attn_scalar"),
        ("Gemma2", {"head_dim": 8, "layer_types": [FULL]}, "layer_types"),
        ("Gemma2", {"head_dim": 8, "hidden_activation": "geglu-ish"}, "hidden_activation"),
        ("Gemma", {"head_dim": 8, "use_bidirectional_attention": True}, "use_bidirectional_attention"),
        ("Gemma3Text", {"head_dim": 8, "rope_parameters": {"rope_type": "default", "rope_theta": 1.0}},
         "'full_attention' and 'sliding_attention'"),
        ("Gemma3Text", {"head_dim": 8, "rope_parameters": {SLIDING: {"rope_type": "linear"}}},
         r"rope_parameters\['sliding_attention'\]"),
        ("Gemma3Text", {"head_dim": 8, "sliding_window_pattern": 0}, "sliding_window_pattern"),
        ("Olmo2", {"num_key_value_heads": 3}, "multiple of num_key_value_heads"),
        ("Phi3", {"resid_pdrop": 1.5}, "resid_pdrop"),
    ],
)
def test_bad_configs_raise_config_error(family, overrides, message):
    with pytest.raises(ConfigError, match=message):
        getattr(decoder, f"{family}Config")(**{**TINY, **overrides})

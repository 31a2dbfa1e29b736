"""GPT-2 against the reference on tiny random checkpoints: a left-padded batch's logits, hidden
states and attentions (several attention-scaling flags, activations and widths), cached decoding,
greedy and seeded generation, each head with its loss, saving, hub-style files without the
``transformer.`` prefix and with the old mask buffers, the Auto classes, config defaults and errors.

Weights are drawn with initializer_range=0.25 and the LayerNorm and Conv1D biases at random too, so
attention is far from uniform and a missing bias, a wrong scale or a transposed weight moves the
logits far beyond the 1e-5 tolerance.
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
    state_dicts_equal,
    transformers,
)
from safetensors.torch import save_file

from leanformers import auto
from leanformers.errors import ConfigError, InputError
from leanformers.modeling.attention import KVCache
from leanformers.models import gpt2
from leanformers.models.decoder import left_padded_positions

TINY = dict(vocab_size=120, n_embd=32, n_layer=2, n_head=4, n_positions=48, initializer_range=0.25,
            bos_token_id=1, eos_token_id=2, pad_token_id=0)
SEQ = 10
CASES = {
    "default": {},
    # Scores unscaled by head width but by 1 / (layer + 1); a narrower feed-forward; another activation.
    "flags": dict(scale_attn_weights=False, scale_attn_by_inverse_layer_idx=True, n_inner=40,
                  activation_function="gelu", layer_norm_epsilon=1e-3),
    "upcast-untied": dict(reorder_and_upcast_attn=True, activation_function="relu", tie_word_embeddings=False),
}


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """name -> (folder holding the reference's GPT2LMHeadModel, the reference model), built lazily."""
    built: dict = {}

    def get(name: str):
        if name not in built:
            ref = build_reference("GPT2LMHeadModel", transformers.GPT2Config(**{**TINY, **CASES[name]}))
            with torch.no_grad():
                for key, param in ref.named_parameters():
                    if key.endswith("bias"):
                        param.normal_(0.0, 0.3)
                    elif key.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                        param.normal_(1.0, 0.3)
            path = tmp_path_factory.mktemp(name)
            ref.save_pretrained(path)
            built[name] = path, ref
        return built[name]

    return get


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows with 0, 3 and 6 pads on the left."""
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, TINY["vocab_size"], (3, SEQ), generator=gen)
    attention_mask = torch.ones(3, SEQ, dtype=torch.long)
    attention_mask[1, :3] = 0
    attention_mask[2, :6] = 0
    return input_ids.masked_fill(attention_mask == 0, 0), attention_mask


@pytest.mark.parametrize("name", list(CASES))
def test_logits_and_hidden_states_match_reference(checkpoints, name):
    path, ref = checkpoints(name)
    model = gpt2.GPT2LMHeadModel.from_pretrained(path)
    input_ids, attention_mask = batch()
    for positions in (None, left_padded_positions(attention_mask)):
        inputs = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                      output_hidden_states=True)
        expected, got = run(ref, **inputs), run(model, **inputs)
        assert list(got.keys()) == list(expected.keys()) == ["logits", "past_key_values", "hidden_states"]
        real = attention_mask.bool()[..., None]
        assert_tensors_close(got.logits * real, expected.logits * real, f"{name}.logits")
        assert_tensors_close(tuple(h * real for h in got.hidden_states),
                             tuple(h * real for h in expected.hidden_states), f"{name}.hidden_states")
        assert isinstance(got.past_key_values, KVCache) and got.past_key_values.get_seq_length() == SEQ
    # Nothing was left unloaded: the saved head is tied (or not) as the config says.
    assert (model.lm_head.weight is model.transformer.wte.weight) == CASES[name].get("tie_word_embeddings", True)
    state_dicts_equal(model, ref)


@pytest.mark.parametrize("name", ["default", "flags"])
def test_attention_weights_match_reference_eager(checkpoints, name):
    path, _ = checkpoints(name)
    ref = load_reference("GPT2LMHeadModel", path, eager=True)
    model = gpt2.GPT2LMHeadModel.from_pretrained(path)
    input_ids, attention_mask = batch()
    positions = left_padded_positions(attention_mask)
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, output_attentions=True)
    expected, got = run(ref, **inputs), run(model, **inputs)
    assert len(got.attentions) == len(expected.attentions) == TINY["n_layer"]
    real = attention_mask.bool()[:, None, :, None]  # padded query rows attend to nothing real
    for i, (a, b) in enumerate(zip(got.attentions, expected.attentions)):
        assert_tensors_close(a * real, b * real, f"attentions[{i}]")
    real = attention_mask.bool()[..., None]
    assert_tensors_close(got.logits * real, expected.logits * real, "logits")


def test_base_model_matches_reference_with_token_types(checkpoints):
    path, _ = checkpoints("flags")
    ref = load_reference("GPT2Model", path)
    model = gpt2.GPT2Model.from_pretrained(path)
    input_ids, attention_mask = batch(2)
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, SEQ // 2:] = 5
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, use_cache=False)
    expected, got = run(ref, **inputs), run(model, **inputs)
    assert list(got.keys()) == list(expected.keys()) == ["last_hidden_state"]
    real = attention_mask.bool()[..., None]
    assert_tensors_close(got.last_hidden_state * real, expected.last_hidden_state * real, "last_hidden_state")
    as_tuple = run(model, **inputs, return_dict=False)
    assert_tensors_close(as_tuple[0] * real, expected.last_hidden_state * real, "tuple[0]")
    embedded = run(model, inputs_embeds=model.get_input_embeddings()(input_ids), attention_mask=attention_mask,
                   token_type_ids=token_type_ids, use_cache=False)
    assert_tensors_close(embedded.last_hidden_state, got.last_hidden_state, "inputs_embeds")


def test_incremental_decoding_equals_full_forward_and_reference(checkpoints):
    path, ref = checkpoints("flags")
    model = gpt2.GPT2LMHeadModel.from_pretrained(path)
    input_ids, attention_mask = batch(3)
    positions = left_padded_positions(attention_mask)
    full = run(model, input_ids=input_ids, attention_mask=attention_mask, position_ids=positions).logits
    prefill = 6
    step = dict(input_ids=input_ids[:, :prefill], attention_mask=attention_mask[:, :prefill],
                position_ids=positions[:, :prefill], use_cache=True)
    got, expected = run(model, **step), run(ref, **step)
    real = attention_mask[:, :prefill].bool()[..., None]
    assert_tensors_close(got.logits * real, full[:, :prefill] * real, "prefill vs full")
    assert_tensors_close(got.logits * real, expected.logits * real, "prefill vs reference")
    cache, ref_cache = got.past_key_values, expected.past_key_values
    for t in range(prefill, SEQ):
        step = dict(input_ids=input_ids[:, t:t + 1], attention_mask=attention_mask[:, :t + 1],
                    position_ids=positions[:, t:t + 1], use_cache=True)
        got, expected = run(model, past_key_values=cache, **step), run(ref, past_key_values=ref_cache, **step)
        assert got.past_key_values is cache and cache.get_seq_length() == t + 1
        assert_tensors_close(got.logits[:, 0], full[:, t], f"step {t} vs full")
        assert_tensors_close(got.logits, expected.logits, f"step {t} vs reference")
    # Without position_ids the cached steps continue from the cache's length, as the reference's do.
    first = run(model, input_ids=input_ids[:1, :4], use_cache=True)
    nxt = run(model, input_ids=input_ids[:1, 4:7], past_key_values=first.past_key_values)
    assert_tensors_close(nxt.logits, run(model, input_ids=input_ids[:1, :7]).logits[:, 4:], "default positions")


def prompts() -> tuple[torch.Tensor, torch.Tensor]:
    """Three left-padded prompts of 7, 4 and 2 real tokens."""
    gen = torch.Generator().manual_seed(3)
    input_ids = torch.randint(3, TINY["vocab_size"], (3, 7), generator=gen)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, :3] = 0
    attention_mask[2, :5] = 0
    return input_ids.masked_fill(attention_mask == 0, 0), attention_mask


@pytest.mark.parametrize("name", ["default", "upcast-untied"])
def test_generate_matches_reference(checkpoints, name):
    path, ref = checkpoints(name)
    model = gpt2.GPT2LMHeadModel.from_pretrained(path)
    input_ids, attention_mask = prompts()
    # No EOS: every row runs all 32 steps, so each step's token is compared.
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=32, eos_token_id=None,
                  pad_token_id=0)
    expected = ref.generate(**inputs)
    greedy = model.generate(**inputs)
    assert greedy.shape == expected.shape == (3, 39)
    assert torch.equal(greedy, expected), f"\nours:\n{greedy}\nreference:\n{expected}"
    assert len(set(greedy[0, 7:].tolist())) > 3  # the logits are far from flat: no single repeated token
    assert torch.equal(model.generate(**inputs, do_sample=True, top_k=1), greedy)
    for settings in ({"do_sample": True}, {"do_sample": True, "temperature": 0.8, "top_k": 0, "top_p": 0.9}):
        torch.manual_seed(11)
        expected = ref.generate(**inputs, **settings)
        torch.manual_seed(11)
        assert torch.equal(model.generate(**inputs, **settings), expected), settings
    # With the checkpoint's own settings (EOS 2 stops rows), as a caller would run it.
    expected = ref.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=12)
    assert torch.equal(model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=12), expected)


def test_learned_positions_cannot_extrapolate(checkpoints):
    path, _ = checkpoints("default")
    model = gpt2.GPT2LMHeadModel.from_pretrained(path)
    limit = TINY["n_positions"]
    long = torch.randint(3, TINY["vocab_size"], (1, limit + 1))
    with pytest.raises(InputError, match=f"n_positions={limit}.*truncat"):
        model(long)
    run(model, input_ids=long[:, :limit])  # exactly n_positions fits
    with pytest.raises(InputError, match="position 48"):
        model(long, position_ids=torch.arange(limit + 1)[None])
    # The cache counts: one more token past a full table is refused too.
    cache = run(model, input_ids=long[:, :limit]).past_key_values
    with pytest.raises(InputError, match=f"n_positions={limit}"):
        model(long[:, :1], past_key_values=cache)
    with pytest.raises(InputError, match=f"n_positions={limit}"):
        model.generate(long[:, :40], max_new_tokens=20, eos_token_id=None)


def test_lm_loss_matches_reference(checkpoints):
    path, ref = checkpoints("flags")
    model = gpt2.GPT2LMHeadModel.from_pretrained(path)
    input_ids, attention_mask = batch()
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=False)
    expected, got = run(ref, **inputs), run(model, **inputs)
    assert list(got.keys()) == list(expected.keys()) == ["loss", "logits"]
    assert_tensors_close(got.loss, expected.loss, "loss")
    last = run(model, input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=1).logits
    assert_tensors_close(last, got.logits[:, -1:], "logits_to_keep=1")


@pytest.fixture(scope="session")
def head_checkpoints(tmp_path_factory):
    """task -> folder with the reference's head model (3 labels, pad id 0)."""
    folders = {}
    for task in ("SequenceClassification", "TokenClassification"):
        config = transformers.GPT2Config(**TINY, num_labels=3, activation_function="gelu_pytorch_tanh")
        ref = build_reference(f"GPT2For{task}", config)
        folders[task] = tmp_path_factory.mktemp(task)
        ref.save_pretrained(folders[task])
    return folders


def test_sequence_classification_pools_last_real_token(head_checkpoints):
    path = head_checkpoints["SequenceClassification"]
    ref = load_reference("GPT2ForSequenceClassification", path)
    model = gpt2.GPT2ForSequenceClassification.from_pretrained(path)
    input_ids, attention_mask = batch()
    right = input_ids.clone()
    right[1] = torch.cat([input_ids[1, 3:], input_ids[1, :3]])  # the same row right padded
    labels = torch.tensor([0, 2, 1])
    for ids, mask in ((input_ids, attention_mask), (right, (right != 0).long())):
        inputs = dict(input_ids=ids, attention_mask=mask, labels=labels)
        expected, got = run(ref, **inputs), run(model, **inputs)
        assert list(got.keys()) == list(expected.keys()) == ["loss", "logits", "past_key_values"]
        assert_tensors_close(got.logits, expected.logits, "logits")
        assert_tensors_close(got.loss, expected.loss, "loss")
    model.config.problem_type = ref.config.problem_type = None  # inferred again from float labels
    multi = run(model, input_ids=input_ids, attention_mask=attention_mask, labels=torch.ones(3, 3), use_cache=False)
    expected = run(ref, input_ids=input_ids, attention_mask=attention_mask, labels=torch.ones(3, 3), use_cache=False)
    assert_tensors_close(multi.loss, expected.loss, "multi-label loss")
    model.config.pad_token_id = None
    ref.config.pad_token_id = None
    with pytest.raises(InputError, match="pad_token_id"):
        model(input_ids)
    assert_tensors_close(run(model, input_ids=input_ids[:1]).logits, run(ref, input_ids=input_ids[:1]).logits,
                         "one row, no pad id")


def test_token_classification_matches_reference(head_checkpoints):
    path = head_checkpoints["TokenClassification"]
    ref = load_reference("GPT2ForTokenClassification", path)
    model = gpt2.GPT2ForTokenClassification.from_pretrained(path)
    assert model.dropout == ref.dropout.p == 0.1
    input_ids, attention_mask = batch()
    labels = torch.randint(0, 3, input_ids.shape).masked_fill(attention_mask == 0, -100)
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels, output_hidden_states=True)
    expected, got = run(ref, **inputs), run(model, **inputs)
    assert list(got.keys()) == list(expected.keys()) == ["loss", "logits", "hidden_states"]
    real = attention_mask.bool()[..., None]
    assert_tensors_close(got.logits * real, expected.logits * real, "logits")
    assert_tensors_close(got.loss, expected.loss, "loss")


@pytest.mark.parametrize("name", ["default", "upcast-untied"])
def test_save_pretrained_round_trips_through_reference(checkpoints, tmp_path, name):
    path, ref = checkpoints(name)
    model = gpt2.GPT2LMHeadModel.from_pretrained(path)
    model.save_pretrained(tmp_path)
    reloaded = load_reference("GPT2LMHeadModel", tmp_path)
    state_dicts_equal(reloaded, ref, set(ref.state_dict()))
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["n_embd"] == 32 and saved["n_layer"] == 2 and "hidden_size" not in saved
    again = gpt2.GPT2LMHeadModel.from_pretrained(tmp_path)
    input_ids, attention_mask = batch()
    assert torch.equal(run(again, input_ids=input_ids, attention_mask=attention_mask).logits,
                       run(model, input_ids=input_ids, attention_mask=attention_mask).logits)


def test_hub_layout_without_prefix_and_with_mask_buffers(checkpoints, tmp_path):
    """The hub's gpt2 files: base keys with no ``transformer.`` prefix, no lm_head (tied), and each
    layer's ``attn.bias`` / ``attn.masked_bias`` buffers; loaded quietly into the head and the base."""
    path, ref = checkpoints("default")
    state = {key: value.clone() for key, value in ref.transformer.state_dict().items()}
    n = TINY["n_positions"]
    for i in range(TINY["n_layer"]):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(n, n, dtype=torch.uint8))[None, None]
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((path / "config.json").read_text())
    config.pop("dtype", None)
    (tmp_path / "config.json").write_text(json.dumps({**config, "n_ctx": n}))
    input_ids, attention_mask = batch()
    expected = run(ref, input_ids=input_ids, attention_mask=attention_mask).logits
    model, info = gpt2.GPT2LMHeadModel.from_pretrained(tmp_path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    assert model.config.n_ctx == n
    assert torch.equal(run(model, input_ids=input_ids, attention_mask=attention_mask).logits, expected)
    base, info = gpt2.GPT2Model.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == info["unexpected_keys"] == []
    state_dicts_equal(base, ref.transformer)
    # And the other way: a head checkpoint (prefixed keys) into the base model.
    base = gpt2.GPT2Model.from_pretrained(path)
    state_dicts_equal(base, ref.transformer)


def test_auto_classes_pick_gpt2(checkpoints, head_checkpoints):
    path, _ = checkpoints("default")
    assert type(auto.AutoModelForCausalLM.from_pretrained(path)) is gpt2.GPT2LMHeadModel
    assert type(auto.AutoModel.from_pretrained(path)) is gpt2.GPT2Model
    assert type(auto.AutoConfig.from_pretrained(path)) is gpt2.GPT2Config
    seq = auto.AutoModelForSequenceClassification.from_pretrained(head_checkpoints["SequenceClassification"])
    assert type(seq) is gpt2.GPT2ForSequenceClassification
    tok = auto.AutoModelForTokenClassification.from_pretrained(head_checkpoints["TokenClassification"])
    assert type(tok) is gpt2.GPT2ForTokenClassification


def test_config_defaults_and_aliases_match_reference():
    for kwargs in ({}, dict(hidden_size=64, num_attention_heads=8, num_hidden_layers=3, max_position_embeddings=256)):
        ours, ref = gpt2.GPT2Config(**kwargs), transformers.GPT2Config(**kwargs)
        for key in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner", "activation_function",
                    "resid_pdrop", "embd_pdrop", "attn_pdrop", "layer_norm_epsilon", "initializer_range",
                    "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "use_cache",
                    "bos_token_id", "eos_token_id", "pad_token_id", "tie_word_embeddings", "summary_type",
                    "summary_first_dropout", "hidden_size", "num_attention_heads", "num_hidden_layers",
                    "max_position_embeddings"):
            assert getattr(ours, key) == getattr(ref, key), key
    config = gpt2.GPT2Config(n_embd=64, n_head=8)
    config.hidden_size = 128
    assert config.n_embd == 128 and config.inner_size == 512


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(n_head=5), "multiple of num_attention_heads"),
        (dict(n_embd=0), "n_embd"),
        (dict(n_positions=-1), "n_positions"),
        (dict(n_inner=0), "n_inner"),
        (dict(activation_function="gelu_newer"), "activation_function"),
        (dict(layer_norm_epsilon=0), "layer_norm_epsilon"),
        (dict(attn_pdrop=2.0), "attn_pdrop"),
        (dict(scale_attn_weights="yes"), "scale_attn_weights"),
        (dict(pad_token_id=500), "pad_token_id"),
    ],
)
def test_bad_configs_raise_config_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        gpt2.GPT2Config(**{**TINY, **overrides})


def test_cross_attention_is_refused_clearly():
    with pytest.raises(ConfigError, match="add_cross_attention"):
        gpt2.GPT2Model(gpt2.GPT2Config(**TINY, add_cross_attention=True))


def test_reorder_and_upcast_attn_scores_in_float32_for_bfloat16(checkpoints):
    """In half precision the flag computes attention in float32 (the reference does so in its eager
    path only); the cache then holds float32 keys, which shows the path ran. Ours is as close to
    the float32 model as the reference's bfloat16 eager run is (bfloat16 rounding dominates both)."""
    path, full = checkpoints("upcast-untied")
    ref = load_reference("GPT2LMHeadModel", path, eager=True, dtype=torch.bfloat16)
    model = gpt2.GPT2LMHeadModel.from_pretrained(path, dtype=torch.bfloat16)
    input_ids, attention_mask = batch()
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=left_padded_positions(attention_mask))
    exact, expected, got = run(full, **inputs).logits, run(ref, **inputs).logits, run(model, **inputs)
    assert got.logits.dtype == torch.bfloat16 and got.past_key_values.keys[0].dtype == torch.float32
    real = attention_mask.bool()[..., None]
    ours_error = ((got.logits.float() - exact) * real).abs().max()
    ref_error = ((expected.float() - exact) * real).abs().max()
    assert ours_error <= 1.25 * ref_error, (ours_error, ref_error)
    assert_tensors_close(got.logits * real, expected * real, "bf16 logits", {"rtol": 0.05, "atol": 0.1})


def test_bad_inputs_raise_input_error(checkpoints):
    path, _ = checkpoints("default")
    model = gpt2.GPT2LMHeadModel.from_pretrained(path)
    input_ids, attention_mask = batch()
    cases = [
        (dict(position_ids=-torch.ones(1, SEQ, dtype=torch.long)), "must not be negative"),
        (dict(position_ids=torch.zeros(1, SEQ)), "position_ids must hold integer"),
        (dict(token_type_ids=torch.zeros(3, 4, dtype=torch.long)), "token_type_ids must be"),
        (dict(attention_mask=attention_mask[:, :5]), "attention_mask"),
        (dict(past_key_values=((torch.zeros(1),),)), "past_key_values"),
        (dict(logits_to_keep=-1), "logits_to_keep"),
        (dict(labels=input_ids[:, :4]), "labels"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InputError, match=message):
            model(input_ids, **kwargs)
    with pytest.raises(InputError, match="input_ids holds ids"):
        model(input_ids + TINY["vocab_size"])

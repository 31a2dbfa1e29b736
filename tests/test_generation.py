"""generate() and GenerationConfig against the reference's generate on tiny random llama and qwen2
checkpoints: greedy ids exactly equal (single prompt, left-padded batch, length limits, several EOS
ids, repetition penalty), seeded sampling equal token for token, generation_config.json defaults
and their overrides, error cases.

Weights are drawn with initializer_range=0.2 so the logits are far from flat: a processor applied in
the wrong order or to the wrong positions changes the chosen tokens within a few steps.
"""

from __future__ import annotations

import json
import shutil
import threading

import pytest
import torch
from parity import build_reference, load_reference, transformers

from leanformers import auto
from leanformers.errors import ConfigError, InputError
from leanformers.modeling.generation import (
    GenerationConfig,
    TextIteratorStreamer,
    TextStreamer,
    generate,
)
from leanformers.models import decoder

TINY = {
    "vocab_size": 100, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "initializer_range": 0.2, "max_position_embeddings": 128,
    "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
}
FAMILIES = ("Llama", "Qwen2")


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict:
    """family -> (folder, reference model loaded from it, our model loaded from it)."""
    built = {}
    for family in FAMILIES:
        ref = build_reference(f"{family}ForCausalLM", getattr(transformers, f"{family}Config")(**TINY))
        path = tmp_path_factory.mktemp(family)
        ref.save_pretrained(path)
        ours = getattr(decoder, f"{family}ForCausalLM").from_pretrained(path)
        built[family] = path, load_reference(f"{family}ForCausalLM", path), ours
    return built


def prompts() -> tuple[torch.Tensor, torch.Tensor]:
    """Three left-padded prompts of 7, 4 and 2 real tokens."""
    gen = torch.Generator().manual_seed(3)
    input_ids = torch.randint(3, TINY["vocab_size"], (3, 7), generator=gen)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, :3] = 0
    attention_mask[2, :5] = 0
    return input_ids.masked_fill(attention_mask == 0, 0), attention_mask


def both(family: str, models: dict, seed: int | None = None, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    _, ref, ours = models[family]
    if seed is not None:
        torch.manual_seed(seed)
    expected = ref.generate(**kwargs)
    if seed is not None:
        torch.manual_seed(seed)
    got = ours.generate(**kwargs)
    return got, expected


def assert_same(got: torch.Tensor, expected: torch.Tensor) -> None:
    assert got.dtype == torch.long and got.shape == expected.shape, (got.shape, expected.shape)
    assert torch.equal(got, expected), f"\nours:\n{got}\nreference:\n{expected}"


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_matches_reference(models, family):
    input_ids, attention_mask = prompts()
    single = input_ids[:1]
    got, expected = both(family, models, input_ids=single)  # every length from the defaults: 20 new tokens
    assert got.shape == (1, 27)
    assert_same(got, expected)
    got, expected = both(family, models, input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=16)
    assert_same(got, expected)
    # The padded rows continue as they would alone: padding is masked and positions skip it.
    alone = models[family][2].generate(input_ids=input_ids[2:, 5:], max_new_tokens=16)
    assert torch.equal(alone, got[2:, 5:])
    # max_length counts the prompt.
    got, expected = both(family, models, input_ids=input_ids, attention_mask=attention_mask, max_length=10)
    assert got.shape == (3, 10)
    assert_same(got, expected)


def eos_ids(family: str, models: dict) -> list[int]:
    """Two tokens the greedy batch produces early in rows 0 and 1, used as EOS ids so rows stop at
    different steps."""
    input_ids, attention_mask = prompts()
    out = models[family][1].generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=12,
                                     eos_token_id=None, pad_token_id=0)
    return [int(out[0, 7 + 2]), int(out[1, 7 + 4])]


@pytest.mark.parametrize("family", FAMILIES)
def test_several_eos_ids_and_min_new_tokens(models, family):
    input_ids, attention_mask = prompts()
    eos = eos_ids(family, models)
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "max_new_tokens": 12, "eos_token_id": eos}
    for extra in ({"pad_token_id": 0}, {"pad_token_id": 5}, {}, {"min_new_tokens": 6}, {"min_length": 12}):
        got, expected = both(family, models, **inputs, **extra)
        assert_same(got, expected)
    # A finished row is filled with the pad id (the first EOS id when none is set).
    got = models[family][2].generate(**inputs, pad_token_id=5)
    assert (got[0, 7 + 3:] == 5).all() and got[0, 7 + 2] == eos[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_repetition_penalty_matches_reference(models, family):
    input_ids, attention_mask = prompts()
    for penalty in (1.5, 0.7):
        got, expected = both(family, models, input_ids=input_ids, attention_mask=attention_mask,
                             max_new_tokens=16, repetition_penalty=penalty)
        assert_same(got, expected)
    plain = models[family][2].generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=16)
    assert not torch.equal(got, plain)


SAMPLING = [
    {"do_sample": True},  # the default top_k=50 applies
    {"do_sample": True, "temperature": 0.7, "top_k": 0},
    {"do_sample": True, "temperature": 1.3, "top_k": 10, "top_p": 0.8},
    {"do_sample": True, "top_k": 0, "top_p": 0.6, "min_p": 0.1},
    {"do_sample": True, "top_k": 20, "repetition_penalty": 1.3, "num_return_sequences": 3},
]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("settings", range(len(SAMPLING)))
def test_seeded_sampling_matches_reference(models, family, settings):
    input_ids, attention_mask = prompts()
    got, expected = both(family, models, seed=11, input_ids=input_ids, attention_mask=attention_mask,
                         max_new_tokens=16, **SAMPLING[settings])
    assert_same(got, expected)


def test_sampling_top_k_1_is_greedy(models):
    input_ids, attention_mask = prompts()
    ours = models["Llama"][2]
    greedy = ours.generate(input_ids, attention_mask, max_new_tokens=10)
    assert torch.equal(ours.generate(input_ids, attention_mask, max_new_tokens=10, do_sample=True, top_k=1), greedy)
    # Without the cache every step reruns the whole sequence: same tokens.
    assert torch.equal(ours.generate(input_ids, attention_mask, max_new_tokens=10, use_cache=False), greedy)


def test_generation_config_json_defaults_and_overrides(models, tmp_path):
    path = tmp_path / "ckpt"
    shutil.copytree(models["Llama"][0], path)
    settings = {"do_sample": True, "temperature": 0.7, "max_new_tokens": 5, "top_k": 30, "eos_token_id": [2, 7],
                "bos_token_id": 1, "transformers_version": "5.23.0"}
    (path / "generation_config.json").write_text(json.dumps(settings))
    ref = load_reference("LlamaForCausalLM", path)
    ours = decoder.LlamaForCausalLM.from_pretrained(path)
    assert ours.generation_config.temperature == 0.7 and ours.generation_config.eos_token_id == [2, 7]
    assert ours.generation_config.to_dict()["transformers_version"] == "5.23.0"
    assert auto.AutoModelForCausalLM.from_pretrained(path).generation_config == ours.generation_config
    input_ids, attention_mask = prompts()
    cases = [
        {},  # the file's sampling settings and 5 new tokens
        {"temperature": 1.5, "max_new_tokens": 8},
        {"do_sample": False},
        {"generation_config": GenerationConfig(top_p=0.5)},  # unset fields still come from the file
        {"generation_config": GenerationConfig(do_sample=False, max_length=11)},
    ]
    for extra in cases:
        torch.manual_seed(5)
        reference_extra = dict(extra)
        if "generation_config" in extra:
            reference_extra["generation_config"] = transformers.GenerationConfig(**extra["generation_config"].to_dict())
        expected = ref.generate(input_ids=input_ids, attention_mask=attention_mask, **reference_extra)
        torch.manual_seed(5)
        got = ours.generate(input_ids=input_ids, attention_mask=attention_mask, **extra)
        assert_same(got, expected)
    # As in the reference, the file's max_new_tokens takes precedence over a passed max_length.
    assert got.shape[1] == 7 + 5


def test_generation_config_round_trip_and_model_fallback(models, tmp_path):
    config = GenerationConfig(do_sample=True, top_p=0.9, custom_key="kept")
    assert config.update(temperature=0.5, nonsense=1) == {"nonsense": 1}
    assert config.temperature == 0.5
    config.save_pretrained(tmp_path)
    again = GenerationConfig.from_pretrained(tmp_path)
    assert again == config and again.custom_key == "kept"
    assert GenerationConfig.from_pretrained(tmp_path, top_p=0.3).top_p == 0.3
    (tmp_path / "generation_config.json").write_text('{"top_p": 3}')
    with pytest.raises(ConfigError, match="top_p"):
        GenerationConfig.from_pretrained(tmp_path)
    # Without generation_config.json the special ids come from config.json.
    folder = tmp_path / "bare"
    shutil.copytree(models["Qwen2"][0], folder)
    (folder / "generation_config.json").unlink()
    model = decoder.Qwen2ForCausalLM.from_pretrained(folder)
    assert model.generation_config.to_dict() == {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
    # save_pretrained writes it back.
    model.save_pretrained(tmp_path / "saved")
    assert GenerationConfig.from_pretrained(tmp_path / "saved") == model.generation_config


class Bytes:
    """A byte-level tokenizer: ids from 128 are raw bytes, so a multi-byte character spans several
    tokens; the model's ids (< 100) are letters, with many spaces and line breaks among them."""

    def decode(self, ids: list[int], **kwargs) -> str:
        def byte(i: int) -> int:
            return i if i >= 128 else 32 if i % 4 == 0 else 10 if i % 9 == 0 else 97 + i % 26

        return bytes(byte(i) for i in ids).decode("utf-8", errors="replace")


def recorder(base: type) -> type:
    class Recorder(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.pieces = []

        def on_finalized_text(self, text, stream_end=False):
            self.pieces.append((text, stream_end))

    return Recorder


@pytest.mark.parametrize("skip_prompt", [False, True])
def test_text_streamer_releases_the_reference_pieces(models, skip_prompt):
    input_ids, _ = prompts()
    # Spaces and line breaks among the prompt and generated ids exercise every release rule.
    prompt = torch.tensor([[72, 32, 10, 65, 32, 66]])
    ours_streamer = recorder(TextStreamer)(Bytes(), skip_prompt=skip_prompt)
    ref_streamer = recorder(transformers.TextStreamer)(Bytes(), skip_prompt=skip_prompt)
    got = models["Llama"][2].generate(prompt, max_new_tokens=24, eos_token_id=None, streamer=ours_streamer)
    models["Llama"][1].generate(prompt, max_new_tokens=24, eos_token_id=None, streamer=ref_streamer)
    assert ours_streamer.pieces == ref_streamer.pieces
    assert sum(bool(text) for text, _ in ours_streamer.pieces) >= 3, ours_streamer.pieces  # released in steps
    shown = got[0, 6:] if skip_prompt else got[0]
    assert "".join(text for text, _ in ours_streamer.pieces) == Bytes().decode(shown.tolist())
    # "é" and "中" arrive byte by byte: no half character is ever released.
    streamer = recorder(TextStreamer)(Bytes())
    ids = [1, 4, *"é".encode(), 4, *"中".encode(), 2, 9, 3, *"é".encode()]
    for token in ids:
        streamer.put(torch.tensor([token]))
    streamer.end()
    assert "".join(text for text, _ in streamer.pieces) == "b é 中c\ndé"
    assert all("\ufffd" not in text for text, _ in streamer.pieces)
    with pytest.raises(InputError, match="one row"):
        TextStreamer(Bytes()).put(input_ids)


def test_text_iterator_streamer_feeds_another_thread(models):
    prompt = torch.tensor([[72, 32, 10, 65, 32, 66]])
    ours = models["Llama"][2]
    streamer = TextIteratorStreamer(Bytes(), skip_prompt=True, timeout=30)
    result = {}
    worker = threading.Thread(
        target=lambda: result.update(ids=ours.generate(prompt, max_new_tokens=12, streamer=streamer))
    )
    worker.start()
    text = "".join(streamer)
    worker.join()
    assert text == Bytes().decode(result["ids"][0, 6:].tolist())


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"max_new_tokens": -1}, ConfigError, "max_new_tokens"),
        ({"max_new_tokens": 0}, ConfigError, "max_new_tokens"),
        ({"do_sample": True, "temperature": 0.0}, ConfigError, "temperature"),
        ({"do_sample": True, "top_p": 1.5}, ConfigError, "top_p"),
        ({"do_sample": True, "top_p": 0.0}, ConfigError, "top_p"),
        ({"min_p": 2.0}, ConfigError, "min_p"),
        ({"repetition_penalty": 0.0}, ConfigError, "repetition_penalty"),
        ({"top_k": -3}, ConfigError, "top_k"),
        ({"eos_token_id": "2"}, ConfigError, "eos_token_id"),
        ({"pad_token_id": 1.5}, ConfigError, "pad_token_id"),
        ({"num_beams": 2, "num_return_sequences": 3}, ConfigError, "cannot exceed num_beams"),
        ({"num_beams": 2, "early_stopping": "sometimes"}, ConfigError, "early_stopping"),
        ({"num_beams": 2, "length_penalty": "long"}, ConfigError, "length_penalty"),
        ({"forced_bos_token_id": -1}, ConfigError, "forced_bos_token_id"),
        ({"forced_eos_token_id": []}, ConfigError, "forced_eos_token_id"),
        ({"no_repeat_ngram_size": -2}, ConfigError, "no_repeat_ngram_size"),
        ({"num_return_sequences": 2}, ConfigError, "do_sample"),
        ({"return_dict_in_generate": True}, ConfigError, "return_dict_in_generate"),
        ({"stop_strings": ["x"]}, InputError, "tokenizer="),
        ({"stop_strings": []}, ConfigError, "stop_strings"),
        ({"stop_strings": ["ok", ""]}, ConfigError, "stop_strings"),
        ({"stop_strings": 3}, ConfigError, "stop_strings"),
        ({"max_length": 3}, InputError, "max_new_tokens"),
        ({"streamer": object()}, InputError, "streamer"),
        ({"frobnicate": 1}, InputError, "frobnicate"),
    ],
)
def test_bad_arguments_are_refused(models, kwargs, error, match):
    ours = models["Llama"][2]
    input_ids, _ = prompts()
    with pytest.raises(error, match=match):
        ours.generate(input_ids, **kwargs)


def test_bad_inputs_are_refused(models):
    ours = models["Llama"][2]
    input_ids, attention_mask = prompts()
    with pytest.raises(InputError, match="integer tensor"):
        generate(ours, input_ids.float())
    with pytest.raises(InputError, match="integer tensor"):
        ours.generate(input_ids[0])
    with pytest.raises(InputError, match="attention_mask"):
        ours.generate(input_ids, attention_mask[:, 1:])
    with pytest.raises(InputError, match="GenerationConfig"):
        ours.generate(input_ids, generation_config={"max_new_tokens": 3})


def test_a_prompt_past_the_positions_is_refused(models):
    ours = models["Llama"][2]
    too_long = torch.randint(3, TINY["vocab_size"], (1, TINY["max_position_embeddings"] + 1))
    with pytest.raises(InputError, match="max_position_embeddings"):
        ours.generate(too_long, max_new_tokens=2)


# -- stop strings -------------------------------------------------------------------------------

STOPS = ["stop", " the", "é", "\n\n", "e a", "x"]


def _trained(kind: str, path) -> None:
    """A small tokenizer of each matching kind, trained on the shared corpus and saved by the reference."""
    from corpus import texts
    from tokenizers import Tokenizer, decoders, models as tk_models, normalizers, pre_tokenizers, trainers

    if kind == "byte_level":
        tok = Tokenizer(tk_models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      special_tokens=["<eos>"])
    elif kind == "byte_fallback":  # Llama-2 style: metaspace pieces, <0xNN> tokens for unseen bytes
        tok = Tokenizer(tk_models.BPE(byte_fallback=True, unk_token="<unk>"))
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
        trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<eos>"] +
                                      [f"<0x{b:02X}>" for b in range(256)])
    else:  # WordPiece: pieces compared as text
        tok = Tokenizer(tk_models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer()
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=["[UNK]", "<eos>"])
    tok.train_from_iterator(texts(400, 0), trainer)
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>", unk_token="<unk>"
    ).save_pretrained(path)


@pytest.fixture(scope="session")
def stop_tokenizers(tmp_path_factory) -> dict:
    """kind -> (folder, reference tokenizer, ours)."""
    built = {}
    for kind in ("byte_level", "byte_fallback", "text"):
        path = tmp_path_factory.mktemp(f"stop-{kind}")
        _trained(kind, path)
        built[kind] = path, transformers.AutoTokenizer.from_pretrained(path), auto.AutoTokenizer.from_pretrained(path)
    return built


@pytest.mark.parametrize("kind", ["byte_level", "byte_fallback", "text"])
def test_stop_strings_match_where_the_reference_does(stop_tokenizers, kind):
    from corpus import texts
    from transformers.generation.stopping_criteria import StopStringCriteria

    from leanformers.modeling.generation import StopStrings

    _, ref_tok, our_tok = stop_tokenizers[kind]
    ref, ours = StopStringCriteria(ref_tok, STOPS), StopStrings(our_tok, STOPS)
    assert ours.mode == (None if kind == "text" else kind)
    # Every 6-token tail of real texts (the stop string may start in any earlier token), plus noise
    # and ids past the vocabulary.
    tails = []
    for text in texts(200, 1):
        ids = ref_tok(text, add_special_tokens=False)["input_ids"]
        tails += [ids[end - 6:end] for end in range(6, min(len(ids), 40) + 1)]
    noise = torch.randint(0, len(ref_tok) + 5, (2000, 6), generator=torch.Generator().manual_seed(0))
    input_ids = torch.cat([torch.tensor(tails), noise])
    expected = ref(input_ids, None)
    assert int(expected.sum()) > 20  # the check has matches to agree on
    assert torch.equal(ours(input_ids), expected)


def test_stop_strings_reach_into_the_newest_token(stop_tokenizers):
    from leanformers.modeling.generation import StopStrings

    _, _, tok = stop_tokenizers["text"]
    stops = StopStrings(tok, ["ab"])
    vocab = tok.get_vocab()
    a, b, c = (vocab[x] for x in ("a", "##b", "##c"))
    rows = torch.tensor([[c, a, b], [a, b, c], [c, c, c]])
    assert stops(rows).tolist() == [True, False, False]


@pytest.fixture(scope="session")
def stop_models(stop_tokenizers, tmp_path_factory) -> tuple:
    """A tiny llama whose vocabulary is the byte-level tokenizer's, in both libraries."""
    path, ref_tok, our_tok = stop_tokenizers["byte_level"]
    config = transformers.LlamaConfig(**{**TINY, "vocab_size": len(ref_tok), "eos_token_id": ref_tok.eos_token_id,
                                         "pad_token_id": ref_tok.eos_token_id, "bos_token_id": None})
    ref = build_reference("LlamaForCausalLM", config)
    folder = tmp_path_factory.mktemp("stop-llama")
    ref.save_pretrained(folder)
    return ref, decoder.LlamaForCausalLM.from_pretrained(folder), ref_tok, our_tok


def test_generate_stops_at_stop_strings_like_the_reference(stop_models):
    ref, ours, ref_tok, our_tok = stop_models
    batch = ref_tok(["the cat", "Hello there, my", "x"], return_tensors="pt", padding=True, padding_side="left")
    inputs = dict(batch)
    free = ours.generate(**inputs, max_new_tokens=24)
    texts = our_tok.batch_decode(free[:, batch["input_ids"].shape[1]:])
    # Stop strings taken from what rows 0 and 1 would generate (plain ASCII pairs, since random
    # weights emit broken UTF-8 too), so that they end at different steps.
    def pair(text: str, after: int) -> str:
        return next(text[i:i + 2] for i in range(after, len(text) - 1) if text[i:i + 2].isascii()
                    and text[i:i + 2].isprintable())

    stops = [pair(texts[0], 3), pair(texts[1], 6)]
    expected = ref.generate(**inputs, max_new_tokens=24, stop_strings=stops, tokenizer=ref_tok)
    got = ours.generate(**inputs, max_new_tokens=24, stop_strings=stops, tokenizer=our_tok)
    assert_same(got, expected)
    pad = ref_tok.eos_token_id
    for row in (0, 1):  # both rows stopped early and were padded from there on
        assert not torch.equal(got[row], free[row]) and got[row, -1] == pad
    # A stop string in the generation config works the same way.
    ours.generation_config.stop_strings = stops[0]
    try:
        assert_same(ours.generate(**inputs, max_new_tokens=24, tokenizer=our_tok),
                    ref.generate(**inputs, max_new_tokens=24, stop_strings=stops[0], tokenizer=ref_tok))
    finally:
        ours.generation_config.stop_strings = None


def test_phi3_longrope_recomputes_the_cache_when_crossing_the_original_length(tmp_path):
    """Prompts of 4-7 positions, original length 10: the long factors start mid-generation, where
    the reference recomputes every cached key; without doing the same the ids diverge."""
    rope = {"rope_type": "longrope", "short_factor": [1.0, 1.5, 2.0, 3.0], "long_factor": [4.0, 9.0, 20.0, 60.0]}
    config = transformers.Phi3Config(**{**TINY, "original_max_position_embeddings": 10, "rope_theta": 50.0,
                                        "rope_scaling": rope, "pad_token_id": 0})
    ref = build_reference("Phi3ForCausalLM", config)
    ref.save_pretrained(tmp_path)
    ours = decoder.Phi3ForCausalLM.from_pretrained(tmp_path)
    assert ours.cache_rebuild_length() == 10
    input_ids, attention_mask = prompts()
    expected = ref.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=16)
    assert_same(ours.generate(input_ids, attention_mask, max_new_tokens=16), expected)
    ours.cache_rebuild_length = lambda: None  # keeping the short-factor keys changes the ids
    assert not torch.equal(ours.generate(input_ids, attention_mask, max_new_tokens=16), expected)


# -- beam search --------------------------------------------------------------------------------

BEAMS = [
    {"num_beams": 4},
    {"num_beams": 4, "no_repeat_ngram_size": 3, "length_penalty": 1.7},
    {"num_beams": 3, "length_penalty": -0.5, "early_stopping": True, "num_return_sequences": 3},
    {"num_beams": 4, "early_stopping": "never", "length_penalty": 0.6, "num_return_sequences": 2},
    {"num_beams": 2, "repetition_penalty": 1.4, "min_new_tokens": 5},
    {"num_beams": 3, "forced_bos_token_id": 9, "forced_eos_token_id": [4, 5]},
    {"num_beams": 3, "use_cache": False},
]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("settings", range(len(BEAMS)))
def test_beam_search_matches_reference(models, family, settings):
    """Left-padded prompts of different lengths; EOS ids the greedy run produces early, so that
    beams finish at different steps and the finished sets fill up."""
    input_ids, attention_mask = prompts()
    eos = eos_ids(family, models)
    got, expected = both(family, models, input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=16,
                         eos_token_id=eos, **BEAMS[settings])
    assert_same(got, expected)


def test_beam_search_finds_what_greedy_misses(models):
    ours = models["Llama"][2]
    input_ids, attention_mask = prompts()
    greedy = ours.generate(input_ids, attention_mask, max_new_tokens=12)
    beams = ours.generate(input_ids, attention_mask, max_new_tokens=12, num_beams=4)
    assert not torch.equal(beams, greedy)
    # One beam is greedy decoding.
    assert torch.equal(ours.generate(input_ids, attention_mask, max_new_tokens=12, num_beams=1), greedy)


@pytest.mark.parametrize("family", FAMILIES)
def test_beam_sampling_matches_reference(models, family):
    input_ids, attention_mask = prompts()
    got, expected = both(family, models, seed=5, input_ids=input_ids, attention_mask=attention_mask,
                         max_new_tokens=12, num_beams=3, do_sample=True, top_k=4, temperature=0.8)
    assert_same(got, expected)


def test_no_repeat_ngram_size_in_greedy_and_sampling(models):
    input_ids, attention_mask = prompts()
    for extra in ({}, {"do_sample": True, "top_k": 5}):
        got, expected = both("Llama", models, seed=2, input_ids=input_ids, attention_mask=attention_mask,
                             max_new_tokens=24, no_repeat_ngram_size=2, **extra)
        assert_same(got, expected)
        for row in got.tolist():
            # Each generated token before EOS completes a pair that did not occur earlier in the row.
            for i in range(7, len(row)):
                if row[i] == TINY["eos_token_id"]:
                    break
                earlier = set(zip(row[: i - 1], row[1: i - 1]))
                assert (row[i - 1], row[i]) not in earlier


def test_beam_search_refuses_a_streamer(models):
    ours = models["Llama"][2]
    input_ids, _ = prompts()
    with pytest.raises(ConfigError, match="streamer"):
        ours.generate(input_ids, max_new_tokens=4, num_beams=2, streamer=TextStreamer(_Decoder()))


class _Decoder:
    def decode(self, ids, **kwargs):
        return ""

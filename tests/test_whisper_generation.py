"""Whisper's generate() against the reference's, token for token, on tiny random checkpoints whose
special tokens are laid out as a real multilingual Whisper's (and an English-only variant):
decoder prompts (language given or detected, translate, old forced_decoder_ids), timestamps,
beams, seeded sampling, batches, audio shorter and longer than one window, prompt_ids and
segments; the timestamp rules and suppress_tokens / begin_suppress_tokens processors on their own;
and the errors for what is refused."""

from __future__ import annotations

import pytest
import torch
from parity import transformers

from leanformers import AutoModelForSpeechSeq2Seq
from leanformers.errors import ConfigError, InputError
from leanformers.modeling.generation import GenerationConfig
from leanformers.models import whisper

# The vocabulary, laid out as a real Whisper's: text, <|endoftext|>, <|startoftranscript|>, the
# languages, the tasks, <|startoflm|>, <|startofprev|>, <|nocaptions|>, <|notimestamps|>, then
# one timestamp token per 0.02 s up to the end of the vocabulary.
VOCAB = 300
LANGUAGES = ("en", "zh", "de", "es", "ru", "ko", "fr", "ja")
EOS, START = 200, 201
LANGUAGE_IDS = {f"<|{code}|>": 202 + index for index, code in enumerate(LANGUAGES)}
TRANSLATE, TRANSCRIBE, START_OF_LM, START_OF_PREVIOUS, NO_CAPTIONS, NO_TIMESTAMPS = range(210, 216)
FIRST_TIMESTAMP = NO_TIMESTAMPS + 1
SPACE = 199  # the text token a real Whisper may not start with


def build(path, multilingual: bool = True, positions: int = 100, seed: int = 0) -> None:
    """A reference checkpoint with a real-looking generation config; ``positions`` is the encoder's
    max_source_positions (the window is twice as many frames: 3000 at Whisper's 1500)."""
    config = transformers.WhisperConfig(
        vocab_size=VOCAB, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=80,
        max_source_positions=positions, max_target_positions=64, pad_token_id=EOS, bos_token_id=EOS,
        eos_token_id=EOS, decoder_start_token_id=START, begin_suppress_tokens=[SPACE, EOS], suppress_tokens=None,
        # Large weights, so that greedy decoding wanders over the vocabulary instead of repeating a token.
        init_std=0.3,
    )
    torch.manual_seed(seed)
    model = transformers.WhisperForConditionalGeneration(config).eval()
    settings = {
        "decoder_start_token_id": START, "eos_token_id": EOS, "pad_token_id": EOS, "bos_token_id": EOS,
        "no_timestamps_token_id": NO_TIMESTAMPS, "max_initial_timestamp_index": 50, "max_length": 64,
        "suppress_tokens": [1, 2, 7, 8, 9, 10, 14, TRANSLATE, TRANSCRIBE, START_OF_LM, START_OF_PREVIOUS, NO_CAPTIONS],
        "begin_suppress_tokens": [SPACE, EOS], "is_multilingual": multilingual,
        "prev_sot_token_id": START_OF_PREVIOUS, "alignment_heads": [[1, 0], [1, 2]],
        # As a real checkpoint's generation_config.json (not derived from the model config).
        "_from_model_config": False,
    }
    if multilingual:
        settings.update(lang_to_id=LANGUAGE_IDS, task_to_id={"translate": TRANSLATE, "transcribe": TRANSCRIBE},
                        forced_decoder_ids=[[1, None], [2, TRANSCRIBE]])
    else:
        settings.update(forced_decoder_ids=[[1, NO_TIMESTAMPS]])
    for key, value in settings.items():  # the Whisper entries are custom keys: set, not update()d
        setattr(model.generation_config, key, value)
    model.save_pretrained(path)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict:
    """name -> (reference model, ours): multilingual and English-only with 200-frame windows, and a
    multilingual one with Whisper's own 3000-frame window."""
    loaded = {}
    for name, options in {"multilingual": {}, "english": {"multilingual": False, "seed": 1},
                          "full-window": {"positions": 1500, "seed": 3}}.items():
        path = tmp_path_factory.mktemp(f"whisper-{name}")
        build(path, **options)
        reference = transformers.WhisperForConditionalGeneration.from_pretrained(path).eval()
        loaded[name] = reference, AutoModelForSpeechSeq2Seq.from_pretrained(path)
    return loaded


def features(batch: int, frames: int = 200, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 80, frames, generator=torch.Generator().manual_seed(seed))


def run_both(reference, ours, inputs: torch.Tensor, **options):
    torch.manual_seed(11)
    expected = reference.generate(inputs, **options)
    torch.manual_seed(11)
    got = ours.generate(inputs, **options)
    return expected, got


def assert_same(expected: torch.Tensor, got: torch.Tensor) -> None:
    assert got.shape == expected.shape and torch.equal(got, expected), f"\nours:\n{got}\nreference:\n{expected}"


def long_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two clips of 500 and 330 frames (2.5 windows and 1.65), padded to 500, with the mask."""
    inputs = features(2, 500, seed=5)
    mask = torch.ones(2, 500, dtype=torch.long)
    mask[1, 330:] = 0
    return inputs, mask


CASES = {
    "detected language": ("multilingual", lambda: features(3), {}),
    "language code": ("multilingual", lambda: features(2, seed=1), {"language": "de"}),
    "language name, translate": ("multilingual", lambda: features(2, seed=2), {"language": "French", "task": "translate"}),
    "language token per row, timestamps": (
        "multilingual", lambda: features(3, seed=3), {"language": ["<|en|>", "ko", "spanish"], "return_timestamps": True}),
    "timestamps, detected": ("multilingual", lambda: features(3, seed=4), {"return_timestamps": True}),
    "max_new_tokens": ("multilingual", lambda: features(3, seed=5), {"max_new_tokens": 9}),
    "four beams": ("multilingual", lambda: features(2, seed=6), {"num_beams": 4}),
    "four beams, timestamps": ("multilingual", lambda: features(2, seed=7), {"num_beams": 4, "return_timestamps": True}),
    "beams, ngram, length penalty": (
        "multilingual", lambda: features(2, seed=8),
        {"num_beams": 4, "no_repeat_ngram_size": 3, "length_penalty": 1.5, "max_new_tokens": 20}),
    "sampled": ("multilingual", lambda: features(3, seed=9), {"temperature": 0.8, "top_k": 20}),
    "sampled, timestamps": ("multilingual", lambda: features(2, seed=10), {"temperature": 1.0, "return_timestamps": True}),
    "sampled, two each": (
        "multilingual", lambda: features(2, seed=11),
        {"temperature": 0.6, "do_sample": True, "num_return_sequences": 2, "max_new_tokens": 12}),
    # do_sample alone does not sample: the reference's Whisper samples only for a temperature > 0.
    "do_sample without temperature": ("multilingual", lambda: features(2, seed=52), {"do_sample": True}),
    "repetition penalty, min_new_tokens": (
        "multilingual", lambda: features(2, seed=54), {"repetition_penalty": 1.3, "min_new_tokens": 5}),
    "no cache": ("multilingual", lambda: features(2, seed=14), {"use_cache": False, "max_new_tokens": 15}),
    "shorter than a window": ("multilingual", lambda: features(2, 150, seed=15), {"language": "ja"}),
    "prompt_ids": (
        "multilingual", lambda: features(2, seed=16), {"prompt_ids": torch.tensor([START_OF_PREVIOUS, 5, 6, 7])}),
    "prompt_ids, timestamps": (
        "multilingual", lambda: features(2, seed=17),
        {"prompt_ids": torch.tensor([START_OF_PREVIOUS, 40, 41]), "return_timestamps": True, "language": "en"}),
    "long clip": ("multilingual", lambda: features(1, 500, seed=18), {"language": "en"}),
    "long clip, detected": ("multilingual", lambda: features(1, 450, seed=19), {}),
    "English-only": ("english", lambda: features(3, seed=20), {}),
    "English-only, timestamps": ("english", lambda: features(3, seed=21), {"return_timestamps": True}),
    "English-only, beams": ("english", lambda: features(2, seed=22), {"num_beams": 3, "max_new_tokens": 16}),
    "English-only, sampled": ("english", lambda: features(2, seed=23), {"temperature": 0.9}),
    "full window": ("full-window", lambda: features(2, 3000, seed=24), {"max_new_tokens": 12}),
    "full window, timestamps": (
        "full-window", lambda: features(1, 3000, seed=25), {"return_timestamps": True, "max_new_tokens": 30}),
    "full window, short clip": ("full-window", lambda: features(1, 1000, seed=26), {"language": "zh",
                                                                                   "max_new_tokens": 12}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_generate_matches_reference(checkpoints, case):
    name, make_inputs, options = CASES[case]
    reference, ours = checkpoints[name]
    expected, got = run_both(reference, ours, make_inputs(), **options)
    assert_same(expected, got)
    # Parity on a degenerate output would prove little.
    assert len(set(got.flatten().tolist())) > 5
    if options.get("return_timestamps"):
        assert (got >= FIRST_TIMESTAMP).sum() >= 2, "no timestamp tokens: the timestamp rules went untested"


def test_long_batch_with_mask_matches_reference(checkpoints):
    reference, ours = checkpoints["multilingual"]
    inputs, mask = long_batch()
    for options in ({}, {"num_beams": 3}, {"language": ["en", "fr"], "return_timestamps": True}):
        expected, got = run_both(reference, ours, inputs, attention_mask=mask, **options)
        assert_same(expected, got)


def test_windows_are_decoded_again_after_a_timestamp_pair(checkpoints):
    """A short clip whose output holds a timestamp pair is decoded again from the pair's time, and
    the windows' tokens are joined: more than one run's worth of tokens come back."""
    reference, ours = checkpoints["multilingual"]
    calls = []
    original = whisper.WhisperGeneration.segments_of

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    inputs = features(1, seed=36)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(whisper.WhisperGeneration, "segments_of", counting)
        expected, got = run_both(reference, ours, inputs, language="en")
    assert_same(expected, got)
    assert len(calls) > 1, "the clip was decoded once: the window loop went untested"


def test_segments_match_reference(checkpoints):
    reference, ours = checkpoints["multilingual"]
    for inputs, options in ((features(2, seed=31), {"return_timestamps": True}),
                            (long_batch()[0], {"attention_mask": long_batch()[1]}),
                            (features(2, seed=32), {"prompt_ids": torch.tensor([START_OF_PREVIOUS, 9, 10])})):
        expected, got = run_both(reference, ours, inputs, return_segments=True, **options)
        assert_same(expected["sequences"], got["sequences"])
        assert [len(row) for row in got["segments"]] == [len(row) for row in expected["segments"]]
        for ours_row, ref_row in zip(got["segments"], expected["segments"]):
            for mine, theirs in zip(ours_row, ref_row):
                assert torch.equal(mine["tokens"], theirs["tokens"]) and mine["idxs"] == theirs["idxs"]
                assert torch.equal(mine["result"], theirs["result"])
                assert float(mine["start"]) == pytest.approx(float(theirs["start"]))
                assert float(mine["end"]) == pytest.approx(float(theirs["end"]))


def test_language_detection_differs_per_row(checkpoints):
    """Each clip's language is detected on its own (the rows do not all get the same one), and the
    detected token is the reference's."""
    reference, ours = checkpoints["multilingual"]
    inputs = features(6, seed=40) + torch.linspace(-2, 2, 6)[:, None, None]  # clips that differ in level
    found = ours.detect_language(inputs)
    assert torch.equal(found, reference.detect_language(inputs))
    assert len(set(found.tolist())) > 1
    prompts = [row[0]["result"][:4].tolist() for row in ours.generate(inputs, return_segments=True)["segments"]]
    assert prompts == [[START, language, TRANSCRIBE, NO_TIMESTAMPS] for language in found.tolist()]


def test_forced_decoder_ids_of_older_configs(checkpoints):
    """Old generation configs fix the prompt with forced_decoder_ids, in the generation config or
    only in the model config; language= and task= replace them."""
    reference, ours = checkpoints["multilingual"]
    inputs = features(2, seed=50)
    base = {key: value for key, value in ours.generation_config.to_dict().items() if key != "forced_decoder_ids"}
    for forced in ([[1, LANGUAGE_IDS["<|fr|>"]], [2, TRANSLATE], [3, NO_TIMESTAMPS]], [[1, None], [2, TRANSLATE]]):
        theirs = transformers.GenerationConfig(**base, forced_decoder_ids=forced)
        mine = GenerationConfig(**base, forced_decoder_ids=forced)
        for options in ({}, {"return_timestamps": True}, {"language": "de"}):
            torch.manual_seed(0)
            expected = reference.generate(inputs, generation_config=theirs, **options)
            assert_same(expected, ours.generate(inputs, generation_config=mine, **options))
    # Only the model config has them: the generation config's prompt falls back to it.
    saved = ours.generation_config
    try:
        ours.generation_config = GenerationConfig(**base)
        ours.config.forced_decoder_ids = [[1, LANGUAGE_IDS["<|ru|>"]], [2, TRANSCRIBE]]
        prompt = ours.generate(inputs, return_segments=True, max_new_tokens=3)["segments"][0][0]["result"][:4]
        assert prompt.tolist() == [START, LANGUAGE_IDS["<|ru|>"], TRANSCRIBE, NO_TIMESTAMPS]
    finally:
        ours.generation_config = saved
        del ours.config.forced_decoder_ids
    broken = GenerationConfig(**base, forced_decoder_ids=[[1, None], [3, TRANSCRIBE]])
    with pytest.raises(ConfigError, match="forced_decoder_ids"):
        ours.generate(inputs, generation_config=broken)


def test_timestamp_rules_equal_reference_processor():
    """The timestamp rules on their own, on crafted histories (pairs, single timestamps, text,
    the first position) and scores where the timestamps' total probability wins or loses."""
    from transformers.generation.logits_process import WhisperTimeStampLogitsProcessor

    config = transformers.GenerationConfig(no_timestamps_token_id=NO_TIMESTAMPS, eos_token_id=EOS,
                                           max_initial_timestamp_index=5)
    prompt = [START, LANGUAGE_IDS["<|en|>"], TRANSCRIBE]
    t = FIRST_TIMESTAMP
    histories = [[], [t], [t, 5], [t, 5, 6, t + 9], [t, 5, t + 9, t + 9], [t + 3, 8, t + 7, t + 7, 12],
                 [t, 5, t + 4, t + 4, 7, t + 30], [40, 41], [t + 2, t + 2]]
    generator = torch.Generator().manual_seed(0)
    for history in histories:
        ids = torch.tensor([prompt + history] * 4)
        scores = torch.randn(4, VOCAB, generator=generator) * 3
        scores[1, FIRST_TIMESTAMP:] += 4.0  # the timestamps' mass beats any text token
        scores[2, :FIRST_TIMESTAMP] -= 5.0
        scores[3, 17] = 30.0  # one text token far ahead
        for max_initial in (5, None):
            config.max_initial_timestamp_index = max_initial
            expected = WhisperTimeStampLogitsProcessor(config, begin_index=len(prompt))(ids, scores.clone())
            got = whisper.WhisperTimestamps(NO_TIMESTAMPS, EOS, len(prompt), max_initial)(ids, scores.clone())
            assert torch.equal(got, expected), history
            if history == [40, 41]:  # after text, the boosted row's timestamps outweigh every text token
                assert torch.isinf(got[1, :FIRST_TIMESTAMP]).all() and not torch.isinf(got[0, :FIRST_TIMESTAMP]).all()


@pytest.fixture(scope="session")
def text_models(tmp_path_factory) -> dict:
    """A tiny BART and a tiny Llama, reference and ours, for the generic suppress processors."""
    from leanformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    built = {}
    bart = transformers.BartConfig(
        vocab_size=100, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=64, init_std=0.3,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)
    llama = transformers.LlamaConfig(
        vocab_size=100, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, initializer_range=0.2, max_position_embeddings=128, bos_token_id=1, eos_token_id=2,
        pad_token_id=0)
    for name, config, ref_class, auto in (("bart", bart, "BartForConditionalGeneration", AutoModelForSeq2SeqLM),
                                          ("llama", llama, "LlamaForCausalLM", AutoModelForCausalLM)):
        torch.manual_seed(0)
        path = tmp_path_factory.mktemp(name)
        getattr(transformers, ref_class)(config).save_pretrained(path)
        built[name] = getattr(transformers, ref_class).from_pretrained(path).eval(), auto.from_pretrained(path)
    return built


def test_suppress_tokens_apply_to_every_model(text_models):
    """suppress_tokens and begin_suppress_tokens are generic: on an encoder-decoder and a decoder
    model, greedy, sampled and beam search, as the reference applies them."""
    ids = torch.randint(3, 100, (2, 6), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(ids)
    plain = {"max_new_tokens": 10}
    for name, (reference, ours) in text_models.items():
        torch.manual_seed(0)
        unconstrained = ours.generate(ids, mask, **plain)
        first = unconstrained[:, -10].tolist()
        often = unconstrained[:, -10:].flatten().tolist()
        often = max(set(often), key=often.count)
        for options in ({"suppress_tokens": [often, 3]}, {"begin_suppress_tokens": first},
                        {"suppress_tokens": [often], "begin_suppress_tokens": first, "num_beams": 3},
                        {"begin_suppress_tokens": first, "do_sample": True, "top_k": 10},
                        {"begin_suppress_tokens": first, "forced_bos_token_id": 7} if name == "bart" else {}):
            torch.manual_seed(0)
            expected = reference.generate(input_ids=ids, attention_mask=mask, **plain, **options)
            torch.manual_seed(0)
            got = ours.generate(ids, mask, **plain, **options)
            assert_same(expected, got)
            generated = got[:, -10:]
            if "suppress_tokens" in options:
                assert not torch.isin(generated, torch.tensor(options["suppress_tokens"])).any()
        assert not torch.equal(unconstrained, ours.generate(ids, mask, suppress_tokens=[often], **plain))


def test_bad_suppress_tokens_are_refused():
    with pytest.raises(ConfigError, match="suppress_tokens"):
        GenerationConfig(suppress_tokens=[1, "x"])
    # A forced token that is suppressed too would leave the forced step nothing (the reference refuses it).
    with pytest.raises(ConfigError, match="forced_eos_token_id"):
        GenerationConfig(suppress_tokens=[2, 5], forced_eos_token_id=2)
    GenerationConfig(suppress_tokens=[2, 5], forced_eos_token_id=[2, 3])
    with pytest.raises(ConfigError, match="begin_suppress_tokens"):
        GenerationConfig(begin_suppress_tokens=5)


ERRORS = {
    "unknown language code": ("multilingual", {"language": "xx"}, InputError, "'xx'.*en, es, fr"),
    "language the model lacks": ("multilingual", {"language": "italian"}, InputError, "italian.*<\\|it\\|>"),
    "unknown task": ("multilingual", {"task": "summarize"}, InputError, "'summarize'.*transcribe"),
    "language on English-only": ("english", {"language": "en"}, InputError, "English-only"),
    "task on English-only": ("english", {"task": "translate"}, InputError, "English-only"),
    "token timestamps": ("multilingual", {"return_token_timestamps": True}, InputError, "return_token_timestamps"),
    "fallback thresholds": ("multilingual", {"logprob_threshold": -1.0}, InputError, "logprob_threshold"),
    "conditioning": ("multilingual", {"condition_on_prev_tokens": True}, InputError, "condition_on_prev_tokens"),
    "dict outputs": ("multilingual", {"return_dict_in_generate": True}, InputError, "return_dict_in_generate"),
    "too many new tokens": ("multilingual", {"max_new_tokens": 62}, InputError, "max_target_positions \\(64\\)"),
    "unknown argument": ("multilingual", {"beam_count": 3}, InputError, "beam_count.*language"),
    "rows of languages": ("multilingual", {"language": ["en", "fr"]}, InputError, "2 languages for a batch of 3"),
    "greedy copies": ("multilingual", {"num_return_sequences": 2}, ConfigError, "num_return_sequences"),
    "is_multilingual on an old config": ("multilingual-old", {"is_multilingual": True}, ConfigError,
                                         "is_multilingual"),
    "language on an old config": ("multilingual-old", {"language": "en"}, ConfigError, "lang_to_id"),
    "timestamps without their token": ("multilingual-old", {"return_timestamps": True}, ConfigError,
                                       "no_timestamps_token_id"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_refused_inputs_raise_our_errors(checkpoints, case):
    name, options, error, message = ERRORS[case]
    ours = checkpoints[name.replace("-old", "")][1]
    saved = ours.generation_config
    if name.endswith("-old"):  # a generation config from before language and timestamp selection
        ours.generation_config = GenerationConfig(**{
            key: value for key, value in saved.to_dict().items()
            if key not in ("lang_to_id", "task_to_id", "is_multilingual", "no_timestamps_token_id")
        })
    try:
        with pytest.raises(error, match=message):
            ours.generate(features(3), **options)
    finally:
        ours.generation_config = saved


def test_refused_audio_shapes(checkpoints):
    ours = checkpoints["multilingual"][1]
    with pytest.raises(InputError, match="float tensor"):
        ours.generate(torch.ones(1, 80, 200, dtype=torch.long))
    with pytest.raises(InputError, match="80 mel bins"):
        ours.generate(torch.randn(1, 128, 200))
    with pytest.raises(InputError, match="attention_mask"):
        ours.generate(features(2, 500))  # a batch of long clips says where each ends
    with pytest.raises(InputError, match="return_timestamps"):
        ours.generate(features(1, 500), return_timestamps=False)
    with pytest.raises(InputError, match="attention_mask must have shape"):
        ours.generate(features(1, 200), attention_mask=torch.ones(1, 100))
    with pytest.raises(InputError, match="prompt_ids"):
        ours.generate(features(1, 200), prompt_ids=[[1, 2]])


def test_a_window_that_cannot_advance_ends(checkpoints):
    """When a greedy run's last timestamp pair starts at 0.00 the window does not advance, and with
    the run's length already at its limit the same tokens would come back forever (the reference
    loops there; this clip is one such): the window counts as done, and generate returns."""
    ours = checkpoints["multilingual"][1]
    decisions = []
    original = whisper.WhisperGeneration._length_fixed

    def recording(self, config):
        decisions.append(original(self, config))
        return decisions[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(whisper.WhisperGeneration, "_length_fixed", recording)
        out = ours.generate(features(2, seed=12))
    assert decisions == [True]
    assert out.shape[0] == 2 and len(set(out.flatten().tolist())) > 5


def test_checkpoint_without_generation_config(tmp_path):
    """Without generation_config.json the settings come from the model config (start, EOS, pad,
    begin_suppress_tokens), as the reference: no language token, no timestamps mode to select."""
    build(tmp_path, seed=4)
    (tmp_path / "generation_config.json").unlink()
    reference = transformers.WhisperForConditionalGeneration.from_pretrained(tmp_path).eval()
    ours = AutoModelForSpeechSeq2Seq.from_pretrained(tmp_path)
    assert ours.generation_config.begin_suppress_tokens == [SPACE, EOS]
    for options in ({}, {"num_beams": 2}):
        expected, got = run_both(reference, ours, features(2, seed=60), **options)
        assert_same(expected, got)
    with pytest.raises(ConfigError, match="lang_to_id"):
        ours.generate(features(1), language="en")

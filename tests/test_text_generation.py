"""pipeline("text-generation") against the reference's pipeline on a tiny random llama with a small
byte-level BPE tokenizer (trained here with `tokenizers`, saved by the reference with a ChatML
template): greedy outputs equal for prompts, chats, prefills, batches, every output form; seeded
sampling with the reference pipeline's defaults equal; bad inputs refused with our errors.
"""

from __future__ import annotations

import pytest
import torch
from parity import build_reference, transformers

import leanformers
from leanformers.errors import ConfigError, InputError, UnsupportedModelError
from leanformers.pipelines import TextGenerationPipeline

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
CORPUS = [
    "The quick brown fox jumps over the lazy dog.", "Hello world, how are you today?",
    "A tiny model writes tiny stories about cats and dogs.", "Once upon a time there was a robot.",
] * 20


def build_tiny_chat_model(folder):
    """A 300-token byte-level BPE with ChatML specials and a tiny random llama over it, saved by the reference."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHATML,
    ).save_pretrained(folder)
    config = transformers.LlamaConfig(
        vocab_size=300, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, initializer_range=0.2, max_position_embeddings=256, eos_token_id=2, pad_token_id=0,
        bos_token_id=None,
    )
    build_reference("LlamaForCausalLM", config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def chat_model_dir(tmp_path_factory):
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-chat-llama"))


@pytest.fixture(scope="module")
def pipes(chat_model_dir):
    return transformers.pipeline("text-generation", model=str(chat_model_dir)), leanformers.pipeline(
        "text-generation", model=chat_model_dir
    )


CHAT = [{"role": "user", "content": "Hi there"}]
CHAT2 = [{"role": "system", "content": "Be nice"}, {"role": "user", "content": "Hello"}]
PREFILL = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "The quick"}]
GREEDY = {"do_sample": False}


@pytest.mark.parametrize("inputs, options", [
    ("Hello world", {"max_new_tokens": 8}),
    (CHAT, {"max_new_tokens": 8}),
    (PREFILL, {"max_new_tokens": 6}),
    (CHAT, {"max_new_tokens": 6, "return_full_text": False}),
    ("Hello world", {"max_new_tokens": 5, "return_tensors": True}),
    ("Hello world", {"max_new_tokens": 5, "return_full_text": False}),
    ("Hello world", {"max_length": 9}),
    ("Hello world", {"max_new_tokens": 5, "prefix": "Once upon "}),
    ("Hello world", {"max_new_tokens": 30, "repetition_penalty": 1.3}),
], ids=["prompt", "chat", "prefill", "chat-new-text", "tensors", "new-text", "max-length", "prefix", "penalty"])
def test_greedy_matches_reference(pipes, inputs, options):
    ref, ours = pipes
    expected = ref(inputs, **GREEDY, **options)
    got = ours(inputs, **GREEDY, **options)
    assert got == expected
    assert isinstance(ours, TextGenerationPipeline)


def test_batches_match_reference_in_input_order(pipes, monkeypatch):
    """Prompts run longest first, several per left-padded batch, and come back in input order; a row that
    meets EOS before the others ends there (token 23 is the second new token of "Hello world")."""
    ref, ours = pipes
    prompts = ["a", "Hello world", "The quick brown fox jumps", "Once upon"]
    options = {**GREEDY, "max_new_tokens": 10, "eos_token_id": [2, 23]}
    expected = [ref(prompt, **options) for prompt in prompts]
    batches = []
    real_run = TextGenerationPipeline._run
    monkeypatch.setattr(TextGenerationPipeline, "_run",
                        lambda self, items, params: batches.append(list(items)) or real_run(self, items, params))
    got = ours(prompts, batch_size=3, **options)
    assert got == expected
    assert batches == [["The quick brown fox jumps", "Once upon", "Hello world"], ["a"]]
    without_eos = ours(prompts, batch_size=3, **{**options, "eos_token_id": 2})
    stopped = [a[0]["generated_text"] != b[0]["generated_text"] for a, b in zip(got, without_eos)]
    assert any(stopped) and not all(stopped)  # some rows ended early, inside a batch that went on
    chats = ours([CHAT, CHAT2], batch_size=2, **GREEDY, max_new_tokens=8)
    assert chats == ref([CHAT, CHAT2], batch_size=2, **GREEDY, max_new_tokens=8)
    ids = ours(prompts, batch_size=4, return_tensors=True, **options)
    assert ids == [ref(prompt, return_tensors=True, **options) for prompt in prompts]


def test_seeded_sampling_with_the_pipeline_defaults(pipes):
    """Without settings, both sample at temperature 0.7 (the reference pipeline's defaults)."""
    ref, ours = pipes
    for options in ({"max_new_tokens": 10}, {"max_new_tokens": 6, "num_return_sequences": 3, "top_k": 5, "top_p": 0.9}):
        torch.manual_seed(4)
        expected = ref("Hello", **options)
        torch.manual_seed(4)
        assert ours("Hello", **options) == expected
    assert ours._generate_kwargs({})["temperature"] == 0.7
    assert "temperature" not in ours._generate_kwargs({"do_sample": False})


def test_streamer_gets_the_new_text(pipes):
    from leanformers.modeling.generation import TextIteratorStreamer

    _, ours = pipes
    streamer = TextIteratorStreamer(ours.tokenizer, skip_prompt=True, skip_special_tokens=True)
    result = ours("Hello world", streamer=streamer, max_new_tokens=8, **GREEDY)
    assert "Hello world" + "".join(streamer) == result[0]["generated_text"]


def test_stop_sequence_matches_reference(pipes):
    ref, ours = pipes
    free = ours("Hello world", max_new_tokens=16, return_full_text=False, **GREEDY)[0]["generated_text"]
    stop = next(free[i:i + 2] for i in range(3, len(free) - 1) if free[i:i + 2].strip())
    expected = ref("Hello world", max_new_tokens=16, stop_sequence=stop, **GREEDY)
    got = ours("Hello world", max_new_tokens=16, stop_sequence=stop, **GREEDY)
    assert got == expected and len(got[0]["generated_text"]) < len("Hello world" + free)
    # stop_strings work too (the reference's pipeline would need the tokenizer passed to generate).
    assert ours("Hello world", max_new_tokens=16, stop_strings=[stop], **GREEDY) == expected


def test_task_comes_from_the_architecture(chat_model_dir):
    pipe = leanformers.pipeline(model=chat_model_dir, max_new_tokens=3, do_sample=False)
    assert pipe.task == "text-generation"
    assert pipe("Hello")[0]["generated_text"].startswith("Hello")  # construction options are defaults


@pytest.mark.parametrize("inputs, options, error, words", [
    ("Hi", {"foo": 1}, InputError, "unknown argument(s) ['foo']"),
    ("Hi", {"temperature": -1}, ConfigError, "temperature"),
    ("Hi", {"return_full_text": True, "return_tensors": True}, InputError, "cannot be given together"),
    ("Hi", {"stop_sequence": ""}, ConfigError, "stop_strings"),
    ("", {}, InputError, "gives no tokens"),
    ({"role": "user", "content": "Hi"}, {}, InputError, "inside a list"),
    ([{"role": "user"}], {}, InputError, "'role' and 'content'"),
    ([[]], {}, InputError, "empty chat"),
    ([["Hi"]], {}, InputError, "Message 0"),
    ([{"role": 1, "content": "Hi"}], {}, InputError, "roles are strings"),
    (7, {}, InputError, "prompt string, a chat"),
    ([], {}, InputError, "empty list"),
])
def test_bad_inputs(pipes, inputs, options, error, words):
    _, ours = pipes
    with pytest.raises(error) as info:
        ours(inputs, max_new_tokens=2, **options)
    assert words in str(info.value)


def test_a_model_that_cannot_generate_is_refused(chat_model_dir, minilm_dir):
    base = leanformers.AutoModel.from_pretrained(chat_model_dir)
    with pytest.raises(UnsupportedModelError, match="needs a causal language model"):
        leanformers.pipeline("text-generation", model=base, tokenizer=str(chat_model_dir))
    with pytest.raises(UnsupportedModelError, match="no 'causal-lm' head"):
        leanformers.pipeline("text-generation", model=minilm_dir)

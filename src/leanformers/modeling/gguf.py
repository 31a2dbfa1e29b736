"""GGUF checkpoints (llama.cpp's single-file format): config, weights and tokenizer from one file.

A GGUF file carries no config.json and no tokenizer.json: its metadata holds both under llama.cpp's
key names, and its tensors have llama.cpp's names and, mostly, quantised blocks. Everything is read
with the ``gguf`` package (an optional extra, imported on first use) and turned into what a
safetensors checkpoint would have given:

- the config: metadata keys renamed per architecture (``_FAMILIES``), plus the special-token ids
  and ``tie_word_embeddings`` (llama.cpp writes ``output.weight`` only when it differs from the
  embedding);
- the weights: dequantised to float32 one tensor at a time when the loader asks for it, renamed
  to the reference's checkpoint keys, with llama.cpp's own changes undone (the interleaved rotary
  row order of Llama's q/k projections; Gemma's ``1 + w`` norms; GPT-2's transposes);
- the tokenizer: byte-level BPE (``tokenizer.ggml.model == "gpt2"``) or SentencePiece-style BPE
  (``"llama"``, with Gemma's and Phi-3's variants), built on the ``tokenizers`` library, with the
  file's special tokens, bos/eos flags and chat template, under the class the reference picks.

llama.cpp writes Mistral models as "llama", so they load as Llama (as in the reference). Rotary
scaling that llama.cpp keeps as a tensor (Llama 3.1's ``rope_freqs``) is not read back, as in the
reference.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import (
    CheckpointNotFoundError,
    InputError,
    TokenizerError,
    UnsupportedModelError,
    WeightsError,
)
from ..hub import IGNORED_LOAD_OPTIONS, SOURCE_OPTIONS, Source

INSTALL_HINT = "pip install 'leanformers[gguf]'"

# -- the tables -----------------------------------------------------------------------------------

# Metadata keys (after the "<architecture>." prefix) the Llama-style decoders share.
_DECODER_CONFIG = {
    "context_length": "max_position_embeddings",
    "block_count": "num_hidden_layers",
    "feed_forward_length": "intermediate_size",
    "embedding_length": "hidden_size",
    "rope.freq_base": "rope_theta",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
    "attention.layer_norm_rms_epsilon": "rms_norm_eps",
    "vocab_size": "vocab_size",
}

# Tensors outside the blocks, llama.cpp name -> checkpoint key.
_DECODER_TOP = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}

# Tensors of block i ("blk.i.<name>"), llama.cpp name -> key under "model.layers.i.".
_DECODER_BLOCK = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}

# Gemma 2 and 3 norm around both sublayers; llama.cpp's "ffn_norm" is the one before the MLP there.
_GEMMA2_BLOCK = {
    **_DECODER_BLOCK,
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}

# Phi-3 keeps its fused projections: qkv in one tensor, gate and up in another.
_PHI3_BLOCK = {
    "attn_norm": "input_layernorm",
    "attn_qkv": "self_attn.qkv_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_up": "mlp.gate_up_proj",
    "ffn_down": "mlp.down_proj",
}


@dataclass(frozen=True)
class _Family:
    """How one llama.cpp architecture maps onto a model_type's config and checkpoint keys."""

    model_type: str
    config: Mapping[str, str]
    block: Mapping[str, str]
    top: Mapping[str, str] = field(default_factory=lambda: _DECODER_TOP)
    block_prefix: str = "model.layers"
    # llama.cpp interleaves the rotary halves of Llama's q/k rows; loading puts them back.
    unpermute_qk: bool = False
    # llama.cpp stores Gemma's RMSNorm weights as 1 + w; the checkpoints hold w.
    norm_offset: float = 0.0
    # llama.cpp names whose 2-D weights the checkpoint keeps as (in, out) (GPT-2's Conv1D).
    transposed: tuple[str, ...] = ()


_FAMILIES: dict[str, _Family] = {
    "llama": _Family("llama", {**_DECODER_CONFIG, "rope.dimension_count": "head_dim"}, _DECODER_BLOCK,
                     unpermute_qk=True),
    "qwen2": _Family("qwen2", _DECODER_CONFIG, _DECODER_BLOCK),
    "qwen3": _Family("qwen3", {**_DECODER_CONFIG, "attention.key_length": "head_dim"}, _DECODER_BLOCK),
    "gemma": _Family("gemma", {**_DECODER_CONFIG, "attention.key_length": "head_dim"}, _DECODER_BLOCK,
                     norm_offset=1.0),
    "gemma2": _Family(
        "gemma2",
        {**_DECODER_CONFIG, "attention.key_length": "head_dim", "attention.sliding_window": "sliding_window",
         "attn_logit_softcapping": "attn_logit_softcapping", "final_logit_softcapping": "final_logit_softcapping"},
        _GEMMA2_BLOCK, norm_offset=1.0,
    ),
    "gemma3": _Family(
        "gemma3_text",
        {**_DECODER_CONFIG, "attention.key_length": "head_dim", "attention.sliding_window": "sliding_window"},
        _GEMMA2_BLOCK, norm_offset=1.0,
    ),
    "phi3": _Family("phi3", _DECODER_CONFIG, _PHI3_BLOCK),
    "gpt2": _Family(
        "gpt2",
        {
            "block_count": "n_layer",
            "context_length": "n_positions",
            "embedding_length": "n_embd",
            "feed_forward_length": "n_inner",
            "attention.head_count": "n_head",
            "attention.layer_norm_epsilon": "layer_norm_epsilon",
            "vocab_size": "vocab_size",
        },
        {
            "attn_norm": "ln_1",
            "attn_qkv": "attn.c_attn",
            "attn_output": "attn.c_proj",
            "ffn_norm": "ln_2",
            "ffn_up": "mlp.c_fc",
            "ffn_down": "mlp.c_proj",
        },
        top={"token_embd": "transformer.wte", "position_embd": "transformer.wpe",
             "output_norm": "transformer.ln_f", "output": "lm_head"},
        block_prefix="transformer.h",
        transposed=("attn_qkv", "attn_output", "ffn_up", "ffn_down"),
    ),
}

# Tensors llama.cpp derives from the config (Llama 3's rotary frequencies): nothing to load.
_DERIVED = {"rope_freqs.weight"}

# tokenizer.ggml.<key> -> config key.
_SPECIAL_IDS = {
    "bos_token_id": "bos_token_id",
    "eos_token_id": "eos_token_id",
    "unknown_token_id": "unk_token_id",
    "padding_token_id": "pad_token_id",
}
_SPECIAL_NAMES = {"bos_token": "bos_token_id", "eos_token": "eos_token_id", "unk_token": "unknown_token_id",
                  "pad_token": "padding_token_id"}

_BLOCK_NAME = re.compile(r"^blk\.(\d+)\.(\w+)\.(weight|bias)$")
_TOP_NAME = re.compile(r"^(\w+)\.(weight|bias)$")


# -- the file -------------------------------------------------------------------------------------


def _gguf_package() -> Any:
    try:
        import gguf
    except ImportError as exc:
        raise UnsupportedModelError(
            f"Reading GGUF files needs the optional gguf package, which is not installed: {INSTALL_HINT}"
        ) from exc
    return gguf


def resolve_gguf(source: Source, gguf_file: Any) -> str:
    """The path of ``gguf_file``: the checkpoint's file of that name (folder or hub repository),
    else a file at that path (absolute, or relative to the working directory)."""
    if not isinstance(gguf_file, (str, os.PathLike)) or not os.fspath(gguf_file):
        raise InputError(f"gguf_file must be the name or path of a .gguf file, got {gguf_file!r}.")
    name = os.fspath(gguf_file)
    path = None
    if not os.path.isabs(name):
        try:
            path = source.resolve(name, required=False)
        except InputError:  # a path out of the checkpoint ('../x.gguf') can still name a file here
            path = None
    if path is None and os.path.isfile(name):
        path = name
    if path is None:
        raise CheckpointNotFoundError(
            f"{source.describe()} has no GGUF file {name!r}. Pass the file's name inside the folder or repository "
            f"(gguf_file='model.Q4_K_M.gguf') or its path."
        )
    return path


class GGUFFile:
    """One GGUF file: its metadata, the config and tokenizer settings it implies, and its tensors
    under the reference's checkpoint keys."""

    def __init__(self, path: str) -> None:
        gguf = _gguf_package()
        self.path = path
        try:
            size = os.path.getsize(path)
            with open(path, "rb") as handle:
                magic = handle.read(4)
        except OSError as exc:
            raise WeightsError(f"Cannot read the GGUF file {path}: {exc}") from exc
        if magic != b"GGUF":
            raise WeightsError(
                f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF'). Pass gguf_file= only for "
                f"llama.cpp's .gguf files; other checkpoints load without it."
            )
        try:
            self._reader = gguf.GGUFReader(path)
        except Exception as exc:  # the reader reports a cut or corrupt file as anything from ValueError to IndexError
            raise WeightsError(f"{path} is a corrupt or truncated GGUF file ({type(exc).__name__}: {exc}); "
                               f"download it again.") from exc
        for tensor in self._reader.tensors:
            if tensor.data_offset + tensor.n_bytes > size:
                raise WeightsError(
                    f"{path} is truncated: tensor {tensor.name!r} ends at byte {tensor.data_offset + tensor.n_bytes} "
                    f"but the file has {size} bytes. Download it again."
                )
        self.architecture = self.value("general.architecture")
        if self.architecture not in _FAMILIES:
            raise UnsupportedModelError(
                f"{path} holds a GGUF model of architecture {self.architecture!r}, which leanformers cannot load. "
                f"Supported: {', '.join(sorted(_FAMILIES))}."
            )
        self.family = _FAMILIES[self.architecture]

    def value(self, key: str, default: Any = None) -> Any:
        """A metadata value as Python (str, int, float, bool or a list of them)."""
        entry = self._reader.fields.get(key)
        if entry is None:
            return default
        try:
            return entry.contents()
        except Exception as exc:
            raise WeightsError(f"{self.path}: the metadata value {key!r} is corrupt ({exc}).") from exc

    @property
    def tensor_names(self) -> list[str]:
        return [tensor.name for tensor in self._reader.tensors]

    # -- config ---------------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        """The config.json this file stands for."""
        prefix = self.architecture + "."
        config: dict[str, Any] = {"model_type": self.family.model_type}
        for key, name in self.family.config.items():
            value = self.value(prefix + key)
            if value is not None:
                config[name] = value
        for key, name in _SPECIAL_IDS.items():
            value = self.value("tokenizer.ggml." + key)
            if value is not None:
                config[name] = value
        config["tie_word_embeddings"] = "output.weight" not in self.tensor_names
        if "vocab_size" not in config:
            tokens = self.value("tokenizer.ggml.tokens")
            if tokens is not None:
                config["vocab_size"] = len(tokens)
        return config

    # -- weights --------------------------------------------------------------------------------
    def tensors(self) -> GGUFTensors:
        config = self.config_dict()
        return GGUFTensors(self, config.get("num_attention_heads"), config.get("num_key_value_heads"))

    def checkpoint_key(self, name: str) -> str | None:
        """The reference's checkpoint key of a llama.cpp tensor name (None for a derived tensor)."""
        if name in _DERIVED:
            return None
        family = self.family
        match = _BLOCK_NAME.match(name)
        if match and match.group(2) in family.block:
            layer, part, kind = match.groups()
            return f"{family.block_prefix}.{layer}.{family.block[part]}.{kind}"
        match = _TOP_NAME.match(name)
        if match and match.group(1) in family.top:
            return f"{family.top[match.group(1)]}.{match.group(2)}"
        return name  # not a tensor this family knows: the loader reports it as unused

    def dequantized(self, tensor: Any, num_heads: int | None, num_kv_heads: int | None) -> torch.Tensor:
        gguf = _gguf_package()
        try:
            values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        except NotImplementedError as exc:
            raise UnsupportedModelError(
                f"{self.path}: tensor {tensor.name!r} is quantised as {tensor.tensor_type.name}, which the installed "
                f"gguf package cannot dequantise ({exc}). Upgrade it ({INSTALL_HINT} --upgrade) or use a file with "
                f"another quantisation."
            ) from exc
        except (ValueError, IndexError) as exc:
            raise WeightsError(f"{self.path}: tensor {tensor.name!r} is corrupt ({exc}); download the file again.") \
                from exc
        if values.dtype != np.float32 or not values.flags.writeable:  # F16, or F32 still in the file's map
            values = values.astype(np.float32)
        weights = torch.from_numpy(values)
        match = _BLOCK_NAME.match(tensor.name)
        part = match.group(2) if match else ""
        family = self.family
        if family.unpermute_qk and part in ("attn_q", "attn_k"):
            heads = num_heads if part == "attn_q" else num_kv_heads
            if heads:
                weights = _unpermute_rotary(weights, heads)
        if family.norm_offset and tensor.name.endswith("norm.weight"):
            weights = weights - family.norm_offset
        if part in family.transposed and weights.dim() == 2:
            weights = weights.t().contiguous()
        return weights


def _unpermute_rotary(weights: torch.Tensor, heads: int) -> torch.Tensor:
    """llama.cpp orders each head's rows as (pair, half) for its interleaved rotary; the reference's
    rotate_half wants (half, pair). Swap the two axes back."""
    rows = weights.shape[0]
    if rows % (2 * heads):
        raise WeightsError(f"A q/k projection of {rows} rows cannot be split into {heads} heads of rotary pairs; "
                           f"the file's head counts do not fit its tensors.")
    half = rows // heads // 2
    return weights.reshape(heads, half, 2, *weights.shape[1:]).transpose(1, 2).reshape(weights.shape).contiguous()


class GGUFTensors(Mapping):
    """The file's tensors by checkpoint key, dequantised to float32 when looked up."""

    def __init__(self, file: GGUFFile, num_heads: int | None, num_kv_heads: int | None) -> None:
        self._file = file
        self._heads = (num_heads, num_kv_heads)
        self._by_key = {}
        for tensor in file._reader.tensors:
            key = file.checkpoint_key(tensor.name)
            if key is not None:
                self._by_key[key] = tensor

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._file.dequantized(self._by_key[key], *self._heads)

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)

    def first_float_dtype(self) -> torch.dtype:
        # Everything is dequantised to float32, as the reference loads GGUF files unless told otherwise.
        return torch.float32


def open_gguf(source: Source, gguf_file: Any) -> GGUFFile:
    """``gguf_file`` (a name in the checkpoint, a path, or a file already opened) opened."""
    if isinstance(gguf_file, GGUFFile):
        return gguf_file
    _gguf_package()
    path = resolve_gguf(source, gguf_file)
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise WeightsError(f"Cannot read the GGUF file {path}: {exc}") from exc
    return _opened(os.path.realpath(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _opened(path: str, size: int, mtime_ns: int) -> GGUFFile:
    # Parsing the metadata of a real file takes seconds (a vocabulary and merges of ~50k strings
    # each), and a config, a tokenizer and a model are usually loaded from the same file in a row.
    # The size and time key the entry, so a rewritten file is read again.
    return GGUFFile(path)


# -- tokenizer ------------------------------------------------------------------------------------

_CONTROL, _USER_DEFINED = 3, 4

# tokenizer.ggml.pre -> the split regex its byte-level merges were learned with (where it is not
# GPT-2's, which the ByteLevel pre-tokenizer applies by itself).
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_SPLITS = {
    "llama3": _LLAMA3_SPLIT, "llama-v3": _LLAMA3_SPLIT, "llama-bpe": _LLAMA3_SPLIT, "falcon3": _LLAMA3_SPLIT,
    "smaug-bpe": _LLAMA3_SPLIT, "dbrx": _LLAMA3_SPLIT,
    "qwen2": _QWEN2_SPLIT, "deepseek-r1-qwen": _QWEN2_SPLIT, "megrez": _QWEN2_SPLIT,
}


def _byte_alphabet() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {byte: chr(byte) for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in mapping:
            mapping[byte] = chr(256 + extra)
            extra += 1
    return mapping


def _merges(values: list[str] | None, vocab: dict[str, int], scores: list[float] | None) -> list[tuple[str, str]]:
    """The file's merges; SentencePiece files list none, so they follow from the vocabulary: every
    split of a token into two tokens, best-scored token first."""
    if values is not None:
        pairs = []
        for number, merge in enumerate(values, 1):
            parts = merge.split(" ")
            if len(parts) != 2:
                raise TokenizerError(f"GGUF merge {number} ({merge[:60]!r}) is not two tokens separated by a space.")
            pairs.append((parts[0], parts[1]))
        return pairs
    if scores is None:
        raise TokenizerError("The GGUF tokenizer has neither merges nor token scores, so its merges cannot be rebuilt.")
    candidates = []
    for token, score in zip(vocab, scores):
        splits = [(token[:i], token[i:]) for i in range(1, len(token)) if token[:i] in vocab and token[i:] in vocab]
        splits.sort(key=lambda pair: (vocab[pair[0]], vocab[pair[1]]))
        candidates.extend((left, right, score) for left, right in splits)
    candidates.sort(key=lambda item: (item[2], len(item[0]), len(item[1])), reverse=True)
    return [(left, right) for left, right, _ in candidates]


def _backend(file: GGUFFile) -> Any:
    """The tokenizers-library pipeline the file's vocabulary describes."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE

    kind = file.value("tokenizer.ggml.model")
    tokens = file.value("tokenizer.ggml.tokens")
    if not tokens:
        raise TokenizerError(f"{file.path} holds no tokenizer (tokenizer.ggml.tokens is missing).")
    types = file.value("tokenizer.ggml.token_type") or []
    merges = file.value("tokenizer.ggml.merges")
    alphabet = _byte_alphabet()
    spelled = set(alphabet.values())
    if kind == "gpt2":
        vocab = {
            token if set(token) <= spelled else "".join(alphabet[b] for b in token.encode("utf-8")): index
            for index, token in enumerate(tokens)
        }
        backend = Tokenizer(BPE(vocab=vocab, merges=_merges(merges, vocab, None), dropout=None,
                                continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
        split = _SPLITS.get(file.value("tokenizer.ggml.pre"))
        if split is None:
            backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        else:
            backend.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(split), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ])
        backend.decoder = decoders.ByteLevel()
    elif kind == "llama":
        backend = _sentencepiece_backend(file.architecture, tokens, merges, file.value("tokenizer.ggml.scores"))
    else:
        raise UnsupportedModelError(
            f"{file.path} describes a tokenizer of type {kind!r} (tokenizer.ggml.model); leanformers builds 'gpt2' "
            f"(byte-level BPE) and 'llama' (SentencePiece BPE) tokenizers from GGUF files."
        )
    # In a byte-level vocabulary, a control token written outside the byte alphabet is a mislabel in
    # llama.cpp's files, and adding it would grow the vocabulary past the model's.
    control = [AddedToken(token, normalized=False, special=True) for token, kind_ in zip(tokens, types)
               if kind_ == _CONTROL and (kind != "gpt2" or set(token) <= spelled)]
    if control:
        backend.add_special_tokens(control)
    known = backend.get_vocab()
    user = [AddedToken(token, normalized=False, special=False)
            for token, kind_ in zip(tokens, types) if kind_ == _USER_DEFINED and token in known]
    if user:
        backend.add_tokens(user)
    return backend


def _sentencepiece_backend(architecture: str, tokens: list[str], merges: list[str] | None,
                           scores: list[float] | None) -> Any:
    """Byte-fallback BPE over metaspace-marked text, as Llama-2 has it, or as Gemma and Phi-3 do."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    space = "▁"
    if architecture.startswith("gemma"):
        # Gemma's files spell a token of blanks with the blanks themselves, and its scores do not
        # follow its merge order: the tokens' order in the file does.
        tokens = [space * len(token) if " " in token and not token.strip() else token for token in tokens]
        vocab = {token: index for index, token in enumerate(tokens)}
        backend = Tokenizer(BPE(vocab=vocab, merges=_merges(merges, vocab, [-float(i) for i in range(len(tokens))]),
                                fuse_unk=True, unk_token="<unk>", dropout=None, byte_fallback=True))
        backend.normalizer = normalizers.Replace(" ", space)
        backend.pre_tokenizer = pre_tokenizers.Split(pattern=" ", behavior="merged_with_previous", invert=False)
        backend.decoder = decoders.Sequence([decoders.Replace(space, " "), decoders.ByteFallback(), decoders.Fuse()])
        return backend
    vocab = {token: index for index, token in enumerate(tokens)}
    backend = Tokenizer(BPE(vocab=vocab, merges=_merges(merges, vocab, scores), fuse_unk=True, byte_fallback=True,
                            dropout=None))
    if architecture == "phi3":
        # Phi-3 prefixes every text with the metaspace through its normalizer, with no pre-tokenizer:
        # a text starting with blanks keeps one more of them than under Metaspace.
        backend.normalizer = normalizers.Sequence([normalizers.Prepend(space), normalizers.Replace(" ", space)])
    else:
        backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=space, prepend_scheme="first", split=False)
    backend.decoder = decoders.Sequence([
        decoders.Replace(space, " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(content=" ", left=1),
    ])
    return backend


# Tokenizer class names (the reference's for the file's model_type, registry.DEFAULT_TOKENIZER) ->
# the module defining ours. The pipeline is the file's whatever the class, as in the reference; the
# class brings its name and option defaults (Gemma pads on the left).
_TOKENIZER_MODULES = {
    "GPT2Tokenizer": "leanformers.processing.bpe",
    "Qwen2Tokenizer": "leanformers.processing.bpe",
    "GemmaTokenizer": "leanformers.processing.sentencepiece_bpe",
}


def _tokenizer_class(model_type: str) -> tuple[type, str]:
    import importlib

    from .. import registry
    from ..processing.tokenizer import GENERIC_CLASS, TokenizersBackend

    name = registry.DEFAULT_TOKENIZER.get(model_type, GENERIC_CLASS)
    module = _TOKENIZER_MODULES.get(name)
    found = getattr(importlib.import_module(module), name, None) if module else None
    return (found, name) if found is not None else (TokenizersBackend, GENERIC_CLASS)


def load_gguf_tokenizer(source: Source, gguf_file: Any, **kwargs: Any) -> Any:
    """The tokenizer a GGUF file describes, as the reference builds it: the file's vocabulary,
    merges, special tokens and chat template, under the class the model_type names."""
    for key in (*IGNORED_LOAD_OPTIONS, *SOURCE_OPTIONS, "config"):
        kwargs.pop(key, None)
    file = open_gguf(source, gguf_file)
    backend = _backend(file)
    tokens = file.value("tokenizer.ggml.tokens")
    options: dict[str, Any] = {}
    for name, key in _SPECIAL_NAMES.items():
        index = file.value("tokenizer.ggml." + key)
        options[name] = tokens[index] if isinstance(index, int) and 0 <= index < len(tokens) else None
    if file.value("tokenizer.ggml.model") == "llama":
        options["add_bos_token"] = True
    for key in ("add_bos_token", "add_eos_token"):
        value = file.value("tokenizer.ggml." + key)
        if value is not None:
            options[key] = bool(value)
    template = file.value("tokenizer.chat_template")
    if template is not None:
        options["chat_template"] = template
    options.update(kwargs)
    options.update(name_or_path=source.name_or_path)
    tokenizer_class, class_name = _tokenizer_class(file.family.model_type)
    tokenizer_class._settle_options(options)  # what the file leaves out (Gemma's mask token) is the class's
    tokenizer = tokenizer_class(backend, class_name=class_name, **options)
    tokenizer.update_post_processor()  # a GGUF's bos/eos flags frame texts, as the reference reads them
    return tokenizer


__all__ = ["GGUFFile", "GGUFTensors", "load_gguf_tokenizer", "open_gguf", "resolve_gguf"]

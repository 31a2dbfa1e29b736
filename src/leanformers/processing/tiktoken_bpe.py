"""The generic tokenizer of a checkpoint whose only tokenizer file is a tiktoken ranks file (Llama-3's
``tokenizer.model``: one ``base64-token rank`` line per token), built as the reference converts it.

The tokens become a byte-level BPE vocabulary (each byte written as GPT-2's printable stand-in), the
merges are every split of a token into two tokens, ranked by the whole token's rank, and the model
looks whole pre-tokenized words up before merging (``ignore_merges``), as tiktoken does. The text is
split by the cl100k-style pattern; the checkpoint's added tokens past the ranks (reserved tokens where
the config leaves gaps) are appended as special tokens. The ``tiktoken`` package is not needed.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE

from ..errors import TokenizerError
from .tokenizer import GENERIC_CLASS, TokenizersBackend

# The splitting pattern the reference assumes for a tiktoken file (cl100k's, as Llama-3 uses).
_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def is_tiktoken_file(path: str) -> bool:
    """Whether a file starts like a tiktoken ranks file (text), not a SentencePiece model (protobuf)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(256)
    except OSError as exc:
        raise TokenizerError(f"Could not read {path!r}: {exc}") from exc
    first = head.split(b"\n", 1)[0]
    return bool(first) and first.count(b" ") == 1 and first.replace(b" ", b"").isascii() and first.split()[-1].isdigit()


def read_tiktoken_ranks(path: str) -> dict[bytes, int]:
    """token bytes -> rank, from a tiktoken file (blank lines skipped)."""
    ranks: dict[bytes, int] = {}
    try:
        with open(path, "rb") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise TokenizerError(f"Could not read {path!r}: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 2:
                raise ValueError("not two fields")
            token, rank = base64.b64decode(parts[0], validate=True), int(parts[1])
        except (ValueError, binascii.Error) as exc:
            raise TokenizerError(
                f"{path!r} is not a tiktoken ranks file: line {number} ({line[:60]!r}) is not "
                f"'<base64 token> <rank>' ({exc})."
            ) from exc
        ranks[token] = rank
    if not ranks:
        raise TokenizerError(f"{path!r} is an empty tiktoken ranks file.")
    return ranks


def _byte_symbols() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte value (printable Latin-1 bytes stand for themselves,
    the others are moved past 255 in order), the alphabet of byte-level BPE vocabularies; keyed by
    the byte's Latin-1 code point, for ``str.translate``."""
    kept = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    moved = [byte for byte in range(256) if byte not in kept]
    return {byte: chr(byte) if byte in kept else chr(256 + moved.index(byte)) for byte in range(256)}


def vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The byte-level BPE vocabulary and merges of tiktoken ranks: a merge for every split of a token
    into two tokens, ordered by the token's rank, then by the ranks of the two parts."""
    table = _byte_symbols()
    texts = {token: token.decode("latin-1").translate(table) for token in ranks}
    vocab = {texts[token]: rank for token, rank in ranks.items()}
    ranked = []
    for token, rank in ranks.items():
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in ranks and right in ranks:
                ranked.append((rank, ranks[left], ranks[right], texts[left], texts[right]))
    ranked.sort(key=lambda entry: entry[:3])
    return vocab, [(left, right) for *_, left, right in ranked]


def _extra_tokens(init_kwargs: dict[str, Any], base_size: int) -> list[str]:
    """The tokens appended to the ranks: every id from the end of the ranks to the highest added
    token, a reserved placeholder where the saved added tokens leave a gap, then the extra special
    tokens not among them."""
    decoder = {int(index): str(token) for index, token in (init_kwargs.get("added_tokens_decoder") or {}).items()}
    extras = [str(token) for token in (init_kwargs.get("extra_special_tokens") or [])]
    highest = max(decoder, default=0)
    if highest < base_size:
        return extras
    appended = [decoder.get(index, f"<|reserved_token_{index}|>") for index in range(base_size, highest + 1)]
    return appended + [token for token in extras if token not in set(appended)]


def build_tiktoken_tokenizer(model_file: str, init_kwargs: dict[str, Any]) -> TokenizersBackend:
    """The generic tokenizer of a tiktoken ranks file, with the loader's settled options."""
    ranks = read_tiktoken_ranks(model_file)
    vocab, merges = vocab_and_merges(ranks)
    try:
        backend = Tokenizer(BPE(vocab, merges, fuse_unk=False, ignore_merges=True))
    except Exception as exc:
        raise TokenizerError(f"Could not build a byte-level BPE model from {model_file!r}: {exc}") from exc
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(
        [AddedToken(token, normalized=False, special=True) for token in _extra_tokens(init_kwargs, len(ranks))]
    )
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer = TokenizersBackend(backend, class_name=GENERIC_CLASS, **init_kwargs)
    explicit = "add_bos_token" in init_kwargs or "add_eos_token" in init_kwargs
    tokenizer._set_post_processor(backend.post_processor, explicit)
    return tokenizer


__all__ = ["build_tiktoken_tokenizer", "is_tiktoken_file", "read_tiktoken_ranks", "vocab_and_merges"]

"""SentencePiece-style BPE tokenizers with byte fallback (the reference's ``LlamaTokenizer`` and
``GemmaTokenizer``: Llama-2, Mistral, TinyLlama, Gemma 1-3) on the shared engine.

As the reference's v5 classes do, the pipeline is the class's own: a tokenizer.json gives the
vocabulary, the merges, the padding/truncation defaults and the post-processor; its normalizer,
pre-tokenizer, decoder and model options are replaced. Without a tokenizer.json the vocabulary is
the pieces of ``tokenizer.model`` in file order, read by this library's own protobuf reader (the
``sentencepiece`` package is never needed), and the merges are derived from it: every split of a
piece into two pieces of the vocabulary, ranked by the id of the piece they make.
"""

from __future__ import annotations

from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE, Unigram

from ..errors import ConfigError, TokenizerError
from ..hub import Source, read_json
from .bpe import Merges, _json_model
from .sentencepiece import _CONTROL, _USER_DEFINED, SentencePieceModel, read_sentencepiece_model
from .tokenizer import (
    GENERIC_CLASS, TOKENIZER_FILE, PreTrainedTokenizer, TokenizersBackend, _json_post_processor, _json_settings,
)

SPM_FILE = "tokenizer.model"
_SPACE = "▁"
_UNIGRAM = 1  # trainer_spec.model_type


class SentencePieceBPETokenizer(PreTrainedTokenizer):
    """What the byte-fallback BPE classes share: they pad on the left; each builds its own backend
    (``_build_backend``)."""

    _default_padding_side = "left"


class LlamaTokenizer(SentencePieceBPETokenizer):
    """Llama-2 / Mistral / TinyLlama's tokenizer: byte-fallback BPE over metaspace-marked text, with no
    normaliser.

    ``add_prefix_space`` (default on) marks the text's start as a word start, which decoding strips
    again; ``legacy=False`` (the default) does so only at the very start, ``legacy=True`` also after
    each special token. Only ``add_bos_token`` / ``add_eos_token`` given when loading (or saved
    without a tokenizer.json) change how texts are framed.
    """

    _defaults = {
        "clean_up_tokenization_spaces": False, "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>",
        "use_default_system_prompt": False, "add_prefix_space": None,
    }

    @classmethod
    def _build_backend(cls, vocab: dict[str, int], merges: Merges, options: dict[str, Any]) -> Tokenizer:
        add_prefix_space = True if options["add_prefix_space"] is None else options["add_prefix_space"]
        # The reference's scheme: a prefix at the very start only, unless legacy (after specials too).
        scheme = ("always" if options["legacy"] else "first") if add_prefix_space else "never"
        backend = Tokenizer(BPE(vocab=vocab, merges=merges, fuse_unk=True, byte_fallback=True, dropout=None))
        backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_SPACE, prepend_scheme=scheme, split=False)
        steps = [decoders.Replace(_SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
        if add_prefix_space:
            steps.append(decoders.Strip(content=" ", left=1))
        backend.decoder = decoders.Sequence(steps)
        return backend


class GemmaTokenizer(SentencePieceBPETokenizer):
    """Gemma's tokenizer: byte-fallback BPE over text whose spaces are all replaced by the metaspace
    (no prefix space, no word splitting), with ``<unk>`` as the model's unknown token."""

    _defaults = {
        "unk_token": "<unk>", "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "mask_token": "<mask>",
    }

    @classmethod
    def _build_backend(cls, vocab: dict[str, int], merges: Merges, options: dict[str, Any]) -> Tokenizer:
        backend = Tokenizer(
            BPE(vocab=vocab, merges=merges, fuse_unk=True, unk_token=str(options["unk_token"]), dropout=None,
                byte_fallback=True)
        )
        backend.normalizer = normalizers.Replace(" ", _SPACE)
        backend.pre_tokenizer = pre_tokenizers.Split(pattern=" ", behavior="merged_with_previous", invert=False)
        backend.decoder = decoders.Sequence([decoders.Replace(_SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
        return backend


_CLASSES: dict[str, type[SentencePieceBPETokenizer]] = {cls.__name__: cls for cls in (LlamaTokenizer, GemmaTokenizer)}


def merges_from_vocab(vocab: dict[str, int]) -> Merges:
    """The merges a SentencePiece BPE vocabulary implies: each way of cutting a piece into two pieces
    of the vocabulary, ranked by the id of the whole piece, then by the length of the left part (the
    ranking the reference's conversion gives, so that both libraries split text alike)."""
    ranked = []
    for piece, index in vocab.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in vocab and right in vocab:
                ranked.append((index, cut, len(right), left, right))
    ranked.sort(key=lambda entry: entry[:3])
    return [(left, right) for *_, left, right in ranked]


def _spm_specials(model: SentencePieceModel) -> list[AddedToken]:
    """A SentencePiece model's control and user-defined pieces, which become the extra special
    tokens (only control pieces marked special), as the reference makes them."""
    return [
        AddedToken(piece, normalized=False, special=kind == _CONTROL)
        for piece, _, kind in model.pieces if kind in (_CONTROL, _USER_DEFINED)
    ]


def _spm_bpe(model: SentencePieceModel, model_file: str) -> tuple[dict[str, int], Merges]:
    """The BPE vocabulary (the pieces in file order) and merges of a SentencePiece model."""
    vocab = {piece: index for index, (piece, _, _) in enumerate(model.pieces)}
    if len(vocab) != len(model.pieces):
        raise TokenizerError(f"{model_file!r} lists a piece twice; it is not a usable SentencePiece model.")
    return vocab, merges_from_vocab(vocab)


def build_sentencepiece_bpe_tokenizer(
    source: Source, class_name: str, init_kwargs: dict[str, Any], tokenizer_json: dict[str, Any] | None = None
) -> SentencePieceBPETokenizer:
    """The tokenizer of a Llama-style or Gemma checkpoint, from its tokenizer.json (``tokenizer_json``,
    when the loader has parsed it already) or, without one, from its ``tokenizer.model``, with the
    loader's settled options."""
    tokenizer_class = _CLASSES[class_name]
    # Paths and vocabularies named in a config are not trusted: the files come from the checkpoint.
    options = {key: value for key, value in init_kwargs.items() if key not in ("vocab_file", "tokenizer_file", "vocab")}
    tokenizer_file = source.resolve(TOKENIZER_FILE, required=False)
    post_processor = None
    if tokenizer_file is not None:
        data = tokenizer_json if tokenizer_json is not None else read_json(tokenizer_file, TOKENIZER_FILE, TokenizerError)
        vocab, merges = _json_model(data, tokenizer_file, class_name)
        options["_json_truncation"], options["_json_padding"] = _json_settings(data, tokenizer_file)
        post_processor = _json_post_processor(data, tokenizer_file)
        where = repr(tokenizer_file)
    else:
        model_file = source.resolve(SPM_FILE, required=False)
        if model_file is None:
            raise TokenizerError(
                f"{source.describe()} names tokenizer class {class_name!r} but has neither {TOKENIZER_FILE} nor "
                f"{SPM_FILE}, the files it is built from. Add one of them to the checkpoint."
            )
        model = read_sentencepiece_model(model_file)
        options["additional_special_tokens"] = _spm_specials(model)
        vocab, merges = _spm_bpe(model, model_file)
        where = repr(model_file)
    tokenizer_class._settle_options(options)
    # Llama's legacy shapes the pipeline only; the reference keeps it out of the saved config.
    legacy = options.pop("legacy", False) if tokenizer_class is LlamaTokenizer else None
    for key, value in (("legacy", legacy), ("add_prefix_space", options.get("add_prefix_space"))):
        if value is not None and not isinstance(value, bool):
            raise ConfigError(f"{key} of {source.describe()} must be true or false, got {value!r}.")
    try:
        backend = tokenizer_class._build_backend(vocab, merges, {**options, "legacy": legacy})
    except Exception as exc:
        raise TokenizerError(f"Could not build a {class_name} from {where}: {exc}") from exc
    tokenizer = tokenizer_class(backend, class_name=class_name, **options)
    if class_name == "LlamaTokenizer":
        tokenizer.legacy = legacy
        tokenizer.add_prefix_space = options["add_prefix_space"]
        tokenizer.use_default_system_prompt = options["use_default_system_prompt"]
    explicit = "add_bos_token" in options or "add_eos_token" in options
    tokenizer._set_post_processor(post_processor, explicit)
    return tokenizer


def build_generic_sentencepiece_tokenizer(model_file: str, init_kwargs: dict[str, Any]) -> TokenizersBackend:
    """The generic class over a SentencePiece model file (a checkpoint whose class is not rebuilt, e.g.
    a Mistral or un-named Llama checkpoint with only tokenizer.model), as the reference builds it:
    the file's own model kind, byte fallback and character map, spaces as metaspaces with no word
    split and no prefix, bos / eos / unk from the file, and texts framed by ``add_bos_token`` /
    ``add_eos_token``. Saved added tokens take over the ids of the pieces they replace."""
    model = read_sentencepiece_model(model_file)
    options = {key: value for key, value in init_kwargs.items() if key not in ("vocab_file", "tokenizer_file", "vocab")}
    options["additional_special_tokens"] = _spm_specials(model)
    try:
        if model.model_type == _UNIGRAM:
            options["unk_id"] = model.unk_id
            scored = [(piece, score) for piece, score, _ in model.pieces]
            backend = Tokenizer(Unigram(scored, unk_id=model.unk_id, byte_fallback=model.byte_fallback))
            # The reference deep-copies this tokenizer, a JSON round trip in which the Rust parser
            # moves some scores by an ulp; the same trip keeps the scores, and so the splits, equal.
            backend = Tokenizer.from_str(backend.to_str())
        else:
            vocab, merges = _spm_bpe(model, model_file)
            by_id = {index: piece for piece, index in vocab.items()}
            for index, token in (options.get("added_tokens_decoder") or {}).items():
                current, token = by_id.get(int(index)), str(token)
                if current is not None and current != token and token not in vocab:
                    vocab[token] = vocab.pop(current)
                    by_id[int(index)] = token
            backend = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token=model.unk_piece, fuse_unk=True,
                                    byte_fallback=model.byte_fallback, dropout=None))
        steps = [normalizers.Replace(" ", _SPACE)]
        if model.precompiled_charsmap:
            steps.insert(0, normalizers.Precompiled(model.precompiled_charsmap))
        backend.normalizer = normalizers.Sequence(steps)
    except Exception as exc:
        raise TokenizerError(f"Could not build a tokenizer from the SentencePiece model {model_file!r}: {exc}") from exc
    decoding = [decoders.Replace(_SPACE, " ")]
    if model.byte_fallback:
        decoding += [decoders.ByteFallback(), decoders.Fuse()]
    backend.decoder = decoders.Sequence(decoding)
    for name, index, piece, default in (
        ("bos_token", model.bos_id, model.bos_piece, "<s>"), ("eos_token", model.eos_id, model.eos_piece, "</s>"),
        ("unk_token", model.unk_id, model.unk_piece, "<unk>"),
    ):
        if index >= 0:
            options.setdefault(name, piece or default)
    tokenizer = TokenizersBackend(backend, class_name=GENERIC_CLASS, **options)
    tokenizer.update_post_processor()
    return tokenizer


__all__ = [
    "GemmaTokenizer", "LlamaTokenizer", "SentencePieceBPETokenizer", "build_generic_sentencepiece_tokenizer",
    "build_sentencepiece_bpe_tokenizer", "merges_from_vocab",
]

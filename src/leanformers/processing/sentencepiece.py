"""SentencePiece-family tokenizers (XLM-RoBERTa, CamemBERT, DeBERTa-v2/v3, SigLIP) on the shared engine.

As the reference's v5 classes do, each tokenizer is rebuilt from its class's own definition: a
checkpoint gives only its vocabulary (pieces with scores), its special tokens, the padding and
truncation defaults of its tokenizer.json and, for XLM-R and CamemBERT, the precompiled character
map of its normaliser. Everything else (pre-tokenizer, decoder, ``<s> A </s></s> B </s>`` or
``[CLS] A [SEP] B [SEP]``) comes from the class. Without a tokenizer.json, the SentencePiece model
file itself (``sentencepiece.bpe.model`` / ``spm.model``) is read by a small protobuf reader here,
so the ``sentencepiece`` package is never needed, and its pieces are laid out with the fairseq ids
the reference gives. Every model is a Unigram over the pieces' scores, as in the reference, even
when the file was trained as BPE; for CamemBERT, where the reference fails on a BPE file, this is a
deliberate difference.
"""

from __future__ import annotations

import base64
import binascii
import os
import string
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram

from ..errors import ConfigError, TokenizerError
from ..hub import Source, read_json
from .tokenizer import TOKENIZER_FILE, PreTrainedTokenizer, _json_settings

_SPACE = "▁"
# SentencePiece piece types (sentencepiece_model.proto): control pieces (<s>, [CLS]) and user-defined
# ones become the reference's extra special tokens.
_NORMAL, _CONTROL, _USER_DEFINED = 1, 3, 4

Vocab = list[tuple[str, float]]


# -- the SentencePiece model file ------------------------------------------------------------------


@dataclass(frozen=True)
class SentencePieceModel:
    """What the tokenizers here need of a SentencePiece ``ModelProto``."""

    pieces: list[tuple[str, float, int]]  # (piece, score, type)
    unk_id: int
    precompiled_charsmap: bytes
    # trainer_spec, with the protobuf defaults: what a generic tokenizer is built from.
    model_type: int = 1  # 1 Unigram, 2 BPE, 3 word, 4 char
    byte_fallback: bool = False
    bos_id: int = 1
    eos_id: int = 2
    unk_piece: str = "<unk>"
    bos_piece: str = "<s>"
    eos_piece: str = "</s>"
    # normalizer_spec: whether a word mark is put before the text, and whether runs of spaces are
    # made one (and the text's ends stripped).
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True


# trainer_spec fields read (sentencepiece_model.proto numbers): integers, then texts.
_TRAINER_NUMBERS = {3: "model_type", 35: "byte_fallback", 40: "unk_id", 41: "bos_id", 42: "eos_id"}
_TRAINER_TEXTS = {45: "unk_piece", 46: "bos_piece", 47: "eos_piece"}
# normalizer_spec flags read.
_NORMALIZER_FLAGS = {3: "add_dummy_prefix", 4: "remove_extra_whitespaces"}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    for shift in range(0, 70, 7):
        byte = data[pos]  # an IndexError past the end: the reader reports the file as truncated
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
    raise ValueError("a number is longer than ten bytes")


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field of one protobuf message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire in (1, 2, 5):
            size, pos = (8, pos) if wire == 1 else (4, pos) if wire == 5 else _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
            if pos > len(data):
                raise IndexError
        else:
            raise ValueError(f"field {field} has wire type {wire}, which SentencePiece models never use")
        if field == 0:
            raise ValueError("a field is numbered 0")
        yield field, wire, value


def _expect(wire: int, expected: int, what: str) -> None:
    if wire != expected:
        raise ValueError(f"{what} is stored with wire type {wire}, not {expected}")


def _piece(data: bytes) -> tuple[str, float, int]:
    # Nearly every entry is laid out as text (short), score, optional small type: read those directly,
    # as a model holds up to a quarter of a million of them.
    if len(data) > 1 and data[0] == 0x0A and data[1] < 0x80:
        end = 2 + data[1]
        if len(data) in (end + 5, end + 7) and data[end] == 0x15:
            tail = data[end + 5:]
            if not tail or (tail[0] == 0x18 and tail[1] < 0x80):
                return data[2:end].decode("utf-8"), struct.unpack_from("<f", data, end + 1)[0], tail[1] if tail else 1
    piece, score, kind = None, 0.0, _NORMAL
    for field, wire, value in _fields(data):
        if field == 1:
            _expect(wire, 2, "a piece's text")
            piece = value.decode("utf-8")
        elif field == 2:
            _expect(wire, 5, "a piece's score")
            score = struct.unpack("<f", value)[0]
        elif field == 3:
            _expect(wire, 0, "a piece's type")
            kind = value
    if piece is None:
        raise ValueError("a vocabulary entry has no piece text")
    return piece, score, kind


def read_sentencepiece_model(path: str | os.PathLike) -> SentencePieceModel:
    """Read a SentencePiece model file: its pieces, unknown-piece id and precompiled character map."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise TokenizerError(f"Cannot read the SentencePiece model {path!r}: {exc}") from exc
    pieces, unk_id, charsmap, trainer = [], 0, b"", {}  # trainer: the keyword fields of SentencePieceModel
    try:
        for field, wire, value in _fields(data):
            if field == 1:
                _expect(wire, 2, "a vocabulary entry")
                pieces.append(_piece(value))
            elif field == 2:
                _expect(wire, 2, "trainer_spec")
                for sub, sub_wire, sub_value in _fields(value):
                    if sub in _TRAINER_NUMBERS:
                        name = _TRAINER_NUMBERS[sub]
                        _expect(sub_wire, 0, f"trainer_spec.{name}")
                        trainer[name] = sub_value - (1 << 64) if sub_value >= 1 << 63 else sub_value  # int32 on the wire
                    elif sub in _TRAINER_TEXTS:
                        name = _TRAINER_TEXTS[sub]
                        _expect(sub_wire, 2, f"trainer_spec.{name}")
                        trainer[name] = sub_value.decode("utf-8")
            elif field == 3:
                _expect(wire, 2, "normalizer_spec")
                for sub, sub_wire, sub_value in _fields(value):
                    if sub == 2:
                        _expect(sub_wire, 2, "normalizer_spec.precompiled_charsmap")
                        charsmap = sub_value
                    elif sub in _NORMALIZER_FLAGS:
                        _expect(sub_wire, 0, f"normalizer_spec.{_NORMALIZER_FLAGS[sub]}")
                        trainer[_NORMALIZER_FLAGS[sub]] = bool(sub_value)
        if not pieces:
            raise ValueError("it holds no vocabulary pieces")
    except (ValueError, IndexError) as exc:  # UnicodeDecodeError too
        reason = "it ends in the middle of a field" if isinstance(exc, IndexError) else str(exc)
        raise TokenizerError(
            f"{path!r} is not a readable SentencePiece model ({reason}). The file may be corrupt or truncated; "
            f"re-download it, or provide the checkpoint's tokenizer.json instead."
        ) from exc
    unk_id = trainer.pop("unk_id", 0)
    if "byte_fallback" in trainer:
        trainer["byte_fallback"] = bool(trainer["byte_fallback"])
    return SentencePieceModel(pieces, unk_id, charsmap, **trainer)


# -- the vocabulary, from tokenizer.json or the model file -----------------------------------------


def _json_vocab(data: dict[str, Any], path: str, class_name: str) -> tuple[Vocab, bytes | None]:
    """The (piece, score) list and the precompiled character map of a tokenizer.json."""
    model = data.get("model") if isinstance(data.get("model"), dict) else {}
    vocab = model.get("vocab")
    valid = isinstance(vocab, list) and bool(vocab) and all(
        isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
        and isinstance(entry[1], (int, float)) and not isinstance(entry[1], bool)
        for entry in vocab
    )
    if not valid:
        raise TokenizerError(
            f"{path!r} has no Unigram vocabulary (a list of [piece, score] pairs) to build a {class_name} from; "
            f"its model is {model.get('type')!r}."
        )
    normalizer = data.get("normalizer") if isinstance(data.get("normalizer"), dict) else {}
    found = normalizer.get("normalizers") if normalizer.get("type") == "Sequence" else [normalizer]
    for entry in found if isinstance(found, list) else []:
        if isinstance(entry, dict) and entry.get("type") == "Precompiled" and "precompiled_charsmap" in entry:
            try:
                charsmap = base64.b64decode(entry["precompiled_charsmap"] or "", validate=True)
            except (binascii.Error, TypeError) as exc:
                raise TokenizerError(f"{path!r}: the normaliser's precompiled_charsmap is not base64.") from exc
            return [(piece, score) for piece, score in vocab], charsmap
    return [(piece, score) for piece, score in vocab], None


# -- the classes -----------------------------------------------------------------------------------


def _unigram(vocab: Vocab, unk_id: int, where: str) -> Tokenizer:
    try:
        return Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    except Exception as exc:
        raise TokenizerError(f"Could not build a Unigram model from {where}: {exc}") from exc


def _precompiled(charsmap: bytes, where: str) -> normalizers.Normalizer:
    try:
        return normalizers.Precompiled(charsmap)
    except Exception as exc:
        raise TokenizerError(f"The precompiled character map of {where} is invalid: {exc}") from exc


class SentencePieceTokenizer(PreTrainedTokenizer):
    """A Unigram tokenizer rebuilt from a SentencePiece vocabulary; each subclass is one reference
    class (its defaults, its id layout, its pipeline and its special-token template)."""

    spm_file: str  # the SentencePiece model file the class is built from without a tokenizer.json
    _defaults: dict[str, Any]

    @classmethod
    def _settle_options(cls, options: dict[str, Any]) -> None:
        for key, default in cls._defaults.items():
            options.setdefault(key, default)


class XLMRobertaTokenizer(SentencePieceTokenizer):
    """XLM-RoBERTa's tokenizer: a Unigram vocabulary behind the SentencePiece character map, a
    whitespace split and metaspace, and the ``<s> A </s></s> B </s>`` template (every type id 0)."""

    model_input_names = ("input_ids", "attention_mask")
    spm_file = "sentencepiece.bpe.model"
    _defaults = {
        "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>", "unk_token": "<unk>",
        "pad_token": "<pad>", "mask_token": "<mask>", "add_prefix_space": True,
    }

    @classmethod
    def _spm_vocab(cls, pieces: Vocab, options: dict[str, Any]) -> Vocab:
        """fairseq's <s>=0, <pad>=1, </s>=2, <unk>=3 in place of SentencePiece's <unk> <s> </s>, then
        the other pieces (each one id up), then <mask>."""
        head = [(str(options[name]), 0.0) for name in ("bos_token", "pad_token", "eos_token", "unk_token")]
        return head + pieces[3:] + [(str(options["mask_token"]), 0.0)]

    @classmethod
    def _unk_id(cls, vocab: Vocab, options: dict[str, Any]) -> int:
        return 3  # the fairseq layout's, whatever the vocabulary holds

    @classmethod
    def _pipeline(cls, backend: Tokenizer, charsmap: bytes | None, options: dict[str, Any], where: str) -> None:
        if charsmap:
            backend.normalizer = _precompiled(charsmap, where)
        scheme = "always" if options["add_prefix_space"] else "never"
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement=_SPACE, prepend_scheme=scheme)]
        )
        backend.decoder = decoders.Metaspace(replacement=_SPACE, prepend_scheme=scheme)

    def _post_processor(self) -> Any:
        bos, eos = str(self.bos_token), str(self.eos_token)
        return processors.TemplateProcessing(
            single=[bos, "$A", eos], pair=[bos, "$A", eos, eos, "$B", eos],
            special_tokens=[(bos, self.bos_token_id), (eos, self.eos_token_id)],
        )


class CamembertTokenizer(XLMRobertaTokenizer):
    """CamemBERT's tokenizer: XLM-RoBERTa's pipeline over CamemBERT's fairseq layout, with a mask
    token that swallows the space before it."""

    @classmethod
    def _settle_options(cls, options: dict[str, Any]) -> None:
        super()._settle_options(options)
        if isinstance(options["mask_token"], str):
            options["mask_token"] = AddedToken(options["mask_token"], lstrip=True, special=True)
        options.setdefault("additional_special_tokens", ["<s>NOTUSED", "</s>NOTUSED", "<unk>NOTUSED"])

    @classmethod
    def _spm_vocab(cls, pieces: Vocab, options: dict[str, Any]) -> Vocab:
        """Unused <s> and </s>, then <pad> and <unk>, SentencePiece's own <unk> kept unused (scored so
        that it is never chosen), the other pieces (each four ids up), then <mask>."""
        head = [("<s>NOTUSED", 0.0), (str(options["pad_token"]), 0.0), ("</s>NOTUSED", 0.0)]
        head += [(str(options["unk_token"]), 0.0), ("<unk>NOTUSED", -100.0)]
        return head + pieces[1:] + [(str(options["mask_token"]), 0.0)]

    @classmethod
    def _unk_id(cls, vocab: Vocab, options: dict[str, Any]) -> int:
        unk = str(options["unk_token"])
        return next((index for index, (piece, _) in enumerate(vocab) if piece == unk), 0)


class DebertaV2Tokenizer(SentencePieceTokenizer):
    """DeBERTa-v2/v3's tokenizer: a Unigram vocabulary behind its own normaliser (the file's character
    map is not used, as in the reference), an optional punctuation split, metaspace, and the
    ``[CLS] A [SEP] B [SEP]`` template with token types."""

    model_input_names = ("input_ids", "attention_mask", "token_type_ids")
    spm_file = "spm.model"
    _defaults = {
        "bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
        "cls_token": "[CLS]", "mask_token": "[MASK]", "do_lower_case": False, "split_by_punct": False,
        "add_prefix_space": True,
    }

    @classmethod
    def _spm_vocab(cls, pieces: Vocab, options: dict[str, Any]) -> Vocab:
        return pieces

    @classmethod
    def _unk_id(cls, vocab: Vocab, options: dict[str, Any]) -> int:
        unk = (str(options["unk_token"]), 0.0)
        options["unk_id"] = vocab.index(unk) if unk in vocab else options.get("unk_id", 1)
        return options["unk_id"]

    @classmethod
    def _pipeline(cls, backend: Tokenizer, charsmap: bytes | None, options: dict[str, Any], where: str) -> None:
        backend.normalizer = normalizers.Sequence(
            ([normalizers.Lowercase()] if options["do_lower_case"] else [])
            + [normalizers.Replace(Regex(r"\s{2,}|[\n\r\t]"), " "), normalizers.NFC(), normalizers.Strip(left=False)]
        )
        scheme = "always" if options["add_prefix_space"] else "first"
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            ([pre_tokenizers.Punctuation(behavior="isolated")] if options["split_by_punct"] else [])
            + [pre_tokenizers.Metaspace(replacement=_SPACE, prepend_scheme=scheme)]
        )
        backend.decoder = decoders.Metaspace(replacement=_SPACE, prepend_scheme=scheme)

    def _post_processor(self) -> Any:
        cls, sep = str(self.cls_token), str(self.sep_token)
        cls_id, sep_id = self.cls_token_id, self.sep_token_id
        return processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, 0 if cls_id is None else cls_id), (sep, 0 if sep_id is None else sep_id)],
        )


# SigLIP's canonical text: ASCII punctuation (Python's string.punctuation) removed, and every run of
# what Python's str.isspace() calls whitespace made one space. The classes are spelled out so that
# the Rust regex engine matches exactly Python's characters (a test checks the list).
_ASCII_PUNCTUATION = "[" + "".join(f"\\x{ord(char):02x}" for char in string.punctuation) + "]"
_PYTHON_WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680" + "".join(
    map(chr, range(0x2000, 0x200B))
) + "\u2028\u2029\u202f\u205f\u3000"
_WHITESPACE_RUN = "[" + "".join(f"\\x{{{ord(char):x}}}" for char in _PYTHON_WHITESPACE) + "]+"
# What SentencePiece shows for an unknown piece when decoding.
_UNK_SURFACE = " \u2047 "


class SiglipTokenizer(SentencePieceTokenizer):
    """SigLIP's tokenizer: a SentencePiece Unigram model (spiece.model) behind SigLIP's canonical
    text (lower case, ASCII punctuation removed, whitespace collapsed and stripped), each text followed
    by ``</s>`` (``A </s> B </s>`` for a pair) unless it already ends with it. ``</s>`` also pads;
    model cards pass ``padding="max_length"`` (64 tokens).

    The reference runs the ``sentencepiece`` package on each stretch of text between special tokens;
    here the same steps are one Rust pipeline: the normaliser does SigLIP's clean-up and then
    SentencePiece's (character map, whitespace), and only the text's first stretch starts a word
    (a later one follows a special token directly, as in the reference). Offsets, which the reference
    does not give, count one extra character at the text's start."""

    model_input_names = ("input_ids", "attention_mask")
    spm_file = "spiece.model"
    _defaults = {
        "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "</s>", "model_max_length": 64,
        "do_lower_case": True, "backend": "sentencepiece", "sp_model_kwargs": {},
    }
    _reworks_texts = True
    _length_counts_padding = False

    @classmethod
    def _siglip_pipeline(
        cls, backend: Tokenizer, model: SentencePieceModel, options: dict[str, Any], where: str
    ) -> None:
        lower_case = options["do_lower_case"]
        if not isinstance(lower_case, bool):
            raise TokenizerError(f"do_lower_case of {where} must be true or false, got {lower_case!r}.")
        charsmap = model.precompiled_charsmap
        backend.normalizer = normalizers.Sequence(
            ([normalizers.Lowercase()] if lower_case else [])
            + [normalizers.Replace(Regex(_ASCII_PUNCTUATION), ""),
               normalizers.Replace(Regex(_WHITESPACE_RUN), " "), normalizers.Strip()]
            # Then SentencePiece's own steps: its character map (nmt_nfkc's reads the space mark as a
            # space) and, as the model says, one space of each run kept and trailing spaces and marks dropped.
            # A stretch's leading space (the text's first) stays: it marks a word start.
            + ([_precompiled(charsmap, where)] if charsmap else [])
            + ([normalizers.Replace(Regex(" {2,}"), " "), normalizers.Replace(Regex(f"[ {_SPACE}]+\\z"), "")]
               if model.remove_extra_whitespaces else [])
        )
        backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_SPACE, prepend_scheme="never", split=True)
        backend.decoder = decoders.Metaspace(replacement=_SPACE, prepend_scheme="always", split=True)

    def _post_processor(self) -> Any:
        eos = str(self.eos_token)
        return processors.TemplateProcessing(
            single=["$A", eos], pair=["$A", eos, "$B", eos], special_tokens=[(eos, self.eos_token_id)]
        )

    def _prepare_texts(self, batch: list[Any], add_special_tokens: bool, plan: Any) -> list[Any]:
        """Each text as the reference hands it on: its space marks read as spaces, and one leading
        mark so that its first word starts a word. The reference adds no </s> to a sequence whose
        tokens already end with one, so such a text is cut before that </s> (and what follows it,
        which gives no tokens) and the template adds it back; likewise a single text that truncation
        would cut right after a </s> is cut there."""
        eos = self.eos_token if add_special_tokens and not plan.split else None
        others: list[str] | None = None  # the other added tokens, looked up once if needed
        truncation = plan.backend_state[0]
        keep = None
        if eos and truncation is not None and truncation["direction"] == "right":
            keep = truncation["max_length"] - 1  # the reference truncates before adding </s>

        def prepare(text: Any, single: bool) -> Any:
            nonlocal others
            if not isinstance(text, str):
                return text
            text = _SPACE + text.replace(_SPACE, " ")
            if self._keeps_spaces and not plan.split:
                text = self._drop_lone_mark(text)
            if not eos or eos not in text:
                return text
            if others is None:
                others = [token for token in self.get_added_vocab() if token != eos]
            cut = text.rindex(eos)
            tail = text[cut + len(eos):]
            if not any(token in tail for token in others) and not self._backend.normalizer.normalize_str(tail):
                text = text[:cut]
            if single and keep is not None and keep > 0:
                if self._applied != (None, None):
                    self._configure((None, None))
                encoding = self._backend.encode(text, add_special_tokens=False)
                if len(encoding.ids) > keep and encoding.ids[keep - 1] == self.eos_token_id:
                    text = text[: encoding.offsets[keep - 1][0]]
            return text

        return [tuple(prepare(part, False) for part in item) if isinstance(item, tuple) else prepare(item, True)
                for item in batch]

    def _drop_lone_mark(self, text: str) -> str:
        """The reference drops a text's first token when it is a lone word mark followed by a
        special token; only a model that keeps spaces gives one."""
        starts = [(text.find(token), token) for token in self.all_special_tokens if token in text]
        if not starts:
            return text
        start = min(starts)[0]
        if self._backend.normalizer.normalize_str(text[:start]) in (" ", _SPACE):
            return text[start:]
        return text

    def _decode_rows(self, rows: list[list[int]], skip_special_tokens: bool) -> list[str]:
        skipped = set(self.all_special_ids) if skip_special_tokens else set()
        texts = []
        for ids in rows:
            tokens = [self._backend.id_to_token(index) for index in ids if index not in skipped]
            if None in tokens:
                unknown = next(index for index in ids if self._backend.id_to_token(index) is None)
                raise ValueError(f"id {unknown} is not in the vocabulary of {len(self)} tokens")
            texts.append(self.convert_tokens_to_string(tokens))
        return texts

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """As the reference: SentencePiece decodes the stretches between special tokens, each special
        token follows its stretch directly, and a stretch after a normal token starts with a space."""
        specials = set(self.all_special_tokens)
        text, stretch, after_special = "", [], False
        for token in tokens:
            if token in specials:
                text += ("" if after_special else " ") + self._spm_decode(stretch) + token
                stretch, after_special = [], True
            else:
                stretch.append(token)
                after_special = False
        return (text + self._spm_decode(stretch)).strip()

    def _spm_decode(self, pieces: list[str]) -> str:
        """SentencePiece's decoding of vocabulary pieces: control pieces vanish, the unknown piece
        shows as " ⁇ ", space marks are spaces, and the first mark of the text is dropped."""
        parts, at_start = [], True
        for piece in pieces:
            if piece in self._control_pieces:
                continue
            if piece == self._unk_piece:
                part = _UNK_SURFACE
            else:
                first_mark = at_start and self._strips_first_mark and piece.startswith(_SPACE)
                part = (piece[1:] if first_mark else piece).replace(_SPACE, " ")
            parts.append(part)
            at_start = at_start and not part
        return "".join(parts)

    def _files_to_save(self) -> dict[str, str | bytes]:
        # As the reference: the SentencePiece model itself, no tokenizer.json.
        files = super()._files_to_save()
        del files[TOKENIZER_FILE]
        files[self.spm_file] = self._model_bytes
        return files

    def _config_to_save(self) -> dict[str, Any]:
        config = super()._config_to_save()
        config.setdefault("extra_special_tokens", [])
        # Without a tokenizer.json, the config is where the reference keeps the added tokens.
        config["added_tokens_decoder"] = {
            str(index): {
                "content": token.content, "lstrip": token.lstrip, "normalized": token.normalized,
                "rstrip": token.rstrip, "single_word": token.single_word, "special": token.special,
            }
            for index, token in sorted(self.added_tokens_decoder.items())
        }
        return dict(sorted(config.items()))


_CLASSES: dict[str, type[SentencePieceTokenizer]] = {
    cls.__name__: cls for cls in (XLMRobertaTokenizer, CamembertTokenizer, DebertaV2Tokenizer, SiglipTokenizer)
}


def _build_siglip(source: Source, class_name: str, options: dict[str, Any]) -> SiglipTokenizer:
    """SigLIP's tokenizer, always from spiece.model (the reference does not read a tokenizer.json)."""
    model_file = source.resolve(SiglipTokenizer.spm_file, required=False)
    if model_file is None:
        raise TokenizerError(
            f"{source.describe()} names tokenizer class {class_name!r} but has no {SiglipTokenizer.spm_file}, the "
            f"SentencePiece model it is built from. Add the spiece.model saved with the model."
        )
    model = read_sentencepiece_model(model_file)
    if not 0 <= model.unk_id < len(model.pieces):
        raise TokenizerError(f"{model_file!r}: its unknown-piece id {model.unk_id} is not one of its pieces.")
    options.pop("_json_truncation", None), options.pop("_json_padding", None)
    SiglipTokenizer._settle_options(options)
    sampling = options["sp_model_kwargs"]
    if not isinstance(sampling, dict) or sampling.get("enable_sampling"):
        raise ConfigError(
            f"sp_model_kwargs of {source.describe()} is {sampling!r}: leanformers encodes deterministically and does "
            f"not sample segmentations. Remove enable_sampling (or the whole sp_model_kwargs)."
        )
    where = repr(model_file)
    backend = _unigram([(piece, score) for piece, score, _ in model.pieces], model.unk_id, where)
    SiglipTokenizer._siglip_pipeline(backend, model, options, where)
    tokenizer = SiglipTokenizer(backend, class_name=class_name, **options)
    with open(model_file, "rb") as handle:
        tokenizer._model_bytes = handle.read()
    tokenizer._control_pieces = frozenset(piece for piece, _, kind in model.pieces if kind == _CONTROL)
    tokenizer._unk_piece = model.pieces[model.unk_id][0]
    tokenizer._strips_first_mark = model.add_dummy_prefix or model.remove_extra_whitespaces
    tokenizer._keeps_spaces = not model.remove_extra_whitespaces
    tokenizer.do_lower_case = options["do_lower_case"]
    backend.post_processor = tokenizer._post_processor()
    return tokenizer


def build_sentencepiece_tokenizer(
    source: Source, class_name: str, init_kwargs: dict[str, Any], tokenizer_json: dict[str, Any] | None = None
) -> SentencePieceTokenizer:
    """The tokenizer of an XLM-R, CamemBERT or DeBERTa-v2/v3 checkpoint, from its tokenizer.json
    (``tokenizer_json``, when the loader has parsed it already) or, without one, from its SentencePiece
    model file, with the loader's settled options."""
    tokenizer_class = _CLASSES[class_name]
    # Paths and vocabularies named in a config are not trusted: the files come from the checkpoint.
    options = {key: value for key, value in init_kwargs.items() if key not in ("vocab_file", "tokenizer_file", "vocab")}
    if tokenizer_class is SiglipTokenizer:
        return _build_siglip(source, class_name, options)
    tokenizer_file = source.resolve(TOKENIZER_FILE, required=False)
    if tokenizer_file is not None:
        data = tokenizer_json if tokenizer_json is not None else read_json(tokenizer_file, TOKENIZER_FILE, TokenizerError)
        vocab, charsmap = _json_vocab(data, tokenizer_file, class_name)
        options["_json_truncation"], options["_json_padding"] = _json_settings(data, tokenizer_file)
        where = repr(tokenizer_file)
        tokenizer_class._settle_options(options)
    else:
        model_file = source.resolve(tokenizer_class.spm_file, required=False)
        if model_file is None:
            raise TokenizerError(
                f"{source.describe()} names tokenizer class {class_name!r} but has neither {TOKENIZER_FILE} nor "
                f"{tokenizer_class.spm_file}, the files it is built from. Add one of them to the checkpoint."
            )
        model = read_sentencepiece_model(model_file)
        # As the reference: the model's control and user-defined pieces replace any extra special tokens
        # not given as extra_special_tokens, and its unk_id is recorded (DeBERTa falls back on it).
        options["additional_special_tokens"] = [
            AddedToken(piece, normalized=False, special=kind == _CONTROL)
            for piece, _, kind in model.pieces if kind in (_CONTROL, _USER_DEFINED)
        ]
        options["unk_id"] = model.unk_id
        tokenizer_class._settle_options(options)
        vocab = tokenizer_class._spm_vocab([(piece, score) for piece, score, _ in model.pieces], options)
        charsmap, where = model.precompiled_charsmap or None, repr(model_file)
    backend = _unigram(vocab, tokenizer_class._unk_id(vocab, options), where)
    tokenizer_class._pipeline(backend, charsmap, options, where)
    tokenizer = tokenizer_class(backend, class_name=class_name, **options)
    try:
        backend.post_processor = tokenizer._post_processor()
    except Exception as exc:
        raise TokenizerError(f"The special tokens of {where} cannot frame a sequence: {exc}") from exc
    return tokenizer


__all__ = [
    "CamembertTokenizer",
    "DebertaV2Tokenizer",
    "SentencePieceModel",
    "SentencePieceTokenizer",
    "SiglipTokenizer",
    "XLMRobertaTokenizer",
    "build_sentencepiece_tokenizer",
    "read_sentencepiece_model",
]

"""Audio: the sequence feature extractor (wav2vec2-style) and reading audio files.

One engine: float32 rows -> truncate -> pad -> attention mask -> per-utterance zero-mean,
unit-variance normalisation; ``feature_extractor_type`` selects a profile of default settings
(``PROFILES``). The output equals the reference's ``Wav2Vec2FeatureExtractor`` bit for bit. Where
the reference silently produces garbage this raises or does the evident thing instead: 2-D arrays
shaped like (frames, channels) are refused as multi-channel audio, left padding takes the
statistics over the real samples, and empty or non-numeric input raises :class:`InputError`.

Spectrogram models (AST) take Kaldi log-mel filter banks instead: their class names
(``FILTER_BANK_CLASSES``) get :class:`FilterBankFeatureExtractor`, which shares the input checks,
settings and loading, and computes the features with ``fbank.py``. Whisper's class names
(``LOG_MEL_CLASSES``) get :class:`LogMelFeatureExtractor` (features from ``logmel.py``).
"""

from __future__ import annotations

import io
import logging
import math
import numbers
import os
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np

from .. import registry
from ..errors import ConfigError, InputError, UnsupportedModelError
from .fbank import FRAME_LENGTH, log_mel_fbank, mel_filters
from .features import (
    BatchFeature,
    Preprocessor,
    check_settings,
    describe,
    is_flag,
    is_integer,
    is_number,
    is_tensor,
    tensor_to_numpy,
    tensor_type_name,
    to_numpy,
)

logger = logging.getLogger(__name__)

# The settings a feature extractor holds, with each profile's defaults.
PROFILES: dict[str, dict[str, Any]] = {
    "wav2vec2": {
        "feature_size": 1,
        "sampling_rate": 16000,
        "padding_value": 0.0,
        "padding_side": "right",
        "return_attention_mask": False,
        "do_normalize": True,
    },
    # Log-mel filter banks of a fixed number of frames (processing/fbank.py), normalised with
    # AudioSet's statistics.
    "ast": {
        "feature_size": 1,
        "sampling_rate": 16000,
        "num_mel_bins": 128,
        "max_length": 1024,
        "padding_value": 0.0,
        "padding_side": "right",
        "return_attention_mask": False,
        "do_normalize": True,
        "mean": -4.2677393,
        "std": 4.5689974,
    },
    # Whisper: log-mel spectrograms (processing/logmel.py) of clips padded or cut to chunk_length seconds.
    "whisper": {
        "feature_size": 80,
        "sampling_rate": 16000,
        "hop_length": 160,
        "chunk_length": 30,
        "n_fft": 400,
        "padding_value": 0.0,
        "padding_side": "right",
        "dither": 0.0,
        "return_attention_mask": False,
    },
}
SETTING_NAMES = tuple(PROFILES["wav2vec2"])
# Classes whose engine is FilterBankFeatureExtractor (features from fbank.py), with their profile.
FILTER_BANK_CLASSES: dict[str, str] = {"ASTFeatureExtractor": "ast"}
# Classes whose engine is LogMelFeatureExtractor (features from logmel.py), with their profile.
LOG_MEL_CLASSES: dict[str, str] = {"WhisperFeatureExtractor": "whisper"}
# What each setting must be.
_RULES = {
    "feature_size": (lambda value: is_integer(value) and value >= 1, "a positive integer"),
    "sampling_rate": (lambda value: is_number(value) and value > 0, "a positive number of Hz"),
    "padding_value": (lambda value: value is None or is_number(value), "a finite number (or null)"),
    "padding_side": (lambda value: value in ("right", "left"), "'right' or 'left'"),
    "return_attention_mask": (is_flag, "true or false"),
    "do_normalize": (is_flag, "true or false"),
}

# Added to the variance before the square root, as the reference does.
NORMALIZATION_EPSILON = 1e-7

# soxr's "HQ" is the soxr_hq setting of librosa.load and of the reference's soundfile backend.
RESAMPLING_QUALITY = "HQ"

# A 2-D array with at most this many columns (and more rows than columns) is taken for
# (frames, channels) audio rather than for a batch of utterances.
_MAX_CHANNELS = 8

_DO_NOT_PAD, _LONGEST, _MAX_LENGTH = "do_not_pad", "longest", "max_length"
_PADDING_NAMES = (_DO_NOT_PAD, _LONGEST, _MAX_LENGTH)

_CALL_OPTIONS = (
    "padding, max_length, truncation, pad_to_multiple_of, return_attention_mask, return_tensors, sampling_rate"
)


def _multichannel_hint(shape: tuple[int, ...]) -> str:
    return (
        f"Audio of shape {shape} looks like multi-channel (frames, channels) audio, but the model takes mono. "
        f"Average the channels first (audio.mean(axis=1)), or read the file with "
        f"leanformers.processing.audio.load_audio(path), which downmixes to mono."
    )


def _as_row(value: Any, where: str) -> np.ndarray:
    """One utterance as a fresh 1-D float32 array, or a clear InputError."""
    if is_tensor(value):
        value = tensor_to_numpy(value)
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{where} is not a sequence of numbers ({exc}).") from exc
    if array.dtype.kind not in "biuf":
        raise InputError(
            f"{where} must hold real numbers (audio samples), got an array of dtype {array.dtype} "
            f"({describe(value)}). Pass floats, e.g. the array load_audio(path) returns."
        )
    if array.ndim == 0:
        raise InputError(f"{where} is a single number, not audio: pass a 1-D sequence of samples.")
    if array.ndim == 2:
        raise InputError(f"{where}: {_multichannel_hint(array.shape)}")
    if array.ndim > 2:
        raise InputError(
            f"{where} has shape {array.shape}; only mono audio (one 1-D array per utterance) is supported."
        )
    if array.shape[0] == 0:
        raise InputError(f"{where} is empty (no samples); there is nothing to extract features from.")
    row = np.array(array, dtype=np.float32)
    # min and max are NaN when any sample is, and infinite when one is: two passes, no mask array.
    if array.dtype.kind == "f" and not (np.isfinite(row.min()) and np.isfinite(row.max())):
        raise InputError(
            f"{where} holds NaN or infinite samples (e.g. from a failed decode or a division by zero); "
            f"clean the audio first, e.g. np.nan_to_num(audio)."
        )
    return row


def _utterances(raw_speech: Any) -> tuple[list[np.ndarray], bool]:
    """The utterances of a call as 1-D float32 arrays, and whether they came as a torch tensor."""
    from_torch = is_tensor(raw_speech)
    if from_torch:
        raw_speech = tensor_to_numpy(raw_speech)
    if isinstance(raw_speech, np.ndarray):
        if raw_speech.ndim == 2:
            frames, columns = raw_speech.shape
            if columns <= _MAX_CHANNELS and frames > columns:
                raise InputError(_multichannel_hint(raw_speech.shape))
            return [_as_row(row, f"raw_speech[{i}]") for i, row in enumerate(raw_speech)], from_torch
        if raw_speech.ndim > 2:
            raise InputError(
                f"raw_speech has shape {raw_speech.shape}; pass a 1-D array (one utterance), a 2-D array "
                f"(a batch, one utterance per row) or a list of 1-D arrays. Only mono audio is supported."
            )
        return [_as_row(raw_speech, "raw_speech")], from_torch
    if isinstance(raw_speech, (list, tuple)):
        if not raw_speech:
            raise InputError("raw_speech is empty: pass at least one utterance (a 1-D array of samples).")
        first = raw_speech[0]
        if isinstance(first, (np.ndarray, list, tuple)) or is_tensor(first):
            return [_as_row(item, f"raw_speech[{i}]") for i, item in enumerate(raw_speech)], from_torch
        return [_as_row(raw_speech, "raw_speech")], from_torch
    if isinstance(raw_speech, (str, os.PathLike)):
        raise InputError(
            f"raw_speech is a path ({os.fspath(raw_speech)!r}), not audio samples. Read it first: "
            f"leanformers.processing.audio.load_audio(path, sampling_rate=...)."
        )
    raise InputError(
        f"raw_speech must be a 1-D float array, a list of floats, a list of 1-D arrays or a torch tensor, "
        f"got {describe(raw_speech)}."
    )


def _positive_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if not is_integer(value) or value <= 0:
        raise InputError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _padding_strategy(padding: Any) -> str:
    if padding is True:
        return _LONGEST
    if padding is False or padding is None:
        return _DO_NOT_PAD
    name = getattr(padding, "value", padding)
    if name in _PADDING_NAMES:
        return name
    raise InputError(
        f"padding={padding!r} is not a padding strategy: use True or 'longest' (pad to the longest utterance), "
        f"'max_length' (with max_length=...), or False / 'do_not_pad'."
    )


def _round_up(length: int, multiple: int | None) -> int:
    if multiple is None or length % multiple == 0:
        return length
    return (length // multiple + 1) * multiple


def _batch(rows: Any, masks: list[np.ndarray] | None, others: dict[str, Any], tensor_type: Any) -> BatchFeature:
    lengths = sorted({len(row) for row in rows})
    if tensor_type_name(tensor_type) == "pt" and len(lengths) > 1:
        # numpy takes ragged rows as an object array (as in the reference); torch cannot.
        raise InputError(
            f"Cannot return one torch tensor for utterances of different lengths ({lengths[0]} to "
            f"{lengths[-1]} samples): pass padding=True (or padding='max_length', max_length=...), or "
            f"return_tensors=None for a list of arrays."
        )
    data = {"input_values": rows, **others}
    if masks is not None:
        data["attention_mask"] = masks
    return BatchFeature(data, tensor_type=tensor_type)


class FeatureExtractor(Preprocessor):
    """Turns raw speech into ``input_values`` (and ``attention_mask``), like the reference's
    ``Wav2Vec2FeatureExtractor``. ``FeatureExtractor(**settings)`` builds one from a saved config;
    usually ``AutoFeatureExtractor.from_pretrained`` does. Settings are plain attributes; keys this
    engine does not use are kept and saved back, as the reference does."""

    model_input_names: ClassVar[list[str]] = ["input_values", "attention_mask"]
    bundle_keys = ("feature_extractor", "audio_processor")
    kind = "feature extractor"
    type_keys = ("feature_extractor_type", "image_processor_type")
    config_type_key = "feature_extractor_type"
    default_tables = ("DEFAULT_FEATURE_EXTRACTOR", "DEFAULT_IMAGE_PROCESSOR")
    auto_map_keys = ("AutoFeatureExtractor",)
    profiles = PROFILES
    class_table = "FEATURE_EXTRACTORS"

    def __new__(cls, feature_extractor_type: str = "Wav2Vec2FeatureExtractor", **settings: Any) -> Self:
        # A filter-bank class name (AST's) gets the filter-bank engine, however the object is built.
        engine = cls
        if cls is FeatureExtractor and isinstance(feature_extractor_type, str):
            if feature_extractor_type in FILTER_BANK_CLASSES:
                engine = FilterBankFeatureExtractor
            elif feature_extractor_type in LOG_MEL_CLASSES:
                engine = LogMelFeatureExtractor
        return super().__new__(engine)

    def __init__(self, feature_extractor_type: str = "Wav2Vec2FeatureExtractor", **settings: Any) -> None:
        values = {**self._profile_of(feature_extractor_type), **settings}
        check_settings(values, _RULES, f"the {feature_extractor_type} settings", ConfigError)
        self._set_settings(feature_extractor_type, values)

    @classmethod
    def _class_name_from(cls, data: Mapping[str, Any], source: Any, where: str, config: Any) -> str:
        if source is None and config is None and where == "the settings dict":
            return data.get("feature_extractor_type", "Wav2Vec2FeatureExtractor")
        return super()._class_name_from(data, source, where, config)

    @classmethod
    def _known(cls, name: str) -> bool:
        return name in registry.FEATURE_EXTRACTORS or registry.image_processor_profile(name) is not None

    @classmethod
    def _supported_names(cls) -> str:
        audio = ", ".join(sorted(registry.FEATURE_EXTRACTORS))
        image = ", ".join(sorted(registry.IMAGE_PROCESSORS))
        return f"audio: {audio}; image (delegated to the image processor): {image}"

    @classmethod
    def _settable(cls, class_name: str) -> tuple[str, ...]:
        return SETTING_NAMES

    @classmethod
    def _from_settings(cls, class_name: str, data: Mapping[str, Any], kwargs: dict[str, Any], where: str) -> Any:
        if registry.image_processor_profile(class_name) is not None:
            # An image class named as a feature extractor: the reference hands it to the image processor.
            from .image import ImageProcessor

            return ImageProcessor._from_settings(class_name, data, kwargs, where)
        return super()._from_settings(class_name, data, kwargs, where)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeatureExtractor):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    # -- the engine -----------------------------------------------------------------------------

    def _check_sampling_rate(self, sampling_rate: Any) -> None:
        if sampling_rate is None:
            logger.warning(
                "It is strongly recommended to pass the `sampling_rate` argument to `%s()`. Failing to do so can "
                "result in silent errors that might be hard to debug.",
                self._class_name,
            )
            return
        if not is_number(sampling_rate):
            raise InputError(f"sampling_rate must be a number of Hz, got {sampling_rate!r}.")
        if sampling_rate != self.sampling_rate:
            expected = self.sampling_rate
            raise InputError(
                f"This feature extractor expects audio sampled at {expected} Hz (the rate its model was trained "
                f"on), but sampling_rate={sampling_rate} was given. Resample first: "
                f"leanformers.processing.audio.load_audio(path, sampling_rate={expected}) reads and resamples a "
                f"file; for an array, soxr.resample(audio, {sampling_rate}, {expected})."
            )

    def _pad_rows(
        self,
        rows: list[np.ndarray],
        masks: list[np.ndarray] | None,
        padding: Any,
        max_length: Any,
        truncation: Any,
        pad_to_multiple_of: Any,
        return_attention_mask: bool | None,
    ) -> tuple[list[np.ndarray], list[np.ndarray] | None, list[tuple[int, int]]]:
        """Truncate and pad float32 rows as a call's arguments say; returns the rows, their int32
        masks (or None) and, per row, the ``(start, end)`` of its real samples."""
        strategy = _padding_strategy(padding)
        max_length = _positive_int(max_length, "max_length")
        pad_to_multiple_of = _positive_int(pad_to_multiple_of, "pad_to_multiple_of")
        with_mask = self.return_attention_mask if return_attention_mask is None else bool(return_attention_mask)
        # The settings are attributes a caller may have changed since loading.
        check_settings(self.__dict__, _RULES, self._class_name, ConfigError)
        if self.feature_size != 1:
            raise ConfigError(
                f"{self._class_name} here handles raw waveforms (feature_size 1); this one has "
                f"feature_size={self.feature_size}."
            )
        if strategy == _MAX_LENGTH and max_length is None:
            raise InputError("padding='max_length' needs max_length=... (the length to pad every utterance to).")
        if strategy != _DO_NOT_PAD and self.padding_value is None:
            raise ConfigError(
                "Padding was asked for but this feature extractor has no padding_value; set one, "
                "e.g. feature_extractor.padding_value = 0.0."
            )
        if truncation:
            if max_length is None:
                raise InputError("truncation=True needs max_length=... (the length to cut utterances to).")
            limit = _round_up(max_length, pad_to_multiple_of)
            rows = [row[:limit] for row in rows]
            masks = [mask[:limit] for mask in masks] if masks is not None else None
        if masks is None and with_mask:
            masks = [np.ones(len(row), dtype=np.int32) for row in rows]
        target = 0
        if strategy != _DO_NOT_PAD:
            longest = max_length if strategy == _MAX_LENGTH else max(len(row) for row in rows)
            target = _round_up(longest, pad_to_multiple_of)

        padded, padded_masks, spans = [], [], []
        for index, row in enumerate(rows):
            length = len(row)
            size = max(target, length)
            start = size - length if self.padding_side == "left" else 0
            if size > length:
                out = np.full(size, self.padding_value, dtype=np.float32)
                out[start : start + length] = row
                row = out
            padded.append(row)
            spans.append((start, start + length))
            if masks is not None:
                mask = np.zeros(size, dtype=np.int32)
                mask[start : start + length] = masks[index]
                padded_masks.append(mask)
        return padded, padded_masks if masks is not None else None, spans

    def _normalize(self, rows: list[np.ndarray], spans: list[tuple[int, int]] | None) -> list[np.ndarray]:
        """Zero mean, unit variance per row: over its real samples (``spans``, padding reset to
        ``padding_value``) or, without spans, over the whole row."""
        normalized = []
        for index, row in enumerate(rows):
            start, end = spans[index] if spans is not None else (0, len(row))
            real = row[start:end]
            out = (row - real.mean()) / np.sqrt(real.var() + NORMALIZATION_EPSILON)
            if spans is not None:
                out[:start] = self.padding_value
                out[end:] = self.padding_value
            normalized.append(out)
        return normalized

    def __call__(
        self,
        raw_speech: Any,
        padding: bool | str = False,
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        sampling_rate: int | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Featurize one utterance or a batch: ``fe(audio, sampling_rate=16000, padding=True, return_tensors="pt")``.
        ``raw_speech``: a 1-D array / list of floats (one utterance), a list of 1-D arrays (a batch of
        any lengths), a 2-D array (a batch, one row each) or a torch tensor. Always returns a batch."""
        if kwargs:
            raise InputError(
                f"{self._class_name}() got unexpected keyword arguments {sorted(kwargs)}; it takes {_CALL_OPTIONS}."
            )
        self._check_sampling_rate(sampling_rate)
        tensor_type = tensor_type_name(return_tensors)
        rows, from_torch = _utterances(raw_speech)
        rows, masks, spans = self._pad_rows(
            rows, None, padding, max_length, truncation, pad_to_multiple_of, return_attention_mask
        )
        if self.do_normalize:
            # As in the reference: the real samples define the statistics only when an attention
            # mask says where they are and padding was asked for.
            padded = _padding_strategy(padding) != _DO_NOT_PAD
            rows = self._normalize(rows, spans if masks is not None and padded else None)
        elif tensor_type is None and not from_torch:
            # The reference returns un-normalised numpy/list input as one array (object array if ragged).
            rows = to_numpy(rows)
        return _batch(rows, masks, {}, tensor_type)

    def pad(
        self,
        processed_features: Any,
        padding: bool | str = True,
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
    ) -> BatchFeature:
        """Pad already extracted features (a dict / BatchFeature of ``input_values`` rows, or a list
        of such dicts, as a data collator gets them) to one length. No normalisation."""
        features = processed_features
        if isinstance(features, (list, tuple)) and features and isinstance(features[0], Mapping):
            features = {key: [example[key] for example in features] for key in features[0]}
        if not isinstance(features, Mapping) or "input_values" not in features:
            found = list(features.keys()) if isinstance(features, Mapping) else describe(features)
            raise InputError(
                f"pad() needs a dict or BatchFeature with 'input_values' (or a list of them), got {found}."
            )
        values = features["input_values"]
        if len(values) == 0:
            with_mask = self.return_attention_mask if return_attention_mask is None else return_attention_mask
            return BatchFeature({**features, "attention_mask": []} if with_mask else dict(features))
        first = values[0]
        if tensor_type_name(return_tensors) is None:
            # Like the reference: tensors in, tensors out; anything else becomes numpy.
            nested = isinstance(first, (list, tuple)) and first and is_tensor(first[0])
            return_tensors = "pt" if is_tensor(first) or nested else "np"
        if isinstance(first, numbers.Number) or (isinstance(values, np.ndarray) and values.ndim == 1):
            values = [values]
        rows = [_as_row(row, f"input_values[{i}]") for i, row in enumerate(values)]
        masks = features.get("attention_mask")
        if masks is not None:
            masks = [np.asarray(tensor_to_numpy(mask)).reshape(-1) for mask in masks]
            if len(masks) != len(rows) or any(len(m) != len(r) for m, r in zip(masks, rows)):
                raise InputError("pad(): attention_mask must have one row per input_values row, of the same length.")
        others = {key: value for key, value in features.items() if key not in ("input_values", "attention_mask")}
        for key, value in others.items():
            if len(value) != len(rows):
                raise InputError(f"pad(): {key!r} has {len(value)} rows but input_values has {len(rows)}.")
        rows, masks, _ = self._pad_rows(
            rows, masks, padding, max_length, truncation, pad_to_multiple_of, return_attention_mask
        )
        return _batch(rows, masks, others, return_tensors)


_FILTER_BANK_RULES = {
    "feature_size": (lambda value: value == 1 and is_integer(value), "1 (the input is a mono waveform)"),
    "sampling_rate": (lambda value: is_number(value) and value > 0, "a positive number of Hz"),
    "num_mel_bins": (lambda value: is_integer(value) and value >= 1, "a positive integer"),
    "max_length": (lambda value: is_integer(value) and value >= 1, "a positive integer (frames)"),
    "padding_value": (is_number, "a finite number"),
    "return_attention_mask": (is_flag, "true or false"),
    "do_normalize": (is_flag, "true or false"),
    "mean": (is_number, "a finite number"),
    "std": (lambda value: is_number(value) and value > 0, "a positive number"),
}

_FILTER_BANK_CALL_OPTIONS = "sampling_rate, return_tensors"


class _SpectrogramEngine(FeatureExtractor):
    """An engine of its own table of class names (``engine_classes``: name -> profile), each built
    from its profile's settings checked by ``engine_rules``."""

    engine_classes: ClassVar[dict[str, str]] = {}
    engine_rules: ClassVar[dict[str, Any]] = {}
    computes: ClassVar[str] = ""

    def __init__(self, feature_extractor_type: str, **settings: Any) -> None:
        values = {**self._profile_of(feature_extractor_type), **settings}
        check_settings(values, self.engine_rules, f"the {feature_extractor_type} settings", ConfigError)
        self._set_settings(feature_extractor_type, values)

    @classmethod
    def _profile_of(cls, class_name: Any) -> Any:
        if not isinstance(class_name, str) or class_name not in cls.engine_classes:
            raise UnsupportedModelError(
                f"{cls.__name__} computes {cls.computes} for {cls._supported_names()}, not {class_name!r}; "
                f"build other extractors with FeatureExtractor({class_name!r}, ...)."
            )
        return PROFILES[cls.engine_classes[class_name]]

    @classmethod
    def _known(cls, name: str) -> bool:
        return name in cls.engine_classes

    @classmethod
    def _supported_names(cls) -> str:
        return ", ".join(sorted(cls.engine_classes))

    @classmethod
    def _settable(cls, class_name: str) -> tuple[str, ...]:
        return tuple(cls._profile_of(class_name))


class FilterBankFeatureExtractor(_SpectrogramEngine):
    """Raw speech -> ``input_values`` of shape (max_length frames, num_mel_bins) per clip, like the
    reference's ``ASTFeatureExtractor``: log-mel filter banks, zero-padded (``padding_value``) or
    cut to ``max_length`` frames, then, with ``do_normalize``, ``(x - mean) / (2 * std)`` over
    every frame, padding included, as AST was trained. No attention mask: the model attends over
    the whole fixed-length spectrogram (``return_attention_mask`` is kept and saved, not used, as
    in the reference)."""

    engine_classes = FILTER_BANK_CLASSES
    engine_rules = _FILTER_BANK_RULES
    computes = "log-mel filter banks"

    def __init__(self, feature_extractor_type: str = "ASTFeatureExtractor", **settings: Any) -> None:
        super().__init__(feature_extractor_type, **settings)

    def _filters(self) -> np.ndarray:
        """The mel filters for the current settings, rebuilt only when they change."""
        key = (self.num_mel_bins, self.sampling_rate)
        cached = self.__dict__.get("_filter_cache")
        if cached is None or cached[0] != key:
            cached = (key, mel_filters(self.num_mel_bins, self.sampling_rate))
            object.__setattr__(self, "_filter_cache", cached)
        return cached[1]

    def _fixed_length(self, fbank: np.ndarray) -> np.ndarray:
        if fbank.shape[0] >= self.max_length:
            return fbank[: self.max_length]
        out = np.full((self.max_length, fbank.shape[1]), self.padding_value, dtype=np.float32)
        out[: fbank.shape[0]] = fbank
        return out

    def __call__(
        self,
        raw_speech: Any,
        sampling_rate: int | None = None,
        return_tensors: str | None = None,
        return_attention_mask: bool | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Featurize one clip or a batch: ``fe(audio, sampling_rate=16000, return_tensors="pt")``.
        ``raw_speech``: a 1-D array / list of floats (one clip), a list of 1-D arrays (clips of any
        lengths), a 2-D array (one clip per row) or a torch tensor. Always returns a batch; every
        clip becomes ``max_length`` frames, so clips of different lengths stack."""
        if kwargs:
            raise InputError(
                f"{self._class_name}() got unexpected keyword arguments {sorted(kwargs)}; it takes "
                f"{_FILTER_BANK_CALL_OPTIONS} (every clip is padded or cut to max_length={self.max_length} frames)."
            )
        if return_attention_mask:
            raise InputError(
                f"{self._class_name} returns no attention_mask: every clip is padded or cut to max_length frames "
                f"and the model attends over all of them. Drop return_attention_mask=True."
            )
        # The settings are attributes a caller may have changed since loading.
        check_settings(self.__dict__, _FILTER_BANK_RULES, self._class_name, ConfigError)
        self._check_sampling_rate(sampling_rate)
        tensor_type = tensor_type_name(return_tensors)
        clips, _ = _utterances(raw_speech)
        filters = self._filters()
        features = []
        for index, clip in enumerate(clips):
            fbank = log_mel_fbank(clip, filters)
            if fbank.shape[0] == 0:
                logger.warning(
                    "Clip %d has %d samples, fewer than one %d-sample frame: its features are all padding.",
                    index, clip.shape[0], FRAME_LENGTH,
                )
            fbank = self._fixed_length(fbank)
            if self.do_normalize:
                fbank = (fbank - self.mean) / (self.std * 2)
            features.append(fbank.astype(np.float32, copy=False))
        return BatchFeature({"input_values": features}, tensor_type=tensor_type)


_LOG_MEL_RULES = {
    "feature_size": (lambda value: is_integer(value) and value >= 1, "a positive integer (mel bins)"),
    "sampling_rate": (lambda value: is_integer(value) and value > 0, "a positive whole number of Hz"),
    "hop_length": (lambda value: is_integer(value) and value >= 1, "a positive integer (samples)"),
    "chunk_length": (lambda value: is_integer(value) and value >= 1, "a positive integer (seconds)"),
    "n_fft": (lambda value: is_integer(value) and value >= 2, "an integer of at least 2 (samples)"),
    "padding_value": (is_number, "a finite number"),
    "padding_side": (lambda value: value == "right", "'right' (Whisper pads at the end)"),
    "dither": (lambda value: is_number(value) and value >= 0, "a number >= 0"),
    "return_attention_mask": (is_flag, "true or false"),
}

_LOG_MEL_CALL_OPTIONS = (
    "truncation, pad_to_multiple_of, return_tensors, return_attention_mask, padding, max_length, sampling_rate, "
    "do_normalize, device"
)


class LogMelFeatureExtractor(_SpectrogramEngine):
    """Raw speech -> ``input_features`` (batch, feature_size mel bins, frames), like the reference's
    ``WhisperFeatureExtractor``: each clip cut to ``chunk_length`` seconds and, by default, padded
    with ``padding_value`` to exactly that (``chunk_length * sampling_rate // hop_length`` frames,
    3000 for 30 s), optionally normalised to zero mean and unit variance over its real samples
    (``do_normalize``), then turned into Whisper's log-mel spectrogram (``logmel.py``).

    With ``return_attention_mask`` the mask marks the real frames (one per ``hop_length`` samples).
    Where the reference returns a sample-level mask (the mask enabled in the settings but not in the
    call, or ``do_normalize`` alone), this returns the frame-level mask, or none."""

    model_input_names: ClassVar[list[str]] = ["input_features"]

    engine_classes = LOG_MEL_CLASSES
    engine_rules = _LOG_MEL_RULES
    computes = "Whisper log-mel spectrograms"

    def __init__(self, feature_extractor_type: str = "WhisperFeatureExtractor", **settings: Any) -> None:
        super().__init__(feature_extractor_type, **settings)
        # Derived from the settings; the reference saves them too, so they are kept in step.
        self.n_samples = self.chunk_length * self.sampling_rate
        self.nb_max_frames = self.n_samples // self.hop_length

    def __call__(
        self,
        raw_speech: Any,
        truncation: bool = True,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | None = None,
        return_attention_mask: bool | None = None,
        padding: bool | str = "max_length",
        max_length: int | None = None,
        sampling_rate: int | None = None,
        do_normalize: bool | None = None,
        device: str = "cpu",
        **kwargs: Any,
    ) -> BatchFeature:
        """Featurize one clip or a batch: ``fe(audio, sampling_rate=16000, return_tensors="pt")``.
        ``raw_speech``: a 1-D array / list of floats (one clip), a list of 1-D arrays (clips of any
        lengths), a 2-D array (one clip per row) or a torch tensor. ``max_length`` (samples) defaults
        to ``chunk_length`` seconds; ``padding=True`` pads to the longest clip instead."""
        from .logmel import log_mel_spectrogram

        if kwargs:
            raise InputError(
                f"{self._class_name}() got unexpected keyword arguments {sorted(kwargs)}; it takes {_LOG_MEL_CALL_OPTIONS}."
            )
        # The settings are attributes a caller may have changed since loading.
        check_settings(self.__dict__, _LOG_MEL_RULES, self._class_name, ConfigError)
        self._check_sampling_rate(sampling_rate)
        tensor_type = tensor_type_name(return_tensors)
        with_mask = self.return_attention_mask if return_attention_mask is None else bool(return_attention_mask)
        strategy = _padding_strategy(padding)
        max_length = _positive_int(max_length, "max_length") or self.chunk_length * self.sampling_rate
        pad_to_multiple_of = _positive_int(pad_to_multiple_of, "pad_to_multiple_of")
        clips, _ = _utterances(raw_speech)
        if truncation:
            limit = _round_up(max_length, pad_to_multiple_of)
            clips = [clip[:limit] for clip in clips]
        lengths = [len(clip) for clip in clips]
        if strategy == _DO_NOT_PAD:
            groups = [[index] for index in range(len(clips))] if len(set(lengths)) > 1 else [list(range(len(clips)))]
            sizes = [lengths[group[0]] for group in groups]
        else:
            target = _round_up(max_length if strategy == _MAX_LENGTH else max(lengths), pad_to_multiple_of)
            groups, sizes = [list(range(len(clips)))], [max(target, max(lengths))]
        features: list[np.ndarray] = []
        masks: list[np.ndarray] = []
        for group, size in zip(groups, sizes):
            normalized = [clips[index] for index in group]
            if do_normalize:
                normalized = [(clip - clip.mean()) / np.sqrt(clip.var() + NORMALIZATION_EPSILON) for clip in normalized]
            if len(group) == 1 and len(normalized[0]) == size:
                # One clip needing no padding: its own (fresh, float32) array is the batch.
                waveforms = normalized[0].astype(np.float32, copy=False)[None]
            else:
                waveforms = np.full((len(group), size), self.padding_value, dtype=np.float32)
                for row, clip in enumerate(normalized):
                    waveforms[row, : len(clip)] = clip
            if size <= self.n_fft // 2:
                raise InputError(
                    f"A clip of {size} samples is too short for a {self.n_fft}-point spectrogram (it is reflected by "
                    f"{self.n_fft // 2} samples at each end); pad it, e.g. with padding='max_length'."
                )
            real = max(lengths[index] for index in group) if self.padding_value == 0 else size
            features.extend(log_mel_spectrogram(
                waveforms, self.feature_size, self.n_fft, self.hop_length, self.sampling_rate, self.dither, device,
                real_samples=real,
            ))
            frames = size // self.hop_length
            for index in group:
                # A frame is real when the sample it starts at is (the reference's mask[::hop_length]).
                mask = np.zeros(frames, dtype=np.int32)
                mask[: min(frames, -(-lengths[index] // self.hop_length))] = 1
                masks.append(mask)
        if len(groups) > 1 and tensor_type_name(tensor_type) == "pt":
            raise InputError(
                f"Cannot return one torch tensor for clips of different lengths ({min(lengths)} to {max(lengths)} "
                f"samples) with padding=False: keep the default padding='max_length', or pass return_tensors=None."
            )
        data: dict[str, Any] = {"input_features": np.stack(features) if len(groups) == 1 else features}
        if with_mask:
            data["attention_mask"] = np.stack(masks) if len(groups) == 1 else masks
        return BatchFeature(data, tensor_type=tensor_type)


# ``AutoFeatureExtractor.from_pretrained`` lands here: a checkpoint folder, a hub repository or a
# preprocessor_config.json file; an image class name is handed to the image processor, as the
# reference's AutoFeatureExtractor does.
load_feature_extractor = FeatureExtractor.from_pretrained


def load_audio(path: str | os.PathLike | bytes, sampling_rate: int = 16000) -> np.ndarray:
    """Read an audio file (a path, or the bytes of an encoded file: whatever libsndfile reads) as
    mono float32 samples at ``sampling_rate`` Hz: channels are averaged, and a different native
    rate is converted with soxr "HQ" to exactly ``ceil(frames * sampling_rate / native_rate)``
    samples (librosa's convention)."""
    import soundfile

    if not is_integer(sampling_rate) or sampling_rate <= 0:
        raise InputError(f"load_audio: sampling_rate must be a positive integer (Hz), got {sampling_rate!r}.")
    if isinstance(path, (bytes, bytearray)):
        what, handle = "the audio bytes given", io.BytesIO(path)
    elif isinstance(path, (str, os.PathLike)):
        what = handle = os.fspath(path)
        if what.startswith(("http://", "https://")):
            raise InputError(f"load_audio reads local files; download {what!r} first and pass the file's path.")
        if not os.path.exists(what):
            raise InputError(f"load_audio: no audio file at {what!r}.")
        if os.path.isdir(what):
            raise InputError(f"load_audio: {what!r} is a directory, not an audio file.")
    else:
        raise InputError(
            f"load_audio takes a file path (or the bytes of an audio file), got {describe(path)}. "
            f"Arrays of samples go straight to the feature extractor."
        )
    try:
        with soundfile.SoundFile(handle) as audio_file:
            native_rate = audio_file.samplerate
            frames = audio_file.read(dtype="float32", always_2d=True)
    except (RuntimeError, TypeError, ValueError, OSError) as exc:
        label = what if isinstance(path, (bytes, bytearray)) else repr(what)
        raise InputError(
            f"load_audio could not decode {label} ({exc}). Readable formats are those of libsndfile: WAV, FLAC, "
            f"OGG/Vorbis, MP3, AIFF and similar; convert others (m4a/AAC, video files...) first, e.g. with ffmpeg."
        ) from exc
    samples = frames.mean(axis=1, dtype=np.float32) if frames.shape[1] > 1 else frames[:, 0]
    if native_rate != sampling_rate and samples.size:
        import soxr

        expected = math.ceil(samples.shape[0] * sampling_rate / native_rate)
        samples = soxr.resample(samples, native_rate, sampling_rate, quality=RESAMPLING_QUALITY)
        if samples.shape[0] < expected:
            samples = np.pad(samples, (0, expected - samples.shape[0]))
        samples = samples[:expected]
    return np.ascontiguousarray(samples, dtype=np.float32)


__all__ = ["PROFILES", "FeatureExtractor", "FilterBankFeatureExtractor", "LogMelFeatureExtractor", "load_audio", "load_feature_extractor"]

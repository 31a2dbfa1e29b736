"""Audio: the sequence feature extractor (wav2vec2-style) and reading audio files.

One engine: float32 rows -> truncate -> pad -> attention mask -> per-utterance zero-mean,
unit-variance normalisation; ``feature_extractor_type`` selects a profile of default settings
(``PROFILES``). The output equals the reference's ``Wav2Vec2FeatureExtractor`` bit for bit.
Where the reference silently produces garbage this raises or does the evident thing instead:
(frames, channels)-looking 2-D arrays are refused as multi-channel audio, left padding takes the
statistics over the real samples, every real dtype becomes float32 first, and empty or
non-numeric input raises :class:`InputError`. ``load_audio`` reads files with soundfile and
resamples with soxr "HQ" (librosa's ``soxr_hq``), averaging channels into one.
"""

from __future__ import annotations

import copy
import io
import logging
import math
import numbers
import os
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from .. import registry
from ..errors import (
    ConfigError,
    InputError,
    UnsupportedModelError,
)
from ..hub import (
    IGNORED_LOAD_OPTIONS,
    SOURCE_OPTIONS,
    Source,
)
from .features import BatchFeature, Preprocessor, tensor_type_name

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
}
SETTING_NAMES = tuple(PROFILES["wav2vec2"])

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


def _is_torch_tensor(value: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _torch_to_numpy(tensor: Any) -> np.ndarray:
    tensor = tensor.detach().cpu()
    if tensor.is_floating_point() and tensor.dtype not in (_torch_dtype("float32"), _torch_dtype("float64")):
        tensor = tensor.float()  # bfloat16 has no numpy dtype
    return tensor.numpy()


def _torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray) or _is_torch_tensor(value):
        return f"{type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    return type(value).__name__


def _multichannel_hint(shape: tuple[int, ...]) -> str:
    return (
        f"Audio of shape {shape} looks like multi-channel (frames, channels) audio, but the model takes mono. "
        f"Average the channels first (audio.mean(axis=1)), or read the file with "
        f"leanformers.processing.audio.load_audio(path), which downmixes to mono."
    )


def _as_row(value: Any, where: str) -> np.ndarray:
    """One utterance as a fresh 1-D float32 array, or a clear InputError."""
    if _is_torch_tensor(value):
        value = _torch_to_numpy(value)
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{where} is not a sequence of numbers ({exc}).") from exc
    if array.dtype.kind not in "biuf":
        raise InputError(
            f"{where} must hold real numbers (audio samples), got an array of dtype {array.dtype} "
            f"({_describe(value)}). Pass floats, e.g. the array load_audio(path) returns."
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
    if array.dtype.kind == "f" and not np.isfinite(row).all():
        raise InputError(
            f"{where} holds NaN or infinite samples (e.g. from a failed decode or a division by zero); "
            f"clean the audio first, e.g. np.nan_to_num(audio)."
        )
    return row


def _utterances(raw_speech: Any) -> tuple[list[np.ndarray], bool]:
    """The utterances of a call as 1-D float32 arrays, and whether they came as a torch tensor."""
    from_torch = _is_torch_tensor(raw_speech)
    if from_torch:
        raw_speech = _torch_to_numpy(raw_speech)
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
        if isinstance(first, (np.ndarray, list, tuple)) or _is_torch_tensor(first):
            return [_as_row(item, f"raw_speech[{i}]") for i, item in enumerate(raw_speech)], from_torch
        return [_as_row(raw_speech, "raw_speech")], from_torch
    if isinstance(raw_speech, (str, os.PathLike)):
        raise InputError(
            f"raw_speech is a path ({os.fspath(raw_speech)!r}), not audio samples. Read it first: "
            f"leanformers.processing.audio.load_audio(path, sampling_rate=...)."
        )
    raise InputError(
        f"raw_speech must be a 1-D float array, a list of floats, a list of 1-D arrays or a torch tensor, "
        f"got {_describe(raw_speech)}."
    )


def _positive_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
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


def _check_stackable(rows: list[np.ndarray], tensor_type: str | None) -> None:
    # numpy takes ragged rows as an object array (as in the reference); torch cannot.
    lengths = sorted({len(row) for row in rows})
    if tensor_type == "pt" and len(lengths) > 1:
        raise InputError(
            f"Cannot return one torch tensor for utterances of different lengths ({lengths[0]} to "
            f"{lengths[-1]} samples): pass padding=True (or padding='max_length', max_length=...), or "
            f"return_tensors=None for a list of arrays."
        )


def _stack_rows(rows: list[np.ndarray]) -> np.ndarray:
    """Rows as one 2-D array, or an object array of rows when their lengths differ."""
    if len({row.shape for row in rows}) == 1:
        return np.stack(rows)
    ragged = np.empty(len(rows), dtype=object)
    for index, row in enumerate(rows):
        ragged[index] = row
    return ragged


def _supported_names() -> str:
    audio = ", ".join(sorted(registry.FEATURE_EXTRACTORS))
    image = ", ".join(sorted(registry.IMAGE_PROCESSORS))
    return f"audio: {audio}; image (delegated to the image processor): {image}"


def profile_for(class_name: Any, where: str = "the feature extractor") -> dict[str, Any]:
    """The default settings of an audio feature extractor class name."""
    profile = registry.FEATURE_EXTRACTORS.get(class_name) if isinstance(class_name, str) else None
    if profile is None:
        raise UnsupportedModelError(
            f"{where} names the feature extractor {class_name!r}, which leanformers does not provide. "
            f"Supported: {_supported_names()}."
        )
    return PROFILES[profile]


def _check_settings(settings: Mapping[str, Any]) -> None:
    """Refuse settings the engine cannot use (ConfigError, caller adds where they came from)."""
    size = settings["feature_size"]
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ConfigError(f"feature_size must be a positive integer, got {size!r}.")
    rate = settings["sampling_rate"]
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 < rate < math.inf:
        raise ConfigError(f"sampling_rate must be a positive number of Hz, got {rate!r}.")
    value = settings["padding_value"]
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)):
        raise ConfigError(f"padding_value must be a finite number (or null), got {value!r}.")
    if settings["padding_side"] not in ("right", "left"):
        raise ConfigError(f"padding_side must be 'right' or 'left', got {settings['padding_side']!r}.")
    for name in ("return_attention_mask", "do_normalize"):
        if not isinstance(settings[name], bool):
            raise ConfigError(f"{name} must be true or false, got {settings[name]!r}.")


class FeatureExtractor(Preprocessor):
    """Turns raw speech into ``input_values`` (and ``attention_mask``), like the reference's
    ``Wav2Vec2FeatureExtractor``.

    ``FeatureExtractor(**json.load(open("preprocessor_config.json")))`` builds one from a saved
    config; usually :func:`load_feature_extractor` (``AutoFeatureExtractor.from_pretrained``) does.
    Settings are plain attributes (``fe.do_normalize = False``); keys this engine does not use are
    kept and saved back, as the reference does.
    """

    model_input_names: ClassVar[list[str]] = ["input_values", "attention_mask"]
    bundle_keys = ("feature_extractor", "audio_processor")
    kind = "feature extractor"
    type_keys = ("feature_extractor_type", "image_processor_type")
    config_type_key = "feature_extractor_type"
    default_tables = ("DEFAULT_FEATURE_EXTRACTOR", "DEFAULT_IMAGE_PROCESSOR")
    auto_map_keys = ("AutoFeatureExtractor",)

    def __init__(self, feature_extractor_type: str = "Wav2Vec2FeatureExtractor", **settings: Any) -> None:
        defaults = profile_for(feature_extractor_type)
        object.__setattr__(self, "_class_name", feature_extractor_type)
        settings.pop("processor_class", None)
        values = {**defaults, **settings}
        _check_settings(values)
        for key, value in values.items():
            if key.startswith("_") or callable(getattr(type(self), key, None)):
                raise ConfigError(
                    f"{key!r} cannot be a feature extractor setting: it names a method or a private field."
                )
            setattr(self, key, value)

    # -- loading and saving ----------------------------------------------------------------------

    @classmethod
    def _class_name_from(cls, data: Mapping[str, Any], source: Source | None, where: str, config: Any) -> str:
        if source is None and config is None and where == "the settings dict":
            return data.get("feature_extractor_type", "Wav2Vec2FeatureExtractor")
        return super()._class_name_from(data, source, where, config)

    @classmethod
    def _known(cls, name: str) -> bool:
        return name in registry.FEATURE_EXTRACTORS or registry.image_processor_profile(name) is not None

    @classmethod
    def _supported_names(cls) -> str:
        return _supported_names()

    @classmethod
    def _from_settings(cls, class_name: str, data: Mapping[str, Any], kwargs: dict[str, Any], where: str) -> Any:
        if registry.image_processor_profile(class_name) is not None:
            # An image class named as a feature extractor: the reference hands it to the image processor.
            from .image import ImageProcessor

            return ImageProcessor._from_settings(class_name, data, kwargs, where)
        return_unused = kwargs.pop("return_unused_kwargs", False)
        settings = {key: value for key, value in data.items() if key != "feature_extractor_type"}
        # Unlike the reference (which only overrides keys already in the file), a known setting
        # passed as a keyword always applies, even when the file leaves it at its default.
        for key in list(kwargs):
            if key in settings or key in SETTING_NAMES:
                settings[key] = kwargs.pop(key)
        try:
            extractor = cls(feature_extractor_type=class_name, **settings)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        if return_unused:
            return extractor, kwargs
        if kwargs:
            logger.warning(
                "Ignored keyword arguments %s: they are not settings of %s (%s).",
                sorted(kwargs),
                class_name,
                ", ".join(SETTING_NAMES),
            )
        return extractor

    def to_dict(self) -> dict[str, Any]:
        """The settings, as saved in preprocessor_config.json."""
        output = {key: copy.deepcopy(value) for key, value in self.__dict__.items() if not key.startswith("_")}
        output["feature_extractor_type"] = self._class_name
        return output

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
        if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, numbers.Real):
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
        strategy: str,
        max_length: int | None,
        truncation: bool,
        pad_to_multiple_of: int | None,
        with_mask: bool,
    ) -> tuple[list[np.ndarray], list[np.ndarray] | None, list[tuple[int, int]]]:
        """Truncate and pad float32 rows; returns the rows, their int32 masks (or None) and, per
        row, the ``(start, end)`` of its real samples."""
        if self.feature_size != 1:
            raise ConfigError(
                f"{self._class_name} here handles raw waveforms (feature_size 1); this one has "
                f"feature_size={self.feature_size}."
            )
        if self.padding_side not in ("right", "left"):
            raise ConfigError(f"padding_side must be 'right' or 'left', got {self.padding_side!r}.")
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
            if masks is not None:
                masks = [mask[:limit] for mask in masks]
        if masks is None and with_mask:
            masks = [np.ones(len(row), dtype=np.int32) for row in rows]

        target = None
        if strategy == _LONGEST:
            target = max(len(row) for row in rows)
        elif strategy == _MAX_LENGTH:
            target = max_length
        if target is not None:
            target = _round_up(target, pad_to_multiple_of)

        padded, padded_masks, spans = [], [] if masks is not None else None, []
        for index, row in enumerate(rows):
            length = len(row)
            if target is None or length >= target:
                padded.append(row)
                spans.append((0, length))
                if masks is not None:
                    padded_masks.append(np.asarray(masks[index], dtype=np.int32))
                continue
            start = target - length if self.padding_side == "left" else 0
            out = np.full(target, self.padding_value, dtype=np.float32)
            out[start : start + length] = row
            padded.append(out)
            spans.append((start, start + length))
            if masks is not None:
                mask = np.zeros(target, dtype=np.int32)
                mask[start : start + length] = masks[index]
                padded_masks.append(mask)
        return padded, padded_masks, spans

    def _normalize(self, rows: list[np.ndarray], spans: list[tuple[int, int]] | None) -> list[np.ndarray]:
        """Zero mean, unit variance per row: over its real samples (``spans``, padding reset to
        ``padding_value``) or, without spans, over the whole row."""
        normalized = []
        for index, row in enumerate(rows):
            if spans is None:
                normalized.append((row - row.mean()) / np.sqrt(row.var() + NORMALIZATION_EPSILON))
                continue
            start, end = spans[index]
            real = row[start:end]
            out = (row - real.mean()) / np.sqrt(real.var() + NORMALIZATION_EPSILON)
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
        any lengths), a 2-D array (a batch, one row each) or a torch tensor. Always returns a batch.
        ``return_tensors``: "pt", "np", or None for a list of numpy arrays per key (without
        normalisation the reference gives ``input_values`` as one numpy array; so does this).
        """
        if kwargs:
            raise InputError(
                f"{self._class_name}() got unexpected keyword arguments {sorted(kwargs)}; it takes {_CALL_OPTIONS}."
            )
        self._check_sampling_rate(sampling_rate)
        tensor_type = tensor_type_name(return_tensors)
        strategy = _padding_strategy(padding)
        max_length = _positive_int(max_length, "max_length")
        pad_to_multiple_of = _positive_int(pad_to_multiple_of, "pad_to_multiple_of")
        with_mask = self.return_attention_mask if return_attention_mask is None else bool(return_attention_mask)
        rows, from_torch = _utterances(raw_speech)

        rows, masks, spans = self._pad_rows(
            rows, None, strategy, max_length, bool(truncation), pad_to_multiple_of, with_mask
        )
        if self.do_normalize:
            # As in the reference: the real samples define the statistics only when an attention
            # mask says where they are and padding was asked for.
            rows = self._normalize(rows, spans if masks is not None and strategy != _DO_NOT_PAD else None)
        _check_stackable(rows, tensor_type)
        data: dict[str, Any] = {"input_values": rows}
        if masks is not None:
            data["attention_mask"] = masks
        if tensor_type is None and not self.do_normalize and not from_torch:
            # The reference returns un-normalised numpy/list input as one array (object array if ragged).
            data["input_values"] = _stack_rows(rows)
        return BatchFeature(data, tensor_type=tensor_type)

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
        if (
            isinstance(processed_features, (list, tuple))
            and processed_features
            and isinstance(processed_features[0], Mapping)
        ):
            keys = list(processed_features[0].keys())
            processed_features = {key: [example[key] for example in processed_features] for key in keys}
        if not isinstance(processed_features, Mapping) or "input_values" not in processed_features:
            found = (
                list(processed_features.keys())
                if isinstance(processed_features, Mapping)
                else _describe(processed_features)
            )
            raise InputError(
                f"pad() needs a dict or BatchFeature with 'input_values' (or a list of them), got {found}."
            )
        values = processed_features["input_values"]
        with_mask = self.return_attention_mask if return_attention_mask is None else bool(return_attention_mask)
        if len(values) == 0:
            output = dict(processed_features)
            if with_mask:
                output["attention_mask"] = []
            return BatchFeature(output)
        first = values[0]
        if tensor_type_name(return_tensors) is None:
            # Like the reference: tensors in, tensors out; anything else becomes numpy.
            return_tensors = (
                "pt"
                if _is_torch_tensor(first)
                or (isinstance(first, (list, tuple)) and first and _is_torch_tensor(first[0]))
                else "np"
            )
        if isinstance(first, numbers.Number) or (isinstance(values, np.ndarray) and values.ndim == 1):
            values = [values]
        rows = [_as_row(row, f"input_values[{i}]") for i, row in enumerate(values)]
        masks = processed_features.get("attention_mask")
        if masks is not None:
            masks = [np.asarray(_torch_to_numpy(m) if _is_torch_tensor(m) else m).reshape(-1) for m in masks]
            if len(masks) != len(rows) or any(len(m) != len(r) for m, r in zip(masks, rows)):
                raise InputError("pad(): attention_mask must have one row per input_values row, of the same length.")
        others = {
            key: value for key, value in processed_features.items() if key not in ("input_values", "attention_mask")
        }
        for key, value in others.items():
            if len(value) != len(rows):
                raise InputError(f"pad(): {key!r} has {len(value)} rows but input_values has {len(rows)}.")
        rows, masks, _ = self._pad_rows(
            rows,
            masks,
            _padding_strategy(padding),
            _positive_int(max_length, "max_length"),
            bool(truncation),
            _positive_int(pad_to_multiple_of, "pad_to_multiple_of"),
            with_mask,
        )
        _check_stackable(rows, tensor_type_name(return_tensors))
        data: dict[str, Any] = {"input_values": rows, **others}
        if masks is not None:
            data["attention_mask"] = masks
        return BatchFeature(data, tensor_type=return_tensors)


def load_feature_extractor(source: Source | str | os.PathLike, **kwargs: Any) -> Any:
    """The feature extractor of a checkpoint (``AutoFeatureExtractor.from_pretrained`` lands here).

    ``source``: a checkpoint folder, a hub repository in the cache, or a preprocessor_config.json
    file. The class comes from ``feature_extractor_type`` (else config.json's ``model_type``); an
    image class name (``ViTFeatureExtractor``, ``ViTImageProcessor``...) is handed to the image
    processor, as the reference's AutoFeatureExtractor does. Keyword arguments override settings;
    ``config=`` supplies the model config instead of reading config.json.
    """
    if not isinstance(source, Source):
        return FeatureExtractor.from_pretrained(source, **kwargs)
    if os.path.isfile(source.name_or_path):
        return FeatureExtractor.from_pretrained(source.name_or_path, **kwargs)
    for key in IGNORED_LOAD_OPTIONS + SOURCE_OPTIONS:
        kwargs.pop(key, None)
    return FeatureExtractor._load(source, config=kwargs.pop("config", None), **kwargs)


def load_audio(path: str | os.PathLike | bytes, sampling_rate: int = 16000) -> np.ndarray:
    """Read an audio file as mono float32 samples at ``sampling_rate`` Hz.

    ``path``: a file path (or the bytes of an encoded file). soundfile decodes what libsndfile reads
    (WAV, FLAC, OGG/Vorbis, MP3, AIFF...). A multi-channel file is downmixed by averaging its
    channels. A different native rate is converted with soxr at "HQ" quality, the output being
    exactly ``ceil(frames * sampling_rate / native_rate)`` samples long (librosa's convention).
    """
    import soundfile

    if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, numbers.Integral) or sampling_rate <= 0:
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
            f"load_audio takes a file path (or the bytes of an audio file), got {_describe(path)}. "
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


__all__ = [
    "PROFILES",
    "FeatureExtractor",
    "load_audio",
    "load_feature_extractor",
    "profile_for",
]

"""The processor: a tokenizer together with an image processor or an audio feature extractor,
called as one (``processor(text=..., images=..., return_tensors="pt")``) and saved as one folder.

There is one ``Processor`` class. The reference's class names (``CLIPProcessor``,
``Wav2Vec2Processor``...) are rows of ``registry.PROCESSORS``: which parts a processor combines,
and how its call reads its inputs. ``load_processor`` (behind ``AutoProcessor.from_pretrained``)
follows the reference's choice of what to return: the processor a file or the model type names,
else the one part the checkpoint has (a BERT folder gives its tokenizer, a ViT folder its image
processor).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from .. import registry
from ..errors import (
    ConfigError,
    InputError,
    LeanformersError,
    RemoteCodeError,
    UnsupportedModelError,
)
from ..hub import IGNORED_LOAD_OPTIONS, SOURCE_OPTIONS, Source, atomic_write, read_json, split_source_options
from .features import PROCESSOR_FILE, BatchFeature

logger = logging.getLogger(__name__)

PREPROCESSOR_FILE = "preprocessor_config.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"

# Each part: its engine's module, the class it must be, and the function loading it from a checkpoint.
# Imported on first use, so that a tokenizer-only checkpoint needs no Pillow.
_PARTS: dict[str, tuple[str, str, str]] = {
    "tokenizer": ("leanformers.processing.tokenizer", "PreTrainedTokenizer", "load_tokenizer"),
    "image_processor": ("leanformers.processing.image", "ImageProcessor", "load_image_processor"),
    "feature_extractor": ("leanformers.processing.audio", "FeatureExtractor", "load_feature_extractor"),
}


def _part_class(part: str) -> type:
    module, class_name, _ = _PARTS[part]
    return getattr(importlib.import_module(module), class_name)


def _load_part(part: str, source: Source, kwargs: dict[str, Any]) -> Any:
    module, _, loader = _PARTS[part]
    return getattr(importlib.import_module(module), loader)(source, **kwargs)

# The input each part reads, and the call options it takes (the reference's per-modality option
# lists). The image processor also takes whatever settings its class has.
_PART_INPUT = {"tokenizer": "text", "image_processor": "images", "feature_extractor": "audio"}
_TEXT_OPTIONS = frozenset({
    "text_pair", "text_target", "text_pair_target", "add_special_tokens", "padding", "truncation", "max_length",
    "stride", "is_split_into_words", "pad_to_multiple_of", "return_token_type_ids", "return_attention_mask",
    "return_overflowing_tokens", "return_special_tokens_mask", "return_offsets_mapping", "return_length",
    "verbose", "padding_side", "return_tensors",
})
_AUDIO_OPTIONS = frozenset({
    "sampling_rate", "padding", "max_length", "truncation", "pad_to_multiple_of", "return_attention_mask",
    "return_tensors",
})
# Options given per part, as the reference's ``text_kwargs={...}``, ``images_kwargs={...}``...
_GROUPED_OPTIONS = {"text_kwargs": "tokenizer", "images_kwargs": "image_processor", "audio_kwargs": "feature_extractor"}
# Positional order of the call's inputs, by call style.
_POSITIONAL = {"multimodal": ("images", "text", "videos", "audio"), "speech": ("audio", "text")}


def _spec(class_name: Any, where: str) -> tuple[tuple[str, ...], str]:
    if not isinstance(class_name, str) or class_name not in registry.PROCESSORS:
        raise UnsupportedModelError(
            f"{where} names the processor {class_name!r}, which leanformers does not provide. Supported: "
            f"{', '.join(sorted(registry.PROCESSORS))}. Its parts can still be loaded one by one with "
            f"AutoTokenizer, AutoImageProcessor or AutoFeatureExtractor."
        )
    return registry.PROCESSORS[class_name]


class Processor:
    """A tokenizer and an image processor or feature extractor, under one of the reference's
    processor class names: ``Processor("CLIPProcessor", image_processor=..., tokenizer=...)``.
    The parts are the attributes ``.tokenizer``, ``.image_processor``, ``.feature_extractor``."""

    def __init__(self, class_name: str, **parts: Any) -> None:
        part_names, style = _spec(class_name, f"Processor({class_name!r}, ...)")
        missing = [name for name in part_names if parts.get(name) is None]
        unexpected = sorted(set(parts) - set(part_names))
        if missing or unexpected:
            raise InputError(
                f"{class_name} combines exactly {', '.join(part_names)}; "
                + (f"missing: {', '.join(missing)}" if missing else f"unexpected: {', '.join(unexpected)}")
                + "."
            )
        for name in part_names:
            part, expected = parts[name], _part_class(name)
            if not isinstance(part, expected):
                raise InputError(
                    f"{class_name}'s {name} must be a leanformers {expected.__name__}, got "
                    f"{type(part).__name__}. Load one with its Auto class (e.g. AutoTokenizer.from_pretrained)."
                )
            setattr(self, name, part)
        self._class_name = class_name
        self._parts = part_names
        self._style = style

    @property
    def class_name(self) -> str:
        """The reference class this processor stands for (``CLIPProcessor``, ``Wav2Vec2Processor``...)."""
        return self._class_name

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike | Source,
                        processor_class: str | None = None, **kwargs: Any) -> Processor:
        """The processor a checkpoint names (or ``processor_class``), each part loaded from the checkpoint."""
        options, kwargs = split_source_options(kwargs)
        source = Source.of(pretrained_model_name_or_path, **options)
        config = kwargs.pop("config", None)
        if processor_class is None:
            processor_class, _ = _named_processor(source, config)
            if processor_class is None:
                raise UnsupportedModelError(
                    f"{source.describe()} names no processor class (no processor_class in {PROCESSOR_FILE}, "
                    f"{PREPROCESSOR_FILE}, {TOKENIZER_CONFIG_FILE} or config.json, and no model_type with a default). "
                    f"Pass processor_class= (one of: {', '.join(sorted(registry.PROCESSORS))}), or use AutoProcessor "
                    f"to get the one part the checkpoint has."
                )
        return cls._load(source, processor_class, kwargs)

    @classmethod
    def _load(cls, source: Source, class_name: str, kwargs: dict[str, Any]) -> Processor:
        # As in the reference, every part gets the same keyword arguments; each keeps what it knows.
        part_names, _ = _spec(class_name, source.describe())
        parts = {}
        for name in part_names:
            try:
                parts[name] = _load_part(name, source, kwargs)
            except LeanformersError as exc:
                raise type(exc)(
                    f"{source.describe()} asks for a {class_name} ({' + '.join(part_names)}), but its {name} could "
                    f"not be loaded: {exc}"
                ) from exc
        return cls(class_name, **parts)

    # -- calling ---------------------------------------------------------------------------------

    def _options(self, kwargs: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Each part's call options: a flat option goes to every part that takes it, a grouped one
        (``text_kwargs={...}``) to its part only; the tokenizer's own saved values of options come first."""
        accepted = {
            "tokenizer": _TEXT_OPTIONS,
            "feature_extractor": _AUDIO_OPTIONS,
            "image_processor": frozenset(type(self.image_processor)._settable(self.image_processor.class_name))
            if "image_processor" in self._parts else frozenset(),
        }
        per_part: dict[str, dict[str, Any]] = {name: {} for name in self._parts}
        # The reference lets the tokenizer's saved options (a tokenizer_config.json "padding", say)
        # stand as defaults for every part that takes them.
        saved = getattr(self.tokenizer, "init_kwargs", {}) if "tokenizer" in self._parts else {}
        for key, value in saved.items():
            for name in self._parts:
                if key in accepted[name]:
                    per_part[name][key] = getattr(self.tokenizer, key, value)
        flat = {key: value for key, value in kwargs.items() if key not in _GROUPED_OPTIONS}
        for key, value in flat.items():
            takers = [name for name in self._parts if key in accepted[name]]
            if not takers:
                raise InputError(
                    f"{self._class_name} got the option {key!r}, which none of its parts ({', '.join(self._parts)}) "
                    f"takes. Options by part: "
                    + "; ".join(f"{name}: {', '.join(sorted(accepted[name]))}" for name in self._parts)
                )
            for name in takers:
                per_part[name][key] = value
        for group, name in _GROUPED_OPTIONS.items():
            if group not in kwargs:
                continue
            options = kwargs[group]
            if not isinstance(options, Mapping):
                raise InputError(f"{group} must be a dict of options, got {type(options).__name__}.")
            if name not in self._parts:
                raise InputError(f"{self._class_name} has no {name}, so {group} cannot be used.")
            twice = sorted(set(options) & set(flat) & accepted[name])
            if twice:
                raise InputError(f"{', '.join(twice)} given both in {group} and as a keyword argument; give it once.")
            per_part[name].update(options)
        return per_part

    def _inputs(self, args: tuple[Any, ...], inputs: dict[str, Any]) -> dict[str, Any]:
        order = _POSITIONAL[self._style]
        if len(args) > len(order):
            raise InputError(f"{self._class_name} takes at most {len(order)} positional inputs ({', '.join(order)}).")
        for name, value in zip(order, args, strict=False):
            if inputs.get(name) is not None:
                raise InputError(f"{self._class_name} got {name} both positionally and by keyword; give it once.")
            inputs[name] = value
        given = {name: value for name, value in inputs.items() if value is not None}
        if not given:
            raise InputError(
                f"{self._class_name} needs at least one input: "
                + ", ".join(_PART_INPUT[name] for name in self._parts) + "."
            )
        readable = {_PART_INPUT[name] for name in self._parts}
        for name in given:
            if name not in readable:
                raise InputError(
                    f"{self._class_name} cannot process {name}: it has no part for them (its parts: "
                    f"{', '.join(self._parts)}). Give {' and/or '.join(sorted(readable))}."
                )
        return given

    def __call__(self, *args: Any, images: Any = None, text: Any = None, videos: Any = None, audio: Any = None,
                 **kwargs: Any) -> Any:
        """Process text and images (or audio) with the matching parts, merged into one ``BatchFeature``.
        Options go to every part that takes them (``return_tensors``, ``padding``...), or to one part
        through ``text_kwargs`` / ``images_kwargs`` / ``audio_kwargs``."""
        given = self._inputs(args, {"images": images, "text": text, "videos": videos, "audio": audio})
        options = self._options(kwargs)
        if self._style == "speech":
            return self._call_speech(given, options)
        text = given.get("text")
        if text is not None and not (
            isinstance(text, str) or (isinstance(text, (list, tuple)) and all(isinstance(item, str) for item in text))
        ):
            raise InputError(f"text must be a string or a list of strings, got {_describe(text)}.")
        merged: dict[str, Any] = {}
        if text is not None:
            merged.update(self.tokenizer(text, **options["tokenizer"]))
        if "images" in given:
            merged.update(self.image_processor(given["images"], **options["image_processor"]))
        if "audio" in given:
            merged.update(self.feature_extractor(given["audio"], **options["feature_extractor"]))
        return BatchFeature(merged, tensor_type=options.get("tokenizer", {}).get("return_tensors"))

    def _call_speech(self, given: dict[str, Any], options: dict[str, dict[str, Any]]) -> Any:
        # As the reference's speech processors: one input gives that part's own output; text given
        # with audio becomes the labels of the audio's features.
        features = encodings = None
        if "audio" in given:
            features = self.feature_extractor(given["audio"], **options["feature_extractor"])
        if "text" in given:
            encodings = self.tokenizer(given["text"], **options["tokenizer"])
        if encodings is None:
            return features
        if features is None:
            return encodings
        features["labels"] = encodings["input_ids"]
        return features

    def pad(self, *args: Any, **kwargs: Any) -> Any:
        """Pad extracted features (first argument or ``input_features=``) with the feature extractor
        and/or tokenized ``labels=`` with the tokenizer; together, the padded label ids become ``labels``."""
        if "feature_extractor" not in self._parts:
            raise InputError(f"{self._class_name} has no feature extractor; pad text with processor.tokenizer.pad.")
        features = kwargs.pop("input_features", None)
        labels = kwargs.pop("labels", None)
        if args:
            features, args = args[0], args[1:]
        if features is not None:
            features = self.feature_extractor.pad(features, *args, **kwargs)
        if labels is not None:
            labels = self.tokenizer.pad(labels, **kwargs)
        if labels is None:
            return features
        if features is None:
            return labels
        features["labels"] = labels["input_ids"]
        return features

    def batch_decode(self, *args: Any, **kwargs: Any) -> Any:
        """The tokenizer's ``batch_decode``."""
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args: Any, **kwargs: Any) -> Any:
        """The tokenizer's ``decode``."""
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        if self._style == "speech":
            return [*self.feature_extractor.model_input_names, "labels"]
        names: list[str] = []
        for name in self._parts:
            names.extend(getattr(self, name).model_input_names)
        return names

    # -- saving ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """processor_config.json's content: every part but the tokenizer (saved in its own files)."""
        output = {name: getattr(self, name).to_dict() for name in self._parts if name != "tokenizer"}
        output["processor_class"] = self._class_name
        return output

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> list[str]:
        """Write the tokenizer's files (naming this processor in tokenizer_config.json) and
        processor_config.json with the other parts, as the reference does; returns the latter's path."""
        if push_to_hub:
            raise InputError("leanformers does not upload to the hub; save_pretrained(folder) and upload the folder.")
        if kwargs:
            raise InputError(f"Unexpected argument(s) {sorted(kwargs)} for save_pretrained.")
        save_directory = os.fspath(save_directory)
        if os.path.isfile(save_directory):
            raise InputError(f"save_pretrained needs a folder (a directory), but {save_directory!r} is a file.")
        os.makedirs(save_directory, exist_ok=True)
        # The reference records the processor in the tokenizer's config, so a folder holding only
        # the tokenizer files still names it.
        self.tokenizer.init_kwargs["processor_class"] = self._class_name
        self.tokenizer.save_pretrained(save_directory)
        path = os.path.join(save_directory, PROCESSOR_FILE)
        atomic_write(path, self.to_json_string())
        return [path]

    def __repr__(self) -> str:
        parts = "\n".join(f"- {name}: {getattr(self, name)!r}" for name in self._parts)
        return f"{self._class_name}:\n{parts}\n\n{self.to_json_string()}"


def _describe(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        kinds = sorted({type(item).__name__ for item in value})
        return f"a {type(value).__name__} of {', '.join(kinds) or 'nothing'}"
    return f"a {type(value).__name__}"


def _config_value(path: str | None, key: str, what: str) -> tuple[Any, Any]:
    """``key`` and the AutoProcessor auto_map entry of a JSON file (None, None if the file is absent)."""
    if path is None:
        return None, None
    data = read_json(path, what)
    auto_map = data.get("auto_map")
    return data.get(key), auto_map.get("AutoProcessor") if isinstance(auto_map, Mapping) else None


def _named_processor(source: Source, config: Any) -> tuple[str | None, Any]:
    """The processor class a checkpoint names, by the reference's order of files, else its model
    type's default; and the auto_map entry asking for remote code, if any."""
    auto_map = None
    for filename in (PROCESSOR_FILE, PREPROCESSOR_FILE, TOKENIZER_CONFIG_FILE):
        name, remote = _config_value(source.resolve(filename, required=False), "processor_class", filename)
        auto_map = auto_map or remote
        if name is not None:
            if not isinstance(name, str):
                raise ConfigError(
                    f"processor_class in {filename} of {source.describe()} must be a class name string, got {name!r}."
                )
            return name, auto_map
    if config is not None:
        read = config.get if isinstance(config, Mapping) else lambda key, default=None: getattr(config, key, default)
        name, model_type = read("processor_class", None), read("model_type", None)
    else:
        config_path = source.resolve("config.json", required=False)
        name, remote = _config_value(config_path, "processor_class", "config.json")
        auto_map = auto_map or remote
        model_type = read_json(config_path, "config.json").get("model_type") if config_path else None
    if name is None and isinstance(model_type, str):
        name = registry.DEFAULT_PROCESSOR.get(model_type)
    return name, auto_map


def load_processor(source: Source | str | os.PathLike, **kwargs: Any) -> Any:
    """What ``AutoProcessor.from_pretrained`` returns: the processor named by processor_config.json,
    preprocessor_config.json, tokenizer_config.json or config.json (in that order), else the
    default processor of the model type, else the first part the checkpoint has of: tokenizer,
    image processor, feature extractor."""
    if not isinstance(source, Source):
        options, kwargs = split_source_options(kwargs)
        source = Source.of(source, **options)
    for key in IGNORED_LOAD_OPTIONS + SOURCE_OPTIONS:
        kwargs.pop(key, None)
    if kwargs.pop("return_unused_kwargs", False):
        raise InputError("AutoProcessor.from_pretrained does not support return_unused_kwargs=True.")
    name, auto_map = _named_processor(source, kwargs.pop("config", None))
    if name is not None:
        if name not in registry.PROCESSORS and auto_map:
            raise RemoteCodeError(
                f"{source.describe()} asks for the processor {name!r} from its own code (auto_map: {auto_map}); "
                f"leanformers never runs code from a checkpoint. Supported: {', '.join(sorted(registry.PROCESSORS))}."
            )
        return Processor._load(source, name, kwargs)
    if auto_map:
        raise RemoteCodeError(
            f"{source.describe()} names its processor only through auto_map ({auto_map}), which means running code "
            f"from the checkpoint; leanformers never runs code from a checkpoint."
        )
    failures = []
    for part in ("tokenizer", "image_processor", "feature_extractor"):
        try:
            return _load_part(part, source, kwargs)
        except (LeanformersError, ImportError) as exc:  # ImportError: the engine's optional extra is missing
            failures.append(f"{part.replace('_', ' ')}: {exc}")
    raise UnsupportedModelError(
        f"{source.describe()} has no processor class and none of its parts could be loaded, so AutoProcessor has "
        f"nothing to return. Make sure the checkpoint has the files of a tokenizer (tokenizer.json / vocab files "
        f"with tokenizer_config.json), an image processor or a feature extractor ({PREPROCESSOR_FILE}). "
        f"What was tried:\n  " + "\n  ".join(failures)
    )


__all__ = ["Processor", "load_processor"]

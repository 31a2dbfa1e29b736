"""Model configuration: ``config.json`` <-> an object with attribute access.

Every key of the file is kept, known or not, and written back by ``save_pretrained``, so a
checkpoint round-trips with the reference library. An architecture's config class only declares
its own keys with their defaults (``defaults``) and its aliases (``attribute_map``).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from typing import Any, ClassVar

from .errors import ConfigError
from .hub import Source, atomic_write, read_json, split_source_options

CONFIG_NAME = "config.json"

# Keys every config has, whatever the architecture, with the reference's defaults.
COMMON_DEFAULTS: dict[str, Any] = {
    "architectures": None,
    "output_hidden_states": False,
    "output_attentions": False,
    "return_dict": True,
    "dtype": None,
    "chunk_size_feed_forward": 0,
    "is_encoder_decoder": False,
    "problem_type": None,
    "pad_token_id": None,
    "bos_token_id": None,
    "eos_token_id": None,
    "tie_word_embeddings": True,
}
PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")


class PretrainedConfig:
    """Base configuration. Subclasses set ``model_type`` and ``defaults``."""

    model_type: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    attribute_map: ClassVar[dict[str, str]] = {}
    # Keys that describe the same choice two ways: overriding one at load time drops the other
    # from the file, so the override wins instead of conflicting (out_indices / out_features).
    linked_keys: ClassVar[dict[str, str]] = {}

    def __init__(self, **kwargs: Any) -> None:
        kwargs = dict(kwargs)
        for alias, key in self.attribute_map.items():
            if alias in kwargs:
                kwargs.setdefault(key, kwargs.pop(alias))
        legacy_dtype = kwargs.pop("torch_dtype", None)
        num_labels = kwargs.pop("num_labels", None)
        id2label = kwargs.pop("id2label", None)
        label2id = kwargs.pop("label2id", None)
        kwargs.pop("model_type", None)  # the class decides it
        values: dict[str, Any] = copy.deepcopy(COMMON_DEFAULTS)
        values.update(copy.deepcopy(self.defaults))
        values.update(kwargs)
        if values.get("dtype") is None and legacy_dtype is not None:
            values["dtype"] = legacy_dtype
        values["dtype"] = _dtype_name(values.get("dtype"))
        values.setdefault("_name_or_path", "")
        object.__setattr__(self, "_values", values)

        if id2label is not None:
            if not isinstance(id2label, dict):
                raise ConfigError(f"id2label must be a mapping of label ids to names, got {type(id2label).__name__}.")
            try:
                self._values["id2label"] = {int(k): str(v) for k, v in id2label.items()}
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"id2label keys must be integers (as strings in JSON): {exc}") from exc
            if label2id is None:
                label2id = {name: idx for idx, name in self._values["id2label"].items()}
            self._values["label2id"] = _label2id(label2id)
        else:
            self._values["id2label"] = None
            self.num_labels = 2 if num_labels is None else num_labels
            if label2id is not None:
                self._values["label2id"] = _label2id(label2id)
        problem = self._values.get("problem_type")
        if problem is not None and problem not in PROBLEM_TYPES:
            raise ConfigError(f"problem_type must be one of {PROBLEM_TYPES} or None, got {problem!r}.")
        if problem == "single_label_classification" and self.num_labels == 1:
            raise ConfigError(
                "problem_type='single_label_classification' needs num_labels > 1; use num_labels=2 for "
                "binary classification or problem_type='regression' for one output."
            )
        self.validate()

    def validate(self) -> None:
        """Check architecture-specific invariants; subclasses raise ConfigError."""

    # -- attribute access ---------------------------------------------------------------------
    def __getattr__(self, key: str) -> Any:
        values = self.__dict__.get("_values")
        if values is None:
            raise AttributeError(key)
        key = type(self).attribute_map.get(key, key)
        if key in values:
            return values[key]
        raise AttributeError(f"{type(self).__name__} has no attribute {key!r}")

    def __setattr__(self, key: str, value: Any) -> None:
        if isinstance(getattr(type(self), key, None), property):
            object.__setattr__(self, key, value)
            return
        key = type(self).attribute_map.get(key, key)
        if key == "torch_dtype":
            key = "dtype"
        if key == "dtype":
            value = _dtype_name(value)
        self._values[key] = value

    def __delattr__(self, key: str) -> None:
        key = type(self).attribute_map.get(key, key)
        if key not in self._values:
            raise AttributeError(key)
        del self._values[key]

    def __contains__(self, key: str) -> bool:
        return type(self).attribute_map.get(key, key) in self._values

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PretrainedConfig) and self.to_dict() == other.to_dict()

    def __deepcopy__(self, memo: dict) -> "PretrainedConfig":
        clone = type(self).__new__(type(self))
        object.__setattr__(clone, "_values", copy.deepcopy(self._values, memo))
        return clone

    def __getstate__(self) -> dict:
        return {"_values": self._values}

    def __setstate__(self, state: dict) -> None:
        object.__setattr__(self, "_values", state["_values"])

    @property
    def num_labels(self) -> int:
        return len(self._values["id2label"] or {})

    @num_labels.setter
    def num_labels(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"num_labels must be a positive integer, got {value!r}.")
        if self._values.get("id2label") is None or len(self._values["id2label"]) != value:
            self._values["id2label"] = {i: f"LABEL_{i}" for i in range(value)}
            self._values["label2id"] = {f"LABEL_{i}": i for i in range(value)}

    @property
    def name_or_path(self) -> str:
        return self._values.get("_name_or_path", "")

    @name_or_path.setter
    def name_or_path(self, value: str) -> None:
        self._values["_name_or_path"] = str(value)

    @property
    def use_return_dict(self) -> bool:
        return bool(self._values.get("return_dict", True))

    # -- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = copy.deepcopy(self._values)
        out["model_type"] = self.model_type
        return out

    def to_json_string(self, use_diff: bool = False) -> str:
        data = self.to_diff_dict() if use_diff else self.to_dict()
        if data.get("id2label") is not None:
            data["id2label"] = {str(k): v for k, v in data["id2label"].items()}
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def to_diff_dict(self) -> dict[str, Any]:
        """Only what differs from this class's defaults (plus ``model_type``)."""
        base = type(self)().to_dict()
        out = {k: v for k, v in self.to_dict().items() if k not in base or base[k] != v or k == "model_type"}
        out.pop("_name_or_path", None)
        return out

    def __repr__(self) -> str:
        data = self.to_dict()
        data.pop("_name_or_path", None)
        if data.get("id2label") is not None:
            data["id2label"] = {str(k): v for k, v in data["id2label"].items()}
        return f"{type(self).__name__} {json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)}\n"

    def save_pretrained(self, save_directory: str | os.PathLike) -> str:
        """Write ``config.json`` into ``save_directory`` (created if needed); returns its path."""
        if os.path.isfile(save_directory):
            raise ConfigError(f"save_pretrained needs a folder, but {os.fspath(save_directory)!r} is a file.")
        os.makedirs(save_directory, exist_ok=True)
        data = self.to_dict()
        data.pop("_name_or_path", None)
        if data.get("id2label") is not None:
            data["id2label"] = {str(k): v for k, v in data["id2label"].items()}
        path = os.path.join(save_directory, CONFIG_NAME)
        atomic_write(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> "PretrainedConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"A config must be a JSON object, got {type(data).__name__}.")
        config = cls(**{**data, **overrides})
        return config

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any) -> "PretrainedConfig":
        config, unused = load_config(cls, name_or_path, **kwargs)
        if unused:
            for key, value in unused.items():
                setattr(config, key, value)
        return config


def read_config_dict(source: Source) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint, with clear errors for a malformed file."""
    return read_json(source.resolve(CONFIG_NAME))


def load_config(
    config_class: type[PretrainedConfig] | Callable[..., type[PretrainedConfig]],
    name_or_path: Any,
    *,
    config_dict: dict[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[PretrainedConfig, dict[str, Any]]:
    """Load a config; keyword arguments naming config keys override the file's values.

    Returns the config and the keyword arguments that were not config keys. ``config_class`` is
    the class, or a function choosing it from the file's contents (``registry.config_class_for``).
    ``config_dict`` stands in for config.json where a checkpoint has none (a GGUF file's metadata).
    """
    options, kwargs = split_source_options(dict(kwargs))
    source = Source.of(name_or_path, **options)
    data = read_config_dict(source) if config_dict is None else config_dict
    if not isinstance(config_class, type):
        config_class = config_class(data, where=source.describe())
    overrides = {}
    unused = {}
    probe = config_class()
    for key, value in kwargs.items():
        if key in ("num_labels", "id2label", "label2id", "torch_dtype") or key in data or key in probe:
            overrides[key] = value
        else:
            unused[key] = value
    for key, other in config_class.linked_keys.items():
        if key in overrides and other not in overrides:
            data = {k: v for k, v in data.items() if k != other}
    if "num_labels" in overrides and "id2label" not in overrides:
        if len(data.get("id2label") or {}) != overrides["num_labels"]:
            data = {k: v for k, v in data.items() if k not in ("id2label", "label2id")}
    try:
        config = config_class.from_dict(data, **overrides)
    except ConfigError as exc:
        raise ConfigError(f"{source.describe()}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"The config.json of {source.describe()} has a value of the wrong type: {exc}") from exc
    config.name_or_path = source.name_or_path
    return config, unused


def _label2id(label2id: Any) -> dict[str, int]:
    if not isinstance(label2id, dict):
        raise ConfigError(f"label2id must be a mapping of label names to ids, got {type(label2id).__name__}.")
    try:
        return {str(k): int(v) for k, v in label2id.items()}
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"label2id values must be integers (label ids): {exc}") from exc


def _dtype_name(value: Any) -> str | None:
    """Configs store dtypes as the JSON strings the reference writes ("float32", "bfloat16")."""
    if value is None or isinstance(value, str):
        return value
    name = str(value)
    return name[len("torch."):] if name.startswith("torch.") else name

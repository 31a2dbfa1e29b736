"""What the image processor and the audio feature extractor share: ``BatchFeature`` (the dict of
model inputs they return), the ``Preprocessor`` base (load, validate, save settings) and helpers.

numpy is imported here; torch only when tensors are asked for.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import numbers
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import numpy as np

from .. import registry
from ..errors import CheckpointNotFoundError, ConfigError, InputError, RemoteCodeError, UnsupportedModelError
from ..hub import IGNORED_LOAD_OPTIONS, Source, atomic_write, read_json, split_source_options

logger = logging.getLogger(__name__)

TENSOR_TYPES = ("pt", "np")
PROCESSOR_FILE = "processor_config.json"


def tensor_type_name(tensor_type: Any) -> str | None:
    """``None``, ``"pt"`` or ``"np"`` from a ``return_tensors`` value (a string or a string enum)."""
    if tensor_type is None:
        return None
    name = getattr(tensor_type, "value", tensor_type)
    if name in TENSOR_TYPES:
        return name
    raise InputError(
        f"return_tensors={tensor_type!r} is not supported: use 'pt' (torch tensors), 'np' (numpy arrays) "
        f"or None (lists of numpy arrays)."
    )


def is_tensor(value: Any) -> bool:
    """Whether ``value`` is a torch tensor, without importing torch."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def tensor_to_numpy(value: Any) -> Any:
    """A torch tensor as a numpy array (bfloat16 and other types numpy lacks become float32); else ``value``."""
    if not is_tensor(value):
        return value
    tensor = value.detach().cpu()
    try:
        return tensor.numpy()
    except TypeError:
        return tensor.float().numpy()


def describe(value: Any) -> str:
    if isinstance(value, np.ndarray) or is_tensor(value):
        return f"a {type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"a {type(value).__name__}"


# Tests for settings; ``check_settings`` pairs each with what a value must be.
def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_flag(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


Rules = Mapping[str, tuple[Callable[[Any], bool], str]]


def check_settings(settings: Mapping[str, Any], rules: Rules, where: str, error: type[Exception],
                   optional: bool = False) -> None:
    """Refuse a value its rule (key -> (test, what it must be)) does not pass; ``optional``: None passes."""
    for key, (test, expected) in rules.items():
        value = settings.get(key)
        if not (optional and value is None) and not test(value):
            raise error(f"{key}={value!r} in {where} must be {expected}.")


def _is_array_like(value: Any) -> bool:
    """Whether a value can become a tensor: arrays, tensors, numbers, and (nested) lists of them."""
    while isinstance(value, (list, tuple)):
        if not value:
            return True
        value = value[0]
    return isinstance(value, (np.ndarray, np.number, bool, int, float)) or is_tensor(value)


def _shapes(value: Any) -> str:
    shapes = sorted({tuple(np.shape(item)) for item in value}) if isinstance(value, (list, tuple)) else []
    return ", ".join(str(shape) for shape in shapes[:4]) + (", ..." if len(shapes) > 4 else "")


def to_numpy(value: Any) -> np.ndarray:
    """One numpy array; rows of different lengths become an object array of rows, as in the reference."""
    if is_tensor(value):
        return tensor_to_numpy(value)
    if isinstance(value, (list, tuple)) and value:
        if isinstance(value[0], (list, tuple, np.ndarray)) and len({len(item) for item in value}) > 1:
            ragged = np.empty(len(value), dtype=object)
            for index, item in enumerate(value):
                ragged[index] = np.asarray(item)
            return ragged
        if is_tensor(value[0]):
            return np.stack([tensor_to_numpy(item) for item in value])
    return np.asarray(value)


def _to_torch(value: Any):
    import torch

    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor):
        return torch.stack(list(value))
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (np.ndarray, list, tuple)):
        value = np.array(value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    return torch.tensor(value)


def _model_config_value(config: Any, source: Source | None, key: str) -> Any:
    """A value of the model config given, else of the checkpoint's config.json (None if neither)."""
    if config is not None:
        return config.get(key) if isinstance(config, Mapping) else getattr(config, key, None)
    path = source.resolve("config.json", required=False) if source is not None else None
    return read_json(path).get(key) if path is not None else None


class Preprocessor:
    """What the image processor and the audio feature extractor share: settings held as attributes,
    loaded from a checkpoint (``processor_config.json``'s entry, else ``preprocessor_config.json``),
    a dict or a JSON file, and saved back as one JSON file written atomically. A subclass names its
    tables and says which class names it knows (``_known``, ``_supported_names``), which settings
    a class takes (``_settable``) and how to build one (``__init__(class_name, **settings)``)."""

    settings_file: ClassVar[str] = "preprocessor_config.json"
    # Keys of processor_config.json that may hold these settings.
    bundle_keys: ClassVar[tuple[str, ...]] = ()
    kind: ClassVar[str] = "preprocessor"
    # Where a class name is looked for: the settings' keys (the first is the one saved), the model
    # config's key (or None), the registry tables giving a default by model_type, and the auto_map
    # entries that mean remote code.
    type_keys: ClassVar[tuple[str, ...]] = ()
    config_type_key: ClassVar[str | None] = None
    default_tables: ClassVar[tuple[str, ...]] = ()
    auto_map_keys: ClassVar[tuple[str, ...]] = ()
    # The from_pretrained keyword that names another settings file, if any.
    filename_option: ClassVar[str | None] = None
    # The engine's profiles, and the registry table from a class name to one of them.
    profiles: ClassVar[Mapping[str, Any]] = {}
    class_table: ClassVar[str] = ""
    _class_name: str

    @classmethod
    def _profile_of(cls, class_name: Any) -> Any:
        table = getattr(registry, cls.class_table)
        if not isinstance(class_name, str) or class_name not in table:
            raise UnsupportedModelError(
                f"{cls.__name__}(...) names the {cls.kind} {class_name!r}, which leanformers does not provide. "
                f"Supported: {cls._supported_names()}."
            )
        return cls.profiles[table[class_name]]

    def _set_settings(self, class_name: str, values: Mapping[str, Any]) -> None:
        """Hold ``values`` as attributes; keys naming the class, and the reference's bookkeeping
        (``_...``), are not settings."""
        object.__setattr__(self, "_class_name", class_name)
        for key, value in values.items():
            if key.startswith("_") or key in (*self.type_keys, "processor_class"):
                continue
            member = getattr(type(self), key, None)
            if callable(member) or isinstance(member, property):
                raise ConfigError(f"{key!r} cannot be a setting of {class_name}: it would hide a method; remove it.")
            setattr(self, key, value)

    @classmethod
    def _class_name_from(cls, data: Mapping[str, Any], source: Source | None, where: str, config: Any) -> str:
        """The class a checkpoint asks for: the settings' type key, else the model config's, else
        the default for its model_type. A checkpoint's own code (auto_map) is never run."""
        name = next((data[key] for key in cls.type_keys if data.get(key)), None)
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"{cls.type_keys[0]} in {where} must be a class name string, got {name!r}.")
        auto_map = data.get("auto_map") if isinstance(data.get("auto_map"), Mapping) else {}
        remote = any(auto_map.get(key) for key in cls.auto_map_keys)
        supported = cls._supported_names()
        if name is None:
            if cls.config_type_key is not None:
                name = _model_config_value(config, source, cls.config_type_key)
            model_type = _model_config_value(config, source, "model_type")
            tables = [getattr(registry, table) for table in cls.default_tables]
            if name is None and isinstance(model_type, str):
                name = next((table[model_type] for table in tables if model_type in table), None)
            if name is None and remote:
                raise RemoteCodeError(
                    f"{where} names its {cls.kind} only through auto_map ({dict(auto_map)}), which means running "
                    f"code from the checkpoint; leanformers never runs code from a checkpoint. Supported: {supported}."
                )
            if name is None:
                found = f"model_type {model_type!r}" if model_type else "no model_type (or no config.json)"
                raise UnsupportedModelError(
                    f"{where} has no {cls.type_keys[0]} and the checkpoint has {found}, so the {cls.kind} cannot be "
                    f'chosen. Add "{cls.type_keys[0]}" (one of: {supported}) to the file.'
                )
        if cls._known(name):
            return name
        if remote:
            raise RemoteCodeError(
                f"{where} asks for the {cls.kind} {name!r} from its own code (auto_map); leanformers never runs "
                f"code from a checkpoint. Supported: {supported}."
            )
        raise UnsupportedModelError(
            f"{where} names the {cls.kind} {name!r}, which leanformers does not provide. Supported: {supported}."
        )

    @classmethod
    def _from_settings(cls, class_name: str, data: Mapping[str, Any], kwargs: dict[str, Any], where: str) -> Any:
        """Build from file settings plus keyword overrides: a keyword overrides a setting the class
        takes or the file holds; the others are returned (``return_unused_kwargs``) or logged."""
        return_unused = kwargs.pop("return_unused_kwargs", False)
        settable = set(cls._settable(class_name)) | set(data)
        settings = {**data, **{key: kwargs.pop(key) for key in list(kwargs) if key in settable}}
        try:
            made = cls(class_name, **{key: value for key, value in settings.items() if key not in cls.type_keys})
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        if return_unused:
            return made, kwargs
        if kwargs:
            logger.warning("Ignored keyword arguments %s: they are not settings of %s.", sorted(kwargs), class_name)
        return made

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike | Source, **kwargs: Any) -> Any:
        """The settings of a checkpoint folder, hub repository or settings JSON file; keyword
        arguments override them (``Auto...from_pretrained`` lands here too)."""
        path = pretrained_model_name_or_path
        options, kwargs = split_source_options(kwargs)
        filename = kwargs.pop(cls.filename_option, None) if cls.filename_option else None
        config = kwargs.pop("config", None)
        for key in (*IGNORED_LOAD_OPTIONS, "backend"):
            kwargs.pop(key, None)
        name = path.name_or_path if isinstance(path, Source) else path
        if isinstance(name, (str, os.PathLike)) and os.path.isfile(name):
            source, where = None, os.fspath(name)
            data = read_json(where)
        else:
            source = Source.of(path, **options)
            data, where = cls._read_settings(source, filename or cls.settings_file)
        return cls._from_settings(cls._class_name_from(data, source, where, config), data, kwargs, where)

    @classmethod
    def _read_settings(cls, source: Source, filename: str) -> tuple[dict[str, Any], str]:
        """The settings of a checkpoint and where they came from: processor_config.json's entry
        first, else ``filename``."""
        bundle_path = source.resolve(PROCESSOR_FILE, required=False)
        if bundle_path is not None:
            bundle = read_json(bundle_path)
            for key in cls.bundle_keys:
                if isinstance(bundle.get(key), dict):
                    return dict(bundle[key]), f"{bundle_path} ({key})"
        path = source.resolve(filename, required=False)
        if path is None:
            raise CheckpointNotFoundError(
                f"{source.describe()} has no {filename} (nor a {PROCESSOR_FILE} with a {cls.bundle_keys[0]} entry), "
                f"so it has no {cls.kind} settings. Is it the right kind of checkpoint?"
            )
        return read_json(path), path

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any], **kwargs: Any) -> Any:
        """Build from a settings dict (``to_dict()``'s form); keyword arguments override settings."""
        if not isinstance(settings, Mapping):
            raise InputError(f"from_dict expects a dict of settings, got {type(settings).__name__}.")
        name = kwargs.pop("class_name", None) or cls._class_name_from(settings, None, "the settings dict", None)
        return cls._from_settings(name, dict(settings), kwargs, "the settings dict")

    @classmethod
    def from_json_file(cls, json_file: str | os.PathLike) -> Any:
        path = os.fspath(json_file)
        data = read_json(path)
        return cls._from_settings(cls._class_name_from(data, None, path, None), data, {}, path)

    @property
    def class_name(self) -> str:
        """The reference class this object stands for (``ViTImageProcessor``, ``Wav2Vec2FeatureExtractor``...)."""
        return self._class_name

    def _saves(self, key: str, value: Any) -> bool:
        """Whether to_dict keeps a setting."""
        return True

    def to_dict(self) -> dict[str, Any]:
        """The settings as saved, the class name under ``type_keys[0]``."""
        output = {
            key: copy.deepcopy(value)
            for key, value in self.__dict__.items()
            if not key.startswith("_") and self._saves(key, value)
        }
        output[self.type_keys[0]] = self._class_name
        return output

    def to_json_string(self) -> str:
        data = self.to_dict()
        data = {key: value.tolist() if isinstance(value, np.ndarray) else value for key, value in data.items()}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def to_json_file(self, json_file_path: str | os.PathLike) -> None:
        atomic_write(json_file_path, self.to_json_string())

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> list[str]:
        """Write ``settings_file`` into ``save_directory`` (created if needed), atomically; returns its path."""
        if push_to_hub:
            raise InputError("leanformers does not upload to the hub; save_pretrained(folder) and upload the folder.")
        save_directory = os.fspath(save_directory)
        if os.path.isfile(save_directory):
            raise InputError(f"save_pretrained needs a folder (a directory), but {save_directory!r} is a file.")
        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(save_directory, self.settings_file)
        self.to_json_file(path)
        return [path]

    def __repr__(self) -> str:
        return f"{self._class_name} {self.to_json_string()}"


class BatchFeature(dict):
    """Model inputs by name; ``inputs.pixel_values`` and ``inputs["pixel_values"]`` are the same.
    A real ``dict``, so ``model(**inputs)`` works. ``tensor_type`` ('pt', 'np' or None) converts
    array-like values on construction; ``skip_tensor_conversion`` names keys to leave as they are."""

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        tensor_type: Any = None,
        skip_tensor_conversion: Iterable[str] | None = None,
    ) -> None:
        super().__init__(data or {})
        self.skip_tensor_conversion = skip_tensor_conversion
        self.convert_to_tensors(tensor_type=tensor_type)

    def __getitem__(self, item: str) -> Any:
        if isinstance(item, str):
            return dict.__getitem__(self, item)
        raise KeyError(
            f"BatchFeature is indexed by input name (one of {list(self.keys())}), not by {type(item).__name__}: "
            f"use inputs['pixel_values'][{item!r}] to select rows."
        )

    def __getattr__(self, item: str) -> Any:
        if item.startswith("__"):
            raise AttributeError(item)
        try:
            return dict.__getitem__(self, item)
        except KeyError:
            raise AttributeError(f"'BatchFeature' has no attribute or key {item!r}") from None

    @property
    def data(self) -> BatchFeature:
        """The contents (the reference keeps them in ``.data``; here the object is the dict)."""
        return self

    @data.setter
    def data(self, value: Mapping[str, Any]) -> None:
        dict.clear(self)
        dict.update(self, value)

    def convert_to_tensors(self, tensor_type: Any = None, skip_tensor_conversion: Iterable[str] | None = None):
        """Turn every array-like value into a ``tensor_type`` tensor ('pt' or 'np'); ``None`` leaves them."""
        name = tensor_type_name(tensor_type)
        if name is None:
            return self
        skip = set(skip_tensor_conversion if skip_tensor_conversion is not None else self.skip_tensor_conversion or ())
        if name == "pt":
            import torch

            convert, done = _to_torch, torch.Tensor
        else:
            convert, done = to_numpy, np.ndarray
        for key, value in list(self.items()):
            if key in skip or not _is_array_like(value) or isinstance(value, done):
                continue
            try:
                dict.__setitem__(self, key, convert(value))
            except (ValueError, TypeError, RuntimeError) as exc:
                shapes = _shapes(value)
                raise InputError(
                    f"Cannot stack {key!r} into one {name} tensor"
                    + (f": its items have different shapes ({shapes})" if shapes else f" ({exc})")
                    + ". Make them the same size (for images: resize, or crop to one size), "
                    "or pass return_tensors=None to get a list."
                ) from exc
        return self

    def to(self, *args: Any, **kwargs: Any) -> BatchFeature:
        """Move / cast the torch tensors: ``.to("cuda")``, ``.to(torch.float16)``, ``.to(device=..., dtype=...)``.
        A dtype casts only floating-point tensors (integer masks and ids keep their type); a device
        moves every tensor, in lists and tuples too."""
        import torch

        device = kwargs.get("device")
        if device is None and args and not isinstance(args[0], torch.dtype):
            if not isinstance(args[0], (str, int, torch.device)):
                raise InputError(
                    f"BatchFeature.to() takes a device ('cpu', 'cuda:0', torch.device) or a torch dtype, "
                    f"not {type(args[0]).__name__} ({args[0]!r})."
                )
            device = args[0]

        def move(value: Any) -> Any:
            if isinstance(value, (list, tuple)):
                return type(value)(move(item) for item in value)
            if not isinstance(value, torch.Tensor):
                return value
            if torch.is_floating_point(value):
                return value.to(*args, **kwargs)
            return value if device is None else value.to(device=device, non_blocking=kwargs.get("non_blocking", False))

        for key, value in list(self.items()):
            dict.__setitem__(self, key, move(value))
        return self


__all__ = ["BatchFeature", "Preprocessor", "TENSOR_TYPES", "tensor_type_name"]

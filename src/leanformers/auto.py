"""The Auto classes: read the checkpoint's config, look the classes up in the registry, delegate.

Nothing here names an architecture; every choice is a table lookup in ``registry``.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from . import registry
from .configuration import PretrainedConfig, load_config
from .errors import InputError, UnsupportedModelError
from .hub import SOURCE_OPTIONS, Source, split_source_options

# Arguments of PreTrainedModel.from_pretrained that are not config overrides.
_LOAD_OPTIONS = ("dtype", "torch_dtype", "device", "device_map", "ignore_mismatched_sizes", "output_loading_info",
                 "use_safetensors", "low_cpu_mem_usage", "attn_implementation")


def _no_instances(cls: type) -> None:
    raise InputError(
        f"{cls.__name__} is not meant to be instantiated; use {cls.__name__}.from_pretrained(...) "
        f"or {cls.__name__}.from_config(config)."
    )


def _open_gguf(source: Source, gguf_file: Any) -> Any:
    """The GGUF file a from_pretrained call names, opened once for its config and weights."""
    from .modeling.gguf import open_gguf

    return open_gguf(source, gguf_file)


def _drop_remote_code_flag(kwargs: dict[str, Any]) -> None:
    # Accepted for drop-in compatibility; remote code is never run, whatever its value
    # (registry refuses checkpoints that would need it).
    kwargs.pop("trust_remote_code", None)


class AutoConfig:
    def __init__(self) -> None:
        _no_instances(type(self))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> PretrainedConfig:
        """The config of a checkpoint, as the class its ``model_type`` names; keyword arguments
        override its values (``num_labels=3``), as in the reference."""
        _drop_remote_code_flag(kwargs)
        return_unused = kwargs.pop("return_unused_kwargs", False)
        gguf_file = kwargs.pop("gguf_file", None)
        if gguf_file is not None:  # the file's metadata stands for config.json
            options = {key: kwargs[key] for key in SOURCE_OPTIONS if key in kwargs}
            source = Source.of(pretrained_model_name_or_path, **options)
            kwargs["config_dict"] = _open_gguf(source, gguf_file).config_dict()
        config, unused = load_config(registry.config_class_for, pretrained_model_name_or_path, **kwargs)
        if return_unused:
            return config, unused
        for key, value in unused.items():
            setattr(config, key, value)
        return config

    @classmethod
    def for_model(cls, model_type: str, **kwargs: Any) -> PretrainedConfig:
        return registry.config_class_by_type(model_type, where="for_model")(**kwargs)

    @staticmethod
    def register(model_type: str, config_class: type, exist_ok: bool = False) -> None:
        registry.register_config(model_type, config_class, exist_ok=exist_ok)


class _AutoModel:
    task: str = "base"

    def __init__(self) -> None:
        _no_instances(type(self))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any):
        """Load the checkpoint's model class for this task, with its weights."""
        if args:
            raise InputError(f"{cls.__name__}.from_pretrained takes only keyword arguments after the checkpoint.")
        _drop_remote_code_flag(kwargs)
        options, kwargs = split_source_options(kwargs)
        source = Source.of(pretrained_model_name_or_path, **options)
        load_options = {k: kwargs.pop(k) for k in _LOAD_OPTIONS if k in kwargs}
        config = kwargs.pop("config", None)
        gguf = kwargs.pop("gguf_file", None)
        if gguf is not None:
            gguf = load_options["gguf_file"] = _open_gguf(source, gguf)
        if config is None:
            config_dict = None if gguf is None else gguf.config_dict()
            config, model_kwargs = load_config(registry.config_class_for, source, config_dict=config_dict, **kwargs)
        elif isinstance(config, PretrainedConfig):
            model_kwargs = kwargs
        else:
            raise InputError(f"config must be a PretrainedConfig, got {type(config).__name__}.")
        model_class = registry.model_class_for(config.model_type, cls.task, where=source.describe())
        return model_class.from_pretrained(source, config=config, **load_options, **model_kwargs)

    @classmethod
    def from_config(cls, config: PretrainedConfig, **kwargs: Any):
        """A randomly initialised model of this task for ``config``."""
        if not isinstance(config, PretrainedConfig):
            raise InputError(f"{cls.__name__}.from_config needs a config object, got {type(config).__name__}.")
        kwargs.pop("trust_remote_code", None)
        dtype = kwargs.pop("dtype", kwargs.pop("torch_dtype", None))
        model_class = registry.model_class_for(config.model_type, cls.task, where=f"the {type(config).__name__}")
        return model_class.from_config(config, dtype=dtype, **kwargs)

    @classmethod
    def register(cls, config_class: type, model_class: type, exist_ok: bool = False) -> None:
        model_type = getattr(config_class, "model_type", None)
        if not model_type:
            raise UnsupportedModelError(f"{config_class!r} has no model_type; it cannot be registered.")
        if getattr(model_class, "config_class", config_class) is not config_class:
            raise UnsupportedModelError(
                f"{model_class.__name__}.config_class is {model_class.config_class.__name__}, not "
                f"{config_class.__name__}; they must match to register."
            )
        registry.register_model(model_type, cls.task, model_class, exist_ok=exist_ok)


def _auto_model(name: str, task: str) -> type[_AutoModel]:
    return type(name, (_AutoModel,), {"task": task, "__doc__": f"The checkpoint's {task} model class.",
                                      "__module__": __name__})


AutoModel = _auto_model("AutoModel", "base")
AutoModelForSequenceClassification = _auto_model("AutoModelForSequenceClassification", "sequence-classification")
AutoModelForTokenClassification = _auto_model("AutoModelForTokenClassification", "token-classification")
AutoModelForQuestionAnswering = _auto_model("AutoModelForQuestionAnswering", "question-answering")
AutoModelForMaskedLM = _auto_model("AutoModelForMaskedLM", "masked-lm")
AutoModelForPreTraining = _auto_model("AutoModelForPreTraining", "pretraining")
AutoModelForImageClassification = _auto_model("AutoModelForImageClassification", "image-classification")
AutoBackbone = _auto_model("AutoBackbone", "backbone")
AutoModelForAudioClassification = _auto_model("AutoModelForAudioClassification", "audio-classification")
AutoModelForCTC = _auto_model("AutoModelForCTC", "ctc")
AutoModelForCausalLM = _auto_model("AutoModelForCausalLM", "causal-lm")
AutoModelForSeq2SeqLM = _auto_model("AutoModelForSeq2SeqLM", "seq2seq-lm")
AutoModelForSpeechSeq2Seq = _auto_model("AutoModelForSpeechSeq2Seq", "speech-seq2seq")


class _AutoProcessor:
    """Tokenizers and processors: resolve the checkpoint, then hand it to the engine's loader,
    named as ``(module, function)`` so the engine is imported on first use."""

    loader: tuple[str, str] = ("", "")
    # the loader of a GGUF file's copy of this processor (``gguf_file=``), where it has one
    gguf_loader: tuple[str, str] | None = None

    def __init__(self) -> None:
        _no_instances(type(self))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *inputs: Any, **kwargs: Any):
        if inputs:
            raise InputError(f"{cls.__name__}.from_pretrained takes only keyword arguments after the checkpoint.")
        _drop_remote_code_flag(kwargs)
        options, kwargs = split_source_options(kwargs)
        module, function = cls.loader
        if kwargs.get("gguf_file") is not None:
            if cls.gguf_loader is None:
                raise InputError(f"{cls.__name__} cannot be loaded from a GGUF file; a GGUF file holds a model "
                                 f"and its tokenizer only.")
            module, function = cls.gguf_loader
        else:
            kwargs.pop("gguf_file", None)
        load = getattr(importlib.import_module(module), function)
        return load(Source.of(pretrained_model_name_or_path, **options), **kwargs)


class AutoFeatureExtractor(_AutoProcessor):
    """The checkpoint's feature extractor: the audio engine, or the image engine for checkpoints
    whose preprocessor_config.json names a (legacy) image feature extractor."""

    loader = ("leanformers.processing.audio", "load_feature_extractor")


class AutoImageProcessor(_AutoProcessor):
    """The checkpoint's image processor: one engine, configured by preprocessor_config.json."""

    loader = ("leanformers.processing.image", "load_image_processor")


class AutoTokenizer(_AutoProcessor):
    """The checkpoint's tokenizer, built over the ``tokenizers`` library."""

    loader = ("leanformers.processing.tokenizer", "load_tokenizer")
    gguf_loader = ("leanformers.modeling.gguf", "load_gguf_tokenizer")


class AutoProcessor(_AutoProcessor):
    """The checkpoint's processor (tokenizer and image processor or feature extractor together),
    or its one part where the checkpoint has only one, as the reference returns."""

    loader = ("leanformers.processing.processor", "load_processor")


__all__ = [
    "AutoConfig", "AutoModel", "AutoModelForSequenceClassification", "AutoModelForTokenClassification",
    "AutoModelForQuestionAnswering", "AutoModelForMaskedLM", "AutoModelForPreTraining",
    "AutoModelForImageClassification", "AutoBackbone",
    "AutoImageProcessor", "AutoModelForAudioClassification", "AutoModelForCTC", "AutoModelForCausalLM",
    "AutoModelForSeq2SeqLM", "AutoModelForSpeechSeq2Seq", "AutoFeatureExtractor", "AutoTokenizer", "AutoProcessor",
]

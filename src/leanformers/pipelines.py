"""Task pipelines: ``pipeline("text-classification", model=folder)("I love it")``.

Each task is one small class over :class:`Pipeline`, which does the shared work:
inputs -> ``_preprocess`` (one item -> one or more *features*, e.g. several windows of a long
context) -> padded forward over many features at once -> ``_postprocess`` (an item's features and
their outputs -> the result). Batching is therefore the same for every task: ``run_batch(items)``
preprocesses the items, pads their features into one batch, runs the model once under
``torch.inference_mode()`` and splits the outputs back, stripping the padding, so a result never
depends on what it was batched with (up to float rounding).

The task table (:data:`TASKS`) and the architecture-suffix table (:data:`ARCHITECTURE_TASKS`) are
data; :func:`pipeline` only reads them.

Options beyond the reference:
- feature-extraction: ``pooling="mean"`` (masked mean over real tokens, as sentence-transformers
  does), ``"cls"`` (first token) or ``None`` (token embeddings, the default, as the reference);
  ``normalize=True`` L2-normalises a pooled vector. Pooled results are one list of floats per text.
- every pipeline: ``input_length(item)`` (tokens for text, samples for audio, 1 for images) and
  ``run_batch(items)`` (one padded forward for the given items) for callers that bucket by length.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError, UnknownNameError, UnsupportedModelError

# ----------------------------------------------------------------------------------------------
# The tables
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSpec:
    """How to build a task's pipeline: its class (a name in this module), the Auto model class (a
    name in ``leanformers.auto``), the processors it needs, and, for backbone checkpoints, the Auto
    class that loads them instead."""

    pipeline_class: str
    auto_model: str
    processors: tuple[str, ...]
    backbone_auto_model: str | None = None


TASKS: dict[str, TaskSpec] = {
    "text-classification": TaskSpec("TextClassificationPipeline", "AutoModelForSequenceClassification", ("tokenizer",)),
    "token-classification": TaskSpec("TokenClassificationPipeline", "AutoModelForTokenClassification", ("tokenizer",)),
    "question-answering": TaskSpec("QuestionAnsweringPipeline", "AutoModelForQuestionAnswering", ("tokenizer",)),
    "feature-extraction": TaskSpec("FeatureExtractionPipeline", "AutoModel", ("tokenizer",)),
    "fill-mask": TaskSpec("FillMaskPipeline", "AutoModelForMaskedLM", ("tokenizer",)),
    "image-classification": TaskSpec(
        "ImageClassificationPipeline", "AutoModelForImageClassification", ("image_processor",)
    ),
    "image-feature-extraction": TaskSpec(
        "ImageFeatureExtractionPipeline", "AutoModel", ("image_processor",), backbone_auto_model="AutoBackbone"
    ),
    "audio-classification": TaskSpec(
        "AudioClassificationPipeline", "AutoModelForAudioClassification", ("feature_extractor",)
    ),
    "automatic-speech-recognition": TaskSpec(
        "AutomaticSpeechRecognitionPipeline", "AutoModelForCTC", ("feature_extractor", "tokenizer")
    ),
}

TASK_ALIASES: dict[str, str] = {
    "sentiment-analysis": "text-classification",
    "ner": "token-classification",
}

# How a model type's inputs look; text unless listed.
MODALITIES: dict[str, str] = {
    "vit": "vision",
    "swin": "vision",
    "resnet": "vision",
    "wav2vec2": "audio",
    "hubert": "audio",
}

# config.architectures[0] suffix -> {modality: task}; the first suffix that matches wins.
ARCHITECTURE_TASKS: tuple[tuple[str, dict[str, str]], ...] = (
    ("ForSequenceClassification", {"text": "text-classification", "audio": "audio-classification"}),
    ("ForAudioClassification", {"audio": "audio-classification"}),
    ("ForTokenClassification", {"text": "token-classification"}),
    ("ForQuestionAnswering", {"text": "question-answering"}),
    ("ForMaskedLM", {"text": "fill-mask"}),
    ("ForImageClassification", {"vision": "image-classification"}),
    ("ForCTC", {"audio": "automatic-speech-recognition"}),
    ("Backbone", {"vision": "image-feature-extraction"}),
    ("Model", {"text": "feature-extraction", "vision": "image-feature-extraction"}),
)

# Model input name -> value that pads it.
_PAD_VALUES: dict[str, float] = {"attention_mask": 0, "token_type_ids": 0, "input_values": 0.0}


def supported_tasks() -> list[str]:
    return sorted(TASKS)


def _task_list() -> str:
    aliases = ", ".join(f"{alias!r} (= {task!r})" for alias, task in TASK_ALIASES.items())
    return f"{', '.join(repr(t) for t in supported_tasks())}; aliases: {aliases}"


def resolve_task(task: str) -> str:
    if not isinstance(task, str):
        raise InputError(f"task must be a string, got {type(task).__name__}. Supported tasks: {_task_list()}.")
    task = TASK_ALIASES.get(task, task)
    if task not in TASKS:
        raise UnknownNameError(f"Unknown pipeline task {task!r}. Supported tasks: {_task_list()}.")
    return task


def infer_task(config: Any) -> str:
    """The task a checkpoint's ``config.architectures`` implies (see :data:`ARCHITECTURE_TASKS`)."""
    architectures = getattr(config, "architectures", None) or []
    model_type = getattr(config, "model_type", None)
    modality = MODALITIES.get(model_type, "text")
    if not architectures:
        raise UnsupportedModelError(
            f"Cannot infer the task: the config (model_type {model_type!r}) lists no 'architectures'. "
            f"Pass task=, one of {_task_list()}."
        )
    architecture = architectures[0]
    for suffix, by_modality in ARCHITECTURE_TASKS:
        if architecture.endswith(suffix):
            if modality in by_modality:
                return by_modality[modality]
            break
    raise UnsupportedModelError(
        f"Cannot infer a pipeline task for architecture {architecture!r} ({modality} model). "
        f"Pass task=, one of {_task_list()}."
    )


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------


def _describe(value: Any) -> str:
    if value is None:
        return "None"
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__} of shape {tuple(shape)}" if shape is not None else type(value).__name__


def _device_of(device: Any) -> Any:
    import torch

    if device is None:
        return None
    if isinstance(device, torch.device):
        return device
    if isinstance(device, bool):
        raise InputError(f"device must be 'cpu', 'cuda', 'cuda:N', an int or a torch.device, got {device!r}.")
    if isinstance(device, int):
        return torch.device("cpu") if device < 0 else torch.device("cuda", device)
    if isinstance(device, str):
        try:
            return torch.device(device)
        except RuntimeError as exc:
            raise InputError(f"Unknown device {device!r}: {exc}") from None
    raise InputError(f"device must be 'cpu', 'cuda', 'cuda:N', an int or a torch.device, got {_describe(device)}.")


def _dtype_of(dtype: Any) -> Any:
    import torch

    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        return getattr(torch, dtype)
    raise InputError(f"dtype must be a torch.dtype, its name ('float16'...) or 'auto', got {dtype!r}.")


def _positive_int(value: Any, name: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive integer{' or None' if allow_none else ''}, got {value!r}.")
    return value


def _softmax(x: Any) -> Any:
    import numpy as np

    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _sigmoid(x: Any) -> Any:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-x))


_SCORE_FUNCTIONS: dict[str, Callable[[Any], Any]] = {"softmax": _softmax, "sigmoid": _sigmoid, "none": lambda x: x}


def _score_function(name: Any) -> str:
    if isinstance(name, str) and name.lower() in _SCORE_FUNCTIONS:
        return name.lower()
    raise InputError(f"function_to_apply must be one of {sorted(_SCORE_FUNCTIONS)}, got {name!r}.")


def _default_score_function(config: Any, single_label_is_sigmoid: bool = True) -> str:
    """The reference's rule: regression -> none; multi-label (or, for text and images, one label)
    -> sigmoid; otherwise softmax."""
    problem_type = getattr(config, "problem_type", None)
    if problem_type == "regression":
        return "none"
    if problem_type == "multi_label_classification" or (single_label_is_sigmoid and config.num_labels == 1):
        return "sigmoid"
    return "softmax"


def _label(config: Any, index: int) -> str:
    id2label = getattr(config, "id2label", None) or {}
    return id2label.get(index, id2label.get(str(index), f"LABEL_{index}"))


@dataclass
class Feature:
    """One model row made from an item: its unbatched input tensors and what postprocessing needs."""

    inputs: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# The shared base
# ----------------------------------------------------------------------------------------------


class Pipeline:
    """Base of every task pipeline. Subclasses set ``task`` and implement ``_is_single``,
    ``_check_item``, ``_preprocess``, ``_postprocess`` and ``_parameters``."""

    task: str = ""
    # True where _postprocess reads per-token outputs only at each item's own positions, never at
    # the padding a batch adds: the model may then run on the real tokens only.
    skips_batch_padding: bool = False

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        image_processor: Any = None,
        feature_extractor: Any = None,
        device: Any = None,
        batch_size: int = 1,
        **kwargs: Any,
    ) -> None:
        import torch

        self.model = model
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.feature_extractor = feature_extractor
        self.batch_size = _positive_int(batch_size, "batch_size")
        device = _device_of(device)
        if device is not None:
            try:
                self.model.to(device)
            except (AssertionError, RuntimeError) as exc:  # e.g. "Torch not compiled with CUDA enabled"
                raise InputError(f"Cannot move the model to device {device}: {exc}") from exc
        self.model.eval()
        first = next(self.model.parameters(), None)
        self.device = first.device if first is not None else torch.device("cpu")
        self.dtype = first.dtype if first is not None else torch.float32
        signature = inspect.signature(self.model.forward).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.values())
        self._forward_names = None if takes_any else set(signature)
        self._unpadded = self.skips_batch_padding and "padding_in_output" in (self._forward_names or ())
        self._defaults = self._parameters(kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, model={type(self.model).__name__}, device={self.device})"

    # -- what subclasses provide ----------------------------------------------------------------

    def _parameters(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Validate call / construction options; return those given, normalised."""
        if kwargs:
            raise InputError(f"The {self.task} pipeline got unknown option(s) {sorted(kwargs)}.")
        return {}

    def _is_single(self, inputs: Any, params: dict[str, Any]) -> bool:
        return not isinstance(inputs, (list, tuple))

    def _check_item(self, item: Any, params: dict[str, Any]) -> Any:
        return item

    def _preprocess(self, item: Any, params: dict[str, Any]) -> list[Feature]:
        raise NotImplementedError

    def _postprocess(
        self, item: Any, features: list[Feature], outputs: list[dict[str, Any]], params: dict[str, Any]
    ) -> Any:
        raise NotImplementedError

    def _shape(self, results: list[Any], items: list[Any], single: bool, params: dict[str, Any]) -> Any:
        return results[0] if single else results

    def input_length(self, item: Any) -> int:
        """A size for length-bucketing: tokens for text, samples for audio, 1 for images."""
        self._check_item(item, self._defaults)
        return 1

    # -- the shared machinery --------------------------------------------------------------------

    def _items(self, inputs: Any, params: dict[str, Any]) -> tuple[list[Any], bool]:
        if inputs is None:
            raise InputError(f"The {self.task} pipeline needs inputs, got None.")
        single = self._is_single(inputs, params)
        items = [inputs] if single else list(inputs)
        if not items:
            raise InputError(f"The {self.task} pipeline got an empty list of inputs.")
        return [self._check_item(item, params) for item in items], single

    def __call__(self, inputs: Any = None, *, batch_size: int | None = None, **kwargs: Any) -> Any:
        params = {**self._defaults, **self._parameters(kwargs)}
        items, single = self._items(inputs, params)
        size = self.batch_size if batch_size is None else _positive_int(batch_size, "batch_size")
        results: list[Any] = []
        for start in range(0, len(items), size):
            results.extend(self._run(items[start : start + size], params))
        return self._shape(results, items, single, params)

    def run_batch(self, items: list[Any], **kwargs: Any) -> list[Any]:
        """Results for ``items`` (a list of single inputs) from one padded forward pass, in order."""
        if not isinstance(items, (list, tuple)) or not items:
            raise InputError("run_batch takes a non-empty list of inputs.")
        params = {**self._defaults, **self._parameters(kwargs)}
        return self._run([self._check_item(item, params) for item in items], params)

    def _run(self, items: list[Any], params: dict[str, Any]) -> list[Any]:
        per_item = [self._preprocess(item, params) for item in items]
        flat = [feature for features in per_item for feature in features]
        outputs = self._forward(flat)
        results, start = [], 0
        for item, features in zip(items, per_item):
            results.append(self._postprocess(item, features, outputs[start : start + len(features)], params))
            start += len(features)
        return results

    def _collate(self, features: list[Feature]) -> dict[str, Any]:
        import torch

        batch: dict[str, Any] = {}
        for name in features[0].inputs:
            if self._forward_names is not None and name not in self._forward_names:
                continue
            rows = [feature.inputs[name] for feature in features]
            if rows[0].dim() == 1 and len({row.shape[0] for row in rows}) > 1:
                pad = self.tokenizer.pad_token_id if name == "input_ids" else _PAD_VALUES.get(name, 0)
                longest = max(row.shape[0] for row in rows)
                stacked = torch.full((len(rows), longest), pad if pad is not None else 0, dtype=rows[0].dtype)
                for index, row in enumerate(rows):
                    stacked[index, : row.shape[0]] = row
            else:
                stacked = torch.stack(rows)
            if stacked.is_floating_point():
                stacked = stacked.to(self.dtype)
            batch[name] = stacked.to(self.device)
        return batch

    def _forward(self, features: list[Feature]) -> list[dict[str, Any]]:
        import torch

        if not features:
            return []
        batch = self._collate(features)
        if self._forward_names is None or "return_dict" in self._forward_names:
            batch["return_dict"] = True
        if self._unpadded:
            batch["padding_in_output"] = False
        with torch.inference_mode():
            output = self.model(**batch)

        def on_cpu(value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu()
                return value.float() if value.is_floating_point() else value
            if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
                return tuple(on_cpu(v) for v in value)
            return None

        # Every tensor output (and tuple of tensors, e.g. feature maps), split back into rows.
        fields = {key: on_cpu(value) for key, value in output.items()}
        fields = {key: value for key, value in fields.items() if value is not None}
        return [
            {key: tuple(v[i] for v in value) if isinstance(value, tuple) else value[i] for key, value in fields.items()}
            for i in range(len(features))
        ]


# ----------------------------------------------------------------------------------------------
# Text
# ----------------------------------------------------------------------------------------------


def _check_text(item: Any, task: str) -> str:
    if not isinstance(item, str):
        raise InputError(
            f"The {task} pipeline takes a string or a list of strings; got an item of type {_describe(item)}."
        )
    return item


class _TextPipeline(Pipeline):
    def _is_single(self, inputs: Any, params: dict[str, Any]) -> bool:
        return isinstance(inputs, str) or not isinstance(inputs, (list, tuple))

    def _check_item(self, item: Any, params: dict[str, Any]) -> Any:
        return _check_text(item, self.task)

    def _encode_one(self, *texts: str, **options: Any) -> Feature:
        encoded = self.tokenizer(*texts, return_tensors="pt", **options)
        return Feature({name: value[0] for name, value in encoded.items()})

    def input_length(self, item: Any) -> int:
        item = self._check_item(item, self._defaults)
        return len(self._encode_one(*self._texts(item)).inputs["input_ids"])

    def _texts(self, item: Any) -> tuple[str, ...]:
        return (item,)


_TOKENIZER_OPTIONS = ("truncation", "max_length", "padding")


class TextClassificationPipeline(_TextPipeline):
    """``pipe("text")`` -> ``[{"label", "score"}]``; a list -> one dict per text. With ``top_k``
    (``None`` = all labels) each text gives a list of dicts, best first. Text pairs:
    ``{"text": ..., "text_pair": ...}``. ``function_to_apply``: "softmax", "sigmoid" or "none"."""

    task = "text-classification"

    def _parameters(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if "top_k" in kwargs:
            top_k = kwargs.pop("top_k")
            params["top_k"] = _positive_int(top_k, "top_k", allow_none=True)
        if "function_to_apply" in kwargs:
            value = kwargs.pop("function_to_apply")
            if value is not None:
                params["function_to_apply"] = _score_function(value)
        tokenizer_options = {k: kwargs.pop(k) for k in _TOKENIZER_OPTIONS if k in kwargs}
        tokenizer_options.pop("padding", None)
        if tokenizer_options:
            params["tokenizer_options"] = tokenizer_options
        return {**params, **super()._parameters(kwargs)}

    def _is_single(self, inputs: Any, params: dict[str, Any]) -> bool:
        if isinstance(inputs, (str, dict)):
            return True
        # [[text, pair]]: the reference's spelling of one pair
        if isinstance(inputs, list) and len(inputs) == 1 and isinstance(inputs[0], list) and len(inputs[0]) == 2:
            return True
        return not isinstance(inputs, (list, tuple))

    def _check_item(self, item: Any, params: dict[str, Any]) -> Any:
        if isinstance(item, list) and len(item) == 1 and isinstance(item[0], list) and len(item[0]) == 2:
            item = {"text": item[0][0], "text_pair": item[0][1]}
        if isinstance(item, dict):
            unknown = set(item) - {"text", "text_pair"}
            if "text" not in item or unknown:
                raise InputError(
                    'A text pair is given as {"text": ..., "text_pair": ...}'
                    + (f"; unknown keys {sorted(unknown)}." if unknown else "; 'text' is missing.")
                )
            _check_text(item["text"], self.task)
            if item.get("text_pair") is not None:
                _check_text(item["text_pair"], self.task)
            return item
        if isinstance(item, (list, tuple)):
            raise InputError(
                'The text-classification pipeline got a list where a text was expected; to classify a text pair, '
                'pass {"text": "My text", "text_pair": "My pair"}.'
            )
        return _check_text(item, self.task)

    def _texts(self, item: Any) -> tuple[str, ...]:
        if isinstance(item, dict):
            return (item["text"],) if item.get("text_pair") is None else (item["text"], item["text_pair"])
        return (item,)

    def _preprocess(self, item: Any, params: dict[str, Any]) -> list[Feature]:
        return [self._encode_one(*self._texts(item), **params.get("tokenizer_options", {}))]

    def _postprocess(self, item, features, outputs, params):
        import numpy as np

        config = self.model.config
        function = params.get("function_to_apply") or _default_score_function(config)
        scores = _SCORE_FUNCTIONS[function](outputs[0]["logits"].numpy().astype(np.float32))
        if "top_k" not in params:
            best = int(scores.argmax())
            return {"label": _label(config, best), "score": float(scores[best])}
        ranked = sorted(
            ({"label": _label(config, i), "score": float(s)} for i, s in enumerate(scores)),
            key=lambda entry: entry["score"],
            reverse=True,
        )
        return ranked if params["top_k"] is None else ranked[: params["top_k"]]

    def _shape(self, results, items, single, params):
        # the reference wraps a lone string's best label in a list (its legacy format), not a pair's
        if single and "top_k" not in params and isinstance(items[0], str):
            return results
        return results[0] if single else results


_AGGREGATIONS = ("none", "simple", "first", "average", "max")


class TokenClassificationPipeline(_TextPipeline):
    """``pipe("text")`` -> entities. ``aggregation_strategy="none"`` gives one dict per token
    (``entity, score, index, word, start, end``); "simple" groups adjacent tokens of one entity
    (``entity_group``), "first"/"average"/"max" first agree on whole words. ``ignore_labels``
    defaults to ``["O"]``; ``stride=N`` splits long texts into overlapping windows.
    ``is_split_into_words=True`` takes a list of words (or a list of such lists), joined with
    ``delimiter`` (default " ") for ``start``/``end``."""

    task = "token-classification"
    skips_batch_padding = True

    def _is_single(self, inputs: Any, params: dict[str, Any]) -> bool:
        if params.get("is_split_into_words"):
            nested = isinstance(inputs, (list, tuple)) and inputs and all(isinstance(i, (list, tuple)) for i in inputs)
            return not nested
        return super()._is_single(inputs, params)

    def _check_item(self, item: Any, params: dict[str, Any]) -> Any:
        if not params.get("is_split_into_words"):
            return super()._check_item(item, params)
        if not isinstance(item, (list, tuple)) or not all(isinstance(word, str) for word in item):
            raise InputError(
                f"With is_split_into_words=True, each input is a list of words (strings); got {_describe(item)}."
            )
        return list(item)

    def _shape(self, results, items, single, params):
        # the reference answers one list of words as a batch of one
        return results if params.get("is_split_into_words") else super()._shape(results, items, single, params)

    def _encode(self, item: Any, params: dict[str, Any], **options: Any) -> Any:
        if params.get("is_split_into_words"):
            return self.tokenizer(item, is_split_into_words=True, **options)
        return self.tokenizer(item, **options)

    def _parameters(self, kwargs):
        params: dict[str, Any] = {}
        if "aggregation_strategy" in kwargs:
            value = kwargs.pop("aggregation_strategy")
            if value is not None:
                name = getattr(value, "value", value)
                if not isinstance(name, str) or name.lower() not in _AGGREGATIONS:
                    raise InputError(f"aggregation_strategy must be one of {list(_AGGREGATIONS)}, got {value!r}.")
                params["aggregation_strategy"] = name.lower()
        if "ignore_labels" in kwargs:
            value = kwargs.pop("ignore_labels")
            if value is not None:
                if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                    raise InputError(f"ignore_labels must be a list of label names, got {value!r}.")
                params["ignore_labels"] = list(value)
        if "stride" in kwargs:
            stride = kwargs.pop("stride")
            if stride is not None:
                if isinstance(stride, bool) or not isinstance(stride, int) or stride < 0:
                    raise InputError(f"stride must be a non-negative integer, got {stride!r}.")
                if stride >= self.tokenizer.model_max_length:
                    raise InputError("stride must be less than tokenizer.model_max_length.")
                params["stride"] = stride
        if params.get("stride") is not None and params.get("aggregation_strategy") == "none":
            raise InputError('stride needs an aggregation_strategy other than "none".')
        if "is_split_into_words" in kwargs:
            params["is_split_into_words"] = bool(kwargs.pop("is_split_into_words"))
        if kwargs.get("delimiter") is not None:
            delimiter = kwargs.pop("delimiter")
            if not isinstance(delimiter, str):
                raise InputError(f"delimiter must be a string, got {_describe(delimiter)}.")
            params["delimiter"] = delimiter
        kwargs.pop("delimiter", None)
        return {**params, **super()._parameters(kwargs)}

    def _preprocess(self, item, params):
        max_length = self.tokenizer.model_max_length
        options: dict[str, Any] = {
            "truncation": bool(max_length and max_length > 0),
            "return_special_tokens_mask": True,
            "return_offsets_mapping": True,
        }
        if params.get("stride") is not None:
            options.update(return_overflowing_tokens=True, stride=params["stride"], max_length=max_length, padding=True)
        encoded = self._encode(item, params, return_tensors="pt", **options)
        sentence, word_starts = item, None
        if params.get("is_split_into_words"):
            # offsets are within each word: shift them to the joined sentence
            delimiter = params.get("delimiter", " ")
            sentence, word_starts, position = delimiter.join(item), [], 0
            for word in item:
                word_starts.append(position)
                position += len(word) + len(delimiter)
        features = []
        for index in range(len(encoded["input_ids"])):
            offsets = encoded["offset_mapping"][index].tolist()
            if word_starts is not None:
                word_ids = encoded.word_ids(index)
                offsets = [
                    (a + word_starts[w], b + word_starts[w]) if w is not None else (a, b)
                    for (a, b), w in zip(offsets, word_ids)
                ]
            meta = {
                "sentence": sentence,
                "offsets": offsets,
                "special": encoded["special_tokens_mask"][index].tolist(),
                "ids": encoded["input_ids"][index].tolist(),
            }
            inputs = {
                name: value[index]
                for name, value in encoded.items()
                if name not in ("offset_mapping", "special_tokens_mask", "overflow_to_sample_mapping")
            }
            features.append(Feature(inputs, meta))
        return features

    def input_length(self, item):
        return len(self._encode(self._check_item(item, self._defaults), self._defaults)["input_ids"])

    def _postprocess(self, item, features, outputs, params):
        import numpy as np

        strategy = params.get("aggregation_strategy", "none")
        ignore = params.get("ignore_labels", ["O"])
        entities: list[dict[str, Any]] = []
        for feature, output in zip(features, outputs):
            length = len(feature.meta["ids"])
            scores = _softmax(output["logits"][:length].numpy().astype(np.float32))
            pre = self._pre_entities(feature.meta["sentence"], feature.meta, scores)
            grouped = self._aggregate(pre, strategy)
            entities.extend(
                e for e in grouped if e.get("entity") not in ignore and e.get("entity_group") not in ignore
            )
        if len(features) > 1:
            entities = _merge_overlapping(entities)
        return entities

    def _pre_entities(self, sentence: str, meta: dict[str, Any], scores: Any) -> list[dict[str, Any]]:
        prefix = getattr(getattr(self.tokenizer.backend_tokenizer, "model", None), "continuing_subword_prefix", None)
        unk = self.tokenizer.unk_token_id
        out = []
        for index, token_scores in enumerate(scores):
            if meta["special"][index]:
                continue
            token_id = meta["ids"][index]
            word = self.tokenizer.convert_ids_to_tokens(token_id)
            start, end = meta["offsets"][index]
            text = sentence[start:end]
            if prefix:
                is_subword = len(word) != len(text)
            else:
                is_subword = start > 0 and " " not in sentence[start - 1 : start + 1]
            if token_id == unk:
                word, is_subword = text, False
            out.append({
                "word": word,
                "scores": token_scores,
                "start": start,
                "end": end,
                "index": index,
                "is_subword": is_subword,
            })
        return out

    def _aggregate(self, pre: list[dict[str, Any]], strategy: str) -> list[dict[str, Any]]:
        config = self.model.config
        if strategy in ("none", "simple"):
            entities = []
            for p in pre:
                best = int(p["scores"].argmax())
                entities.append({
                    "entity": _label(config, best),
                    "score": float(p["scores"][best]),
                    "index": p["index"],
                    "word": p["word"],
                    "start": p["start"],
                    "end": p["end"],
                })
            if strategy == "none":
                return entities
        else:
            entities = [self._aggregate_word(group, strategy) for group in _word_groups(pre)]
        return self._group_entities(entities)

    def _aggregate_word(self, tokens: list[dict[str, Any]], strategy: str) -> dict[str, Any]:
        import numpy as np

        config = self.model.config
        if strategy == "first":
            scores = tokens[0]["scores"]
        elif strategy == "max":
            scores = max(tokens, key=lambda t: t["scores"].max())["scores"]
        else:
            scores = np.nanmean(np.stack([t["scores"] for t in tokens]), axis=0)
        best = int(scores.argmax())
        return {
            "entity": _label(config, best),
            "score": float(scores[best]),
            "word": self.tokenizer.convert_tokens_to_string([t["word"] for t in tokens]),
            "start": tokens[0]["start"],
            "end": tokens[-1]["end"],
        }

    def _group_entities(self, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        import numpy as np

        groups: list[list[dict[str, Any]]] = []
        for entity in entities:
            if groups:
                bi, tag = _bio(entity["entity"])
                _, last_tag = _bio(groups[-1][-1]["entity"])
                if tag == last_tag and bi != "B":
                    groups[-1].append(entity)
                    continue
            groups.append([entity])
        return [
            {
                "entity_group": group[0]["entity"].split("-", 1)[-1],
                "score": float(np.nanmean(np.array([e["score"] for e in group], dtype=np.float32))),
                "word": self.tokenizer.convert_tokens_to_string([e["word"] for e in group]),
                "start": group[0]["start"],
                "end": group[-1]["end"],
            }
            for group in groups
        ]


def _word_groups(pre: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: list[list[dict[str, Any]]] = []
    for token in pre:
        if groups and token["is_subword"]:
            groups[-1].append(token)
        else:
            groups.append([token])
    return groups


def _bio(label: str) -> tuple[str, str]:
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def _merge_overlapping(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Of entities overlapping across windows keep the longest (then the higher-scoring)."""
    if not entities:
        return entities
    entities = sorted(entities, key=lambda e: e["start"])
    merged, previous = [], entities[0]
    for entity in entities:
        if previous["start"] <= entity["start"] < previous["end"]:
            length, previous_length = entity["end"] - entity["start"], previous["end"] - previous["start"]
            if length > previous_length or (length == previous_length and entity["score"] > previous["score"]):
                previous = entity
        else:
            merged.append(previous)
            previous = entity
    merged.append(previous)
    return merged


class QuestionAnsweringPipeline(_TextPipeline):
    """``pipe(question=..., context=...)`` or ``pipe({"question", "context"})`` ->
    ``{"score", "start", "end", "answer"}`` (a list of ``top_k`` of them when ``top_k > 1``).
    Long contexts are split into windows of ``max_seq_len`` tokens overlapping by ``doc_stride``;
    answers are at most ``max_answer_len`` tokens, widened to whole words (``align_to_words``);
    ``handle_impossible_answer=True`` may answer ``""``. Follows the reference's 4.x pipeline
    (5.x dropped it)."""

    task = "question-answering"
    skips_batch_padding = True

    def _parameters(self, kwargs):
        params: dict[str, Any] = {}
        for name in ("top_k", "max_answer_len", "max_seq_len", "doc_stride"):
            if kwargs.get(name) is not None:
                value = kwargs.pop(name)
                params[name] = value if name == "doc_stride" and value == 0 else _positive_int(value, name)
            kwargs.pop(name, None)
        for name in ("handle_impossible_answer", "align_to_words"):
            if name in kwargs:
                params[name] = bool(kwargs.pop(name))
        return {**params, **super()._parameters(kwargs)}

    def __call__(
        self, *args: Any, question: Any = None, context: Any = None, batch_size: int | None = None, **kwargs: Any
    ) -> Any:
        if question is not None or context is not None:
            if args:
                raise InputError("Give the question-answering pipeline either inputs or question=/context=, not both.")
            if isinstance(question, str) and isinstance(context, str):
                inputs: Any = {"question": question, "context": context}
            elif isinstance(question, (list, tuple)) and isinstance(context, (list, tuple)):
                if len(question) != len(context):
                    raise InputError(
                        f"question and context lists differ in length ({len(question)} vs {len(context)})."
                    )
                inputs = [{"question": q, "context": c} for q, c in zip(question, context)]
            elif isinstance(question, (list, tuple)) and isinstance(context, str):
                inputs = [{"question": q, "context": context} for q in question]
            else:
                raise InputError("question= and context= must both be given, as strings or lists of strings.")
        elif len(args) == 1:
            inputs = args[0]
        else:
            raise InputError("The question-answering pipeline takes one input, or question= and context=.")
        return super().__call__(inputs, batch_size=batch_size, **kwargs)

    def _is_single(self, inputs: Any, params: dict[str, Any]) -> bool:
        return not isinstance(inputs, (list, tuple))

    def _check_item(self, item: Any, params: dict[str, Any]) -> Any:
        if not isinstance(item, dict) or "question" not in item or "context" not in item:
            raise InputError(
                'The question-answering pipeline takes {"question": ..., "context": ...} (or a list of them), '
                f"or question= and context=; got {_describe(item)}."
            )
        for key in ("question", "context"):
            if not isinstance(item[key], str):
                raise InputError(f"{key} must be a string, got {_describe(item[key])}.")
            if not item[key]:
                raise InputError(f"`{key}` cannot be empty.")
        return item

    def _texts(self, item):
        return (item["question"], item["context"])

    def _sizes(self, params: dict[str, Any]) -> tuple[int, int]:
        max_len = params.get("max_seq_len") or min(self.tokenizer.model_max_length, 384)
        stride = params.get("doc_stride")
        stride = min(max_len // 2, 128) if stride is None else stride
        if stride > max_len:
            raise InputError(f"doc_stride ({stride}) must not exceed max_seq_len ({max_len}).")
        return max_len, stride

    def _preprocess(self, item, params):
        max_len, stride = self._sizes(params)
        encoded = self.tokenizer(
            item["question"],
            item["context"],
            truncation="only_second",
            padding=True,
            max_length=max_len,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_tensors="pt",
        )
        cls_id = self.tokenizer.cls_token_id
        features = []
        for index in range(len(encoded["input_ids"])):
            ids = encoded["input_ids"][index].tolist()
            allowed = [1 if s == 1 else 0 for s in encoded.sequence_ids(index)]  # context tokens
            if cls_id is not None:
                for position, token in enumerate(ids):
                    if token == cls_id:
                        allowed[position] = 1
            inputs = {
                name: value[index]
                for name, value in encoded.items()
                if name not in ("offset_mapping", "overflow_to_sample_mapping")
            }
            meta = {
                "allowed": allowed,
                "encoding": encoded.encodings[index],
                "offsets": encoded["offset_mapping"][index].tolist(),
            }
            features.append(Feature(inputs, meta))
        return features

    def _postprocess(self, item, features, outputs, params):
        import numpy as np

        top_k = params.get("top_k", 1)
        max_answer_len = params.get("max_answer_len", 15)
        impossible = params.get("handle_impossible_answer", False)
        align = params.get("align_to_words", True)
        min_null = 1_000_000.0
        answers = []
        for feature, output in zip(features, outputs):
            allowed = np.array(feature.meta["allowed"])
            length = len(allowed)
            start = output["start_logits"][:length].numpy().astype(np.float32)
            end = output["end_logits"][:length].numpy().astype(np.float32)
            start = _softmax(np.where(allowed == 0, -10000.0, start))
            end = _softmax(np.where(allowed == 0, -10000.0, end))
            if impossible:
                min_null = min(min_null, float(start[0] * end[0]))
            start[0] = end[0] = 0.0
            for s, e, score in _best_spans(start, end, top_k, max_answer_len, allowed):
                begin, finish = self._char_span(feature.meta, s, e, align)
                answers.append({"score": score, "start": begin, "end": finish, "answer": item["context"][begin:finish]})
        if impossible:
            answers.append({"score": min_null, "start": 0, "end": 0, "answer": ""})
        answers = sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]
        return answers[0] if len(answers) == 1 else answers

    @staticmethod
    def _char_span(meta: dict[str, Any], s: int, e: int, align: bool) -> tuple[int, int]:
        encoding = meta["encoding"]
        if align:
            start_word, end_word = encoding.token_to_word(s), encoding.token_to_word(e)
            if start_word is not None and end_word is not None:
                first = encoding.word_to_chars(start_word, 1)
                last = encoding.word_to_chars(end_word, 1)
                if first is not None and last is not None:
                    return first[0], last[1]
        return meta["offsets"][s][0], meta["offsets"][e][1]


def _best_spans(start: Any, end: Any, top_k: int, max_answer_len: int, allowed: Any) -> list[tuple[int, int, float]]:
    """The ``top_k`` (start <= end < start + max_answer_len) spans by start * end probability,
    both ends on allowed tokens."""
    import numpy as np

    outer = np.tril(np.triu(np.outer(start, end)), max_answer_len - 1)
    flat = outer.flatten()
    if top_k == 1:
        order = np.array([np.argmax(flat)])
    elif len(flat) <= top_k:
        order = np.argsort(-flat)
    else:
        candidates = np.argpartition(-flat, top_k)[:top_k]
        order = candidates[np.argsort(-flat[candidates])]
    starts, ends = np.unravel_index(order, outer.shape)
    return [
        (int(s), int(e), float(outer[s, e]))
        for s, e in zip(starts, ends)
        if allowed[s] and allowed[e]
    ]


class FeatureExtractionPipeline(_TextPipeline):
    """``pipe("text")`` -> the last hidden state as nested lists, ``[1][tokens][hidden]`` as the
    reference. ``pooling="mean"`` (masked mean) or ``"cls"`` gives one vector per text instead;
    ``normalize=True`` scales it to unit length. ``return_tensors=True`` returns torch tensors."""

    task = "feature-extraction"
    skips_batch_padding = True

    def _parameters(self, kwargs):
        params: dict[str, Any] = {}
        if "pooling" in kwargs:
            pooling = kwargs.pop("pooling")
            if pooling not in (None, "mean", "cls"):
                raise InputError(f"pooling must be None, 'mean' or 'cls', got {pooling!r}.")
            params["pooling"] = pooling
        if "normalize" in kwargs:
            params["normalize"] = bool(kwargs.pop("normalize"))
        if "return_tensors" in kwargs:
            params["return_tensors"] = bool(kwargs.pop("return_tensors"))
        tokenizer_options = dict(kwargs.pop("tokenize_kwargs", None) or {})
        tokenizer_options.update({k: kwargs.pop(k) for k in ("truncation", "max_length") if k in kwargs})
        if tokenizer_options:
            params["tokenizer_options"] = tokenizer_options
        return {**params, **super()._parameters(kwargs)}

    def _preprocess(self, item, params):
        return [self._encode_one(item, **params.get("tokenizer_options", {}))]

    def _postprocess(self, item, features, outputs, params):
        import torch

        length = len(features[0].inputs["input_ids"])
        hidden = outputs[0]["last_hidden_state"][:length]
        pooling = params.get("pooling")
        if pooling is None:
            if params.get("normalize"):
                raise InputError("normalize=True needs pooling='mean' or 'cls'.")
            result = hidden[None]
        else:
            mask = features[0].inputs.get("attention_mask")
            if pooling == "cls":
                result = hidden[0]
            else:
                weights = (mask if mask is not None else torch.ones(length)).to(hidden.dtype)[:, None]
                result = (hidden * weights).sum(0) / weights.sum().clamp(min=1e-9)
            if params.get("normalize"):
                result = torch.nn.functional.normalize(result, p=2, dim=-1)
        return result if params.get("return_tensors") else result.tolist()


class FillMaskPipeline(_TextPipeline):
    """``pipe("Paris is the [MASK] of France.")`` -> ``top_k`` (default 5) dicts
    ``{"score", "token", "token_str", "sequence"}``; with several masks, one list per mask.
    ``targets`` restricts the candidates to the given words."""

    task = "fill-mask"
    skips_batch_padding = True

    def _parameters(self, kwargs):
        params: dict[str, Any] = {}
        if kwargs.get("top_k") is not None:
            params["top_k"] = _positive_int(kwargs.pop("top_k"), "top_k")
        kwargs.pop("top_k", None)
        if kwargs.get("targets") is not None:
            params["target_ids"] = self._target_ids(kwargs.pop("targets"))
        kwargs.pop("targets", None)
        if self.tokenizer.mask_token_id is None:
            raise InputError("The fill-mask pipeline needs a tokenizer with a mask token; this one has none.")
        return {**params, **super()._parameters(kwargs)}

    def _target_ids(self, targets: Any) -> list[int]:
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, (list, tuple)) or not all(isinstance(t, str) for t in targets):
            raise InputError(f"targets must be a string or a list of strings, got {targets!r}.")
        vocab = self.tokenizer.get_vocab()
        ids = []
        for target in targets:
            token_id = vocab.get(target)
            if token_id is None:
                pieces = self.tokenizer(target, add_special_tokens=False, return_attention_mask=False)["input_ids"]
                if not pieces:
                    continue
                token_id = pieces[0]
            ids.append(token_id)
        ids = sorted(set(ids))
        if not ids:
            raise InputError("At least one target must be a word the tokenizer knows.")
        return ids

    def _preprocess(self, item, params):
        feature = self._encode_one(item)
        if not (feature.inputs["input_ids"] == self.tokenizer.mask_token_id).any():
            raise InputError(f"No mask token ({self.tokenizer.mask_token}) found in the input {item!r}.")
        return [feature]

    def _postprocess(self, item, features, outputs, params):
        import torch

        ids = features[0].inputs["input_ids"]
        positions = torch.nonzero(ids == self.tokenizer.mask_token_id).squeeze(-1)
        probs = outputs[0]["logits"][positions].softmax(dim=-1)
        targets = params.get("target_ids")
        if targets is not None:
            probs = probs[..., torch.tensor(targets)]
        top_k = min(params.get("top_k", 5), probs.shape[-1])
        values, predictions = probs.topk(top_k)
        single = len(positions) == 1
        pad = self.tokenizer.pad_token_id
        rows = []
        for position, row_values, row_predictions in zip(positions.tolist(), values.tolist(), predictions.tolist()):
            row = []
            for score, prediction in zip(row_values, row_predictions):
                token = targets[prediction] if targets is not None else prediction
                tokens = ids.clone()
                tokens[position] = token
                tokens = tokens[tokens != pad] if pad is not None else tokens
                row.append({
                    "score": score,
                    "token": token,
                    "token_str": self.tokenizer.decode([token]),
                    "sequence": self.tokenizer.decode(tokens.tolist(), skip_special_tokens=single),
                })
            rows.append(row)
        return rows[0] if single else rows

    def _shape(self, results, items, single, params):
        if single or len(results) == 1:
            return results[0]
        return results


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------


class _ImagePipeline(Pipeline):
    def _is_single(self, inputs: Any, params: dict[str, Any]) -> bool:
        return not isinstance(inputs, (list, tuple))

    def _check_item(self, item: Any, params: dict[str, Any]) -> Any:
        import numpy as np

        if isinstance(item, (str, os.PathLike)):
            path = os.fspath(item)
            if path.startswith(("http://", "https://")):
                raise InputError(f"Images are read from local files; download {path!r} first.")
            if not os.path.isfile(path):
                raise InputError(f"No image file at {path!r}.")
            return item
        if isinstance(item, np.ndarray) or type(item).__module__.startswith(("PIL.", "torch")):
            return item
        raise InputError(f"The {self.task} pipeline takes PIL images, image paths or arrays; got {_describe(item)}.")

    def _preprocess(self, item, params):
        pixels = self.image_processor(item, return_tensors="pt")["pixel_values"]
        return [Feature({"pixel_values": pixels[0]})]


class ImageClassificationPipeline(_ImagePipeline):
    """``pipe(image)`` -> the ``top_k`` (default 5) ``{"label", "score"}``, best first; a list of
    images -> one such list each. ``function_to_apply``: "softmax", "sigmoid" or "none"."""

    task = "image-classification"

    def _parameters(self, kwargs):
        params: dict[str, Any] = {}
        if kwargs.get("top_k") is not None:
            params["top_k"] = _positive_int(kwargs.pop("top_k"), "top_k")
        kwargs.pop("top_k", None)
        if kwargs.get("function_to_apply") is not None:
            params["function_to_apply"] = _score_function(kwargs.pop("function_to_apply"))
        kwargs.pop("function_to_apply", None)
        kwargs.pop("timeout", None)
        return {**params, **super()._parameters(kwargs)}

    def __call__(self, inputs: Any = None, **kwargs: Any) -> Any:
        if "images" in kwargs:
            inputs = kwargs.pop("images")
        return super().__call__(inputs, **kwargs)

    def _postprocess(self, item, features, outputs, params):
        import numpy as np

        config = self.model.config
        function = params.get("function_to_apply") or _default_score_function(config)
        scores = _SCORE_FUNCTIONS[function](outputs[0]["logits"].numpy().astype(np.float32))
        ranked = sorted(
            ({"label": _label(config, i), "score": float(s)} for i, s in enumerate(scores)),
            key=lambda entry: entry["score"],
            reverse=True,
        )
        return ranked[: min(params.get("top_k", 5), config.num_labels)]


class ImageFeatureExtractionPipeline(_ImagePipeline):
    """``pipe(image)`` -> the model's first output as nested lists (``[1, ...]``), as the reference:
    the last hidden state, or ``pool=True`` for ``pooler_output``. A backbone gives its feature maps,
    one ``[1, C, H, W]`` nested list per stage. ``return_tensors=True`` returns torch tensors."""

    task = "image-feature-extraction"

    def _parameters(self, kwargs):
        params: dict[str, Any] = {}
        if "pool" in kwargs:
            params["pool"] = bool(kwargs.pop("pool"))
        if "return_tensors" in kwargs:
            params["return_tensors"] = bool(kwargs.pop("return_tensors"))
        kwargs.pop("timeout", None)
        return {**params, **super()._parameters(kwargs)}

    def _postprocess(self, item, features, outputs, params):
        output = outputs[0]
        if "feature_maps" in output:
            values: Any = [fmap[None] for fmap in output["feature_maps"]]
        elif params.get("pool"):
            if "pooler_output" not in output:
                raise InputError(f"{type(self.model).__name__} returns no pooler_output; call without pool=True.")
            values = output["pooler_output"][None]
        else:
            values = next(iter(output.values()))[None]
        if params.get("return_tensors"):
            return values
        return [v.tolist() for v in values] if isinstance(values, list) else values.tolist()


# ----------------------------------------------------------------------------------------------
# Audio
# ----------------------------------------------------------------------------------------------


class _AudioPipeline(Pipeline):
    _attention_mask: bool | None = None

    def _is_single(self, inputs: Any, params: dict[str, Any]) -> bool:
        return not isinstance(inputs, (list, tuple))

    def _check_item(self, item: Any, params: dict[str, Any]) -> Any:
        import numpy as np

        if isinstance(item, (str, os.PathLike, bytes, bytearray)):
            return item
        if isinstance(item, dict):
            if "sampling_rate" not in item or not ("raw" in item or "array" in item):
                raise InputError(
                    'An audio dict needs a "raw" (or "array") key with the samples and a "sampling_rate" key.'
                )
            samples = item["raw"] if item.get("raw") is not None else item.get("array")
            self._check_samples(samples)
            return item
        self._check_samples(item)
        if not isinstance(item, np.ndarray):
            item = item.detach().cpu().numpy()
        return item

    def _check_samples(self, samples: Any) -> None:
        import numpy as np

        if type(samples).__module__.startswith("torch") and hasattr(samples, "numpy"):
            samples = samples.detach().cpu().numpy()
        if not isinstance(samples, np.ndarray):
            raise InputError(
                f"The {self.task} pipeline takes a 1-D numpy array or torch tensor of samples, an audio file path, "
                f"bytes, or {{'raw': array, 'sampling_rate': rate}}; got {_describe(samples)}."
            )
        if samples.ndim != 1:
            raise InputError(f"The {self.task} pipeline takes single-channel (1-D) audio, got shape {samples.shape}.")
        if samples.size == 0:
            raise InputError(f"The {self.task} pipeline got an empty audio array.")

    def _samples(self, item: Any) -> Any:
        import numpy as np

        from .processing.audio import load_audio

        rate = self.feature_extractor.sampling_rate
        if isinstance(item, (str, os.PathLike, bytes, bytearray)):
            return load_audio(item, rate)
        if isinstance(item, dict):
            samples = item["raw"] if item.get("raw") is not None else item["array"]
            if not isinstance(samples, np.ndarray):
                samples = samples.detach().cpu().numpy()
            given = item["sampling_rate"]
            if given != rate:
                import soxr

                samples = soxr.resample(samples.astype(np.float32), given, rate, quality="HQ")
            return samples
        return item

    def input_length(self, item: Any) -> int:
        return int(self._samples(self._check_item(item, self._defaults)).shape[0])

    def _preprocess(self, item, params):
        samples = self._samples(item)
        options = {} if self._attention_mask is None else {"return_attention_mask": self._attention_mask}
        processed = self.feature_extractor(
            samples, sampling_rate=self.feature_extractor.sampling_rate, return_tensors="pt", **options
        )
        return [Feature({name: value[0] for name, value in processed.items()}, {"samples": int(samples.shape[0])})]


class AudioClassificationPipeline(_AudioPipeline):
    """``pipe(audio)`` -> the ``top_k`` (default 5; ``None`` = all) ``{"score", "label"}``.
    ``audio``: a 1-D float array at the extractor's rate, ``{"raw": array, "sampling_rate": sr}``
    (resampled), or a file path / bytes (decoded with ``load_audio``)."""

    task = "audio-classification"

    def _parameters(self, kwargs):
        params: dict[str, Any] = {}
        if "top_k" in kwargs:
            params["top_k"] = _positive_int(kwargs.pop("top_k"), "top_k", allow_none=True)
        if kwargs.get("function_to_apply") is not None:
            params["function_to_apply"] = _score_function(kwargs.pop("function_to_apply"))
        kwargs.pop("function_to_apply", None)
        return {**params, **super()._parameters(kwargs)}

    def _postprocess(self, item, features, outputs, params):
        config = self.model.config
        function = params.get("function_to_apply") or _default_score_function(config, single_label_is_sigmoid=False)
        logits = outputs[0]["logits"]
        probs = logits.softmax(-1) if function == "softmax" else logits.sigmoid() if function == "sigmoid" else logits
        top_k = params.get("top_k", 5)
        top_k = config.num_labels if top_k is None else min(top_k, config.num_labels)
        scores, ids = probs.topk(top_k)
        return [{"score": s, "label": _label(config, i)} for s, i in zip(scores.tolist(), ids.tolist())]


class AutomaticSpeechRecognitionPipeline(_AudioPipeline):
    """``pipe(audio)`` -> ``{"text": ...}``: greedy CTC decoding (argmax per frame, repeats and
    blanks collapsed by the tokenizer). ``return_timestamps="char"`` or ``"word"`` adds
    ``"chunks": [{"text", "timestamp": (start_s, end_s)}]``. ``chunk_length_s`` splits long audio
    into windows overlapping by ``stride_length_s`` (default a sixth of the window, each side)
    whose overlaps are dropped from the frame predictions before decoding, as the reference does."""

    task = "automatic-speech-recognition"
    _attention_mask = True

    def _parameters(self, kwargs):
        params: dict[str, Any] = {}
        if kwargs.get("return_timestamps") is not None:
            value = kwargs.pop("return_timestamps")
            if value not in ("char", "word"):
                raise InputError(
                    "CTC models give character or word timestamps: return_timestamps='char' or 'word', "
                    f"got {value!r}."
                )
            params["return_timestamps"] = value
        kwargs.pop("return_timestamps", None)
        if kwargs.get("chunk_length_s"):
            value = kwargs.pop("chunk_length_s")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InputError(f"chunk_length_s must be a positive number of seconds, got {value!r}.")
            params["chunk_length_s"] = value
        kwargs.pop("chunk_length_s", None)
        if kwargs.get("stride_length_s") is not None:
            value = kwargs.pop("stride_length_s")
            pair = [value, value] if isinstance(value, (int, float)) and not isinstance(value, bool) else value
            if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in pair
            ):
                raise InputError(f"stride_length_s must be a number or a (left, right) pair, got {value!r}.")
            params["stride_length_s"] = list(pair)
        kwargs.pop("stride_length_s", None)
        return {**params, **super()._parameters(kwargs)}

    @property
    def _align_to(self) -> int:
        """Waveform samples per output frame."""
        return getattr(self.model.config, "inputs_to_logits_ratio", 1)

    def _preprocess(self, item, params):
        chunk_s = params.get("chunk_length_s")
        if not chunk_s:
            return super()._preprocess(item, params)
        samples = self._samples(item)
        rate, align = self.feature_extractor.sampling_rate, self._align_to
        left_s, right_s = params.get("stride_length_s") or [chunk_s / 6, chunk_s / 6]
        chunk_len = int(round(chunk_s * rate / align) * align)
        left = int(round(left_s * rate / align) * align)
        right = int(round(right_s * rate / align) * align)
        if chunk_len <= left + right:
            raise InputError(
                f"chunk_length_s ({chunk_s}) must be longer than the two strides together ({left_s} + {right_s})."
            )
        features = []
        for start in range(0, samples.shape[0], chunk_len - left - right):
            chunk = samples[start : start + chunk_len]
            is_last = start + chunk_len >= samples.shape[0]
            stride = (chunk.shape[0], 0 if start == 0 else left, 0 if is_last else right)
            if chunk.shape[0] > stride[1]:
                processed = self.feature_extractor(
                    chunk, sampling_rate=rate, return_tensors="pt", return_attention_mask=True
                )
                inputs = {name: value[0] for name, value in processed.items()}
                features.append(Feature(inputs, {"samples": int(chunk.shape[0]), "stride": stride}))
            if is_last:
                break
        return features

    def _postprocess(self, item, features, outputs, params):
        import torch

        frames_of = getattr(self.model, "_get_feat_extract_output_lengths", None)
        pieces = []
        for feature, output in zip(features, outputs):
            logits = output["logits"]
            if frames_of is not None:
                logits = logits[: int(frames_of(feature.meta["samples"]))]
            tokens = logits.argmax(dim=-1)
            if "stride" in feature.meta:
                # the reference's rounding, from samples to frames
                total, left, right = feature.meta["stride"]
                frames = round(total / self._align_to)
                left, right = round(left / total * frames), round(right / total * frames)
                tokens = tokens[left : frames - right]
            pieces.append(tokens)
        tokens = torch.cat(pieces).tolist()
        result: dict[str, Any] = {"text": self.tokenizer.decode(tokens, skip_special_tokens=False)}
        kind = params.get("return_timestamps")
        if kind:
            decoded = self.tokenizer.decode(
                tokens, skip_special_tokens=False, output_char_offsets=True, output_word_offsets=kind == "word"
            )
            offsets = decoded.word_offsets if kind == "word" else decoded.char_offsets
            align, rate = self._align_to, self.feature_extractor.sampling_rate
            result["chunks"] = [
                {"text": o[kind], "timestamp": (o["start_offset"] * align / rate, o["end_offset"] * align / rate)}
                for o in offsets
            ]
        return result


# ----------------------------------------------------------------------------------------------
# The factory
# ----------------------------------------------------------------------------------------------


def _checkpoint_of(model: Any) -> str | None:
    config = getattr(model, "config", None)
    path = getattr(config, "name_or_path", None) if config is not None else None
    return path or None


def pipeline(
    task: str | None = None,
    model: Any = None,
    *,
    tokenizer: Any = None,
    image_processor: Any = None,
    feature_extractor: Any = None,
    device: Any = None,
    batch_size: int = 1,
    dtype: Any = None,
    **kwargs: Any,
) -> Pipeline:
    """A ready pipeline for ``task`` (inferred from the checkpoint's ``config.architectures`` when
    None) over ``model``: a checkpoint folder / hub id, or a loaded model. Processors not given are
    loaded from the same checkpoint. ``device``: "cpu", "cuda", "cuda:1", an int (-1 = cpu) or a
    torch.device. ``dtype``: a torch dtype, its name, or "auto". Checkpoint options (``revision``,
    ``token``, ``cache_dir``, ``local_files_only``, ``subfolder``) apply to the model and its
    processors; other model loading options go in ``model_kwargs={...}``; remaining keywords are
    the task's call options, used as defaults (e.g. ``top_k=3``)."""
    from . import auto

    if model is None:
        raise InputError(
            "pipeline() needs model= (a checkpoint folder, a hub id or a loaded model); leanformers picks no "
            "default model for a task."
        )
    from .hub import split_source_options

    model_kwargs = dict(kwargs.pop("model_kwargs", None) or {})
    kwargs.pop("trust_remote_code", None)
    # revision=, token=, local_files_only=... apply to the model and its processors alike
    source_options, kwargs = split_source_options(kwargs)
    source_options.update(split_source_options(model_kwargs)[0])
    model_kwargs.update(source_options)
    dtype = _dtype_of(dtype if dtype is not None else kwargs.pop("torch_dtype", None))
    device = _device_of(device)
    if task is not None:
        task = resolve_task(task)

    if isinstance(model, (str, os.PathLike)):
        checkpoint = os.fspath(model)
        config = auto.AutoConfig.from_pretrained(checkpoint, **source_options)
        if task is None:
            task = infer_task(config)
        spec = TASKS[task]
        architectures = getattr(config, "architectures", None) or []
        auto_name = spec.auto_model
        if spec.backbone_auto_model and architectures and architectures[0].endswith("Backbone"):
            auto_name = spec.backbone_auto_model
        load_options = dict(model_kwargs)
        if dtype is not None:
            load_options["dtype"] = dtype
        model = getattr(auto, auto_name).from_pretrained(checkpoint, **load_options)
    else:
        if not hasattr(model, "config") or not callable(getattr(model, "forward", None)):
            raise InputError(f"model must be a checkpoint path, a hub id or a loaded model, got {_describe(model)}.")
        if task is None:
            task = infer_task(model.config)
        spec = TASKS[task]
        checkpoint = _checkpoint_of(model)
        if dtype is not None and dtype != "auto":
            model = model.to(dtype)

    given = {"tokenizer": tokenizer, "image_processor": image_processor, "feature_extractor": feature_extractor}
    loaders = {
        "tokenizer": auto.AutoTokenizer,
        "image_processor": auto.AutoImageProcessor,
        "feature_extractor": auto.AutoFeatureExtractor,
    }
    for name in spec.processors:
        value = given[name]
        if value is None or isinstance(value, (str, os.PathLike)):
            source = value if value is not None else checkpoint
            if not source:
                raise InputError(
                    f"The {task} pipeline needs a {name}: pass {name}= (the model came without a checkpoint path)."
                )
            given[name] = loaders[name].from_pretrained(source, **source_options)
    pipeline_class = globals()[spec.pipeline_class]
    return pipeline_class(model, device=device, batch_size=batch_size, **given, **kwargs)


__all__ = [
    "ARCHITECTURE_TASKS",
    "TASKS",
    "TASK_ALIASES",
    "AudioClassificationPipeline",
    "AutomaticSpeechRecognitionPipeline",
    "FeatureExtractionPipeline",
    "FillMaskPipeline",
    "ImageClassificationPipeline",
    "ImageFeatureExtractionPipeline",
    "Pipeline",
    "QuestionAnsweringPipeline",
    "TaskSpec",
    "TextClassificationPipeline",
    "TokenClassificationPipeline",
    "infer_task",
    "pipeline",
    "resolve_task",
    "supported_tasks",
]

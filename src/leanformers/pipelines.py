"""Task pipelines: ``pipeline("text-classification", model=folder)("I love it")``.

A task is a small class over :class:`Pipeline`: item -> ``_preprocess`` -> *features* (e.g. the windows
of a long context) -> one padded forward over many features -> ``_postprocess``, so batching is shared and
a result never depends on its batch. ``input_length`` / ``run_batch`` serve callers that bucket by length.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError, LeanformersError, TokenizerError, UnsupportedModelError
from .tasks import (
    PROCESSOR_CLASSES,
    TASKS,
    TRANSLATION_TASK,
    infer_task,
    modality,
    resolve_task,
)

# Model input name -> the value that pads it.
_PAD_VALUES: dict[str, float] = {"attention_mask": 0, "token_type_ids": 0, "input_values": 0.0}
_ABSENT = object()


def _describe(value: Any) -> str:
    if value is None:
        return "None"
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__} of shape {tuple(shape)}" if shape is not None else type(value).__name__


def _device_of(device: Any) -> Any:
    import torch

    if device is None or isinstance(device, torch.device):
        return device
    if isinstance(device, int) and not isinstance(device, bool):
        return torch.device("cpu") if device < 0 else torch.device("cuda", device)
    if isinstance(device, str):
        try:
            return torch.device(device)
        except RuntimeError as exc:
            raise InputError(f"Unknown device {device!r}: {exc}") from None
    raise InputError(f"device must be 'cpu', 'cuda', 'cuda:N', an int or a torch.device, got {device!r}.")


def _dtype_of(dtype: Any) -> Any:
    import torch

    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        return getattr(torch, dtype)
    raise InputError(f"dtype must be a torch.dtype, its name ('float16'...) or 'auto', got {dtype!r}.")


def _must(wanted: str, ok: Callable[[Any], bool] = lambda value: True, convert: Callable[[Any], Any] = lambda v: v):
    """An option's check: ``convert(value)`` where ``ok(value)``, else "NAME must be WANTED"."""

    def check(name: str, value: Any) -> Any:
        if not ok(value):
            raise InputError(f"{name} must be {wanted}, got {value!r}.")
        return convert(value)

    return check


def _is_int(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


COUNT = _must("a positive integer", lambda v: _is_int(v, 1))
_COUNT_OR_ALL = _must("a positive integer or None", lambda v: v is None or _is_int(v, 1))
NON_NEGATIVE = _must("a non-negative integer", lambda v: _is_int(v, 0))
_FLAG = _must("True or False", convert=bool)
_ANY = _must("anything")


# Scores from a torch tensor of logits.
_SCORE_FUNCTIONS = {"softmax": lambda x: x.softmax(-1), "sigmoid": lambda x: x.sigmoid(), "none": lambda x: x}
_SCORE_FUNCTION = _must(
    f"one of {sorted(_SCORE_FUNCTIONS)}", lambda v: isinstance(v, str) and v.lower() in _SCORE_FUNCTIONS, str.lower
)


def _label(config: Any, index: int) -> str:
    id2label = getattr(config, "id2label", None) or {}
    return id2label.get(index, id2label.get(str(index), f"LABEL_{index}"))


def _ranked(logits: Any, config: Any, function: str | None, top_k: int | None, one_label_sigmoid: bool = True):
    """The ``top_k`` (None: all) ``{"label", "score"}``, best first; ``function`` by default: none for
    regression, sigmoid for multi-label (or, for text and images, one label), else softmax."""
    if function is None:
        problem = getattr(config, "problem_type", None)
        one_label = one_label_sigmoid and config.num_labels == 1
        function = "none" if problem == "regression" else (
            "sigmoid" if problem == "multi_label_classification" or one_label else "softmax"
        )
    scores = _SCORE_FUNCTIONS[function](logits.float())
    order = scores.argsort(descending=True, stable=True)[:top_k].tolist()
    return [{"label": _label(config, i), "score": float(scores[i])} for i in order]


@dataclass
class Feature:
    """One model row made from an item: its unbatched input tensors and what postprocessing needs."""

    inputs: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)


class Pipeline:
    """Base of every task pipeline: subclasses set ``task`` and ``options``, implement ``_preprocess``
    and ``_postprocess``, and where their inputs differ ``_is_single``, ``_check_item``, ``_shape``."""

    task: str = ""
    # Call options: name -> (check, whether None is a value rather than "not given").
    options: dict[str, tuple[Callable[[str, Any], Any], bool]] = {}
    # True where _postprocess reads per-token outputs only at each item's own positions, never at
    # the padding a batch adds: the model may then run on the real tokens only.
    skips_batch_padding: bool = False

    def __init__(
        self, model: Any, tokenizer: Any = None, image_processor: Any = None, feature_extractor: Any = None,
        device: Any = None, batch_size: int = 1, **kwargs: Any,
    ) -> None:
        import torch

        self.model, self.tokenizer = model, tokenizer
        self.image_processor, self.feature_extractor = image_processor, feature_extractor
        self.batch_size = COUNT("batch_size", batch_size)
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
        self._unpadded = self.skips_batch_padding and "padding_in_output" in signature
        self._defaults = self._parameters(kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, model={type(self.model).__name__}, device={self.device})"

    # -- what subclasses may change ---------------------------------------------------------------

    def _parameters(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call / construction options given, checked (see ``options``); unknown ones refused."""
        params = {}
        for name, (check, keep_none) in self.options.items():
            value = kwargs.pop(name, _ABSENT)
            if value is not _ABSENT and (value is not None or keep_none):
                params[name] = check(name, value)
        if kwargs:
            raise InputError(f"The {self.task} pipeline got unknown option(s) {sorted(kwargs)}.")
        return params

    def _is_single(self, inputs: Any, params: dict[str, Any]) -> bool:
        return not isinstance(inputs, (list, tuple))

    def _check_item(self, item: Any, params: dict[str, Any]) -> Any:
        return item

    def _preprocess(self, item: Any, params: dict[str, Any]) -> list[Feature]:
        raise NotImplementedError

    def _postprocess(self, item: Any, features: list[Feature], outputs: list[dict], params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _shape(self, results: list[Any], items: list[Any], single: bool, params: dict[str, Any]) -> Any:
        return results[0] if single else results

    @classmethod
    def check_model(cls, model: Any) -> None:
        """Raise :class:`UnsupportedModelError` where ``model`` cannot serve this task (checked before the
        processors load, so the error names the real problem)."""

    @classmethod
    def model_subfolder(cls, checkpoint: str, source_options: dict[str, Any]) -> str:
        """The folder of ``checkpoint`` holding this task's model and processors ("" for its root)."""
        return ""

    @classmethod
    def auto_model_name(cls, config: Any, spec: Any) -> str:
        """The Auto class (in ``leanformers.auto``) that loads this task's model for ``config``."""
        architectures = getattr(config, "architectures", None) or [""]
        is_backbone = spec.backbone_auto_model and architectures[0].endswith("Backbone")
        return spec.backbone_auto_model if is_backbone else spec.auto_model

    def input_length(self, item: Any) -> int:
        """A size for length-bucketing: tokens for text, samples for audio, 1 for images."""
        self._check_item(item, self._defaults)
        return 1

    # -- the shared machinery ---------------------------------------------------------------------

    def __call__(self, inputs: Any = None, *, batch_size: int | None = None, **kwargs: Any) -> Any:
        params = {**self._defaults, **self._parameters(kwargs)}
        if inputs is None:
            raise InputError(f"The {self.task} pipeline needs inputs, got None.")
        single = self._is_single(inputs, params)
        items = [inputs] if single else list(inputs)
        if not items:
            raise InputError(f"The {self.task} pipeline got an empty list of inputs.")
        items = [self._check_item(item, params) for item in items]
        size = self.batch_size if batch_size is None else COUNT("batch_size", batch_size)
        order = self._batch_order(items, size, params)
        results: list[Any] = [None] * len(items)
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            for index, result in zip(batch, self._run([items[i] for i in batch], params)):
                results[index] = result
        return self._shape(results, items, single, params)

    def _batch_order(self, items: list[Any], batch_size: int, params: dict[str, Any]) -> list[int]:
        """The order in which items are cut into batches (results still come back in input order)."""
        return list(range(len(items)))

    def run_batch(self, items: list[Any], **kwargs: Any) -> list[Any]:
        """Results for ``items`` (a list of single inputs) from one padded forward pass, in order."""
        if not isinstance(items, (list, tuple)) or not items:
            raise InputError("run_batch takes a non-empty list of inputs.")
        params = {**self._defaults, **self._parameters(kwargs)}
        return self._run([self._check_item(item, params) for item in items], params)

    def _run(self, items: list[Any], params: dict[str, Any]) -> list[Any]:
        per_item = [self._preprocess(item, params) for item in items]
        outputs = self._forward([feature for features in per_item for feature in features])
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
                stacked = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=pad or 0)
            else:
                stacked = torch.stack(rows)
            if stacked.is_floating_point():
                stacked = stacked.to(self.dtype)
            batch[name] = stacked.to(self.device)
        return batch

    def _forward(self, features: list[Feature]) -> list[dict[str, Any]]:
        """The model over ``features`` as one batch; tensor outputs (and tuples of them, e.g. feature
        maps) split back into a dict per feature, on the CPU in float32."""
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

        fields = {key: on_cpu(value) for key, value in output.items()}
        fields = {key: value for key, value in fields.items() if value is not None}
        return [
            {key: tuple(v[i] for v in value) if isinstance(value, tuple) else value[i] for key, value in fields.items()}
            for i in range(len(features))
        ]


# -- text -----------------------------------------------------------------------------------------


def _check_text(item: Any, task: str) -> str:
    if not isinstance(item, str):
        raise InputError(f"The {task} pipeline takes a string or a list of strings; got an item of {_describe(item)}.")
    return item


class _TextPipeline(Pipeline):
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


def _windows(encoded: Any, meta: Callable[[int], dict[str, Any]]) -> list[Feature]:
    """A feature per window of a tokenizer output (``return_overflowing_tokens``), with ``meta(window)``."""
    unused = ("offset_mapping", "special_tokens_mask", "overflow_to_sample_mapping")
    return [Feature({k: v[index] for k, v in encoded.items() if k not in unused}, meta(index))
            for index in range(len(encoded["input_ids"]))]


def _tokenizer_options(params: dict[str, Any]) -> dict[str, Any]:
    options = dict(params.get("tokenize_kwargs") or {})
    options.update({name: params[name] for name in ("truncation", "max_length") if name in params})
    return options


class TextClassificationPipeline(_TextPipeline):
    """``pipe("text")`` -> ``[{"label", "score"}]``; a list -> a dict per text; with ``top_k``
    (``None`` = all) a list per text, best first. Pairs: ``{"text": ..., "text_pair": ...}``."""

    task = "text-classification"
    options = {
        "top_k": (_COUNT_OR_ALL, True),
        "function_to_apply": (_SCORE_FUNCTION, False),
        "truncation": (_ANY, True),
        "max_length": (_ANY, True),
        "padding": (_ANY, True),  # accepted, as the reference; one text is never padded
    }

    def _is_single(self, inputs: Any, params: dict[str, Any]) -> bool:
        # [[text, pair]] is the reference's spelling of one pair
        return isinstance(inputs, (str, dict)) or _is_pair_list(inputs) or not isinstance(inputs, (list, tuple))

    def _check_item(self, item: Any, params: dict[str, Any]) -> Any:
        if _is_pair_list(item):
            item = {"text": item[0][0], "text_pair": item[0][1]}
        if isinstance(item, (list, tuple)):
            raise InputError("The text-classification pipeline got a list where a text was expected; to classify a "
                             'text pair, pass {"text": "My text", "text_pair": "My pair"}.')
        if not isinstance(item, dict):
            return _check_text(item, self.task)
        unknown = set(item) - {"text", "text_pair"}
        if "text" not in item or unknown:
            problem = f"unknown keys {sorted(unknown)}" if unknown else "'text' is missing"
            raise InputError(f'A text pair is given as {{"text": ..., "text_pair": ...}}; {problem}.')
        for text in self._texts(item):
            _check_text(text, self.task)
        return item

    def _texts(self, item: Any) -> tuple[str, ...]:
        if isinstance(item, dict):
            return (item["text"],) if item.get("text_pair") is None else (item["text"], item["text_pair"])
        return (item,)

    def _preprocess(self, item: Any, params: dict[str, Any]) -> list[Feature]:
        return [self._encode_one(*self._texts(item), **_tokenizer_options(params))]

    def _postprocess(self, item, features, outputs, params):
        function, top_k = params.get("function_to_apply"), params.get("top_k", 1)
        ranked = _ranked(outputs[0]["logits"], self.model.config, function, top_k)
        return ranked if "top_k" in params else ranked[0]

    def _shape(self, results, items, single, params):
        # the reference wraps a lone string's best label in a list (its legacy format), not a pair's
        if single and "top_k" not in params and isinstance(items[0], str):
            return results
        return results[0] if single else results


def _candidate_labels(name: str, value: Any) -> list[str]:
    labels = [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value
    if not isinstance(labels, (list, tuple)) or not labels or not all(isinstance(label, str) for label in labels):
        raise InputError(f"{name} must be a non-empty list of label strings (or one comma-separated string), got "
                         f"{_describe(value)}.")
    return list(labels)


def _hypothesis_template(name: str, value: Any) -> str:
    if not isinstance(value, str) or value.format("x") == value:
        raise InputError(f"{name} must be a string with a {{}} where the label goes, such as 'This example is {{}}.', "
                         f"got {value!r}.")
    return value


class ZeroShotClassificationPipeline(_TextPipeline):
    """``pipe("text", candidate_labels=["sport", "politics"])`` -> ``{"sequence", "labels", "scores"}``,
    labels best first. Each label becomes the hypothesis ``hypothesis_template.format(label)`` of an NLI
    pair with the text; its score is the entailment logit softmaxed over the labels, or with
    ``multi_label=True`` (or a single label) entailment against contradiction for each label alone."""

    task = "zero-shot-classification"
    options = {
        "candidate_labels": (_candidate_labels, False),
        "hypothesis_template": (_hypothesis_template, False),
        "multi_label": (_FLAG, False),
    }

    def __init__(self, model: Any, *args: Any, **kwargs: Any) -> None:
        label2id = getattr(model.config, "label2id", None) or {}
        self.entailment_id = next((i for label, i in label2id.items() if label.lower().startswith("entail")), -1)
        if self.entailment_id == -1:
            raise InputError(
                "zero-shot classification needs an NLI model whose config.label2id names an 'entailment' label; "
                f"this model's labels are {sorted(label2id)}. Use an NLI checkpoint (e.g. one fine-tuned on MNLI)."
            )
        super().__init__(model, *args, **kwargs)

    def __call__(self, inputs: Any = None, *args: Any, **kwargs: Any) -> Any:
        if args:  # the reference takes the labels as the second positional argument
            if len(args) > 1 or "candidate_labels" in kwargs:
                raise InputError("zero-shot classification takes the texts, then the candidate labels; got more.")
            kwargs["candidate_labels"] = args[0]
        return super().__call__(inputs, **kwargs)

    def _parameters(self, kwargs):
        params = super()._parameters(kwargs)
        params.setdefault("hypothesis_template", "This example is {}.")
        return params

    def _preprocess(self, item, params):
        if "candidate_labels" not in params:
            raise InputError("zero-shot classification needs candidate_labels, e.g. candidate_labels=['sport', "
                             "'politics'].")
        features = []
        for label in params["candidate_labels"]:
            hypothesis = params["hypothesis_template"].format(label)
            try:  # the hypothesis is never cut; a text too long for the rest is left whole, as the reference does
                features.append(self._encode_one(item, hypothesis, truncation="only_first"))
            except LeanformersError:
                features.append(self._encode_one(item, hypothesis, truncation=False))
        return features

    def _postprocess(self, item, features, outputs, params):
        import numpy as np

        labels = params["candidate_labels"]
        logits = np.stack([output["logits"].float().numpy() for output in outputs])
        if params.get("multi_label") or len(labels) == 1:
            pair = logits[:, [-1 if self.entailment_id == 0 else 0, self.entailment_id]]
            scores = (np.exp(pair) / np.exp(pair).sum(-1, keepdims=True))[:, 1]
        else:
            entail = logits[:, self.entailment_id]
            scores = np.exp(entail) / np.exp(entail).sum(-1, keepdims=True)
        # the reference's order, ties included: the reverse of numpy's default argsort
        order = list(reversed(scores.argsort()))
        return {"sequence": item, "labels": [labels[i] for i in order], "scores": scores[order].tolist()}


def _is_pair_list(inputs: Any) -> bool:
    return isinstance(inputs, list) and len(inputs) == 1 and isinstance(inputs[0], list) and len(inputs[0]) == 2


_AGGREGATIONS = ("none", "simple", "first", "average", "max")
_AGGREGATION = _must(
    f"one of {list(_AGGREGATIONS)}",
    lambda v: isinstance(getattr(v, "value", v), str) and getattr(v, "value", v).lower() in _AGGREGATIONS,
    lambda v: getattr(v, "value", v).lower(),
)


class TokenClassificationPipeline(_TextPipeline):
    """``pipe("text")`` -> entities: a dict per token (``aggregation_strategy="none"``), grouped
    into ``entity_group``s ("simple"), or first agreed on whole words ("first", "average", "max").
    ``stride=N`` splits long texts into overlapping windows; ``is_split_into_words=True`` takes
    lists of words, joined with ``delimiter`` for ``start`` / ``end``."""

    task = "token-classification"
    skips_batch_padding = True
    options = {
        "aggregation_strategy": (_AGGREGATION, False),
        "ignore_labels": (_must("a list of label names", lambda v: isinstance(v, (list, tuple)) and all(
            isinstance(label, str) for label in v), list), False),
        "stride": (NON_NEGATIVE, False),
        "is_split_into_words": (_FLAG, True),
        "delimiter": (_must("a string", lambda v: isinstance(v, str)), False),
    }

    def _parameters(self, kwargs):
        params = super()._parameters(kwargs)
        if params.get("stride") is not None:
            if params["stride"] >= self.tokenizer.model_max_length:
                raise InputError("stride must be less than tokenizer.model_max_length.")
            if params.get("aggregation_strategy") == "none":
                raise InputError('stride needs an aggregation_strategy other than "none".')
        return params

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
            options["is_split_into_words"] = True
        return self.tokenizer(item, **options)

    def input_length(self, item):
        return len(self._encode(self._check_item(item, self._defaults), self._defaults)["input_ids"])

    def _preprocess(self, item, params):
        max_length = self.tokenizer.model_max_length
        options: dict[str, Any] = {
            "truncation": bool(max_length and max_length > 0), "return_special_tokens_mask": True,
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

        def meta(index: int) -> dict[str, Any]:
            offsets = encoded["offset_mapping"][index].tolist()
            if word_starts is not None:
                offsets = [
                    (a + word_starts[w], b + word_starts[w]) if w is not None else (a, b)
                    for (a, b), w in zip(offsets, encoded.word_ids(index))
                ]
            return {"sentence": sentence, "offsets": offsets, "ids": encoded["input_ids"][index].tolist(),
                    "special": encoded["special_tokens_mask"][index].tolist()}

        return _windows(encoded, meta)

    def _postprocess(self, item, features, outputs, params):
        strategy, ignore = params.get("aggregation_strategy", "none"), params.get("ignore_labels", ["O"])
        entities: list[dict[str, Any]] = []
        for feature, output in zip(features, outputs):
            scores = output["logits"][: len(feature.meta["ids"])].softmax(-1).numpy()
            found = self._aggregate(self._pre_entities(feature.meta, scores), strategy)
            entities.extend(e for e in found if e.get("entity", e.get("entity_group")) not in ignore)
        return _merge_overlapping(entities) if len(features) > 1 else entities

    def _pre_entities(self, meta: dict[str, Any], scores: Any) -> list[dict[str, Any]]:
        prefix = getattr(getattr(self.tokenizer.backend_tokenizer, "model", None), "continuing_subword_prefix", None)
        sentence, out = meta["sentence"], []
        for index, token_scores in enumerate(scores):
            if meta["special"][index]:
                continue
            token_id, (start, end) = meta["ids"][index], meta["offsets"][index]
            word, text = self.tokenizer.convert_ids_to_tokens(token_id), sentence[start:end]
            is_subword = len(word) != len(text) if prefix else start > 0 and " " not in sentence[start - 1 : start + 1]
            if token_id == self.tokenizer.unk_token_id:
                word, is_subword = text, False
            out.append({"word": word, "scores": token_scores, "start": start, "end": end, "index": index,
                        "is_subword": is_subword})
        return out

    def _aggregate(self, pre: list[dict[str, Any]], strategy: str) -> list[dict[str, Any]]:
        """Entities of the tokens ``pre``: per token ("none"), grouped ("simple"), or of whole words
        whose scores are the first token's, the best token's ("max") or the mean ("average")."""
        import numpy as np

        def best(scores: Any) -> dict[str, Any]:
            index = int(scores.argmax())
            return {"entity": _label(self.model.config, index), "score": float(scores[index])}

        if strategy in ("none", "simple"):
            keys = ("index", "word", "start", "end")
            entities = [{**best(p["scores"]), **{key: p[key] for key in keys}} for p in pre]
            return entities if strategy == "none" else self._group_entities(entities)
        words = []
        for tokens in _runs(pre, lambda run, token: token["is_subword"]):
            scores = [token["scores"] for token in tokens]
            if strategy == "max":
                scores = [max(scores, key=lambda s: s.max())]
            word_scores = np.nanmean(np.stack(scores), axis=0) if strategy == "average" else scores[0]
            words.append({**best(word_scores), **self._span(tokens)})
        return self._group_entities(words)

    def _span(self, run: list[dict[str, Any]]) -> dict[str, Any]:
        words = [entity["word"] for entity in run]
        return {"word": self.tokenizer.convert_tokens_to_string(words), "start": run[0]["start"], "end": run[-1]["end"]}

    def _group_entities(self, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Neighbours joined where a tag continues (I- after the same tag), with their mean score."""
        import numpy as np

        def continues(run: list[dict[str, Any]], entity: dict[str, Any]) -> bool:
            bi, tag = _bio(entity["entity"])
            return bi != "B" and tag == _bio(run[-1]["entity"])[1]

        return [
            {"entity_group": group[0]["entity"].split("-", 1)[-1],
             "score": float(np.nanmean(np.array([e["score"] for e in group], dtype=np.float32))), **self._span(group)}
            for group in _runs(entities, continues)
        ]


def _runs(items: list[dict[str, Any]], joins: Callable[[list, dict], bool]) -> list[list[dict[str, Any]]]:
    """``items`` cut into runs of neighbours: an item joins the run before it where ``joins(run, item)``."""
    runs: list[list[dict[str, Any]]] = []
    for item in items:
        if runs and joins(runs[-1], item):
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def _bio(label: str) -> tuple[str, str]:
    return (label[0], label[2:]) if label.startswith(("B-", "I-")) else ("I", label)


def _extent(entity: dict[str, Any]) -> tuple[int, float]:
    return entity["end"] - entity["start"], entity["score"]


def _merge_overlapping(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Of entities overlapping across windows keep the longest (then the higher-scoring)."""
    merged: list[dict[str, Any]] = []
    for entity in sorted(entities, key=lambda e: e["start"]):
        if not merged or not merged[-1]["start"] <= entity["start"] < merged[-1]["end"]:
            merged.append(entity)
        elif _extent(entity) > _extent(merged[-1]):
            merged[-1] = entity
    return merged


class QuestionAnsweringPipeline(_TextPipeline):
    """``pipe(question=..., context=...)`` -> ``{"score", "start", "end", "answer"}`` (``top_k`` of
    them when ``top_k > 1``). Long contexts are split into windows of ``max_seq_len`` tokens
    overlapping by ``doc_stride``. Follows the reference's 4.x pipeline (5.x dropped it)."""

    task = "question-answering"
    skips_batch_padding = True
    options = {
        "top_k": (COUNT, False), "max_answer_len": (COUNT, False), "max_seq_len": (COUNT, False),
        "doc_stride": (NON_NEGATIVE, False), "handle_impossible_answer": (_FLAG, True),
        "align_to_words": (_FLAG, True),
    }

    def __call__(self, *args: Any, question: Any = None, context: Any = None, **kwargs: Any) -> Any:
        if question is None and context is None:
            if len(args) != 1:
                raise InputError("The question-answering pipeline takes one input, or question= and context=.")
            return super().__call__(args[0], **kwargs)
        if args:
            raise InputError("Give the question-answering pipeline either inputs or question=/context=, not both.")
        if isinstance(question, str) and isinstance(context, str):
            return super().__call__({"question": question, "context": context}, **kwargs)
        if isinstance(question, (list, tuple)) and isinstance(context, str):
            context = [context] * len(question)
        if not (isinstance(question, (list, tuple)) and isinstance(context, (list, tuple))):
            raise InputError("question= and context= must both be given, as strings or lists of strings.")
        if len(question) != len(context):
            raise InputError(f"question and context lists differ in length ({len(question)} vs {len(context)}).")
        return super().__call__([{"question": q, "context": c} for q, c in zip(question, context)], **kwargs)

    def _check_item(self, item: Any, params: dict[str, Any]) -> Any:
        if not isinstance(item, dict) or "question" not in item or "context" not in item:
            raise InputError('The question-answering pipeline takes {"question": ..., "context": ...} (or a list of '
                             f"them), or question= and context=; got {_describe(item)}.")
        for key in ("question", "context"):
            if not isinstance(item[key], str):
                raise InputError(f"{key} must be a string, got {_describe(item[key])}.")
            if not item[key]:
                raise InputError(f"`{key}` cannot be empty.")
        return item

    def _texts(self, item):
        return (item["question"], item["context"])

    def _preprocess(self, item, params):
        max_len = params.get("max_seq_len") or min(self.tokenizer.model_max_length, 384)
        stride = params.get("doc_stride")
        stride = min(max_len // 2, 128) if stride is None else stride
        if stride > max_len:
            raise InputError(f"doc_stride ({stride}) must not exceed max_seq_len ({max_len}).")
        encoded = self.tokenizer(
            item["question"], item["context"], truncation="only_second", padding=True, max_length=max_len,
            stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True, return_tensors="pt",
        )
        cls_id = self.tokenizer.cls_token_id

        def meta(index: int) -> dict[str, Any]:
            # an answer may start and end on context tokens, or on [CLS] (no answer)
            allowed = [1 if s == 1 or (cls_id is not None and t == cls_id) else 0
                       for s, t in zip(encoded.sequence_ids(index), encoded["input_ids"][index].tolist())]
            return {"allowed": allowed, "encoding": encoded.encodings[index],
                    "offsets": encoded["offset_mapping"][index].tolist()}

        return _windows(encoded, meta)

    def _postprocess(self, item, features, outputs, params):
        import torch

        top_k = params.get("top_k", 1)
        impossible = params.get("handle_impossible_answer", False)
        min_null, answers = 1_000_000.0, []
        for feature, output in zip(features, outputs):
            allowed = feature.meta["allowed"]
            masked = torch.tensor(allowed) == 0
            start, end = (
                output[name][: len(allowed)].masked_fill(masked, -10000.0).softmax(-1).numpy()
                for name in ("start_logits", "end_logits")
            )
            if impossible:
                min_null = min(min_null, float(start[0] * end[0]))
            start[0] = end[0] = 0.0
            for s, e, score in _best_spans(start, end, top_k, params.get("max_answer_len", 15), allowed):
                begin, finish = _char_span(feature.meta, s, e, params.get("align_to_words", True))
                answers.append({"score": score, "start": begin, "end": finish, "answer": item["context"][begin:finish]})
        if impossible:
            answers.append({"score": min_null, "start": 0, "end": 0, "answer": ""})
        answers = sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]
        return answers[0] if len(answers) == 1 else answers


def _char_span(meta: dict[str, Any], s: int, e: int, align: bool) -> tuple[int, int]:
    encoding = meta["encoding"]
    if align:
        start_word, end_word = encoding.token_to_word(s), encoding.token_to_word(e)
        if start_word is not None and end_word is not None:
            first, last = encoding.word_to_chars(start_word, 1), encoding.word_to_chars(end_word, 1)
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
    return [(int(s), int(e), float(outer[s, e])) for s, e in zip(starts, ends) if allowed[s] and allowed[e]]


class FeatureExtractionPipeline(_TextPipeline):
    """``pipe("text")`` -> the last hidden state as nested lists (``[1][tokens][hidden]``), or with
    ``pooling`` ("mean" or "cls") one vector per text, unit length with ``normalize=True``."""

    task = "feature-extraction"
    skips_batch_padding = True
    options = {
        "pooling": (_must("None, 'mean' or 'cls'", lambda v: v in (None, "mean", "cls")), True),
        "normalize": (_FLAG, True), "return_tensors": (_FLAG, True), "tokenize_kwargs": (_ANY, False),
        "truncation": (_ANY, True), "max_length": (_ANY, True),
    }

    def _preprocess(self, item, params):
        return [self._encode_one(item, **_tokenizer_options(params))]

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
            if pooling == "cls":
                result = hidden[0]
            else:
                mask = features[0].inputs.get("attention_mask")
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
    options = {"top_k": (COUNT, False), "targets": (_ANY, False)}

    def _parameters(self, kwargs):
        if self.tokenizer.mask_token_id is None:
            raise InputError("The fill-mask pipeline needs a tokenizer with a mask token; this one has none.")
        params = super()._parameters(kwargs)
        if "targets" in params:
            params["target_ids"] = self._target_ids(params.pop("targets"))
        return params

    def _target_ids(self, targets: Any) -> list[int]:
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, (list, tuple)) or not all(isinstance(t, str) for t in targets):
            raise InputError(f"targets must be a string or a list of strings, got {targets!r}.")
        vocab, ids = self.tokenizer.get_vocab(), set()
        for target in targets:
            token_id = vocab.get(target)
            if token_id is None:  # not one token: its first piece, as the reference
                pieces = self.tokenizer(target, add_special_tokens=False, return_attention_mask=False)["input_ids"]
                token_id = pieces[0] if pieces else None
            if token_id is not None:
                ids.add(token_id)
        if not ids:
            raise InputError("At least one target must be a word the tokenizer knows.")
        return sorted(ids)

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
        values, predictions = probs.topk(min(params.get("top_k", 5), probs.shape[-1]))
        single, pad = len(positions) == 1, self.tokenizer.pad_token_id
        rows = []
        for position, row_values, row_predictions in zip(positions.tolist(), values.tolist(), predictions.tolist()):
            row = []
            for score, prediction in zip(row_values, row_predictions):
                token = targets[prediction] if targets is not None else prediction
                tokens = ids.clone()
                tokens[position] = token
                tokens = tokens[tokens != pad] if pad is not None else tokens
                sequence = self.tokenizer.decode(tokens.tolist(), skip_special_tokens=single)
                word = self.tokenizer.decode([token])
                row.append({"score": score, "token": token, "token_str": word, "sequence": sequence})
            rows.append(row)
        return rows[0] if single else rows

    def _shape(self, results, items, single, params):
        return results[0] if single or len(results) == 1 else results


# -- text generation ------------------------------------------------------------------------------

# The reference pipeline's own generation defaults, for settings that neither the call nor the
# checkpoint's generation_config.json sets; the sampling ones apply only when sampling.
_GENERATION_DEFAULTS: dict[str, Any] = {"max_new_tokens": 256, "do_sample": True, "temperature": 0.7}
_SAMPLING_SETTINGS = ("temperature", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff")


def _is_chat(value: Any) -> bool:
    """A list of messages (dicts), as opposed to a prompt string or a batch of inputs."""
    return isinstance(value, (list, tuple)) and bool(value) and isinstance(value[0], dict)


def _check_chat(chat: Any, task: str) -> list[dict[str, Any]]:
    if not chat:
        raise InputError(f"The {task} pipeline got an empty chat: a chat needs at least one message.")
    for index, message in enumerate(chat):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            got = f"keys {sorted(map(str, message))}" if isinstance(message, dict) else _describe(message)
            raise InputError(
                f"Message {index} of a chat must be a dict with 'role' and 'content' keys, got {got}. A chat is a "
                'list such as [{"role": "user", "content": "Hello"}]; a batch of chats is a list of such lists.'
            )
        if not isinstance(message["role"], str):
            raise InputError(f"Message {index} of a chat has a role of {_describe(message['role'])}; roles are "
                             "strings such as 'system', 'user' or 'assistant'.")
    return list(chat)


class TextGenerationPipeline(Pipeline):
    """``pipe("Once upon a time")`` -> ``[{"generated_text": ...}]`` (one dict per returned sequence);
    a chat (a list of ``{"role", "content"}`` messages) is rendered with the tokenizer's chat template
    and answered with the conversation plus the new assistant message; a list of prompts or chats gives
    a list per input. Keywords other than the pipeline's own options are generation settings
    (``max_new_tokens``, ``do_sample``, ``temperature``...), over the checkpoint's generation_config.json,
    over the reference pipeline's defaults (256 new tokens, sampling at temperature 0.7). Prompts are
    batched longest first with left padding and answered in input order; a row that meets EOS while
    its batch goes on ends there, as it would alone."""

    task = "text-generation"
    options = {
        "return_full_text": (_FLAG, False), "return_tensors": (_FLAG, False), "return_text": (_FLAG, False),
        "clean_up_tokenization_spaces": (_FLAG, False), "skip_special_tokens": (_FLAG, False),
        "prefix": (_must("a string", lambda v: isinstance(v, str)), False),
        "continue_final_message": (_FLAG, False), "tools": (_ANY, False), "documents": (_ANY, False),
        "add_special_tokens": (_FLAG, False), "truncation": (_ANY, False),
        "padding": (_ANY, False),  # accepted, as the reference; batches are always left-padded here
        "tokenizer_encode_kwargs": (_must("a dict", lambda v: isinstance(v, dict)), False),
        "streamer": (_ANY, False), "generation_config": (_ANY, False),
    }

    def __init__(self, model: Any, *args: Any, **kwargs: Any) -> None:
        if not callable(getattr(model, "generate", None)) or not hasattr(model, "generation_config"):
            raise UnsupportedModelError(
                f"The text-generation pipeline needs a causal language model (AutoModelForCausalLM, e.g. a "
                f"LlamaForCausalLM); {type(model).__name__} cannot generate text."
            )
        super().__init__(model, *args, **kwargs)
        if self.tokenizer is None:
            raise InputError("The text-generation pipeline needs a tokenizer: pass tokenizer=.")

    def _parameters(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        from .modeling.generation import FIELDS, GenerationConfig

        settings = {name: kwargs.pop(name) for name in FIELDS if name in kwargs}
        stop = kwargs.pop("stop_sequence", None)
        if stop is not None:  # as the reference: stop strings, matched on the generated text
            settings["stop_strings"] = [stop] if isinstance(stop, str) else stop
        if kwargs.pop("handle_long_generation", None) is not None:
            raise InputError("The text-generation pipeline does not support handle_long_generation (only prompts "
                             "that fit the model are supported).")
        unknown = sorted(set(kwargs) - set(self.options))
        if unknown:
            raise InputError(
                f"The text-generation pipeline got unknown argument(s) {unknown}: they are neither its options "
                f"({', '.join(sorted(self.options))}) nor generation settings (GenerationConfig fields such as "
                "max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty)."
            )
        params = super()._parameters(kwargs)
        GenerationConfig(**settings)  # a wrong value is refused now, naming the setting
        if params.get("generation_config") is not None and not isinstance(params["generation_config"],
                                                                          GenerationConfig):
            raise InputError("generation_config must be a leanformers GenerationConfig, got "
                             f"{_describe(params['generation_config'])}.")
        if params.get("return_full_text") is not None and "return_tensors" in params:
            raise InputError("return_full_text and return_tensors cannot be given together: choose text or ids.")
        if "return_text" in params and ("return_tensors" in params or "return_full_text" in params):
            raise InputError("return_text cannot be given with return_full_text or return_tensors: use one of them.")
        return {**params, **settings}

    def _is_single(self, inputs: Any, params: dict[str, Any]) -> bool:
        return isinstance(inputs, (str, dict)) or _is_chat(inputs) or not isinstance(inputs, (list, tuple))

    def _check_item(self, item: Any, params: dict[str, Any]) -> Any:
        if isinstance(item, str):
            return item
        if isinstance(item, dict):
            raise InputError('A chat message must be inside a list: pipe([{"role": "user", "content": "Hello"}]).')
        if isinstance(item, (list, tuple)):
            return _check_chat(item, self.task)
        raise InputError(f"The {self.task} pipeline takes a prompt string, a chat (a list of {{'role', 'content'}} "
                         f"messages), or a list of either; got an item of {_describe(item)}.")

    def _prefix(self, params: dict[str, Any]) -> str:
        prefix = params.get("prefix", getattr(self.model.config, "prefix", None))
        return prefix if isinstance(prefix, str) else ""

    def _prompt_ids(self, item: Any, params: dict[str, Any]) -> list[int]:
        """The token ids of one prompt: the text after the prefix, or the chat through its template."""
        options = {name: params[name] for name in ("add_special_tokens", "truncation") if name in params}
        if params.get("max_length") is not None:  # as the reference: a tokenizer limit as well
            options["max_length"] = params["max_length"]
        options.update(params.get("tokenizer_encode_kwargs") or {})
        if isinstance(item, str):
            ids = self.tokenizer(self._prefix(params) + item, **options)["input_ids"]
        else:
            options.pop("add_special_tokens", None)
            continuing = self._continues(item, params)
            ids = self.tokenizer.apply_chat_template(
                item, add_generation_prompt=not continuing, continue_final_message=continuing, tokenize=True,
                return_dict=True, tools=params.get("tools"), documents=params.get("documents"), **options,
            )["input_ids"]
        if not ids:
            raise InputError(
                f"The prompt {item!r} gives no tokens (this tokenizer adds no BOS token to an empty text): give "
                "some text for the model to continue."
            )
        return list(ids)

    @staticmethod
    def _continues(chat: list[dict[str, Any]], params: dict[str, Any]) -> bool:
        """Whether the model continues the chat's last message: by default when the assistant wrote it."""
        given = params.get("continue_final_message")
        return chat[-1]["role"] == "assistant" if given is None else given

    def input_length(self, item: Any) -> int:
        return len(self._prompt_ids(self._check_item(item, self._defaults), self._defaults))

    def _batch_order(self, items: list[Any], batch_size: int, params: dict[str, Any]) -> list[int]:
        if batch_size == 1 or len(items) == 1:
            return list(range(len(items)))
        lengths = [len(self._prompt_ids(item, params)) for item in items]
        return sorted(range(len(items)), key=lambda i: -lengths[i])

    def _generate_kwargs(self, params: dict[str, Any]) -> dict[str, Any]:
        """The call's generation settings plus the pipeline's defaults for those no one set (the
        reference's rule); a total length grows by the prefix's tokens."""
        import copy

        from .modeling.generation import FIELDS

        given = {name: params[name] for name in FIELDS if name in params}
        user_config = params.get("generation_config")
        chosen = {k: v for k, v in self.model.generation_config.to_dict().items() if k in FIELDS and v is not None}
        if user_config is not None:
            chosen.update({k: v for k, v in user_config.to_dict().items() if k in FIELDS and v is not None})
        chosen.update(given)
        added = {k: v for k, v in _GENERATION_DEFAULTS.items()
                 if k not in chosen and not (k == "max_new_tokens" and "max_length" in chosen)}
        if self.tokenizer.pad_token_id is not None and "pad_token_id" not in chosen:
            added["pad_token_id"] = self.tokenizer.pad_token_id
        if not {**chosen, **added}.get("do_sample"):
            added = {k: v for k, v in added.items() if k not in _SAMPLING_SETTINGS}
        prefix = self._prefix(params)
        if prefix:
            prefix_length = len(self.tokenizer(prefix, add_special_tokens=params.get("add_special_tokens", False))[
                "input_ids"])
            for total, new in (("max_length", "max_new_tokens"), ("min_length", "min_new_tokens")):
                if total in chosen and new not in chosen:
                    given[total] = chosen[total] + prefix_length
        kwargs = {**given, **added}
        if user_config is not None:
            user_config = copy.deepcopy(user_config)
            user_config.update(**added)
            kwargs = {**given, "generation_config": user_config}
        if params.get("streamer") is not None:
            kwargs["streamer"] = params["streamer"]
        kwargs["tokenizer"] = self.tokenizer  # stop strings, from the call or the checkpoint, are read with it
        return kwargs

    def _run(self, items: list[Any], params: dict[str, Any]) -> list[Any]:
        import torch

        prompts = [self._prompt_ids(item, params) for item in items]
        kwargs = self._generate_kwargs(params)
        longest = max(len(ids) for ids in prompts)
        pad = self.tokenizer.pad_token_id
        if pad is None:  # the mask hides padding, so any id will do; the reference would refuse to batch
            pad = self.tokenizer.eos_token_id or 0
        input_ids = torch.full((len(prompts), longest), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), longest), dtype=torch.long)
        for row, ids in enumerate(prompts):
            input_ids[row, longest - len(ids):] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, longest - len(ids):] = 1
        with torch.inference_mode():
            output = self.model.generate(
                input_ids.to(self.device), attention_mask=attention_mask.to(self.device), **kwargs
            ).cpu()
        per_prompt = output.shape[0] // len(prompts)
        eos = self._eos_ids(kwargs)
        results = []
        for row, (item, ids) in enumerate(zip(items, prompts)):
            records = []
            for sequence in output[row * per_prompt : (row + 1) * per_prompt].tolist():
                new = sequence[longest:]
                # A row that stopped before the batch did is filled after its EOS: its own run ends there.
                end = next((i + 1 for i, token in enumerate(new) if token in eos), len(new))
                records.append(self._record(item, ids, new[:end], params))
            results.append(records)
        return results

    def _eos_ids(self, kwargs: dict[str, Any]) -> set[int]:
        config = kwargs.get("generation_config")
        eos = kwargs.get("eos_token_id", getattr(config, "eos_token_id", None) if config is not None else None)
        if eos is None:
            eos = self.model.generation_config.eos_token_id
        return set() if eos is None else set(eos) if isinstance(eos, (list, tuple)) else {eos}

    def _record(self, item: Any, prompt: list[int], new: list[int], params: dict[str, Any]) -> dict[str, Any]:
        if params.get("return_tensors"):
            return {"generated_token_ids": prompt + new}
        decode_options = {"skip_special_tokens": params.get("skip_special_tokens", True)}
        if "clean_up_tokenization_spaces" in params:
            decode_options["clean_up_tokenization_spaces"] = params["clean_up_tokenization_spaces"]
        text = self.tokenizer.decode(new, **decode_options)
        if params.get("return_full_text") is False:
            return {"generated_text": text}
        if isinstance(item, str):
            return {"generated_text": item + text}
        if self._continues(item, params):
            last = item[-1]
            return {"generated_text": [*item[:-1], {"role": last["role"], "content": last["content"] + text}]}
        return {"generated_text": [*item, {"role": "assistant", "content": text}]}


# -- images ---------------------------------------------------------------------------------------


def _mapping(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{name} must be a dict of options, got {_describe(value)}.")
    return dict(value)


class _ImagePipeline(Pipeline):
    def __call__(self, inputs: Any = None, **kwargs: Any) -> Any:
        if "images" in kwargs:
            inputs = kwargs.pop("images")
        return super().__call__(inputs, **kwargs)

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

    def _pixel_batch(self, items: list[Any], params: dict[str, Any]) -> Any:
        """The items' (batch, channels, height, width) pixel values from one processor call, whose
        threads decode and resize the images side by side (one call per image would run them in turn)."""
        options = params.get("image_processor_kwargs") or {}  # an option of the tasks that take it
        pixels = self.image_processor(list(items), return_tensors="pt", **options)["pixel_values"]
        if len(pixels) != len(items):  # an item was a 4-D array: a batch, which the processor split
            raise InputError(f"The {self.task} pipeline takes one image per item; got a batch of images as one item "
                             "(a 4-D array). Pass a list of images instead.")
        return pixels

    def _run(self, items: list[Any], params: dict[str, Any]) -> list[Any]:
        features = [Feature({"pixel_values": row}) for row in self._pixel_batch(items, params)]
        outputs = self._forward(features)
        return [self._postprocess(item, [feature], [output], params)
                for item, feature, output in zip(items, features, outputs)]


class ImageClassificationPipeline(_ImagePipeline):
    """``pipe(image)`` -> the ``top_k`` (default 5) ``{"label", "score"}``, best first."""

    task = "image-classification"
    options = {
        "top_k": (COUNT, False),
        "function_to_apply": (_SCORE_FUNCTION, False),
        "timeout": (_ANY, False),  # the reference's download timeout: images here are local
    }

    def _postprocess(self, item, features, outputs, params):
        return _ranked(outputs[0]["logits"], self.model.config, params.get("function_to_apply"), params.get("top_k", 5))


class ImageFeatureExtractionPipeline(_ImagePipeline):
    """``pipe(image)`` -> the last hidden state as nested lists (``[1, ...]``), ``pooler_output``
    with ``pool=True``; a backbone gives one ``[1, C, H, W]`` feature map per stage."""

    task = "image-feature-extraction"
    options = {
        "pool": (_FLAG, True), "return_tensors": (_FLAG, True), "image_processor_kwargs": (_mapping, False),
        "timeout": (_ANY, False),
    }

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


class ZeroShotImageClassificationPipeline(_ImagePipeline):
    """``pipe(image, candidate_labels=["a cat", "a dog"])`` -> ``[{"score", "label"}]`` for every label,
    best first (a list of those per image for a list of images). Each label becomes the text
    ``hypothesis_template.format(label)``; an image-text model (CLIP, SigLIP) scores every text against
    the image: CLIP's logits softmaxed over the labels, SigLIP's each passed through a sigmoid alone."""

    task = "zero-shot-image-classification"
    options = {
        "candidate_labels": (_candidate_labels, False),
        "hypothesis_template": (_hypothesis_template, False),
        "tokenizer_kwargs": (_mapping, False),
        "timeout": (_ANY, False),  # the reference's download timeout: images here are local
    }

    @classmethod
    def check_model(cls, model: Any) -> None:
        if not callable(getattr(model, "get_text_features", None)) or not callable(
            getattr(model, "get_image_features", None)
        ):
            raise UnsupportedModelError(
                f"zero-shot image classification needs an image-text model with both towers (CLIPModel, "
                f"SiglipModel); got {type(model).__name__}. Load the full checkpoint, not one tower."
            )

    def __init__(self, model: Any, *args: Any, **kwargs: Any) -> None:
        self.check_model(model)
        super().__init__(model, *args, **kwargs)
        # SigLIP was trained on texts padded to 64 tokens, and judges each label alone
        self._sigmoid = "siglip" in (getattr(model.config, "model_type", "") or "")

    def __call__(self, inputs: Any = None, *args: Any, **kwargs: Any) -> Any:
        if args:  # the reference takes the labels as the second positional argument
            if len(args) > 1 or "candidate_labels" in kwargs:
                raise InputError("zero-shot image classification takes the images, then the candidate labels; "
                                 "got more.")
            kwargs["candidate_labels"] = args[0]
        return super().__call__(inputs, **kwargs)

    def _parameters(self, kwargs):
        params = super()._parameters(kwargs)
        params.setdefault("hypothesis_template", "This is a photo of {}.")
        return params

    def _text_inputs(self, texts: list[str], tokenizer_kwargs: dict[str, Any] | None = None,
                     fix: str = "tokenizer_kwargs={'truncation': True}") -> dict[str, Any]:
        options: dict[str, Any] = {"padding": True}
        if self._sigmoid:
            options.update(padding="max_length", max_length=64, truncation=True)
        options.update(tokenizer_kwargs or {})
        encoded = self.tokenizer(texts, return_tensors="pt", **options)
        self._check_text_length(texts, encoded, fix)
        return {name: value.to(self.device) for name, value in encoded.items()
                if self._forward_names is None or name in self._forward_names}

    def _check_text_length(self, texts: list[str], encoded: Any, fix: str) -> None:
        """Texts longer than the text tower's positions are refused here, naming the text: CLIP's
        tokenizer does not cut them unless asked (the reference then fails in the model)."""
        text_config = getattr(self.model.config, "text_config", self.model.config)
        limit = getattr(text_config, "max_position_embeddings", None)
        ids = encoded["input_ids"]
        if not isinstance(limit, int) or ids.shape[-1] <= limit:
            return
        mask = encoded.get("attention_mask")
        lengths = (mask.sum(dim=-1) if mask is not None else ids.new_full(ids.shape[:1], ids.shape[-1])).tolist()
        longest = max(range(len(texts)), key=lambda index: lengths[index])
        text = texts[longest] if len(texts[longest]) <= 60 else texts[longest][:57] + "..."
        raise InputError(
            f"The text {text!r} is {lengths[longest]} tokens long, but the text tower of {type(self.model).__name__} "
            f"reads at most {limit} (max_position_embeddings). Shorten it, or let the tokenizer cut it: "
            f"{fix}."
        )

    def _pixels(self, images: list[Any]) -> Any:
        params = self._defaults
        return self._pixel_batch([self._check_item(image, params) for image in images], params).to(
            self.device, self.dtype
        )

    def text_embeddings(self, texts: list[str], truncation: bool = False) -> Any:
        """The texts' embeddings, L2-normalised (a float32 CPU tensor, a row per text), as the model
        compares them with images: ``image_embeddings(images) @ text_embeddings(texts).T`` ranks images.
        A text longer than the text tower's positions raises InputError, or with ``truncation`` is cut
        to them by the tokenizer."""
        import torch

        if not isinstance(texts, (list, tuple)) or not texts or not all(isinstance(t, str) for t in texts):
            raise InputError(f"text_embeddings takes a non-empty list of strings, got {_describe(texts)}.")
        inputs = self._text_inputs(list(texts), {"truncation": True} if truncation else None,
                                   fix="text_embeddings(texts, truncation=True)")
        with torch.inference_mode():
            embeds = self.model.get_text_features(**inputs, return_dict=True).pooler_output
        return torch.nn.functional.normalize(embeds.float(), dim=-1).cpu()

    def image_embeddings(self, images: list[Any]) -> Any:
        """The images' (PIL images, arrays or paths) embeddings, L2-normalised, in one forward pass."""
        import torch

        if not isinstance(images, (list, tuple)) or not images:
            raise InputError(f"image_embeddings takes a non-empty list of images, got {_describe(images)}.")
        with torch.inference_mode():
            embeds = self.model.get_image_features(
                pixel_values=self._pixels(images), return_dict=True, pooled_only=True
            ).pooler_output
        return torch.nn.functional.normalize(embeds.float(), dim=-1).cpu()

    def _run(self, items: list[Any], params: dict[str, Any]) -> list[Any]:
        import torch

        if "candidate_labels" not in params:
            raise InputError("zero-shot image classification needs candidate_labels, e.g. candidate_labels=['a cat', "
                             "'a dog'].")
        texts = [params["hypothesis_template"].format(label) for label in params["candidate_labels"]]
        # the texts are encoded once for the whole batch of images: one forward scores every pair
        text_inputs = self._text_inputs(texts, params.get("tokenizer_kwargs"))
        pixels = self._pixel_batch(items, params)
        with torch.inference_mode():
            output = self.model(pixel_values=pixels.to(self.device, self.dtype), **text_inputs, return_dict=True)
        logits = output.logits_per_image.float().cpu()
        scores = logits.sigmoid() if self._sigmoid else logits.softmax(dim=-1)
        labels = params["candidate_labels"]
        results = []
        for row in scores.tolist():
            # best first; equal scores keep the labels' order, as the reference's stable sort does
            ranked = sorted(zip(row, labels), key=lambda pair: -pair[0])
            results.append([{"score": score, "label": label} for score, label in ranked])
        return results


# -- the factory ----------------------------------------------------------------------------------


def _check_vocabularies(tokenizer: Any, config: Any) -> None:
    """A tokenizer that can produce ids past the model's embedding matrix belongs to another model."""
    rows, size = getattr(config, "vocab_size", None), getattr(tokenizer, "vocab_size", None)
    if not isinstance(rows, int) or not isinstance(size, int):
        return
    # The model's ids are 0..size-1 and added tokens may sit anywhere: this avoids building the whole
    # vocabulary (a quarter of a second for XLM-R's 250k pieces).
    largest = max(size - 1, *getattr(tokenizer, "added_tokens_decoder", {}) or [-1])
    if largest >= rows:
        where = getattr(tokenizer, "name_or_path", "") or "the tokenizer"
        names = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spm.model", "added_tokens.json")
        files = [name for name in names if os.path.isfile(os.path.join(where, name))] or ["its vocabulary files"]
        raise TokenizerError(
            f"The tokenizer of {where} ({', '.join(files)}, with its added tokens) gives ids up to "
            f"{largest}, but the model's config.json has vocab_size {rows}: they are not the same model's. Load the "
            f"tokenizer that belongs to this checkpoint, or fix vocab_size in config.json."
        )


def pipeline(
    task: str | None = None, model: Any = None, *, tokenizer: Any = None, image_processor: Any = None,
    feature_extractor: Any = None, device: Any = None, batch_size: int = 1, dtype: Any = None,
    gguf_file: str | None = None, **kwargs: Any,
) -> Pipeline:
    """A ready pipeline for ``task`` (None: from ``config.architectures``) over ``model`` (a checkpoint
    folder / hub id, or a loaded model); processors not given come from the checkpoint. Checkpoint options
    (``revision``, ``token``...) apply to model and processors, other loading options go in
    ``model_kwargs``, and remaining keywords are the task's call options, as defaults (``top_k=3``).
    ``gguf_file`` (a file in the checkpoint) is passed to every ``from_pretrained`` that loads it."""
    from . import auto
    from .hub import split_source_options

    if model is None:
        raise InputError("pipeline() needs model= (a checkpoint folder, a hub id or a loaded model); leanformers "
                         "picks no default model for a task.")
    model_kwargs = dict(kwargs.pop("model_kwargs", None) or {})
    kwargs.pop("trust_remote_code", None)  # never honoured: leanformers runs no checkpoint code
    source_options, kwargs = split_source_options(kwargs)
    source_options.update(split_source_options(model_kwargs)[0])
    if gguf_file is not None:
        source_options["gguf_file"] = gguf_file
    model_kwargs.update(source_options)
    dtype = _dtype_of(dtype if dtype is not None else kwargs.pop("torch_dtype", None))
    if dtype is not None:
        model_kwargs["dtype"] = dtype
    device = _device_of(device)
    languages = TRANSLATION_TASK.match(task) if isinstance(task, str) else None
    if languages:  # "translation_en_to_de": the languages become the pipeline's defaults
        kwargs.setdefault("src_lang", languages[1])
        kwargs.setdefault("tgt_lang", languages[2])
    task = resolve_task(task) if task is not None else None
    if isinstance(model, (str, os.PathLike)):
        checkpoint = os.fspath(model)
        if task is not None and "subfolder" not in source_options:
            subfolder = _pipeline_class(task).model_subfolder(checkpoint, source_options)
            if subfolder:
                source_options["subfolder"] = model_kwargs["subfolder"] = subfolder
        config = auto.AutoConfig.from_pretrained(checkpoint, **source_options)
    elif hasattr(model, "config") and callable(getattr(model, "forward", None)):
        checkpoint, config = getattr(model.config, "name_or_path", None) or None, model.config
    else:
        raise InputError(f"model must be a checkpoint path, a hub id or a loaded model, got {_describe(model)}.")
    task = task or infer_task(config)
    spec = TASKS[task]
    if isinstance(model, (str, os.PathLike)):
        if task == "image-feature-extraction" and modality(config.model_type) == "vision-text":
            # an image-text checkpoint (CLIP, SigLIP): its image tower, as a tower's own checkpoint would load
            from . import registry

            tower = registry.model_class_for(config.model_type, "vision-model", where=checkpoint)
            model = tower.from_pretrained(checkpoint, **model_kwargs)
        else:
            auto_class = getattr(auto, _pipeline_class(task).auto_model_name(config, spec))
            model = auto_class.from_pretrained(checkpoint, **model_kwargs)
    elif dtype is not None and dtype != "auto":
        model = model.to(dtype)
    _pipeline_class(task).check_model(model)
    processors = {"tokenizer": tokenizer, "image_processor": image_processor, "feature_extractor": feature_extractor}
    for name in spec.processors:
        source = processors[name] if processors[name] is not None else checkpoint
        if not source:
            raise InputError(f"The {task} pipeline needs a {name}: pass {name}= (the model has no checkpoint path).")
        if isinstance(source, (str, os.PathLike)):
            processors[name] = getattr(auto, PROCESSOR_CLASSES[name]).from_pretrained(source, **source_options)
    if processors["tokenizer"] is not None:
        _check_vocabularies(processors["tokenizer"], model.config)
    return _pipeline_class(task)(model, device=device, batch_size=batch_size, **processors, **kwargs)


def _pipeline_class(task: str) -> type[Pipeline]:
    spec = TASKS[task]
    return getattr(importlib.import_module(spec.module), spec.pipeline_class(task))


__all__ = [
    "FeatureExtractionPipeline",
    "FillMaskPipeline", "ImageClassificationPipeline", "ImageFeatureExtractionPipeline", "Pipeline",
    "QuestionAnsweringPipeline", "TextClassificationPipeline", "TextGenerationPipeline", "TokenClassificationPipeline",
    "ZeroShotClassificationPipeline", "ZeroShotImageClassificationPipeline", "infer_task",
    "pipeline", "resolve_task",
]

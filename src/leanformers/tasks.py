"""The pipeline tasks, and which of them a checkpoint serves.

Every entry point asks :data:`TASKS` and :func:`task_of`, so a checkpoint means the same task everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import InputError, UnknownNameError, UnsupportedModelError


@dataclass(frozen=True)
class TaskSpec:
    """A task's Auto model class (in ``leanformers.auto``), its processors, what one input is
    ("text", "image" or "audio"), and the Auto class for a backbone checkpoint where one may serve."""

    auto_model: str
    processors: tuple[str, ...]
    inputs: str
    backbone_auto_model: str | None = None
    module: str = "leanformers.pipelines"  # where the pipeline class lives
    class_name: str = ""  # the pipeline class, where the task's name does not spell it

    def pipeline_class(self, task: str) -> str:
        return self.class_name or "".join(word.capitalize() for word in task.split("-")) + "Pipeline"


TASKS: dict[str, TaskSpec] = {
    "text-classification": TaskSpec("AutoModelForSequenceClassification", ("tokenizer",), "text"),
    "token-classification": TaskSpec("AutoModelForTokenClassification", ("tokenizer",), "text"),
    "question-answering": TaskSpec("AutoModelForQuestionAnswering", ("tokenizer",), "text"),
    "feature-extraction": TaskSpec("AutoModel", ("tokenizer",), "text"),
    "sentence-embedding": TaskSpec("AutoModel", ("tokenizer",), "text", module="leanformers.sentence"),
    "zero-shot-classification": TaskSpec("AutoModelForSequenceClassification", ("tokenizer",), "text"),
    "fill-mask": TaskSpec("AutoModelForMaskedLM", ("tokenizer",), "text"),
    "text-generation": TaskSpec("AutoModelForCausalLM", ("tokenizer",), "text"),
    "text2text-generation": TaskSpec(
        "AutoModelForSeq2SeqLM", ("tokenizer",), "text", module="leanformers.text2text",
        class_name="Text2TextGenerationPipeline",
    ),
    "summarization": TaskSpec("AutoModelForSeq2SeqLM", ("tokenizer",), "text", module="leanformers.text2text"),
    "translation": TaskSpec("AutoModelForSeq2SeqLM", ("tokenizer",), "text", module="leanformers.text2text"),
    "image-classification": TaskSpec("AutoModelForImageClassification", ("image_processor",), "image"),
    "image-feature-extraction": TaskSpec("AutoModel", ("image_processor",), "image", "AutoBackbone"),
    "zero-shot-image-classification": TaskSpec("AutoModel", ("image_processor", "tokenizer"), "image"),
    "audio-classification": TaskSpec(
        "AutoModelForAudioClassification", ("feature_extractor",), "audio", module="leanformers.speech"
    ),
    "automatic-speech-recognition": TaskSpec(
        "AutoModelForCTC", ("feature_extractor", "tokenizer"), "audio", module="leanformers.speech"
    ),
}

# Processor kind -> the Auto class (in ``leanformers.auto``) that loads it.
PROCESSOR_CLASSES = {
    "tokenizer": "AutoTokenizer", "image_processor": "AutoImageProcessor", "feature_extractor": "AutoFeatureExtractor"
}

TASK_ALIASES: dict[str, str] = {"sentiment-analysis": "text-classification", "ner": "token-classification"}

# "translation_en_to_de": the translation task with its source and target languages.
TRANSLATION_TASK = re.compile(r"^translation_([A-Za-z-]+)_to_([A-Za-z-]+)$")

# Architecture class-name suffix -> {modality: task}; the first suffix that matches decides.
ARCHITECTURE_TASKS: tuple[tuple[str, dict[str, str]], ...] = (
    ("ForSequenceClassification", {"text": "text-classification", "audio": "audio-classification"}),
    ("ForAudioClassification", {"audio": "audio-classification"}),
    ("ForTokenClassification", {"text": "token-classification"}),
    ("ForQuestionAnswering", {"text": "question-answering"}),
    ("ForMaskedLM", {"text": "fill-mask"}),
    ("ForCausalLM", {"text": "text-generation"}),
    ("ForConditionalGeneration", {"text": "text2text-generation", "audio": "automatic-speech-recognition"}),
    ("MTModel", {"text": "translation"}),
    ("ForImageClassification", {"vision": "image-classification", "vision-text": "image-classification"}),
    ("ForCTC", {"audio": "automatic-speech-recognition"}),
    ("Backbone", {"vision": "image-feature-extraction"}),
    # the towers of an image-text model: the image tower embeds images; the text tower alone serves no pipeline
    ("VisionModel", {"vision": "image-feature-extraction", "vision-text": "image-feature-extraction"}),
    ("VisionModelWithProjection", {"vision": "image-feature-extraction", "vision-text": "image-feature-extraction"}),
    ("TextModel", {}),
    ("TextModelWithProjection", {}),
    ("Model", {"text": "feature-extraction", "vision": "image-feature-extraction",
               "vision-text": "zero-shot-image-classification"}),
)


def _task_list() -> str:
    aliases = ", ".join(f"{alias!r} (= {task!r})" for alias, task in TASK_ALIASES.items())
    return f"{', '.join(repr(t) for t in sorted(TASKS))}; aliases: {aliases}"


def resolve_task(task: Any) -> str:
    """``task`` with its alias resolved; :class:`UnknownNameError` for a task with no pipeline."""
    if not isinstance(task, str):
        raise InputError(f"task must be a string, got {type(task).__name__}. Supported tasks: {_task_list()}.")
    task = TASK_ALIASES.get(task, task)
    if TRANSLATION_TASK.match(task):
        return "translation"
    if task not in TASKS:
        raise UnknownNameError(f"{task!r} is an unknown task; supported tasks: {_task_list()}.")
    return task


def modality(model_type: str | None) -> str:
    """"vision-text" (an image tower and a text tower, e.g. CLIP), "vision", "audio" or "text": what a model
    type reads, told by the heads registered for it."""
    from . import registry

    heads = registry.MODELS.get(model_type, ("", "", {}))[2]
    if "vision-model" in heads and "text-model" in heads:
        return "vision-text"
    names = heads.values()
    if any(name.endswith(("VisionModel", "VisionModelWithProjection")) for name in names):
        return "vision"
    if any(name.endswith(("ForImageClassification", "Backbone")) for name in names):
        return "vision"
    if heads.keys() & {"ctc", "speech-seq2seq", "audio-classification"}:
        return "audio"
    return "text"


def task_of(architecture: str, model_type: str | None) -> str | None:
    """THE answer to "which pipeline task does this model serve": the task of ``architecture``
    (a class name such as ``BertForMaskedLM``) for a ``model_type`` model, or None."""
    kind = modality(model_type)
    for suffix, by_modality in ARCHITECTURE_TASKS:
        if architecture.endswith(suffix):
            return by_modality.get(kind)
    return None


def infer_task(config: Any) -> str:
    """The task a checkpoint's ``config.architectures[0]`` serves; :class:`UnsupportedModelError`
    saying which ``task=`` to pass where it serves none."""
    architectures = getattr(config, "architectures", None) or []
    model_type = getattr(config, "model_type", None)
    if not architectures:
        raise UnsupportedModelError(
            f"Cannot infer the task: the config (model_type {model_type!r}) lists no 'architectures'. "
            f"Pass task=, one of {_task_list()}."
        )
    task = task_of(architectures[0], model_type)
    if task is None:
        raise UnsupportedModelError(
            f"Cannot infer a pipeline task for architecture {architectures[0]!r} ({modality(model_type)} model). "
            f"Pass task=, one of {_task_list()}."
        )
    return task


def input_kind(task: str | None) -> str:
    """What one input of ``task`` is: "text" (also for an unknown or no task), "image" or "audio"."""
    spec = TASKS.get(TASK_ALIASES.get(task or "", task or ""))
    return spec.inputs if spec is not None else "text"

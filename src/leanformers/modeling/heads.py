"""Task heads written once over any base model (text encoders; image classification too).

A family gets its heads from a few lines of data: a subclass names the base model class
(``base_model_class``), the config keys its dropout comes from (``dropout_keys``, first one set wins),
and, for masked LM, the module that predicts tokens. The base model lives under the family's
``base_model_prefix``, so checkpoint keys (``bert.encoder...``, ``classifier.weight``) stay exact.
Where a family's head differs in shape (DistilBERT's pre-classifier), it overrides ``build_head``
and ``classify``; everything else (calling the base model, losses, output types, tuples) is here.

Heads pass inputs through to the base model unchanged and ask it to skip padded positions
(``padding_in_output``) where they read none, which lets it run unpadded.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .attention import real_positions_only
from .base import PreTrainedModel
from .losses import (
    masked_lm_loss,
    question_answering_loss,
    sequence_classification_loss,
    token_classification_loss,
)
from .outputs import (
    ImageClassifierOutput,
    MaskedLMOutput,
    ModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)


class TaskHead(PreTrainedModel):
    """A base model under ``base_model_prefix`` plus a head built by ``build_head``."""

    base_model_class: ClassVar[type[nn.Module]]
    base_model_kwargs: ClassVar[dict[str, Any]] = {}
    dropout_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        setattr(self, self.base_model_prefix, self.base_model_class(config, **self.base_model_kwargs))
        self.dropout = next((v for v in (getattr(config, k, None) for k in self.dropout_keys) if v is not None), 0.0)
        self.build_head(config)

    def build_head(self, config: Any) -> None:
        raise NotImplementedError

    def run_base(self, args: tuple, kwargs: dict[str, Any], padding_in_output: bool) -> ModelOutput:
        return self.base_model(*args, return_dict=True, padding_in_output=padding_in_output, **kwargs)

    @staticmethod
    def pooled(outputs: ModelOutput) -> torch.Tensor:
        """The base's pooled output, else its first position's hidden state."""
        pooled = outputs.get("pooler_output")
        return outputs.last_hidden_state[:, 0] if pooled is None else pooled

    def finish(self, output: ModelOutput, return_dict: bool | None) -> ModelOutput | tuple:
        return_dict = self.config.use_return_dict if return_dict is None else return_dict
        return output if return_dict else output.to_tuple()


class ForSequenceClassification(TaskHead):
    """Pooled output (the base's pooler, else the first token) -> dropout -> linear classifier."""

    def build_head(self, config: Any) -> None:
        self.num_labels = config.num_labels
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def classify(self, outputs: ModelOutput) -> torch.Tensor:
        return self.classifier(F.dropout(self.pooled(outputs), self.dropout, self.training))

    def forward(
        self, *args: Any, labels: torch.Tensor | None = None, return_dict: bool | None = None, **kwargs: Any
    ) -> SequenceClassifierOutput | tuple:
        outputs = self.run_base(args, kwargs, padding_in_output=False)  # the head reads position 0 only
        logits = self.classify(outputs)
        loss = sequence_classification_loss(logits, labels, self.config) if labels is not None else None
        return self.finish(SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        ), return_dict)


class ForImageClassification(TaskHead):
    """Pooled features (the base's pooler, else the first token) -> linear classifier (or regressor
    when num_labels == 1). ``output_class`` names the output type; its fields besides loss and logits
    come from the base model's output."""

    output_class: ClassVar[type[ModelOutput]] = ImageClassifierOutput

    def build_head(self, config: Any) -> None:
        self.num_labels = config.num_labels
        self.classifier = nn.Linear(self.features_width(config), config.num_labels)

    def features_width(self, config: Any) -> int:
        return config.hidden_size

    def forward(
        self, pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None,
        return_dict: bool | None = None, **kwargs: Any,
    ) -> ModelOutput | tuple:
        outputs = self.base_model(pixel_values, return_dict=True, **kwargs)
        logits = self.classifier(self.pooled(outputs))
        loss = sequence_classification_loss(logits, labels, self.config) if labels is not None else None
        passed = {f.name: outputs.get(f.name) for f in dataclasses.fields(self.output_class)}
        return self.finish(self.output_class(**{**passed, "loss": loss, "logits": logits}), return_dict)


class ForTokenClassification(TaskHead):
    """Every token's hidden state -> dropout -> linear classifier (``token_logits``, which a family
    with more layers before the classifier overrides)."""

    def build_head(self, config: Any) -> None:
        self.num_labels = config.num_labels
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def token_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.dropout(hidden, self.dropout, self.training))

    def forward(
        self, *args: Any, labels: torch.Tensor | None = None, return_dict: bool | None = None,
        padding_in_output: bool = True, **kwargs: Any,
    ) -> TokenClassifierOutput | tuple:
        outputs = self.run_base(args, kwargs, padding_in_output)
        logits = self.token_logits(outputs.last_hidden_state)
        loss = token_classification_loss(logits, labels, self.num_labels) if labels is not None else None
        return self.finish(TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        ), return_dict)


class ForQuestionAnswering(TaskHead):
    """Extractive QA: (dropout, then) a linear layer gives every token a start and an end logit
    (``token_logits``)."""

    def build_head(self, config: Any) -> None:
        if config.num_labels != 2:
            raise ConfigError(
                f"{type(self).__name__} needs num_labels=2 (start and end logits), got {config.num_labels}."
            )
        self.num_labels = 2
        self.qa_outputs = nn.Linear(config.hidden_size, 2)

    def token_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.qa_outputs(F.dropout(hidden, self.dropout, self.training))

    def forward(
        self, *args: Any, start_positions: torch.Tensor | None = None, end_positions: torch.Tensor | None = None,
        return_dict: bool | None = None, padding_in_output: bool = True, **kwargs: Any,
    ) -> QuestionAnsweringModelOutput | tuple:
        outputs = self.run_base(args, kwargs, padding_in_output)
        logits = self.token_logits(outputs.last_hidden_state)
        start_logits, end_logits = (t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = question_answering_loss(start_logits, end_logits, start_positions, end_positions)
        return self.finish(QuestionAnsweringModelOutput(
            loss=loss, start_logits=start_logits, end_logits=end_logits,
            hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        ), return_dict)


class ForMaskedLM(TaskHead):
    """Token prediction over the vocabulary by the family's ``lm_head_class``, stored as ``lm_head_name``;
    its output matrix is tied to the word embeddings through the family's ``_tied_weights``."""

    lm_head_name: ClassVar[str] = "lm_head"
    lm_head_class: ClassVar[type[nn.Module]]

    def build_head(self, config: Any) -> None:
        setattr(self, self.lm_head_name, self.lm_head_class(config))

    def predict(self, hidden: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.lm_head_name)(hidden)

    def get_output_embeddings(self) -> nn.Module:
        target = next(key for key in self._tied_weights if key.endswith(".weight"))
        return self.get_submodule(target.rpartition(".")[0])

    def forward(
        self, *args: Any, labels: torch.Tensor | None = None, return_dict: bool | None = None,
        padding_in_output: bool = True, **kwargs: Any,
    ) -> MaskedLMOutput | tuple:
        outputs = self.run_base(args, kwargs, padding_in_output)
        attention_mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
        logits = real_positions_only(self.predict, outputs.last_hidden_state, attention_mask, padding_in_output)
        loss = masked_lm_loss(logits, labels) if labels is not None else None
        return self.finish(MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        ), return_dict)


__all__ = ["ForImageClassification", "ForMaskedLM", "ForQuestionAnswering", "ForSequenceClassification", "ForTokenClassification", "TaskHead"]

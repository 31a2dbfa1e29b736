"""CamemBERT (Martin et al., 2020): RoBERTa trained on French; the architecture, weights' names
(``roberta.`` prefix included) and heads are RoBERTa's, only the model type differs."""

from __future__ import annotations

from typing import Any, ClassVar

from .roberta import (
    RobertaConfig,
    RobertaForMaskedLM,
    RobertaForQuestionAnswering,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
    RobertaModel,
)


class CamembertConfig(RobertaConfig):
    model_type: ClassVar[str] = "camembert"
    defaults: ClassVar[dict[str, Any]] = {**RobertaConfig.defaults, "vocab_size": 30522}


class CamembertModel(RobertaModel):
    config_class = CamembertConfig


class CamembertForSequenceClassification(RobertaForSequenceClassification):
    config_class = CamembertConfig
    base_model_class = CamembertModel


class CamembertForTokenClassification(RobertaForTokenClassification):
    config_class = CamembertConfig
    base_model_class = CamembertModel


class CamembertForQuestionAnswering(RobertaForQuestionAnswering):
    config_class = CamembertConfig
    base_model_class = CamembertModel


class CamembertForMaskedLM(RobertaForMaskedLM):
    config_class = CamembertConfig
    base_model_class = CamembertModel


__all__ = [
    "CamembertConfig",
    "CamembertForMaskedLM",
    "CamembertForQuestionAnswering",
    "CamembertForSequenceClassification",
    "CamembertForTokenClassification",
    "CamembertModel",
]

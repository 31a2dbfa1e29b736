"""XLM-RoBERTa (Conneau et al., 2019): RoBERTa trained on 100 languages; the architecture, weights'
names (``roberta.`` prefix included) and heads are RoBERTa's, only the model type differs."""

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


class XLMRobertaConfig(RobertaConfig):
    model_type: ClassVar[str] = "xlm-roberta"
    defaults: ClassVar[dict[str, Any]] = {**RobertaConfig.defaults, "vocab_size": 30522}


class XLMRobertaModel(RobertaModel):
    config_class = XLMRobertaConfig


class XLMRobertaForSequenceClassification(RobertaForSequenceClassification):
    config_class = XLMRobertaConfig
    base_model_class = XLMRobertaModel


class XLMRobertaForTokenClassification(RobertaForTokenClassification):
    config_class = XLMRobertaConfig
    base_model_class = XLMRobertaModel


class XLMRobertaForQuestionAnswering(RobertaForQuestionAnswering):
    config_class = XLMRobertaConfig
    base_model_class = XLMRobertaModel


class XLMRobertaForMaskedLM(RobertaForMaskedLM):
    config_class = XLMRobertaConfig
    base_model_class = XLMRobertaModel


__all__ = [
    "XLMRobertaConfig",
    "XLMRobertaForMaskedLM",
    "XLMRobertaForQuestionAnswering",
    "XLMRobertaForSequenceClassification",
    "XLMRobertaForTokenClassification",
    "XLMRobertaModel",
]

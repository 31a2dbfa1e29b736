"""leanformers: the Transformers AutoClass system, from scratch.

Public names are resolved on first use (PEP 562), so ``import leanformers`` pulls in neither torch
nor any architecture; each name below, and every class the registry names, is imported from its
module only when it is touched.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # Auto classes
    "AutoConfig": "leanformers.auto",
    "AutoModel": "leanformers.auto",
    "AutoModelForSequenceClassification": "leanformers.auto",
    "AutoModelForTokenClassification": "leanformers.auto",
    "AutoModelForQuestionAnswering": "leanformers.auto",
    "AutoModelForMaskedLM": "leanformers.auto",
    "AutoModelForPreTraining": "leanformers.auto",
    "AutoTokenizer": "leanformers.auto",
    "AutoImageProcessor": "leanformers.auto",
    "AutoProcessor": "leanformers.auto",
    "AutoBackbone": "leanformers.auto",
    "AutoModelForImageClassification": "leanformers.auto",
    "AutoFeatureExtractor": "leanformers.auto",
    "AutoModelForAudioClassification": "leanformers.auto",
    "AutoModelForCTC": "leanformers.auto",
    "AutoModelForCausalLM": "leanformers.auto",
    "AutoModelForSeq2SeqLM": "leanformers.auto",
    "AutoModelForSpeechSeq2Seq": "leanformers.auto",
    "pipeline": "leanformers.pipelines",
    "encode": "leanformers.sentence",
    "SentenceEmbeddingPipeline": "leanformers.sentence",
    "GenerationConfig": "leanformers.modeling.generation",
    "TextStreamer": "leanformers.modeling.generation",
    "TextIteratorStreamer": "leanformers.modeling.generation",
    "set_num_threads": "leanformers.threads",
    "num_threads": "leanformers.threads",
    # base classes
    "PretrainedConfig": "leanformers.configuration",
    "PreTrainedConfig": "leanformers.configuration:PretrainedConfig",
    "PreTrainedModel": "leanformers.modeling.base",
    "PreTrainedTokenizer": "leanformers.processing.tokenizer",
    "PreTrainedTokenizerFast": "leanformers.processing.tokenizer:PreTrainedTokenizer",
    "BatchEncoding": "leanformers.processing.tokenizer",
    "BertTokenizer": "leanformers.processing.tokenizer",
    "TokenizersBackend": "leanformers.processing.tokenizer",
    "BertTokenizerFast": "leanformers.processing.tokenizer:BertTokenizer",
    "DistilBertTokenizer": "leanformers.processing.tokenizer",
    "MPNetTokenizer": "leanformers.processing.tokenizer",
    "RobertaTokenizer": "leanformers.processing.bpe",
    "RobertaTokenizerFast": "leanformers.processing.bpe:RobertaTokenizer",
    "GPT2Tokenizer": "leanformers.processing.bpe",
    "GPT2TokenizerFast": "leanformers.processing.bpe:GPT2Tokenizer",
    "Qwen2Tokenizer": "leanformers.processing.bpe",
    "Qwen2TokenizerFast": "leanformers.processing.bpe:Qwen2Tokenizer",
    "LlamaTokenizer": "leanformers.processing.sentencepiece_bpe",
    "LlamaTokenizerFast": "leanformers.processing.sentencepiece_bpe:LlamaTokenizer",
    "GemmaTokenizer": "leanformers.processing.sentencepiece_bpe",
    "GemmaTokenizerFast": "leanformers.processing.sentencepiece_bpe:GemmaTokenizer",
    "XLMRobertaTokenizer": "leanformers.processing.sentencepiece",
    "CamembertTokenizer": "leanformers.processing.sentencepiece",
    "DebertaV2Tokenizer": "leanformers.processing.sentencepiece",
    "ImageProcessor": "leanformers.processing.image",
    "BatchFeature": "leanformers.processing.features",
    "FeatureExtractor": "leanformers.processing.audio",
    "Wav2Vec2FeatureExtractor": "leanformers.processing.audio:FeatureExtractor",
    "CTCTokenizer": "leanformers.processing.ctc",
    "Wav2Vec2CTCTokenizer": "leanformers.processing.ctc:CTCTokenizer",
    "load_audio": "leanformers.processing.audio",
    # errors
    "LeanformersError": "leanformers.errors",
    "CheckpointNotFoundError": "leanformers.errors",
    "ConfigError": "leanformers.errors",
    "UnsupportedModelError": "leanformers.errors",
    "UnknownNameError": "leanformers.errors",
    "RemoteCodeError": "leanformers.errors",
    "WeightsError": "leanformers.errors",
    "InputError": "leanformers.errors",
    "TokenizerError": "leanformers.errors",
}



def _architectures() -> dict[str, str]:
    """Every config and model class the registry names, from its family's module."""
    from . import registry

    return {name: module for module, config, heads in registry.MODELS.values() for name in (config, *heads.values())}


__all__ = sorted({*_EXPORTS, *_architectures()})


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name) or _architectures().get(name)
    if target is None:
        raise AttributeError(f"module 'leanformers' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module_name), attr or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""The tables the Auto classes read. Data only: modules are named as strings and imported on
first use, so ``import leanformers`` stays light and nothing here imports an architecture.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import ConfigError, RemoteCodeError, UnsupportedModelError

# model_type -> (module, config class, {task: model class})
MODELS: dict[str, tuple[str, str, dict[str, str]]] = {
    "bert": (
        "leanformers.models.bert",
        "BertConfig",
        {
            "base": "BertModel",
            "sequence-classification": "BertForSequenceClassification",
            "token-classification": "BertForTokenClassification",
            "question-answering": "BertForQuestionAnswering",
            "masked-lm": "BertForMaskedLM",
        },
    ),
    "distilbert": (
        "leanformers.models.distilbert",
        "DistilBertConfig",
        {
            "base": "DistilBertModel",
            "sequence-classification": "DistilBertForSequenceClassification",
            "token-classification": "DistilBertForTokenClassification",
            "question-answering": "DistilBertForQuestionAnswering",
            "masked-lm": "DistilBertForMaskedLM",
        },
    ),
    "roberta": (
        "leanformers.models.roberta",
        "RobertaConfig",
        {
            "base": "RobertaModel",
            "sequence-classification": "RobertaForSequenceClassification",
            "token-classification": "RobertaForTokenClassification",
            "question-answering": "RobertaForQuestionAnswering",
            "masked-lm": "RobertaForMaskedLM",
        },
    ),
    "xlm-roberta": (
        "leanformers.models.xlm_roberta",
        "XLMRobertaConfig",
        {
            "base": "XLMRobertaModel",
            "sequence-classification": "XLMRobertaForSequenceClassification",
            "token-classification": "XLMRobertaForTokenClassification",
            "question-answering": "XLMRobertaForQuestionAnswering",
            "masked-lm": "XLMRobertaForMaskedLM",
        },
    ),
    "camembert": (
        "leanformers.models.camembert",
        "CamembertConfig",
        {
            "base": "CamembertModel",
            "sequence-classification": "CamembertForSequenceClassification",
            "token-classification": "CamembertForTokenClassification",
            "question-answering": "CamembertForQuestionAnswering",
            "masked-lm": "CamembertForMaskedLM",
        },
    ),
    "mpnet": (
        "leanformers.models.mpnet",
        "MPNetConfig",
        {
            "base": "MPNetModel",
            "sequence-classification": "MPNetForSequenceClassification",
            "token-classification": "MPNetForTokenClassification",
            "question-answering": "MPNetForQuestionAnswering",
            "masked-lm": "MPNetForMaskedLM",
        },
    ),
    "electra": (
        "leanformers.models.electra",
        "ElectraConfig",
        {
            "base": "ElectraModel",
            "sequence-classification": "ElectraForSequenceClassification",
            "token-classification": "ElectraForTokenClassification",
            "question-answering": "ElectraForQuestionAnswering",
            "masked-lm": "ElectraForMaskedLM",
            "pretraining": "ElectraForPreTraining",
        },
    ),
    "deberta-v2": (
        "leanformers.models.deberta_v2",
        "DebertaV2Config",
        {
            "base": "DebertaV2Model",
            "sequence-classification": "DebertaV2ForSequenceClassification",
            "token-classification": "DebertaV2ForTokenClassification",
            "question-answering": "DebertaV2ForQuestionAnswering",
            "masked-lm": "DebertaV2ForMaskedLM",
        },
    ),
    "modernbert": (
        "leanformers.models.modernbert",
        "ModernBertConfig",
        {
            "base": "ModernBertModel",
            "sequence-classification": "ModernBertForSequenceClassification",
            "token-classification": "ModernBertForTokenClassification",
            "question-answering": "ModernBertForQuestionAnswering",
            "masked-lm": "ModernBertForMaskedLM",
        },
    ),
    "vit": (
        "leanformers.models.vit",
        "ViTConfig",
        {"base": "ViTModel", "image-classification": "ViTForImageClassification"},
    ),
    "swin": (
        "leanformers.models.swin",
        "SwinConfig",
        {"base": "SwinModel", "image-classification": "SwinForImageClassification", "backbone": "SwinBackbone"},
    ),
    "resnet": (
        "leanformers.models.resnet",
        "ResNetConfig",
        {"base": "ResNetModel", "image-classification": "ResNetForImageClassification", "backbone": "ResNetBackbone"},
    ),
    "dinov2": (
        "leanformers.models.dinov2",
        "Dinov2Config",
        {"base": "Dinov2Model", "image-classification": "Dinov2ForImageClassification", "backbone": "Dinov2Backbone"},
    ),
    "convnext": (
        "leanformers.models.convnext",
        "ConvNextConfig",
        {
            "base": "ConvNextModel",
            "image-classification": "ConvNextForImageClassification",
            "backbone": "ConvNextBackbone",
        },
    ),
    # Encoder-decoder text models.
    "t5": (
        "leanformers.models.t5",
        "T5Config",
        {"base": "T5Model", "seq2seq-lm": "T5ForConditionalGeneration", "encoder": "T5EncoderModel"},
    ),
    "bart": (
        "leanformers.models.bart",
        "BartConfig",
        {
            "base": "BartModel",
            "seq2seq-lm": "BartForConditionalGeneration",
            "sequence-classification": "BartForSequenceClassification",
        },
    ),
    "marian": ("leanformers.models.marian", "MarianConfig", {"base": "MarianModel", "seq2seq-lm": "MarianMTModel"}),
    # Image-text models: both towers under one composite config, or a tower alone.
    "clip": (
        "leanformers.models.clip",
        "CLIPConfig",
        {
            "base": "CLIPModel",
            "image-classification": "CLIPForImageClassification",
            "text-model": "CLIPTextModel",
            "vision-model": "CLIPVisionModel",
            "text-model-with-projection": "CLIPTextModelWithProjection",
            "vision-model-with-projection": "CLIPVisionModelWithProjection",
        },
    ),
    "clip_text_model": (
        "leanformers.models.clip",
        "CLIPTextConfig",
        {"base": "CLIPTextModel", "text-model-with-projection": "CLIPTextModelWithProjection"},
    ),
    "clip_vision_model": (
        "leanformers.models.clip",
        "CLIPVisionConfig",
        {"base": "CLIPVisionModel", "vision-model-with-projection": "CLIPVisionModelWithProjection"},
    ),
    "siglip": (
        "leanformers.models.siglip",
        "SiglipConfig",
        {
            "base": "SiglipModel",
            "image-classification": "SiglipForImageClassification",
            "text-model": "SiglipTextModel",
            "vision-model": "SiglipVisionModel",
        },
    ),
    "siglip_text_model": ("leanformers.models.siglip", "SiglipTextConfig", {"base": "SiglipTextModel"}),
    "siglip_vision_model": ("leanformers.models.siglip", "SiglipVisionConfig", {"base": "SiglipVisionModel"}),
    "whisper": (
        "leanformers.models.whisper",
        "WhisperConfig",
        {
            "base": "WhisperModel",
            "speech-seq2seq": "WhisperForConditionalGeneration",
            "audio-classification": "WhisperForAudioClassification",
        },
    ),
    "audio-spectrogram-transformer": (
        "leanformers.models.ast",
        "ASTConfig",
        {"base": "ASTModel", "audio-classification": "ASTForAudioClassification"},
    ),
    "wav2vec2": (
        "leanformers.models.wav2vec2",
        "Wav2Vec2Config",
        {
            "base": "Wav2Vec2Model",
            "audio-classification": "Wav2Vec2ForSequenceClassification",
            "ctc": "Wav2Vec2ForCTC",
        },
    ),
    "hubert": (
        "leanformers.models.hubert",
        "HubertConfig",
        {"base": "HubertModel", "audio-classification": "HubertForSequenceClassification", "ctc": "HubertForCTC"},
    ),
    # One config-driven decoder serves the Llama family.
    "llama": ("leanformers.models.decoder", "LlamaConfig", {"base": "LlamaModel", "causal-lm": "LlamaForCausalLM"}),
    "mistral": (
        "leanformers.models.decoder", "MistralConfig", {"base": "MistralModel", "causal-lm": "MistralForCausalLM"}
    ),
    "qwen2": ("leanformers.models.decoder", "Qwen2Config", {"base": "Qwen2Model", "causal-lm": "Qwen2ForCausalLM"}),
    "qwen3": ("leanformers.models.decoder", "Qwen3Config", {"base": "Qwen3Model", "causal-lm": "Qwen3ForCausalLM"}),
    "gemma": ("leanformers.models.decoder", "GemmaConfig", {"base": "GemmaModel", "causal-lm": "GemmaForCausalLM"}),
    "gemma2": (
        "leanformers.models.decoder", "Gemma2Config", {"base": "Gemma2Model", "causal-lm": "Gemma2ForCausalLM"}
    ),
    "gemma3_text": (
        "leanformers.models.decoder", "Gemma3TextConfig",
        {"base": "Gemma3TextModel", "causal-lm": "Gemma3ForCausalLM"},
    ),
    "phi3": ("leanformers.models.decoder", "Phi3Config", {"base": "Phi3Model", "causal-lm": "Phi3ForCausalLM"}),
    "olmo2": ("leanformers.models.decoder", "Olmo2Config", {"base": "Olmo2Model", "causal-lm": "Olmo2ForCausalLM"}),
    "gpt2": (
        "leanformers.models.gpt2",
        "GPT2Config",
        {
            "base": "GPT2Model",
            "causal-lm": "GPT2LMHeadModel",
            "sequence-classification": "GPT2ForSequenceClassification",
            "token-classification": "GPT2ForTokenClassification",
        },
    ),
}

# Tokenizer class names a checkpoint may name -> how to build one from a bare vocabulary file
# when there is no tokenizer.json: a builder of the tokenizer engine, or "module:function" for one
# that builds on it (imported on first use). Every name is served by the one tokenizer engine.
TOKENIZERS: dict[str, str] = {
    "BertTokenizer": "wordpiece",
    "BertTokenizerFast": "wordpiece",
    "DistilBertTokenizer": "wordpiece",
    "DistilBertTokenizerFast": "wordpiece",
    "ElectraTokenizer": "wordpiece",
    "MPNetTokenizer": "wordpiece",
    "RobertaTokenizer": "leanformers.processing.bpe:build_bpe_tokenizer",
    "GPT2Tokenizer": "leanformers.processing.bpe:build_bpe_tokenizer",
    "CLIPTokenizer": "leanformers.processing.bpe:build_bpe_tokenizer",
    "XLMRobertaTokenizer": "leanformers.processing.sentencepiece:build_sentencepiece_tokenizer",
    "CamembertTokenizer": "leanformers.processing.sentencepiece:build_sentencepiece_tokenizer",
    "DebertaV2Tokenizer": "leanformers.processing.sentencepiece:build_sentencepiece_tokenizer",
    "SiglipTokenizer": "leanformers.processing.sentencepiece:build_sentencepiece_tokenizer",
    "T5Tokenizer": "leanformers.processing.seq2seq_tokenizers:build_t5_tokenizer",
    "BartTokenizer": "leanformers.processing.seq2seq_tokenizers:build_bart_tokenizer",
    "MarianTokenizer": "leanformers.processing.seq2seq_tokenizers:build_marian_tokenizer",
    "WhisperTokenizer": "leanformers.processing.seq2seq_tokenizers:build_whisper_tokenizer",
    "LlamaTokenizer": "leanformers.processing.sentencepiece_bpe:build_sentencepiece_bpe_tokenizer",
    "GemmaTokenizer": "leanformers.processing.sentencepiece_bpe:build_sentencepiece_bpe_tokenizer",
    "Qwen2Tokenizer": "leanformers.processing.bpe:build_bpe_tokenizer",
    "Wav2Vec2CTCTokenizer": "leanformers.processing.ctc:build_ctc_tokenizer",
}

# The tokenizer class to assume when tokenizer_config.json names none.
DEFAULT_TOKENIZER: dict[str, str] = {
    "bert": "BertTokenizer",
    "wav2vec2": "Wav2Vec2CTCTokenizer",
    "hubert": "Wav2Vec2CTCTokenizer",
    # the reference falls back to BERT's tokenizer here, token_type_ids included
    "distilbert": "BertTokenizer",
    "electra": "BertTokenizer",
    "roberta": "RobertaTokenizer",
    "xlm-roberta": "XLMRobertaTokenizer",
    "camembert": "CamembertTokenizer",
    "mpnet": "MPNetTokenizer",
    "deberta-v2": "DebertaV2Tokenizer",
    # The decoder LLMs, as the reference's auto mapping has them. "llama" has no entry there (a
    # checkpoint naming no class is used as its tokenizer.json stands); "TokenizersBackend" means the
    # same, and also overrides whatever class such a checkpoint names.
    "mistral": "TokenizersBackend",
    "mixtral": "TokenizersBackend",
    "qwen2": "Qwen2Tokenizer",
    "qwen2_moe": "Qwen2Tokenizer",
    "qwen3": "Qwen2Tokenizer",
    "qwen3_moe": "Qwen2Tokenizer",
    "gemma": "GemmaTokenizer",
    "gemma2": "GemmaTokenizer",
    "gemma3": "GemmaTokenizer",
    "gemma3_text": "GemmaTokenizer",
    "phi3": "TokenizersBackend",
    "olmo2": "TokenizersBackend",
    "gpt2": "GPT2Tokenizer",
    "clip": "CLIPTokenizer",
    "siglip": "SiglipTokenizer",
    "t5": "T5Tokenizer",
    # the reference names RobertaTokenizer here; this class is the same but also encodes text_target
    "bart": "BartTokenizer",
    "marian": "MarianTokenizer",
    "whisper": "WhisperTokenizer",
}

# Model types whose hub tokenizer configs often name a wrong class: the class above is used whatever
# tokenizer_config.json names (the reference's list, for the model types above).
HUB_TOKENIZER_CLASS_UNRELIABLE: frozenset[str] = frozenset({"qwen2", "phi3"})

# Image processor class names a preprocessor_config.json may give (image_processor_type, or the
# legacy feature_extractor_type) -> the settings profile of the one image engine.
IMAGE_PROCESSORS: dict[str, str] = {
    "ViTImageProcessor": "vit",
    "ViTFeatureExtractor": "vit",
    "DeiTImageProcessor": "deit",
    "DeiTFeatureExtractor": "deit",
    "ConvNextImageProcessor": "convnext",
    "ConvNextFeatureExtractor": "convnext",
    "BitImageProcessor": "bit",
    "CLIPImageProcessor": "clip",
    "CLIPFeatureExtractor": "clip",
    "SiglipImageProcessor": "siglip",
}

# The image processor to assume when preprocessor_config.json names none.
DEFAULT_IMAGE_PROCESSOR: dict[str, str] = {
    "vit": "ViTImageProcessor",
    "deit": "DeiTImageProcessor",
    "swin": "ViTImageProcessor",
    "resnet": "ConvNextImageProcessor",
    "convnext": "ConvNextImageProcessor",
    "dinov2": "BitImageProcessor",
    "bit": "BitImageProcessor",
    "clip": "CLIPImageProcessor",
    "siglip": "SiglipImageProcessor",
}

# Audio feature extractor class names -> the settings profile of the audio engine.
FEATURE_EXTRACTORS: dict[str, str] = {
    "Wav2Vec2FeatureExtractor": "wav2vec2",
    "ASTFeatureExtractor": "ast",
    "WhisperFeatureExtractor": "whisper",
}

# The feature extractor to assume when preprocessor_config.json names none.
DEFAULT_FEATURE_EXTRACTOR: dict[str, str] = {
    "wav2vec2": "Wav2Vec2FeatureExtractor",
    "hubert": "Wav2Vec2FeatureExtractor",
    "audio-spectrogram-transformer": "ASTFeatureExtractor",
    "whisper": "WhisperFeatureExtractor",
}

# Processor class names -> the parts a processor of that name combines, in the reference's argument
# order, and how its call reads its inputs: "multimodal" (positional order images, text, videos, audio;
# every output merged into one BatchFeature) or "speech" (positional order audio, text; text given
# with audio becomes the labels). All are served by the one Processor.
PROCESSORS: dict[str, tuple[tuple[str, ...], str]] = {
    "CLIPProcessor": (("image_processor", "tokenizer"), "multimodal"),
    "SiglipProcessor": (("image_processor", "tokenizer"), "multimodal"),
    "Wav2Vec2Processor": (("feature_extractor", "tokenizer"), "speech"),
}

# The processor to assume for a model type when no file names one.
DEFAULT_PROCESSOR: dict[str, str] = {
    "clip": "CLIPProcessor",
    "siglip": "SiglipProcessor",
    "wav2vec2": "Wav2Vec2Processor",
    "hubert": "Wav2Vec2Processor",
}

# Classes registered at run time by users (AutoConfig.register / AutoModel.register).
_USER_CONFIGS: dict[str, type] = {}
_USER_MODELS: dict[tuple[str, str], type] = {}


def supported_model_types() -> list[str]:
    return sorted(set(MODELS) | set(_USER_CONFIGS))


def _import(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def config_class_for(data: dict[str, Any], where: str = "the checkpoint") -> type:
    """The config class for a parsed config.json, refusing remote code."""
    model_type = data.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise ConfigError(
            f"The config.json of {where}: model_type must be a string naming the architecture, got "
            f"{model_type!r}. Use one of: {', '.join(supported_model_types())}."
        )
    known = model_type in MODELS or model_type in _USER_CONFIGS
    if not known and data.get("auto_map"):
        raise RemoteCodeError(
            f"{where} declares model_type {model_type!r}, which leanformers does not provide, and asks to run "
            f"its own code (auto_map: {data['auto_map']}). leanformers never runs code from a checkpoint. "
            f"Supported model types: {', '.join(supported_model_types())}."
        )
    if not model_type:
        raise UnsupportedModelError(
            f"The config.json of {where} has no 'model_type', so the architecture cannot be chosen. "
            f"Add one of: {', '.join(supported_model_types())}."
        )
    return config_class_by_type(model_type, where)


def config_class_by_type(model_type: str, where: str = "the checkpoint") -> type:
    if model_type in _USER_CONFIGS:
        return _USER_CONFIGS[model_type]
    if model_type not in MODELS:
        raise UnsupportedModelError(
            f"{where} has model_type {model_type!r}, which leanformers does not support. "
            f"Supported model types: {', '.join(supported_model_types())}."
        )
    module, config_name, _ = MODELS[model_type]
    return _import(module, config_name)


def model_class_for(model_type: str, task: str, where: str = "the checkpoint") -> type:
    if (model_type, task) in _USER_MODELS:
        return _USER_MODELS[(model_type, task)]
    if model_type not in MODELS:
        config_class_by_type(model_type, where)  # raises the unsupported-type error
        raise UnsupportedModelError(f"No model registered for model_type {model_type!r} and task {task!r}.")
    module, _, tasks = MODELS[model_type]
    if task not in tasks:
        offered = ", ".join(sorted(tasks)) or "none"
        raise UnsupportedModelError(
            f"{where} is a {model_type!r} model, which has no {task!r} head in leanformers. "
            f"Tasks available for {model_type!r}: {offered}."
        )
    return _import(module, tasks[task])


def register_config(model_type: str, config_class: type, exist_ok: bool = False) -> None:
    if getattr(config_class, "model_type", model_type) != model_type:
        raise UnsupportedModelError(
            f"{config_class.__name__}.model_type is {config_class.model_type!r}, but it is being registered "
            f"as {model_type!r}; they must match."
        )
    if not exist_ok and (model_type in MODELS or model_type in _USER_CONFIGS):
        raise UnsupportedModelError(f"model_type {model_type!r} is already registered; pass exist_ok=True to replace it.")
    _USER_CONFIGS[model_type] = config_class


def register_model(model_type: str, task: str, model_class: type, exist_ok: bool = False) -> None:
    taken = (model_type, task) in _USER_MODELS or task in MODELS.get(model_type, ("", "", {}))[2]
    if taken and not exist_ok:
        raise UnsupportedModelError(
            f"A {task!r} model is already registered for {model_type!r}; pass exist_ok=True to replace it."
        )
    _USER_MODELS[(model_type, task)] = model_class


def tokenizer_builder(class_name: str | None) -> str | None:
    """How to build a tokenizer named ``class_name`` from a bare vocabulary (None if unknown)."""
    if class_name is None:
        return None
    return TOKENIZERS.get(class_name) or TOKENIZERS.get(class_name.removesuffix("Fast"))


def image_processor_profile(class_name: str | None) -> str | None:
    """The settings profile for an image processor class name (``...Fast``/``...Pil`` variants too)."""
    if class_name is None:
        return None
    for suffix in ("", "Fast", "Pil"):
        if suffix and class_name.endswith(suffix):
            class_name = class_name[: -len(suffix)]
        if class_name in IMAGE_PROCESSORS:
            return IMAGE_PROCESSORS[class_name]
    return None

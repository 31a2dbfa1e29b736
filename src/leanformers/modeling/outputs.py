"""Model outputs that behave like the reference's: ``out.logits``, ``out["logits"]``, ``out[0]``.

Fields left ``None`` are skipped in the key and index views, so ``out[0]`` is ``loss`` when labels
were given and ``logits`` otherwise, exactly as callers of the reference expect.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterator


@dataclass(repr=True)
class ModelOutput:
    def keys(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def values(self) -> list[Any]:
        return [getattr(self, k) for k in self.keys()]

    def items(self) -> list[tuple[str, Any]]:
        return [(k, getattr(self, k)) for k in self.keys()]

    def to_tuple(self) -> tuple:
        return tuple(self.values())

    def __getitem__(self, key: str | int | slice) -> Any:
        if isinstance(key, str):
            if key not in self.keys():
                raise KeyError(f"{type(self).__name__} has no field {key!r} set; it has {self.keys()}")
            return getattr(self, key)
        return self.to_tuple()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.keys() else default


@dataclass(repr=True)
class BaseModelOutput(ModelOutput):
    last_hidden_state: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(repr=True)
class BaseModelOutputWithPooling(ModelOutput):
    last_hidden_state: Any = None
    pooler_output: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(repr=True)
class BaseModelOutputWithPoolingAndCrossAttentions(ModelOutput):
    """What the reference's BERT-style encoders return; ``past_key_values`` and ``cross_attentions``
    belong to decoder use and stay empty for an encoder."""

    last_hidden_state: Any = None
    pooler_output: Any = None
    hidden_states: tuple | None = None
    past_key_values: Any = None
    attentions: tuple | None = None
    cross_attentions: tuple | None = None


@dataclass(repr=True)
class SequenceClassifierOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(repr=True)
class TokenClassifierOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(repr=True)
class MaskedLMOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(repr=True)
class QuestionAnsweringModelOutput(ModelOutput):
    loss: Any = None
    start_logits: Any = None
    end_logits: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(repr=True)
class BaseModelOutputWithNoAttention(ModelOutput):
    last_hidden_state: Any = None
    hidden_states: tuple | None = None


@dataclass(repr=True)
class BaseModelOutputWithPoolingAndNoAttention(ModelOutput):
    last_hidden_state: Any = None
    pooler_output: Any = None
    hidden_states: tuple | None = None


@dataclass(repr=True)
class ImageClassifierOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(repr=True)
class ImageClassifierOutputWithNoAttention(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: tuple | None = None


@dataclass(repr=True)
class BaseModelOutputWithPast(ModelOutput):
    last_hidden_state: Any = None
    past_key_values: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(repr=True)
class CausalLMOutputWithPast(ModelOutput):
    loss: Any = None
    logits: Any = None
    past_key_values: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(repr=True)
class SequenceClassifierOutputWithPast(ModelOutput):
    loss: Any = None
    logits: Any = None
    past_key_values: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(repr=True)
class CLIPOutput(ModelOutput):
    """A two-tower (image, text) model's output; the towers' own outputs nest as whole outputs, and as
    nested tuples in the tuple form, as in the reference."""

    loss: Any = None
    logits_per_image: Any = None
    logits_per_text: Any = None
    text_embeds: Any = None
    image_embeds: Any = None
    text_model_output: Any = None
    vision_model_output: Any = None

    def to_tuple(self) -> tuple:
        return tuple(v.to_tuple() if isinstance(v, ModelOutput) else v for v in self.values())


@dataclass(repr=True)
class CLIPTextModelOutput(ModelOutput):
    text_embeds: Any = None
    last_hidden_state: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(repr=True)
class CLIPVisionModelOutput(ModelOutput):
    image_embeds: Any = None
    last_hidden_state: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None


@dataclass(repr=True)
class SiglipOutput(CLIPOutput):
    """SigLIP's output: CLIP's fields, with sigmoid (not softmax) logits."""


@dataclass(repr=True)
class BaseModelOutputWithPastAndCrossAttentions(ModelOutput):
    """A decoder stack's output when it attends to an encoder (``cross_attentions``)."""

    last_hidden_state: Any = None
    past_key_values: Any = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    cross_attentions: tuple | None = None


@dataclass(repr=True)
class Seq2SeqModelOutput(ModelOutput):
    """An encoder-decoder's output: the decoder's last state first, then the decoder's and the
    encoder's extras, as in the reference."""

    last_hidden_state: Any = None
    past_key_values: Any = None
    decoder_hidden_states: tuple | None = None
    decoder_attentions: tuple | None = None
    cross_attentions: tuple | None = None
    encoder_last_hidden_state: Any = None
    encoder_hidden_states: tuple | None = None
    encoder_attentions: tuple | None = None


@dataclass(repr=True)
class Seq2SeqLMOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    past_key_values: Any = None
    decoder_hidden_states: tuple | None = None
    decoder_attentions: tuple | None = None
    cross_attentions: tuple | None = None
    encoder_last_hidden_state: Any = None
    encoder_hidden_states: tuple | None = None
    encoder_attentions: tuple | None = None


@dataclass(repr=True)
class Seq2SeqSequenceClassifierOutput(Seq2SeqLMOutput):
    """A sequence classifier over an encoder-decoder: ``logits`` are (batch, num_labels)."""

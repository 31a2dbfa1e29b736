"""Pieces every encoder-decoder family shares: the decoder's cache and the label shift.

A generation loop runs the encoder once (``model.get_encoder()(input_ids, attention_mask)``), then
calls the model step by step with ``encoder_outputs``, the same ``attention_mask``, the new
``decoder_input_ids`` and ``past_key_values`` (a ``Seq2SeqCache``; the first call with
``use_cache=True`` creates one and returns it). Beam search calls ``reorder`` on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..errors import ConfigError, InputError
from .attention import KVCache
from .outputs import BaseModelOutput, Seq2SeqModelOutput


class Seq2SeqCache:
    """The decoder's memory between steps.

    ``self_attention``: a ``KVCache`` of every layer's self-attention keys and values so far.
    ``cross``: per layer, the cross-attention key and value projections of the encoder output, in
    the (batch, source length, heads * head_dim) layout ``attend`` takes; computed on the first step
    and reused, since the encoder output does not change while decoding.
    """

    def __init__(self, layers: int, capacity: int | None = None) -> None:
        self.self_attention = KVCache(layers, capacity)
        self.cross: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * layers

    def __len__(self) -> int:
        return len(self.cross)

    def get_seq_length(self, layer: int = 0) -> int:
        """How many decoder positions the cache holds."""
        return self.self_attention.get_seq_length(layer)

    def cross_keys_values(
        self, layer: int, project: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``layer``'s cross-attention keys and values, from ``project()`` on first use."""
        if self.cross[layer] is None:
            self.cross[layer] = project()
        return self.cross[layer]

    def crop(self, length: int) -> None:
        """Forget decoder positions from ``length`` on (the encoder's projections stay)."""
        self.self_attention.crop(length)

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep batch rows ``rows`` in that order, in both caches (beam search)."""
        self.self_attention.reorder(rows)
        self.cross = [
            None if held is None else tuple(x.index_select(0, rows.to(x.device)) for x in held)
            for held in self.cross
        ]


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int | None, decoder_start_token_id: int | None) -> torch.Tensor:
    """Decoder inputs for teacher forcing: the start token, then the labels but the last, with the
    ignored label -100 replaced by the padding id."""
    if decoder_start_token_id is None:
        raise ConfigError(
            "config.decoder_start_token_id is not set, so decoder inputs cannot be derived from labels; set it "
            "(T5 uses the pad token id, BART the eos token id) or pass decoder_input_ids."
        )
    if pad_token_id is None:
        raise ConfigError("config.pad_token_id is not set, so the ignored labels (-100) have no token to become.")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 2 or labels.is_floating_point():
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise InputError(f"labels must be a (batch, target length) tensor of token ids, got {got}.")
    shifted = labels.new_full(labels.shape, decoder_start_token_id)
    shifted[:, 1:] = labels[:, :-1]
    return shifted.masked_fill(shifted == -100, pad_token_id)


def check_cache(past_key_values: object, layers: int) -> Seq2SeqCache | None:
    """``past_key_values`` as given when it is a ``Seq2SeqCache`` for ``layers`` decoder layers."""
    if past_key_values is None:
        return None
    if not isinstance(past_key_values, Seq2SeqCache):
        raise InputError(
            f"past_key_values must be the Seq2SeqCache an earlier call returned (use_cache=True), got "
            f"{type(past_key_values).__name__}."
        )
    if len(past_key_values) != layers:
        raise InputError(f"past_key_values holds {len(past_key_values)} layers, but the decoder has {layers}.")
    return past_key_values


def model_output(encoded: Any, decoded: Any) -> Seq2SeqModelOutput:
    """The base model's output from the encoder's (``encoder_outputs`` as given may lack hidden
    states and attentions) and the decoder's outputs."""
    return Seq2SeqModelOutput(
        last_hidden_state=decoded.last_hidden_state,
        past_key_values=decoded.past_key_values,
        decoder_hidden_states=decoded.hidden_states,
        decoder_attentions=decoded.attentions,
        cross_attentions=decoded.cross_attentions,
        encoder_last_hidden_state=encoded.last_hidden_state,
        encoder_hidden_states=getattr(encoded, "hidden_states", None),
        encoder_attentions=getattr(encoded, "attentions", None),
    )


def head_output(output_class: type, loss: Any, logits: torch.Tensor, outputs: Seq2SeqModelOutput) -> Any:
    """A head's output (``Seq2SeqLMOutput``, ``Seq2SeqSequenceClassifierOutput``): its loss and logits
    with every other field of the base model's output."""
    return output_class(
        loss=loss, logits=logits, past_key_values=outputs.past_key_values,
        decoder_hidden_states=outputs.decoder_hidden_states, decoder_attentions=outputs.decoder_attentions,
        cross_attentions=outputs.cross_attentions, encoder_last_hidden_state=outputs.encoder_last_hidden_state,
        encoder_hidden_states=outputs.encoder_hidden_states, encoder_attentions=outputs.encoder_attentions,
    )


def encoder_outputs_of(encoder_outputs: Any) -> Any:
    """The encoder's output as an object with ``last_hidden_state``: as returned, or from a tuple."""
    if hasattr(encoder_outputs, "last_hidden_state"):
        return encoder_outputs
    if isinstance(encoder_outputs, (tuple, list)) and encoder_outputs and isinstance(encoder_outputs[0], torch.Tensor):
        return BaseModelOutput(*list(encoder_outputs)[:3])
    raise InputError(
        "encoder_outputs must be what the encoder returned (model.get_encoder()(input_ids, attention_mask)) "
        f"or a tuple starting with its last hidden state, got {type(encoder_outputs).__name__}."
    )

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
    the (rows, source length, heads * head_dim) layout ``attend`` takes; computed on the first step
    and reused, since the encoder output does not change while decoding.

    ``shared_rows``: when a model attends grouped (``share_source_rows``), ``cross`` holds one row
    per run of this many decoder rows with the same encoder output (beam search's copies of a
    source), projected once and attended by all of them; 1 otherwise.
    """

    def __init__(self, layers: int, capacity: int | None = None) -> None:
        self.self_attention = KVCache(layers, capacity)
        self.cross: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * layers
        self.shared_rows = 1
        # Without grouping: how many rows in a run ``cross`` holds identical (found at the first
        # reorder; None: not looked at yet).
        self._identical_runs: int | None = None

    def __len__(self) -> int:
        return len(self.cross)

    def get_seq_length(self, layer: int = 0) -> int:
        """How many decoder positions the cache holds."""
        return self.self_attention.get_seq_length(layer)

    def share_source_rows(self, encoder_hidden: torch.Tensor, encoder_mask: torch.Tensor | None) -> int:
        """Before the first cross projection: group the decoder rows whose encoder output and mask
        are equal, in runs of ``shared_rows`` (see ``repeated_rows``), and return that run length.
        Later calls return the grouping in force."""
        if all(held is None for held in self.cross):
            self.shared_rows = repeated_rows(encoder_hidden, encoder_mask)
        return self.shared_rows

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
        """Keep batch rows ``rows`` in that order, in both caches (beam search).

        The cross projections move only when a row takes another row's encoder output: beam search
        reorders within each source's beams, whose projections are equal, so they usually stay."""
        self.self_attention.reorder(rows)
        held = [pair for pair in self.cross if pair is not None]
        if not held:
            return
        rows = rows.to(held[0][0].device)
        total = held[0][0].shape[0] * self.shared_rows
        run = self.shared_rows if self.shared_rows > 1 else self._identical_run(held)
        if run > 1 and rows.shape[0] == total and bool((rows // run == torch.arange(total, device=rows.device) // run).all()):
            return
        if self.shared_rows > 1:  # back to one projection per row
            sources = torch.arange(total, device=rows.device) // self.shared_rows
            rows = sources.index_select(0, rows)
            self.shared_rows = 1
        self.cross = [None if pair is None else tuple(x.index_select(0, rows) for x in pair) for pair in self.cross]
        self._identical_runs = None

    def _identical_run(self, held: list[tuple[torch.Tensor, torch.Tensor]]) -> int:
        if self._identical_runs is None:
            self._identical_runs = min(repeated_rows(x, None) for pair in held for x in pair)
        return self._identical_runs


def repeated_rows(hidden: torch.Tensor, mask: torch.Tensor | None) -> int:
    """The largest g such that ``hidden`` (rows, ...) and ``mask`` (rows, ...) are runs of g equal
    rows (rows 0 .. g-1 equal, g .. 2g-1 equal, ...), as generate's copies of each source for beam
    search are; 1 when there are none. Compares the rows once."""
    count = hidden.shape[0]
    run = 1
    while run < count and torch.equal(hidden[run], hidden[0]) and (mask is None or torch.equal(mask[run], mask[0])):
        run += 1
    while run > 1:
        if count % run == 0 and all(
            x is None or torch.equal(x.unflatten(0, (count // run, run)), x[::run, None].expand(count // run, run, *x.shape[1:]))
            for x in (hidden, mask)
        ):
            return run
        # A shorter run length that divides the first run may still fit (e.g. 4 equal rows, then 2 and 2).
        run = max((g for g in range(1, run) if run % g == 0), default=1)
    return 1


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

"""Cheap checks shared by the architectures: configs' invariants and inputs' shapes.

Only shapes, dtypes and Python values are inspected, never tensor contents (except where an
out-of-range id would otherwise kill an accelerator), so the checks cost nothing next to a forward.
"""

from __future__ import annotations

import torch

from ..configuration import PretrainedConfig
from ..errors import ConfigError, InputError
from .activations import ACTIVATIONS


def positive_int(key: str, value: object) -> int:
    """``value`` when it is a positive int (not a bool), else a ConfigError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be a positive integer, got {value!r}.")
    return value


def pair(value: object, key: str) -> tuple[int, int]:
    """``image_size`` / ``patch_size`` as (height, width): one int for a square, or a pair."""
    values = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(values, (list, tuple))
        or len(values) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values)
    ):
        raise ConfigError(f"{key} must be a positive integer or a [height, width] pair of them, got {value!r}.")
    return int(values[0]), int(values[1])


def validate_encoder_config(
    config: PretrainedConfig, sizes: tuple[str, ...], dropouts: tuple[str, ...], activation: str
) -> None:
    """Positive sizes, heads dividing the width, probabilities in [0, 1], a known activation, a valid pad id."""
    for key in sizes:
        positive_int(key, getattr(config, key))
    hidden, heads = config.hidden_size, config.num_attention_heads
    if hidden % heads:
        raise ConfigError(
            f"hidden_size ({hidden}) must be a multiple of num_attention_heads ({heads}) so that every head "
            "gets the same width."
        )
    for key in dropouts:
        value = getattr(config, key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ConfigError(f"{key} must be a probability between 0 and 1, got {value!r}.")
    name = getattr(config, activation)
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ConfigError(
            f"{activation}={name!r} is not a known activation; use one of: {', '.join(sorted(ACTIVATIONS))}."
        )
    pad = config.pad_token_id
    vocab = config.vocab_size
    if pad is not None and (isinstance(pad, bool) or not isinstance(pad, int) or not -vocab <= pad < vocab):
        raise ConfigError(f"pad_token_id={pad!r} is not a token id of a vocabulary of {config.vocab_size}.")


def check_text_inputs(
    input_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
    hidden_size: int,
    max_positions: int,
) -> tuple[int, int]:
    """Validate the token inputs of a text encoder cheaply (shapes and dtypes only); returns (batch, seq)."""
    if (input_ids is None) == (inputs_embeds is None):
        raise InputError("Pass exactly one of input_ids or inputs_embeds (got " + (
            "both)." if input_ids is not None else "neither)."
        ))
    if input_ids is not None:
        if not isinstance(input_ids, torch.Tensor):
            raise InputError(
                f"input_ids must be a torch.Tensor of token ids, got {type(input_ids).__name__}; "
                "call the tokenizer with return_tensors='pt'."
            )
        if input_ids.dim() != 2:
            raise InputError(
                f"input_ids must have shape (batch, sequence), got {tuple(input_ids.shape)}"
                + ("; add a batch dimension with input_ids[None]." if input_ids.dim() == 1 else ".")
            )
        if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
            raise InputError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}.")
        batch, seq = input_ids.shape
    else:
        if not isinstance(inputs_embeds, torch.Tensor):
            raise InputError(f"inputs_embeds must be a torch.Tensor, got {type(inputs_embeds).__name__}.")
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != hidden_size:
            raise InputError(
                f"inputs_embeds must have shape (batch, sequence, {hidden_size}), got {tuple(inputs_embeds.shape)}."
            )
        batch, seq = inputs_embeds.shape[:2]
    if seq > max_positions:
        raise InputError(
            f"The sequence has {seq} tokens, but this model has position embeddings for at most {max_positions} "
            "(max_position_embeddings); truncate the input, e.g. tokenizer(..., truncation=True)."
        )
    return batch, seq


def check_positions(name: str, ids: torch.Tensor | None, batch: int, seq: int) -> None:
    """token_type_ids / position_ids must be (batch, seq) or (1, seq) integer tensors."""
    if ids is None:
        return
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.shape[1] != seq or ids.shape[0] not in (1, batch):
        shape = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise InputError(f"{name} must be an integer tensor of shape ({batch}, {seq}) like input_ids, got {shape}.")


def check_logits_to_keep(value: object) -> int:
    """``logits_to_keep`` of a causal LM's forward: 0 (every position) or how many last positions."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"logits_to_keep must be a non-negative int (0: every position), got {value!r}.")
    return value


def embedding_lookup(embedding: torch.nn.Embedding, ids: torch.Tensor, name: str) -> torch.Tensor:
    """``embedding(ids)``, with an InputError naming ``name`` when an id is out of range."""
    size = embedding.num_embeddings
    if ids.device.type != "cpu":
        # An out-of-range index on an accelerator is an unrecoverable device assert; check first.
        if bool(((ids < 0) | (ids >= size)).any()):
            raise InputError(f"{name} holds ids outside [0, {size}); does the tokenizer match the model?")
        return embedding(ids)
    try:
        return embedding(ids)
    except IndexError:
        low, high = int(ids.min()), int(ids.max())
        raise InputError(
            f"{name} holds ids in [{low}, {high}], but the embedding has {size} rows ([0, {size})); "
            "does the tokenizer match the model?"
        ) from None


def check_pixel_values(
    pixel_values: object,
    num_channels: int,
    dtype: torch.dtype,
    *,
    size: tuple[int, int] | None = None,
    cast_integers: bool = False,
) -> torch.Tensor:
    """(batch, channels, height, width) real images with the configured channel count; returns them
    in the model's dtype (a float64 or float32 batch meets a model of another precision).

    ``size`` (height, width) only makes the messages name the size the model expects (the caller
    checks it). ``cast_integers`` casts integer pixels to ``dtype`` instead of refusing them, for the
    models whose reference casts them (ViT)."""
    height, width = size if size is not None else ("height", "width")
    expected = f"(batch, {num_channels}, {height}, {width})"
    if pixel_values is None:
        raise InputError(f"pixel_values is required: a float tensor of shape {expected}.")
    if not isinstance(pixel_values, torch.Tensor):
        raise InputError(
            f"pixel_values must be a torch.Tensor of shape {expected}, got {type(pixel_values).__name__}; "
            "call the image processor with return_tensors='pt'."
        )
    shape = tuple(pixel_values.shape)
    if pixel_values.dim() != 4:
        hint = "; add a batch dimension with pixel_values[None]" if pixel_values.dim() == 3 else ""
        raise InputError(f"pixel_values must have shape {expected}, got {shape}{hint}.")
    if shape[1] != num_channels:
        raise InputError(
            f"pixel_values has {shape[1]} channels (shape {shape}), but this model expects "
            f"num_channels={num_channels}; channels come first: {expected}."
        )
    if pixel_values.is_complex():
        raise InputError(f"pixel_values must hold real numbers, got dtype {pixel_values.dtype}.")
    if not pixel_values.is_floating_point() and not cast_integers:
        raise InputError(
            f"pixel_values must be floating point (rescaled and normalised, as the image processor returns), "
            f"got dtype {pixel_values.dtype}."
        )
    if 0 in shape:
        raise InputError(f"pixel_values is empty: shape {shape}.")
    # Under autocast the layers cast their inputs themselves.
    if pixel_values.dtype == dtype or (
        pixel_values.is_floating_point() and torch.is_autocast_enabled(pixel_values.device.type)
    ):
        return pixel_values
    return pixel_values.to(dtype)


def check_masked_patches(
    bool_masked_pos: object, has_mask_token: bool, batch: int, patches: int, model_name: str
) -> None:
    """``bool_masked_pos`` of shape (batch or 1, patches), on a model built with a mask token."""
    if not has_mask_token:
        raise InputError(
            "bool_masked_pos needs a mask token, which this model lacks; build it with use_mask_token=True "
            f"(e.g. {model_name}.from_pretrained(path, use_mask_token=True))."
        )
    if (
        not isinstance(bool_masked_pos, torch.Tensor)
        or bool_masked_pos.dim() != 2
        or bool_masked_pos.shape[0] not in (1, batch)
        or bool_masked_pos.shape[1] != patches
    ):
        got = tuple(bool_masked_pos.shape) if isinstance(bool_masked_pos, torch.Tensor) else type(bool_masked_pos).__name__
        raise InputError(
            f"bool_masked_pos must be a boolean tensor of shape ({batch}, {patches}), one entry per patch; got {got}."
        )

"""Bidirectional (encoder) self-attention shared by the text encoders.

The fast path is ``torch.nn.functional.scaled_dot_product_attention`` with a boolean padding mask,
the call the reference makes by default, so the numbers agree. SDPA does not return attention
weights, so when they are asked for, attention is computed explicitly (scores, additive mask,
softmax), the reference's "eager" path; the two paths agree to float rounding except on rows whose
every key is masked, where each follows its reference counterpart (SDPA: a zero context; explicit:
uniform weights over all keys).

Masks are built once per forward and shared by every layer:
``padding_mask`` turns a (batch, seq) 0/1 mask into the (batch, 1, seq, seq) boolean mask SDPA
takes, or ``None`` when nothing is padded (which lets SDPA pick its fastest kernel);
``additive_mask`` turns that into the float bias the explicit path adds to the scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError


def padding_mask(
    attention_mask: torch.Tensor | None, batch: int, seq: int, device: torch.device
) -> torch.Tensor | None:
    """(batch, seq) 0/1 mask -> (batch, 1, seq, seq) boolean mask (True = attend), or None if all ones."""
    if attention_mask is None:
        return None
    if not isinstance(attention_mask, torch.Tensor):
        raise InputError(f"attention_mask must be a torch.Tensor, got {type(attention_mask).__name__}.")
    if attention_mask.shape != (batch, seq):
        raise InputError(
            f"attention_mask has shape {tuple(attention_mask.shape)}, but the inputs have batch size {batch} "
            f"and sequence length {seq}; it must be a (batch, sequence) tensor of 1 (attend) and 0 (padding)."
        )
    keep = attention_mask.to(device=device, dtype=torch.bool)
    if bool(keep.all()):
        return None
    return keep[:, None, None, :].expand(batch, 1, seq, seq)


def additive_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A boolean mask as the float bias added to attention scores: 0 where attended, dtype's min elsewhere."""
    if mask is None:
        return None
    zero = torch.zeros((), dtype=dtype, device=mask.device)
    return torch.where(mask, zero, torch.finfo(dtype).min)


def split_heads(x: torch.Tensor, head_dim: int) -> torch.Tensor:
    """(batch, seq, heads * head_dim) -> (batch, heads, seq, head_dim)."""
    batch, seq, _ = x.shape
    return x.view(batch, seq, -1, head_dim).transpose(1, 2)


def attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    dropout: float,
    need_weights: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scaled dot-product attention over (batch, heads, seq, head_dim) tensors.

    Returns the context as (batch, seq, heads * head_dim) and, when ``need_weights``, the attention
    probabilities (batch, heads, seq, seq). ``mask`` is boolean for the SDPA path and additive
    (``additive_mask``) when weights are needed; ``dropout`` is the probability to apply (0 in eval).
    """
    batch, _, seq, head_dim = query.shape
    scale = head_dim**-0.5
    if need_weights:
        scores = torch.matmul(query, key.transpose(2, 3)) * scale
        if mask is not None:
            scores = scores + mask
        weights = torch.softmax(scores, dim=-1)
        if dropout:
            weights = F.dropout(weights, p=dropout, training=True)
        context = torch.matmul(weights, value)
    else:
        weights = None
        context = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout, scale=scale)
    return context.transpose(1, 2).reshape(batch, seq, -1), weights

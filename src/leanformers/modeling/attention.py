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

Unpadded ("packed") execution. When a batch has padding, computing the padded positions is wasted
work (for 32 mixed-length texts padded to 79 tokens, 44% of it), so BERT and DistilBERT
(``run_encoder``) gather the real tokens once after the embeddings (``pack_batch`` / ``PackedBatch``;
the embeddings themselves are a lookup and a layer norm, negligible, and stay dense), run every
projection, feed-forward, residual and layer norm on the packed (tokens, hidden) matrix, attend in
length buckets (texts of similar length side by side, one SDPA call per bucket, masked only inside
a bucket; ``plan_buckets`` weighs a few pad tokens against an extra call), and scatter back to
(batch, seq, hidden) at the end. Where the native kernel runs (``NATIVE``: AVX-512, float32, no
gradients, no dropout, head size 32, 64 or 128), every row keeps its own length (no pad tokens at
all) and one call per layer attends over all of them, about twice as fast as the grouped SDPA
calls, equal to them to float rounding (~1e-7 relative). (Nested tensors were measured as the
other way to attend: in torch 2.13 on CPU they fail under ``inference_mode`` and were ~25x slower
than the grouped calls under ``no_grad``.) Policy:

- Real positions equal the dense path's to float rounding.
- Automatic (the default) only where no output shows a padded position: the sequence-
  classification heads (BERT's pooler reads position 0; DistilBERT's head reads position 0)
  without ``output_hidden_states``. There the speed-up is free and every output equals the
  reference's. Base models and per-token heads stay dense unless ``config.unpad_inputs = True``.
- Packed, padded positions of ``last_hidden_state`` and of ``hidden_states[1:]`` are **zero**. (The dense
  path, like the reference, computes pad queries attending over the real keys: values nobody should
  read, as costly to reproduce as the padding itself.) ``hidden_states[0]``, the embeddings, is the
  dense tensor. Per-token head outputs at padded positions are the head applied to that zero vector.
  Outputs read from real positions only (the pooler, sequence-classification logits, losses whose
  labels ignore padding) equal the reference's to float rounding, as the dense path's do.
- The switch is ``config.unpad_inputs``: ``None`` / absent (default) chooses automatically (as above,
  and only when it is expected to be faster: enough padding, a model wide enough that the skipped
  matmuls outweigh the extra attention calls; tiny test models stay dense); ``True`` packs every
  padded batch it can, for every head (opt-in: padded positions then read zero, per-token logits
  there are the head of a zero vector, and a QA loss, whose softmax spans every position as in the
  reference, sees those logits); ``False`` never packs.
- Never packed: ``output_attentions=True`` (weights are (batch, heads, seq, seq) grids), batches
  without padding, and batches where some row's first position is padding (heads read position 0,
  and a row with no real token has no packed form).
- Training works packed: dropout is drawn on the packed tensors, so its random pattern differs from
  the dense path's, and gradients flow through the gather and scatter.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError

try:
    from . import _attention
except ImportError:  # installed without a C compiler: every bucket goes through SDPA
    _attention = None

# The native packed-attention kernel (``_attention.c``): one call per layer over every row at its
# own length, where the CPU has AVX-512 and nothing needs gradients. ``LEANFORMERS_NATIVE_ATTENTION=0``
# (read at import) or ``NATIVE = False`` turns it off, e.g. to compare.
NATIVE = (
    _attention is not None
    and _attention.available()
    and os.environ.get("LEANFORMERS_NATIVE_ATTENTION", "1").strip().lower() not in ("0", "false", "no", "off")
)
_NATIVE_HEAD_DIMS = (32, 64, 128)


def padding_mask(
    attention_mask: torch.Tensor | None, batch: int, seq: int, device: torch.device
) -> torch.Tensor | None:
    """(batch, seq) 0/1 mask -> (batch, 1, seq, seq) boolean mask (True = attend), or None if all ones."""
    if attention_mask is None:
        return None
    keep = _checked_mask(attention_mask, batch, seq, device)
    if bool(keep.all()):
        return None
    return keep[:, None, None, :].expand(batch, 1, seq, seq)


def _checked_mask(attention_mask: torch.Tensor, batch: int, seq: int, device: torch.device) -> torch.Tensor:
    """The (batch, seq) 0/1 mask, validated, as booleans on ``device``."""
    if not isinstance(attention_mask, torch.Tensor):
        raise InputError(f"attention_mask must be a torch.Tensor, got {type(attention_mask).__name__}.")
    if attention_mask.shape != (batch, seq):
        raise InputError(
            f"attention_mask has shape {tuple(attention_mask.shape)}, but the inputs have batch size {batch} "
            f"and sequence length {seq}; it must be a (batch, sequence) tensor of 1 (attend) and 0 (padding)."
        )
    return attention_mask.to(device=device, dtype=torch.bool)


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


# -- unpadded ("packed") execution ----------------------------------------------------------------

# The cost model that decides how to pack, in multiply-adds: a token costs the layer's per-token
# work (``macs_per_token``, projections and feed-forward); one attention call costs a fixed
# overhead, per thread, since each call is a parallel region whose threads must start and meet,
# and small calls run the attention kernel far below its rate on large ones. Tuned on the 2-core
# CI machine (BERT-base classifier, 32 texts, 27 distinct lengths, torch 2.13): per forward, 2M per
# thread (27 buckets) took 1.50 s on two threads, 10M per thread (16 buckets) 1.38 s, 40M (9) 1.43 s,
# one padded bucket 2.50 s; on one thread 2M gave 2.71 s, 10M 2.59 s, 40M 2.55 s, 200M 2.86 s.
PACK_CALL_COST_MACS = 8_000_000
# Below this share of padding, packing's saving is within timing noise: the automatic choice stays dense.
PACK_MIN_PAD_SHARE = 0.1


def plan_buckets(lengths: list[int], macs_per_token: int, call_cost: int) -> list[tuple[int, int]]:
    """Cut the sorted row lengths into buckets, each padded to its longest row and attended with one
    SDPA call, minimising tokens x ``macs_per_token`` + buckets x ``call_cost`` (exact, by dynamic
    programming over the distinct lengths). Returns (number of rows, padded length) per bucket,
    shortest first. One bucket per distinct length means no padding at all; one bucket for all is
    the padded batch."""
    distinct = sorted(set(lengths))
    counts = [lengths.count(length) for length in distinct]
    best = [0.0] + [float("inf")] * len(distinct)  # best[j]: cost of the first j distinct lengths
    cut = [0] * (len(distinct) + 1)
    for j in range(1, len(distinct) + 1):
        rows = 0
        for i in range(j, 0, -1):  # last bucket = distinct lengths i-1 .. j-1
            rows += counts[i - 1]
            cost = best[i - 1] + rows * distinct[j - 1] * macs_per_token + call_cost
            if cost < best[j]:
                best[j], cut[j] = cost, i - 1
    buckets, j = [], len(distinct)
    while j:
        i = cut[j]
        buckets.append((sum(counts[i:j]), distinct[j - 1]))
        j = i
    return buckets[::-1]


def native_attention_ready(x: torch.Tensor, head_dim: int | None) -> bool:
    """Whether the native kernel will attend for activations like ``x``: it is built and on, the
    head size is one it has, nothing needs gradients, and ``x`` is float32 on the CPU."""
    return (
        NATIVE
        and head_dim in _NATIVE_HEAD_DIMS
        and not torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype == torch.float32
    )


class PackedBatch:
    """The tokens of a padded batch regrouped as one (slots, hidden) matrix of length buckets.

    Rows are sorted by length and cut into buckets (``plan_buckets``); in the packed matrix each
    bucket is a dense (rows, bucket length) block, so attention for a bucket is one SDPA call on a
    view of it, masked only where a row is shorter than its bucket. A row's slots hold its real
    tokens first, then (to fill its bucket) some of its own padded positions, whose values are
    finite and masked out as keys, as in the dense path. Everything else in an encoder layer
    (projections, feed-forward, residuals, layer norms, dropout) is per token and runs on the packed
    matrix unchanged. ``index`` holds each slot's flat position in the (batch * seq) grid; ``real``
    the slots that are real tokens (all of them when every bucket holds one length).
    """

    def __init__(
        self,
        index: torch.Tensor,
        real: torch.Tensor | None,
        groups: list[tuple[int, int, int, torch.Tensor | None]],
        batch: int,
        seq: int,
        row_lengths: list[int] | None = None,
    ) -> None:
        self.index = index
        self.real = real
        self.groups = groups  # (first slot, rows, bucket length, key mask or None), one per bucket
        self.batch, self.seq = batch, seq
        self.real_index = index if real is None else index[real]
        self.row_lengths = row_lengths

    @functools.cached_property
    def rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For the native kernel: each packed row's first slot, slot count and real length, in order."""
        starts, spans = [], []
        for start, rows, length, _ in self.groups:
            starts.extend(range(start, start + rows * length, length))
            spans.extend([length] * rows)
        lengths = self.row_lengths if self.row_lengths is not None else spans
        return np.array(starts, np.int64), np.array(spans, np.int64), np.array(lengths, np.int64)

    def pack(self, hidden: torch.Tensor) -> torch.Tensor:
        """(batch, seq, hidden) -> (slots, hidden)."""
        return hidden.reshape(self.batch * self.seq, -1).index_select(0, self.index)

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        """(slots, hidden) -> (batch, seq, hidden): real tokens in place, zeros at padded positions."""
        width = packed.shape[-1]
        if self.real is not None:
            packed = packed[self.real]
        grid = packed.new_zeros(self.batch * self.seq, width)
        return grid.index_copy(0, self.real_index, packed).view(self.batch, self.seq, width)

    def attend(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, head_dim: int, dropout: float
    ) -> torch.Tensor:
        """Self-attention of each row over its own real tokens; (slots, heads * head_dim) in and out."""
        if (dropout == 0.0 and native_attention_ready(query, head_dim)
                and all(x.dim() == 2 and x.is_contiguous() and x.dtype == query.dtype for x in (query, key, value))):
            out = torch.empty_like(query)
            _attention.attend(
                query.numpy(), key.numpy(), value.numpy(), out.numpy(), *self.rows,
                query.shape[1] // head_dim, head_dim, head_dim**-0.5, torch.get_num_threads(),
            )
            return out
        contexts = []
        for start, rows, length, key_mask in self.groups:
            # One bucket as a dense (rows, heads, length, head_dim) view of the packed matrix.
            q, k, v = (x[start : start + rows * length].view(rows, length, -1, head_dim).transpose(1, 2)
                       for x in (query, key, value))
            context = F.scaled_dot_product_attention(
                q, k, v, attn_mask=key_mask, dropout_p=dropout, scale=head_dim**-0.5
            )
            contexts.append(context.transpose(1, 2).reshape(rows * length, -1))
        return contexts[0] if len(contexts) == 1 else torch.cat(contexts)


def pack_batch(
    attention_mask: torch.Tensor | None,
    batch: int,
    seq: int,
    device: torch.device,
    unpad_inputs: bool | None,
    macs_per_token: int,
    native: bool = False,
) -> PackedBatch | None:
    """A ``PackedBatch`` when the encoder should run unpadded, else None (run the dense path).

    ``unpad_inputs`` is the config's switch: False never packs, True packs every padded batch it can,
    None (the default) packs when it is expected to be faster: at least ``PACK_MIN_PAD_SHARE`` of the
    grid is padding and the bucket plan costs less than the padded batch (``plan_buckets``; per
    token ``macs_per_token`` multiply-adds per layer). ``native``: the layers will attend with the
    native kernel, whose calls cost nothing extra, so every row keeps its own length. A batch is
    never packed when a row's first position is padding (heads read position 0, and a row with no
    real token has no packed form).
    """
    if attention_mask is None or unpad_inputs is False:
        return None
    if unpad_inputs not in (None, True):
        raise InputError(f"config.unpad_inputs must be True, False or None (automatic), got {unpad_inputs!r}.")
    keep = _checked_mask(attention_mask, batch, seq, device)
    lengths = keep.sum(1)
    row_lengths = lengths.tolist()
    padded = batch * seq - sum(row_lengths)
    if padded == 0 or not bool(keep[:, 0].all()):
        return None
    # The native kernel attends over every row in one call per layer: no reason left to pad.
    call_cost = 0 if native else PACK_CALL_COST_MACS * torch.get_num_threads()
    buckets = plan_buckets(row_lengths, macs_per_token, call_cost)
    if unpad_inputs is None:
        slots = sum(rows * length for rows, length in buckets)
        packed_cost = slots * macs_per_token + len(buckets) * call_cost
        if padded < PACK_MIN_PAD_SHARE * batch * seq or packed_cost >= batch * seq * macs_per_token + call_cost:
            return None
    order = torch.argsort(lengths, stable=True)
    # Within a row, real positions first, then padded ones: a stable sort of "is padding".
    columns = torch.argsort((~keep[order]).to(torch.int8), dim=1, stable=True)
    sorted_lengths = lengths[order]
    index_parts, real_parts, groups = [], [], []
    start = first_row = 0
    all_real = True
    for rows, length in buckets:
        chosen = order[first_row : first_row + rows]
        cols = columns[first_row : first_row + rows, :length]
        index_parts.append((chosen[:, None] * seq + cols).reshape(-1))
        real = torch.arange(length, device=device)[None, :] < sorted_lengths[first_row : first_row + rows, None]
        real_parts.append(real.reshape(-1))
        exact = bool(real.all())
        all_real &= exact
        groups.append((start, rows, length, None if exact else real[:, None, None, :]))
        start += rows * length
        first_row += rows
    index = torch.cat(index_parts)
    return PackedBatch(
        index, None if all_real else torch.cat(real_parts), groups, batch, seq, sorted_lengths.tolist()
    )


def real_positions_only(
    head: Callable[[torch.Tensor], torch.Tensor],
    hidden: torch.Tensor,
    attention_mask: torch.Tensor | None,
    padding_in_output: bool,
) -> torch.Tensor:
    """``head(hidden)`` for a (batch, seq, hidden) input. When the caller reads no padded position
    (``padding_in_output=False``) the head runs on the real positions only, and padded positions
    hold zeros. That matters for a masked LM, whose vocabulary projection costs more per token than
    the whole encoder does."""
    if padding_in_output or attention_mask is None:
        return head(hidden)
    real = _checked_mask(attention_mask, *hidden.shape[:2], hidden.device)
    if bool(real.all()):
        return head(hidden)
    values = head(hidden[real])
    grid = values.new_zeros(*hidden.shape[:2], *values.shape[1:])
    grid[real] = values
    return grid


def run_layers(
    layers: Iterable[Callable[..., tuple[torch.Tensor, torch.Tensor | None]]],
    hidden: torch.Tensor,
    layer_args: tuple,
    output_attentions: bool,
    output_hidden_states: bool,
) -> tuple[torch.Tensor, tuple | None, tuple | None]:
    """Run ``layer(hidden, *layer_args, output_attentions) -> (hidden, weights)`` for each layer in
    turn. Returns the last hidden state, the hidden states (the input, then every layer's output)
    when asked for, and every layer's attention weights when asked for (None otherwise)."""
    all_hidden = (hidden,) if output_hidden_states else None
    all_weights = () if output_attentions else None
    for layer in layers:
        hidden, weights = layer(hidden, *layer_args, output_attentions)
        if output_hidden_states:
            all_hidden += (hidden,)
        if output_attentions:
            all_weights += (weights,)
    return hidden, all_hidden, all_weights


def run_encoder(
    encoder: Callable[..., tuple[torch.Tensor, tuple | None, tuple | None]],
    hidden: torch.Tensor,
    attention_mask: torch.Tensor | None,
    output_attentions: bool,
    output_hidden_states: bool,
    unpad_inputs: bool | None,
    macs_per_token: int,
    padding_in_output: bool,
    head_dim: int | None = None,
) -> tuple[torch.Tensor, tuple | None, tuple | None]:
    """Run a layer stack ``encoder(hidden, mask, output_attentions, output_hidden_states)`` over the
    embeddings, packed (``pack_batch``) or dense, and return (last hidden state, hidden states,
    attentions) in the (batch, seq, ...) layout either way. Packed, ``hidden_states[0]`` is the dense
    embedding output and the later states are zero at padded positions.

    ``padding_in_output``: whether the caller hands values at padded positions back to the user (a
    base model's last_hidden_state, per-token logits). The automatic choice (``unpad_inputs=None``)
    then stays dense, so what a user sees never changes unless they opt in with True. ``head_dim``:
    the layers' head size, which says whether the native attention kernel can run."""
    batch, seq = hidden.shape[:2]
    if unpad_inputs is None and (padding_in_output or output_hidden_states):
        unpad_inputs = False
    # Attention weights are (batch, heads, seq, seq) grids, so asking for them keeps the dense path.
    packing = None if output_attentions else pack_batch(
        attention_mask, batch, seq, hidden.device, unpad_inputs, macs_per_token,
        native=native_attention_ready(hidden, head_dim),
    )
    if packing is None:
        mask = padding_mask(attention_mask, batch, seq, hidden.device)
        if output_attentions:
            mask = additive_mask(mask, hidden.dtype)
        return encoder(hidden, mask, output_attentions, output_hidden_states)
    packed, all_hidden, _ = encoder(packing.pack(hidden), packing, False, output_hidden_states)
    if all_hidden is not None:
        all_hidden = (hidden,) + tuple(packing.unpack(state) for state in all_hidden[1:])
    return packing.unpack(packed), all_hidden, None

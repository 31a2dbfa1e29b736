"""The attention interface: every model attends through ``attend`` and nothing else.

A model hands over its projected queries, keys and values in its hidden states' layout; ``attend``
splits heads, applies rotary positions, updates the ``KVCache``, masks and runs
``F.scaled_dot_product_attention`` (or the explicit softmax, for attention weights or soft-capping).
``mask`` decides the layout: ``None`` (dense, all keys), a ``Mask`` (dense with padding, causal
order, a cache offset; a sliding window per call), or a ``PackedBatch``: a padded batch's real tokens
gathered once into (tokens, hidden), cut into length buckets, one SDPA call per bucket. Packing is
automatic only where no output shows a padded position (``run_encoder``; a decoder's left-padded
prefill, causal, which also fills the ``KVCache``); ``config.unpad_inputs`` True opts every head in
(padded positions then read zero), False opts out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F

from ..errors import InputError

# SDPA's own grouped-query support (torch 2.5+) avoids materialising repeated key/value heads.
_SDPA_GQA = tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 5)


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


class Mask:
    """Which keys each query of a dense batch may see.

    ``keep``: (batch, keys) booleans, False for padding (None: no padding). ``causal``: a query at
    position p sees keys at positions <= p, where queries sit at ``offset``, ``offset + 1``, ... (the
    cache's length before this step) and keys at 0, 1, .... A sliding window is given per
    ``attend`` call (models alternate windowed and global layers) and narrows that to the keys fewer
    than ``window`` positions away: the last ``window`` positions under causal order, ``window - 1``
    on each side without it (ModernBERT's local layers). The boolean grids are built on first use
    and kept for the other layers.
    """

    def __init__(self, keep: torch.Tensor | None = None, causal: bool = False, offset: int = 0) -> None:
        self.keep, self.causal, self.offset = keep, causal, offset
        self._grids: dict[tuple, torch.Tensor | None] = {}

    @classmethod
    def padding(
        cls, attention_mask: torch.Tensor | None, batch: int, seq: int, device: torch.device, causal: bool = False,
        offset: int = 0,
    ) -> Mask | None:
        """A mask from a (batch, keys) 0/1 tensor; None when nothing needs masking (SDPA's fastest case)."""
        keep = None if attention_mask is None else _checked_mask(attention_mask, batch, seq, device)
        if keep is not None and bool(keep.all()):
            keep = None
        if keep is None and not causal:
            return None
        return cls(keep, causal, offset)

    def grid(self, queries: int, keys: int, window: int | None, device: torch.device) -> torch.Tensor | None:
        """(batch or 1, 1, queries, keys) booleans, True where attended; None when all are."""
        cache_key = (queries, keys, window)
        if cache_key not in self._grids:
            allowed = None
            if self.causal or window is not None:
                q = torch.arange(self.offset, self.offset + queries, device=device)[:, None]
                k = torch.arange(keys, device=device)[None, :]
                allowed = k <= q if self.causal else torch.ones(queries, keys, dtype=torch.bool, device=device)
                if window is not None:
                    allowed = allowed & ((q - k).abs() < window)
                allowed = allowed[None, None]
            if self.keep is not None:
                if self.keep.shape[1] != keys:
                    raise InputError(
                        f"attention_mask covers {self.keep.shape[1]} positions, but attention runs over {keys} keys "
                        "(cached and new); pass a mask for every position seen so far."
                    )
                padding = self.keep[:, None, None, :]
                allowed = padding if allowed is None else allowed & padding
            self._grids[cache_key] = allowed
        return self._grids[cache_key]


class KVCache:
    """Keys and values of the positions seen so far, one buffer pair per layer.

    Buffers are allocated once (``capacity`` positions, or on first use) and written in place; when
    a step needs more room a buffer grows to the next multiple of ``block`` positions, so generation
    costs one copy per block rather than one per step.
    """

    def __init__(self, layers: int, capacity: int | None = None, block: int = 256) -> None:
        if layers < 1 or block < 1:
            raise InputError(f"KVCache needs at least one layer and a positive block, got {layers} and {block}.")
        self.block, self.capacity = block, capacity
        self.keys: list[torch.Tensor | None] = [None] * layers
        self.values: list[torch.Tensor | None] = [None] * layers
        self.lengths = [0] * layers
        self._scratch: torch.Tensor | None = None  # reorder's staging area, kept between steps

    def __len__(self) -> int:
        return len(self.keys)

    def get_seq_length(self, layer: int = 0) -> int:
        return self.lengths[layer]

    def _room(self, layer: int, template: torch.Tensor, need: int) -> None:
        held = self.keys[layer]
        if held is not None and held.shape[2] >= need:
            return
        size = max(need, self.capacity or 0)
        size = -(-size // self.block) * self.block
        batch, heads, _, dim = template.shape
        used = self.lengths[layer]
        for store in (self.keys, self.values):
            fresh = template.new_empty(batch, heads, size, dim)
            if store[layer] is not None and used:
                fresh[:, :, :used] = store[layer][:, :, :used]
            store[layer] = fresh

    def update(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append (batch, kv_heads, new, head_dim) keys and values; return every position's so far."""
        start = self.lengths[layer]
        end = start + key.shape[2]
        self._room(layer, key, end)
        self.keys[layer][:, :, start:end] = key
        self.values[layer][:, :, start:end] = value
        self.lengths[layer] = end
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def crop(self, length: int) -> None:
        """Forget every position from ``length`` on (buffers are kept)."""
        self.lengths = [min(n, length) for n in self.lengths]

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep batch rows ``rows`` in that order (beam search). With as many rows as before and
        no gradient to keep, the positions held move in place through one reused scratch buffer:
        selecting whole buffers would copy their unused room too, into fresh memory at every step."""
        for store in (self.keys, self.values):
            for layer, held in enumerate(store):
                if held is None:
                    continue
                index = rows.to(held.device)
                if index.shape[0] != held.shape[0] or held.requires_grad:
                    store[layer] = held.index_select(0, index)
                    continue
                part = held[:, :, : self.lengths[layer]]
                if self._scratch is None or self._scratch.numel() < part.numel() or self._scratch.dtype != part.dtype \
                        or self._scratch.device != part.device:
                    self._scratch = part.new_empty(held.numel())
                moved = self._scratch[: part.numel()].view(part.shape)
                torch.index_select(part, 0, index, out=moved)
                part.copy_(moved)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding over the last dimension (the halves-rotation form), returned in
    ``x``'s dtype. Tables of a wider dtype than ``x`` make the rotation run in theirs (ModernBERT
    rotates half-precision queries and keys in float32)."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


def _explicit(query, key, value, mask, scale, softcap, dropout):
    """Scores, soft-cap, additive mask, softmax: the reference's eager path; returns weights too."""
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if mask is not None:
        if mask.dtype == torch.bool:
            mask = torch.where(mask, torch.zeros((), dtype=scores.dtype, device=mask.device), torch.finfo(scores.dtype).min)
        scores = scores + mask
    # Half-precision scores are normalised in float32, as the reference's decoders do.
    weights = torch.softmax(scores, dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32)).to(query.dtype)
    if dropout:
        weights = F.dropout(weights, p=dropout, training=True)
    return torch.matmul(weights, value), weights


def _core(query, key, value, mask, scale, softcap, dropout, need_weights, is_causal=False):
    """Attention over split heads: (batch, heads, queries, dim) against (batch, kv_heads, keys, dim)."""
    heads, kv_heads = query.shape[1], key.shape[1]
    if heads != kv_heads and (need_weights or softcap is not None or not _SDPA_GQA):
        key, value = (x.repeat_interleave(heads // kv_heads, dim=1) for x in (key, value))
    if need_weights or softcap is not None:
        if is_causal:
            mask = torch.ones(query.shape[2], key.shape[2], dtype=torch.bool, device=query.device).tril()
        return _explicit(query, key, value, mask, scale, softcap, dropout)
    extra = {"enable_gqa": True} if key.shape[1] != heads else {}
    context = F.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, dropout_p=dropout, is_causal=is_causal, scale=scale, **extra
    )
    return context, None


def attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: Mask | PackedBatch | None,
    *,
    heads: int,
    kv_heads: int | None = None,
    scale: float | None = None,
    softcap: float | None = None,
    window: int | None = None,
    dropout: float = 0.0,
    need_weights: bool = False,
    bias: torch.Tensor | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    cache: KVCache | None = None,
    layer: int = 0,
    rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Multi-head attention of projected ``query`` over ``key`` / ``value``.

    Shapes: dense (batch, seq, heads * head_dim) and (batch, seq, kv_heads * head_dim), or packed
    (tokens, ...) when ``mask`` is a ``PackedBatch``; the context comes back in the query's layout.
    ``kv_heads`` < ``heads`` is grouped-query attention. ``scale`` defaults to head_dim ** -0.5;
    ``softcap`` applies ``tanh(s / cap) * cap`` to the scores; ``window`` keeps each query to the
    keys fewer than ``window`` positions away (see ``Mask``; packed, positions are the slots' columns
    in the padded grid); ``bias`` is an additive (batch or 1, heads, queries, keys) term (Swin's
    relative positions), or a function of the (batch, heads, length, head_dim) queries and keys giving
    that term (MPNet's and DeBERTa's relative positions), which packed attention calls per bucket; ``rotary`` is (cos, sin) broadcastable to (batch, heads, seq, head_dim), or
    packed to (tokens, heads, head_dim), applied to queries and keys before caching; ``cache`` and
    ``layer`` store and return past keys and values. Returns the context and, with ``need_weights``,
    the (batch, heads, queries, keys) attention probabilities.
    """
    kv_heads = kv_heads or heads
    if heads % kv_heads:
        raise InputError(f"{heads} attention heads cannot share {kv_heads} key/value heads evenly.")
    head_dim = query.shape[-1] // heads
    scale = head_dim**-0.5 if scale is None else scale
    if isinstance(mask, PackedBatch):
        if need_weights or (cache is not None and not mask.causal) or (bias is not None and not callable(bias)):
            raise InputError("Packed (unpadded) attention takes no weights, a cache only when causal, and a bias "
                             "only as a function of the queries and keys.")
        return mask.attend(query, key, value, heads, kv_heads, scale, softcap, dropout, rotary, window, bias,
                           cache, layer), None
    batch, seq = query.shape[:2]
    q = query.view(batch, seq, heads, head_dim).transpose(1, 2)
    k, v = (x.view(batch, x.shape[1], kv_heads, head_dim).transpose(1, 2) for x in (key, value))
    if rotary is not None:
        q, k = rotate(q, *rotary), rotate(k, *rotary)
    if cache is not None:
        k, v = cache.update(layer, k, v)
    if callable(bias):
        bias = bias(q, k)
    if window is not None:
        offset = 0 if mask is None else mask.offset
        # A window reaching every key masks nothing, and leaving it out keeps SDPA's fast paths open.
        if window >= max(offset + seq, k.shape[2]):
            window = None
        elif mask is None:
            mask = Mask()
    # A plain causal square needs no grid: SDPA's built-in causal mask is cheaper. Nor does one query
    # placed after every key (a decoding step without padding): causal order then hides nothing.
    plain = mask is not None and mask.causal and mask.keep is None and window is None and bias is None
    is_causal = plain and mask.offset == 0 and seq == k.shape[2]
    if plain and seq == 1 and mask.offset + 1 >= k.shape[2]:
        mask = None
    grid = None if mask is None or is_causal else mask.grid(seq, k.shape[2], window, query.device)
    if bias is not None:
        if grid is not None:
            bias = bias.masked_fill(~grid, torch.finfo(bias.dtype).min)
        grid = bias.to(q.dtype)
    context, weights = _core(q, k, v, grid, scale, softcap, dropout, need_weights, is_causal)
    return context.transpose(1, 2).reshape(batch, seq, -1), weights


# -- unpadded ("packed") execution ----------------------------------------------------------------

# The packing cost model, in multiply-adds: a token costs the layer's per-token work (projections
# and feed-forward); one attention call costs a fixed overhead per thread (its threads must start
# and meet, and small calls run far below the rate of large ones). Tuning: benchmarks/RESULTS.md.
PACK_CALL_COST_MACS = 8_000_000
# Below this share of padding, packing's saving is within timing noise: the automatic choice stays dense.
PACK_MIN_PAD_SHARE = 0.1


def plan_buckets(lengths: list[int], macs_per_token: int, call_cost: int) -> list[tuple[int, int]]:
    """Cut the sorted row lengths into buckets, each padded to its longest row and attended with one
    SDPA call, minimising tokens x ``macs_per_token`` + buckets x ``call_cost`` (exact, by dynamic
    programming over the distinct lengths). Returns (number of rows, padded length) per bucket,
    shortest first."""
    distinct = sorted(set(lengths))
    counts = [lengths.count(length) for length in distinct]
    best = [0.0] + [math.inf] * len(distinct)  # best[j]: cost of the first j distinct lengths
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


class PackedBatch:
    """The tokens of a padded batch regrouped as one (slots, hidden) matrix of length buckets.

    Each bucket is a dense (rows, bucket length) block of the packed matrix, so attention for it is
    one SDPA call on a view, masked only where a row is shorter than its bucket. A row's slots hold
    its real tokens first, then (to fill its bucket) some of its own padded positions, finite and
    masked out as keys. ``index`` holds each slot's flat position in the (batch * seq) grid;
    ``real`` the slots that are real tokens (None when every slot is).

    ``causal``: each real token sees the real tokens before it in its row (a decoder's prefill).
    Padded slots trail their row's real tokens, so a bucket's causal order alone keeps them out of
    every real token's view, and no key mask is needed. Causal packing may fill a ``KVCache`` in
    the padded (batch, kv_heads, seq, head_dim) layout that later one-token steps attend over.
    """

    def __init__(
        self,
        index: torch.Tensor,
        real: torch.Tensor | None,
        groups: list[tuple[int, int, int, torch.Tensor | None]],
        batch: int,
        seq: int,
        causal: bool = False,
    ) -> None:
        self.index = index
        self.real = real
        self.groups = groups  # (first slot, rows, bucket length, key mask or None), one per bucket
        self.batch, self.seq, self.causal = batch, seq, causal
        self.real_index = index if real is None else index[real]
        self._windows: dict[int, list[torch.Tensor]] = {}

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

    def window_masks(self, window: int) -> list[torch.Tensor]:
        """Per bucket, its key mask narrowed to the keys fewer than ``window`` columns of the padded
        grid away from each query (as the dense path measures it, holes in a row included)."""
        if window not in self._windows:
            masks = []
            for start, rows, length, key_mask in self.groups:
                columns = (self.index[start : start + rows * length] % self.seq).view(rows, length)
                near = ((columns[:, :, None] - columns[:, None, :]).abs() < window)[:, None]
                if key_mask is not None:
                    # A padded slot far from its row's real tokens would see no key at all; letting it
                    # see itself keeps it finite and reaches no real token.
                    near = (near & key_mask) | torch.eye(length, dtype=torch.bool, device=near.device)
                masks.append(near)
            self._windows[window] = masks
        return self._windows[window]

    def fill_cache(self, cache: KVCache, layer: int, key: torch.Tensor, value: torch.Tensor, kv_heads: int) -> None:
        """Write packed (slots, kv_heads * head_dim) keys and values into an empty cache layer in
        the padded layout. Padded positions hold zeros: later steps mask them, and a masked key must
        still be finite (its zero weight times a NaN would be NaN)."""
        if cache.get_seq_length(layer) != 0:
            raise InputError(
                f"Packed attention fills an empty cache, but layer {layer} already holds "
                f"{cache.get_seq_length(layer)} positions; run later steps dense (a Mask with the cache's offset)."
            )
        head_dim = key.shape[-1] // kv_heads
        keys, values = (self.unpack(x).view(self.batch, self.seq, kv_heads, head_dim).transpose(1, 2)
                        for x in (key, value))
        cache.update(layer, keys, values)

    def attend(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, heads: int, kv_heads: int,
        scale: float, softcap: float | None, dropout: float,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None, window: int | None = None,
        bias: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        cache: KVCache | None = None, layer: int = 0,
    ) -> torch.Tensor:
        """Self-attention of each row over its own real tokens; (slots, width) in and out. ``rotary``
        is (cos, sin) per slot, broadcastable to (slots, heads, head_dim); ``bias(q, k)`` an additive
        term for a bucket's (rows, heads, length, head_dim) queries and keys (its rows' real tokens
        sit at columns 0, 1, ..., so relative positions are exact); ``cache`` (causal only) receives
        the rotated keys and values of layer ``layer``."""
        head_dim = query.shape[-1] // heads
        if rotary is not None:
            query = rotate(query.view(-1, heads, head_dim), *rotary).flatten(1)
            key = rotate(key.view(-1, kv_heads, head_dim), *rotary).flatten(1)
        if cache is not None:
            self.fill_cache(cache, layer, key, value, kv_heads)
        # No two columns of the grid are ``seq`` or more apart: such a window masks nothing.
        masks = self.window_masks(window) if window is not None and window < self.seq else None
        contexts = []
        for bucket, (start, rows, length, key_mask) in enumerate(self.groups):
            # One bucket as a dense (rows, heads, length, head_dim) view of the packed matrix.
            q, k, v = (x[start : start + rows * length].view(rows, length, n, head_dim).transpose(1, 2)
                       for x, n in ((query, heads), (key, kv_heads), (value, kv_heads)))
            mask = key_mask if masks is None else masks[bucket]
            is_causal = self.causal and masks is None and bias is None
            if self.causal and not is_causal:
                earlier = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
                mask = earlier if mask is None else mask & earlier
            elif is_causal:
                mask = None
            if bias is not None:
                term = bias(q, k).to(q.dtype)
                mask = term if mask is None else term.masked_fill(~mask, torch.finfo(q.dtype).min)
            context, _ = _core(q, k, v, mask, scale, softcap, dropout, False, is_causal)
            contexts.append(context.transpose(1, 2).reshape(rows * length, -1))
        return contexts[0] if len(contexts) == 1 else torch.cat(contexts)


def pack_batch(
    attention_mask: torch.Tensor | None,
    batch: int,
    seq: int,
    device: torch.device,
    unpad_inputs: bool | None,
    macs_per_token: int,
    causal: bool = False,
) -> PackedBatch | None:
    """A ``PackedBatch`` when the encoder should run unpadded, else None (run the dense path).

    ``unpad_inputs``: False never packs, True packs every padded batch it can, None (the default)
    packs when it is expected to be faster: at least ``PACK_MIN_PAD_SHARE`` of the grid is padding and
    the bucket plan costs less than the padded batch. Never packed when a row's first position is
    padding (heads read position 0, and a row with no real token has no packed form); ``causal``
    packing (a decoder's prefill, whose prompts are left-padded) needs only a real token in every row.
    """
    if attention_mask is None or unpad_inputs is False:
        return None
    if unpad_inputs not in (None, True):
        raise InputError(f"config.unpad_inputs must be True, False or None (automatic), got {unpad_inputs!r}.")
    keep = _checked_mask(attention_mask, batch, seq, device)
    lengths = keep.sum(1)
    row_lengths = lengths.tolist()
    padded = batch * seq - sum(row_lengths)
    if padded == 0 or not bool((keep.any(1) if causal else keep[:, 0]).all()):
        return None
    call_cost = PACK_CALL_COST_MACS * torch.get_num_threads()
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
    return PackedBatch(torch.cat(index_parts), None if all_real else torch.cat(real_parts), groups, batch, seq,
                       causal)


def real_positions_only(
    head: Callable[[torch.Tensor], torch.Tensor],
    hidden: torch.Tensor,
    attention_mask: torch.Tensor | None,
    padding_in_output: bool,
) -> torch.Tensor:
    """``head(hidden)`` for a (batch, seq, hidden) input. When the caller reads no padded position
    (``padding_in_output=False``) the head runs on the real positions only and padded positions hold
    zeros: a masked LM's vocabulary projection costs more per token than the whole encoder."""
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
    """Run ``layer(hidden, *layer_args, output_attentions) -> (hidden, weights)`` for each layer.
    Returns the last hidden state, the hidden states (the input, then every layer's output) and every
    layer's attention weights, the last two None unless asked for."""
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
) -> tuple[torch.Tensor, tuple | None, tuple | None]:
    """Run ``encoder(hidden, mask, output_attentions, output_hidden_states)`` over the embeddings,
    packed (``pack_batch``) or dense, and return (last hidden state, hidden states, attentions) in the
    (batch, seq, ...) layout either way. Packed, ``hidden_states[0]`` is the dense embedding output
    and later states are zero at padded positions.

    ``padding_in_output``: whether the caller hands values at padded positions back to the user (a
    base model's last_hidden_state, per-token logits); the automatic choice then stays dense."""
    batch, seq = hidden.shape[:2]
    if unpad_inputs is None and (padding_in_output or output_hidden_states):
        unpad_inputs = False
    packing = None if output_attentions else pack_batch(
        attention_mask, batch, seq, hidden.device, unpad_inputs, macs_per_token
    )
    if packing is None:
        mask = Mask.padding(attention_mask, batch, seq, hidden.device)
        return encoder(hidden, mask, output_attentions, output_hidden_states)
    packed, all_hidden, _ = encoder(packing.pack(hidden), packing, False, output_hidden_states)
    if all_hidden is not None:
        all_hidden = (hidden,) + tuple(packing.unpack(state) for state in all_hidden[1:])
    return packing.unpack(packed), all_hidden, None

"""The attention interface: causal decoding through the KV cache equals full recomputation; masks,
windows, grouped-query heads, soft-capping and packed execution against plain references."""

import math

import pytest
import torch
import torch.nn.functional as F

from leanformers.errors import InputError
from leanformers.modeling.attention import KVCache, Mask, attend, pack_batch

HEADS, KV_HEADS, DIM = 4, 2, 8


def _reference(q, k, v, allowed, softcap=None):
    """Plain softmax attention over (batch, heads, q, d) with a boolean (batch, 1, q, k) grid."""
    k, v = (x.repeat_interleave(q.shape[1] // x.shape[1], dim=1) for x in (k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, -1).nan_to_num(0.0)  # a query with no key reads nothing
    return weights @ v


def _projections(batch, seq, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, seq, HEADS * DIM, generator=gen, dtype=torch.float64)
    k = torch.randn(batch, seq, KV_HEADS * DIM, generator=gen, dtype=torch.float64)
    v = torch.randn(batch, seq, KV_HEADS * DIM, generator=gen, dtype=torch.float64)
    return q, k, v


def _left_padded(batch, seq):
    keep = torch.ones(batch, seq, dtype=torch.long)
    keep[1, :5] = 0
    keep[2, :17] = 0
    return keep


@pytest.mark.parametrize("window", [None, 6])
def test_cache_step_by_step_equals_full_recomputation(window):
    batch, steps = 3, 64
    q, k, v = _projections(batch, steps)
    keep = _left_padded(batch, steps)
    full, _ = attend(q, k, v, Mask.padding(keep, batch, steps, q.device, causal=True), heads=HEADS,
                     kv_heads=KV_HEADS, window=window)
    cache = KVCache(layers=1, block=16)
    stepped = []
    for t in range(steps):
        mask = Mask.padding(keep[:, : t + 1], batch, t + 1, q.device, causal=True, offset=t)
        # a one-query step: the mask covers every position seen so far
        mask = mask or Mask(None, causal=True, offset=t)
        out, _ = attend(q[:, t : t + 1], k[:, t : t + 1], v[:, t : t + 1], mask, heads=HEADS, kv_heads=KV_HEADS,
                        window=window, cache=cache, layer=0)
        stepped.append(out)
    stepped = torch.cat(stepped, dim=1)
    real = keep.bool()
    assert torch.isfinite(stepped).all()
    assert (stepped - full)[real].abs().max() <= 1e-6
    assert cache.get_seq_length() == steps
    # and both equal a plain softmax over the same causal, windowed, padded grid
    qh = q.view(batch, steps, HEADS, DIM).transpose(1, 2)
    kh, vh = (x.view(batch, steps, KV_HEADS, DIM).transpose(1, 2) for x in (k, v))
    pos = torch.arange(steps)
    allowed = (pos[None, :] <= pos[:, None]) & keep.bool()[:, None, None, :]
    if window is not None:
        allowed = allowed & (pos[:, None] - pos[None, :] < window)
    expected = _reference(qh, kh, vh, allowed).transpose(1, 2).reshape(batch, steps, -1)
    assert (full - expected)[real].abs().max() <= 1e-10


def test_cache_prefill_then_steps_and_block_growth():
    batch, prompt, steps = 2, 10, 40
    q, k, v = _projections(batch, prompt + steps, seed=1)
    full, _ = attend(q, k, v, Mask(None, causal=True), heads=HEADS, kv_heads=KV_HEADS)
    cache = KVCache(layers=2, block=32)
    out, _ = attend(q[:, :prompt], k[:, :prompt], v[:, :prompt], Mask(None, causal=True), heads=HEADS,
                    kv_heads=KV_HEADS, cache=cache, layer=1)
    outs, buffers = [out], {cache.keys[1].data_ptr()}
    for t in range(prompt, prompt + steps):
        out, _ = attend(q[:, t : t + 1], k[:, t : t + 1], v[:, t : t + 1], Mask(None, causal=True, offset=t),
                        heads=HEADS, kv_heads=KV_HEADS, cache=cache, layer=1)
        outs.append(out)
        buffers.add(cache.keys[1].data_ptr())
    assert (torch.cat(outs, 1) - full).abs().max() <= 1e-10
    # 50 positions in blocks of 32: one allocation for the prompt, one growth; written in place otherwise
    assert len(buffers) == 2 and cache.keys[1].shape[2] == 64
    assert cache.keys[0] is None and cache.get_seq_length(1) == prompt + steps
    cache.crop(prompt)
    assert cache.get_seq_length(1) == prompt


def test_preallocated_cache_never_grows():
    cache = KVCache(layers=1, capacity=100)
    for _ in range(100):
        cache.update(0, torch.randn(1, 2, 1, 4), torch.randn(1, 2, 1, 4))
    assert cache.keys[0].shape[2] == 256  # capacity rounded up to the block


def test_softcap_and_weights_match_reference():
    batch, seq = 2, 7
    q, k, v = _projections(batch, seq, seed=2)
    mask = Mask(None, causal=True)
    out, weights = attend(q, k, v, mask, heads=HEADS, kv_heads=KV_HEADS, softcap=5.0, need_weights=True)
    qh = q.view(batch, seq, HEADS, DIM).transpose(1, 2)
    kh, vh = (x.view(batch, seq, KV_HEADS, DIM).transpose(1, 2) for x in (k, v))
    allowed = torch.ones(seq, seq, dtype=torch.bool).tril()[None, None]
    expected = _reference(qh, kh, vh, allowed, softcap=5.0).transpose(1, 2).reshape(batch, seq, -1)
    assert (out - expected).abs().max() <= 1e-10
    assert weights.shape == (batch, HEADS, seq, seq)
    assert torch.allclose(weights.sum(-1), torch.ones(()).double())


def test_bidirectional_padding_grouped_query_and_packed():
    batch, seq = 3, 9
    q, k, v = _projections(batch, seq, seed=3)
    keep = torch.ones(batch, seq, dtype=torch.long)
    keep[0, 6:] = 0
    keep[2, 3:] = 0
    dense, _ = attend(q, k, v, Mask.padding(keep, batch, seq, q.device), heads=HEADS, kv_heads=KV_HEADS)
    packing = pack_batch(keep, batch, seq, q.device, True, macs_per_token=1)
    packed, _ = attend(packing.pack(q), packing.pack(k), packing.pack(v), packing, heads=HEADS, kv_heads=KV_HEADS)
    real = keep.bool()
    assert (packing.unpack(packed) - dense)[real].abs().max() <= 1e-10
    qh = q.view(batch, seq, HEADS, DIM).transpose(1, 2)
    kh, vh = (x.view(batch, seq, KV_HEADS, DIM).transpose(1, 2) for x in (k, v))
    expected = _reference(qh, kh, vh, real[:, None, None, :]).transpose(1, 2).reshape(batch, seq, -1)
    assert (dense - expected)[real].abs().max() <= 1e-10


def test_rotary_is_applied_before_caching():
    batch, seq = 1, 5
    q, k, v = _projections(batch, seq, seed=4)
    angles = torch.arange(seq, dtype=torch.float64)[:, None] * torch.linspace(0.1, 1.0, DIM // 2, dtype=torch.float64)
    cos, sin = (f(torch.cat([angles, angles], -1)) for f in (torch.cos, torch.sin))
    full, _ = attend(q, k, v, Mask(None, causal=True), heads=HEADS, kv_heads=KV_HEADS, rotary=(cos, sin))
    cache = KVCache(1)
    last = None
    for t in range(seq):
        last, _ = attend(q[:, t : t + 1], k[:, t : t + 1], v[:, t : t + 1], Mask(None, causal=True, offset=t),
                         heads=HEADS, kv_heads=KV_HEADS, rotary=(cos[t : t + 1], sin[t : t + 1]), cache=cache)
    assert (last[:, 0] - full[:, -1]).abs().max() <= 1e-10


def test_bad_inputs_are_reported():
    q, k, v = _projections(1, 4)
    with pytest.raises(InputError, match="share"):
        attend(q, k, v, None, heads=4, kv_heads=3)
    with pytest.raises(InputError, match="covers"):
        attend(q, k, v, Mask(torch.ones(1, 3, dtype=torch.bool)), heads=HEADS, kv_heads=KV_HEADS)
    with pytest.raises(InputError, match="attention_mask has shape"):
        Mask.padding(torch.ones(2, 4), 1, 4, q.device)
    with pytest.raises(InputError):
        KVCache(0)


def test_dense_path_matches_sdpa_in_float32():
    batch, seq = 2, 6
    q, k, v = (x.float() for x in _projections(batch, seq, seed=5))
    out, _ = attend(q, k, v, None, heads=HEADS, kv_heads=KV_HEADS)
    qh = q.view(batch, seq, HEADS, DIM).transpose(1, 2)
    kh, vh = (x.view(batch, seq, KV_HEADS, DIM).transpose(1, 2).repeat_interleave(2, 1) for x in (k, v))
    expected = F.scaled_dot_product_attention(qh, kh, vh).transpose(1, 2).reshape(batch, seq, -1)
    assert torch.equal(out, expected) or (out - expected).abs().max() <= 1e-6

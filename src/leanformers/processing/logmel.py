"""Whisper's log-mel spectrogram; the extractor around it is ``audio.LogMelFeatureExtractor``.

The features are those OpenAI's Whisper was trained on: a centred STFT (the clip reflected by
``n_fft // 2`` samples at both ends) with a periodic Hann window of ``n_fft`` samples every
``hop_length``, the power spectrum, Slaney-normalised triangular filters on the Slaney mel scale
from 0 to 8 kHz, ``log10`` (floored at 1e-10), every value raised to at least the clip's maximum
minus 8 (an 80 dB range), then ``(x + 4) / 4``. The last STFT frame is dropped, so a clip of n
samples gives ``n // hop_length`` frames. A whole batch is framed and transformed at once in
float32, and frames that read only padding are not transformed; the result equals the
reference's numpy and torch paths to ~1e-6.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

# Slaney's mel scale: linear below 1 kHz, logarithmic above.
_LINEAR_HZ_PER_MEL = 200.0 / 3.0
_LOG_START_HZ = 1000.0
_LOG_START_MEL = _LOG_START_HZ / _LINEAR_HZ_PER_MEL
_LOG_STEP = np.log(6.4) / 27.0
MAX_FREQUENCY = 8000.0
POWER_FLOOR = 1e-10
DYNAMIC_RANGE = 8.0  # in log10 units: 80 dB


def slaney_mel(hertz: np.ndarray) -> np.ndarray:
    hertz = np.asarray(hertz, dtype=np.float64)
    linear = hertz / _LINEAR_HZ_PER_MEL
    logarithmic = _LOG_START_MEL + np.log(np.maximum(hertz, _LOG_START_HZ) / _LOG_START_HZ) / _LOG_STEP
    return np.where(hertz >= _LOG_START_HZ, logarithmic, linear)


def slaney_hertz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _LINEAR_HZ_PER_MEL
    logarithmic = _LOG_START_HZ * np.exp(_LOG_STEP * (np.maximum(mel, _LOG_START_MEL) - _LOG_START_MEL))
    return np.where(mel >= _LOG_START_MEL, logarithmic, linear)


@lru_cache(maxsize=8)
def mel_filters(num_mel_bins: int, n_fft: int, sampling_rate: int) -> np.ndarray:
    """(n_fft // 2 + 1, num_mel_bins) float64 weights: triangles between neighbouring centres
    spaced evenly in Slaney mel from 0 Hz to 8 kHz, each scaled by 2 / its width in Hz so that
    every filter has the same area (librosa's ``norm="slaney"``). Read-only (cached)."""
    edges = slaney_hertz(np.linspace(slaney_mel(0.0), slaney_mel(MAX_FREQUENCY), num_mel_bins + 2))
    bins = np.linspace(0, sampling_rate // 2, n_fft // 2 + 1)[:, None]
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins - left) / (centre - left)
    falling = (right - bins) / (right - centre)
    filters = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (right - left))
    filters.setflags(write=False)
    return filters


def log_mel_spectrogram(
    waveforms: np.ndarray, num_mel_bins: int, n_fft: int, hop_length: int, sampling_rate: int,
    dither: float = 0.0, device: str = "cpu", real_samples: int | None = None,
) -> np.ndarray:
    """(batch, num_mel_bins, samples // hop_length) float32 features of equally long clips
    ``waveforms`` (batch, samples), each clip normalised by its own maximum. ``dither`` adds
    Gaussian noise of that standard deviation first (random, so not reproducible).

    ``real_samples``: when every clip is zero after its first ``real_samples`` samples (padding),
    the frames that see only zeros are not transformed: their power is exactly zero, so their
    value is the floor's."""
    import torch

    batch, samples = waveforms.shape
    frames = samples // hop_length
    signal = torch.from_numpy(np.ascontiguousarray(waveforms, dtype=np.float32)).to(device)
    if dither:
        signal = signal + dither * torch.randn_like(signal)
        real_samples = None
    # Frame k covers samples [k * hop - n_fft // 2, k * hop + n_fft // 2); past the real samples
    # (and clear of the reflection at the right end) a frame reads zeros only.
    needed = frames
    if real_samples is not None and real_samples + n_fft < samples:
        needed = min(frames, -(-(real_samples + n_fft // 2) // hop_length))
    # The centred STFT as framing + rfft (torch.stft computes the same, several times slower on CPU).
    spectrum = torch.fft.rfft(_windowed_frames(signal, needed, n_fft, hop_length))
    # Squares of the real and imaginary parts side by side, (batch * needed, 2 * bins): the filters
    # take each bin's two squares with the same weight, which sums them into the power.
    squares = torch.view_as_real(spectrum).square_().view(batch * needed, -1)
    # Each filter covers a few neighbouring bins: a band of filters multiplies only its bins, and the
    # product lands (mel, frames), the layout returned.
    mel = squares.new_empty(num_mel_bins, batch * needed)
    for first, last, lo, hi, weights in _mel_bands(num_mel_bins, n_fft, sampling_rate, signal.device):
        if weights is None:
            mel[first:last] = 0.0
        else:
            torch.matmul(weights, squares[:, lo:hi].T, out=mel[first:last])
    log_spec = mel.clamp_(min=POWER_FLOOR).log10_().view(num_mel_bins, batch, needed).transpose(0, 1)
    if needed < frames:
        padded = log_spec.new_full((batch, num_mel_bins, frames), math.log10(POWER_FLOOR))
        padded[:, :, :needed] = log_spec
        log_spec = padded
    else:
        log_spec = log_spec.contiguous()
    ceiling = log_spec.amax(dim=(1, 2), keepdim=True)
    log_spec = torch.maximum(log_spec, ceiling - DYNAMIC_RANGE).add_(4.0).div_(4.0)
    return log_spec.cpu().numpy()


# Filters per band in ``_mel_bands``: few enough that a band spans few bins, enough that the number of
# matrix products stays small (measured: 8-16 are alike; 80 dense filters cost ~4x more).
_BAND = 10


@lru_cache(maxsize=8)
def _mel_bands(num_mel_bins: int, n_fft: int, sampling_rate: int, device: object) -> tuple:
    """``mel_filters`` cut into bands of ``_BAND`` filters: (first filter, end filter, first column,
    end column, weights) each, where the columns index the interleaved (real, imaginary) squares of
    the bins the band's filters touch, and the float32 weights (filters, columns) repeat each bin's
    weight for its two squares (None: the band touches no bin). Cached; not to be written to."""
    import torch

    filters = mel_filters(num_mel_bins, n_fft, sampling_rate).T
    bands = []
    for first in range(0, num_mel_bins, _BAND):
        last = min(num_mel_bins, first + _BAND)
        touched = np.flatnonzero(filters[first:last].any(axis=0))
        if touched.size == 0:
            bands.append((first, last, 0, 0, None))
            continue
        lo, hi = int(touched[0]), int(touched[-1]) + 1
        weights = np.repeat(filters[first:last, lo:hi], 2, axis=1).astype(np.float32)
        bands.append((first, last, 2 * lo, 2 * hi, torch.from_numpy(weights).to(device)))
    return tuple(bands)


def _windowed_frames(signal: object, needed: int, n_fft: int, hop_length: int) -> object:
    """(batch, needed, n_fft): the first ``needed`` frames of the centred STFT times the periodic
    Hann window. Frames inside the clip are read from it in place; only the few that reach past an
    end go through a reflect-padded copy of that end (padding the whole clip would copy it all)."""
    import torch

    batch, samples = signal.shape
    half = n_fft // 2
    window = torch.hann_window(n_fft, dtype=signal.dtype, device=signal.device)
    out = signal.new_empty(batch, needed, n_fft)
    # Frames [inner_start, inner_end) lie wholly inside the clip.
    inner_start = min(needed, -(-half // hop_length))
    inner_end = max(inner_start, min(needed, (samples - half) // hop_length + 1))
    if inner_end > inner_start:
        offset = inner_start * hop_length - half
        inner = signal[:, offset:].unfold(-1, n_fft, hop_length)[:, : inner_end - inner_start]
        torch.mul(inner, window, out=out[:, inner_start:inner_end])
    if inner_start > 0:  # the left end, reflected
        span = min(samples, (inner_start - 1) * hop_length + half)
        left = torch.nn.functional.pad(signal[None, :, :span], (half, 0), mode="reflect")[0]
        torch.mul(left.unfold(-1, n_fft, hop_length)[:, :inner_start], window, out=out[:, :inner_start])
    if needed > inner_end:  # the right end, reflected
        first = inner_end * hop_length - half
        right = torch.nn.functional.pad(signal[None, :, first:], (0, half), mode="reflect")[0]
        torch.mul(right.unfold(-1, n_fft, hop_length)[:, : needed - inner_end], window, out=out[:, inner_end:])
    return out

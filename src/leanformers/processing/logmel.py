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
    half = n_fft // 2
    signal = torch.from_numpy(np.ascontiguousarray(waveforms, dtype=np.float32)).to(device)
    if dither:
        signal = signal + dither * torch.randn_like(signal)
        real_samples = None
    # Frame k covers samples [k * hop - half, k * hop + half); past the real samples (and clear of
    # the reflection at the right end) a frame reads zeros only.
    needed = frames
    if real_samples is not None and real_samples + n_fft < samples:
        needed = min(frames, -(-(real_samples + half) // hop_length))
    # The centred STFT as framing + rfft (torch.stft computes the same, several times slower on CPU);
    # with frames left out, only the samples the kept frames read, reflected at the left end only.
    end = (needed - 1) * hop_length + half if needed < frames else samples
    padded = torch.nn.functional.pad(signal[None, :, :end], (half, half if needed == frames else 0), mode="reflect")[0]
    window = torch.hann_window(n_fft, device=device)
    spectrum = torch.fft.rfft(padded.unfold(-1, n_fft, hop_length)[:, :needed] * window)
    power = spectrum.real.square() + spectrum.imag.square()
    filters = torch.from_numpy(mel_filters(num_mel_bins, n_fft, sampling_rate).astype(np.float32)).to(device)
    log_spec = torch.matmul(power, filters).clamp_(min=POWER_FLOOR).log10_()
    if needed < frames:
        floor = log_spec.new_full((batch, frames - needed, num_mel_bins), math.log10(POWER_FLOOR))
        log_spec = torch.cat([log_spec, floor], dim=1)
    ceiling = log_spec.amax(dim=(1, 2), keepdim=True)
    log_spec = torch.maximum(log_spec, ceiling - DYNAMIC_RANGE).add_(4.0).div_(4.0)
    return np.ascontiguousarray(log_spec.transpose(1, 2).cpu().numpy())

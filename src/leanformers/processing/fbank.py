"""Kaldi-style log-mel filter banks (AST's input features); the extractor around them is
``audio.FilterBankFeatureExtractor``.

The features are Kaldi's ``compute-fbank`` defaults as AST was trained on them: 25 ms frames
(400 samples) every 10 ms (160), no padding at the edges (a clip of n samples gives
``1 + (n - 400) // 160`` frames), per frame the DC offset removed, pre-emphasis 0.97, a symmetric
Hann window, a 512-point power spectrum, triangular filters spaced evenly on Kaldi's mel scale
(``1127 ln(1 + f / 700)``) from 20 Hz to half the sampling rate and triangular in mel, then the
natural log (floored at float32's epsilon). No dither, so the output is deterministic. The result
equals the reference's numpy path (``ASTFeatureExtractor`` without torchaudio) to ~1e-6.
"""

from __future__ import annotations

import numpy as np

FRAME_LENGTH = 400
HOP_LENGTH = 160
FFT_LENGTH = 512
PREEMPHASIS = 0.97
LOWEST_FREQUENCY = 20.0
# Kaldi floors the mel energies at float32's machine epsilon before the log.
ENERGY_FLOOR = float(np.finfo(np.float32).eps)


def kaldi_mel(frequency: np.ndarray | float) -> np.ndarray | float:
    return 1127.0 * np.log(1.0 + np.asarray(frequency) / 700.0)


def mel_filters(num_mel_bins: int, sampling_rate: float) -> np.ndarray:
    """(FFT_LENGTH // 2 + 1, num_mel_bins) float64 weights: triangles evenly spaced in Kaldi mel
    between 20 Hz and ``sampling_rate // 2``, each rising and falling linearly in mel."""
    edges = np.linspace(kaldi_mel(LOWEST_FREQUENCY), kaldi_mel(sampling_rate // 2), num_mel_bins + 2)
    bins = kaldi_mel(np.arange(FFT_LENGTH // 2 + 1) * (sampling_rate / FFT_LENGTH))[:, None]
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins - left) / (centre - left)
    falling = (right - bins) / (right - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def _hann(length: int) -> np.ndarray:
    """The symmetric Hann window (ends at zero), as Kaldi's "hanning"."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / (length - 1))


def log_mel_fbank(waveform: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """(frames, mel bins) float32 log-mel energies of one clip; zero frames when the clip is
    shorter than one 400-sample frame."""
    samples = np.asarray(waveform, dtype=np.float64)
    if samples.shape[0] < FRAME_LENGTH:
        return np.zeros((0, filters.shape[1]), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(samples, FRAME_LENGTH)[::HOP_LENGTH]
    frames = frames - frames.mean(axis=1, keepdims=True)
    # Pre-emphasis within each frame; the first sample is scaled by (1 - 0.97), as Kaldi does.
    emphasised = np.empty_like(frames)
    emphasised[:, 1:] = frames[:, 1:] - PREEMPHASIS * frames[:, :-1]
    emphasised[:, 0] = frames[:, 0] * (1.0 - PREEMPHASIS)
    spectrum = np.fft.rfft(emphasised * _hann(FRAME_LENGTH), n=FFT_LENGTH, axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    return np.log(np.maximum(power @ filters, ENERGY_FLOOR)).astype(np.float32)


__all__ = ["FRAME_LENGTH", "kaldi_mel", "log_mel_fbank", "mel_filters"]

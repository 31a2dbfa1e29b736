"""The audio pipelines: audio-classification and automatic-speech-recognition.

Items are 1-D sample arrays, ``{"raw": array, "sampling_rate": rate}`` dicts, or audio files (a path
or bytes), decoded and resampled to the feature extractor's rate.
"""

from __future__ import annotations

import os
from typing import Any

from .errors import InputError
from .pipelines import (
    _COUNT_OR_ALL,
    _SCORE_FUNCTION,
    Feature,
    Pipeline,
    _describe,
    _is_number,
    _must,
    _ranked,
)


class _AudioPipeline(Pipeline):
    _attention_mask: bool | None = None

    def _check_item(self, item: Any, params: dict[str, Any]) -> Any:
        if isinstance(item, (str, os.PathLike, bytes, bytearray)):
            return item
        if not isinstance(item, dict):
            return self._checked_samples(item)
        if "sampling_rate" not in item or not ("raw" in item or "array" in item):
            raise InputError('An audio dict needs a "raw" (or "array") key with the samples and "sampling_rate".')
        samples = self._checked_samples(item["raw"] if item.get("raw") is not None else item.get("array"))
        return {"raw": samples, "sampling_rate": item["sampling_rate"]}

    def _checked_samples(self, samples: Any) -> Any:
        """``samples`` as a 1-D numpy array, or :class:`InputError` saying what audio may be."""
        import numpy as np

        if type(samples).__module__.startswith("torch") and hasattr(samples, "numpy"):
            samples = samples.detach().cpu().numpy()
        if not isinstance(samples, np.ndarray):
            raise InputError(f"The {self.task} pipeline takes a 1-D numpy array or torch tensor of samples, an audio "
                             f"file path, bytes, or {{'raw': array, 'sampling_rate': rate}}; got {_describe(samples)}.")
        if samples.ndim != 1:
            raise InputError(f"The {self.task} pipeline takes single-channel (1-D) audio, got shape {samples.shape}.")
        if samples.size == 0:
            raise InputError(f"The {self.task} pipeline got an empty audio array.")
        return samples

    def _samples(self, item: Any) -> Any:
        """A checked item's samples at the extractor's rate (decoded / resampled as needed)."""
        import numpy as np

        from .processing.audio import load_audio

        rate = self.feature_extractor.sampling_rate
        if isinstance(item, (str, os.PathLike, bytes, bytearray)):
            return load_audio(item, rate)
        if not isinstance(item, dict) or item["sampling_rate"] == rate:
            return item["raw"] if isinstance(item, dict) else item
        import soxr

        return soxr.resample(item["raw"].astype(np.float32), item["sampling_rate"], rate, quality="HQ")

    def input_length(self, item: Any) -> int:
        return int(self._samples(self._check_item(item, self._defaults)).shape[0])

    def _features(self, samples: Any, meta: dict[str, Any] | None = None) -> Feature:
        options = {} if self._attention_mask is None else {"return_attention_mask": self._attention_mask}
        rate = self.feature_extractor.sampling_rate
        processed = self.feature_extractor(samples, sampling_rate=rate, return_tensors="pt", **options)
        inputs = {name: value[0] for name, value in processed.items()}
        return Feature(inputs, {"samples": int(samples.shape[0]), **(meta or {})})

    def _preprocess(self, item, params):
        return [self._features(self._samples(item))]


class AudioClassificationPipeline(_AudioPipeline):
    """``pipe(audio)`` -> the ``top_k`` (default 5; ``None`` = all) ``{"score", "label"}``; audio is
    an array of samples, ``{"raw": array, "sampling_rate": sr}``, or a file path / bytes."""

    task = "audio-classification"
    options = {"top_k": (_COUNT_OR_ALL, True), "function_to_apply": (_SCORE_FUNCTION, False)}

    def _postprocess(self, item, features, outputs, params):
        function, top_k = params.get("function_to_apply"), params.get("top_k", 5)
        ranked = _ranked(outputs[0]["logits"], self.model.config, function, top_k, one_label_sigmoid=False)
        return [{"score": r["score"], "label": r["label"]} for r in ranked]  # the reference's key order


class AutomaticSpeechRecognitionPipeline(_AudioPipeline):
    """``pipe(audio)`` -> ``{"text": ...}`` by greedy CTC decoding; ``return_timestamps`` ("char" or
    "word") adds timed ``"chunks"``. ``chunk_length_s`` splits long audio into windows overlapping
    by ``stride_length_s`` (default: a sixth of the window), dropped again before decoding."""

    task = "automatic-speech-recognition"
    _attention_mask = True
    options = {
        "return_timestamps": (_must("'char' or 'word' (CTC models give character or word timestamps)",
                                    lambda v: v in ("char", "word")), False),
        "chunk_length_s": (_must("a positive number of seconds", _is_number), False),
        "stride_length_s": (_must("a number or a (left, right) pair of numbers", lambda v: _is_number(v) or (
            isinstance(v, (list, tuple)) and len(v) == 2 and all(map(_is_number, v)))), False),
    }

    @property
    def _align_to(self) -> int:
        """Waveform samples per output frame."""
        return getattr(self.model.config, "inputs_to_logits_ratio", 1)

    def _preprocess(self, item, params):
        samples = self._samples(item)
        chunk_s = params.get("chunk_length_s")
        if not chunk_s:
            return [self._features(samples)]
        rate, align = self.feature_extractor.sampling_rate, self._align_to
        strides = params.get("stride_length_s", chunk_s / 6)
        left_s, right_s = (strides, strides) if _is_number(strides) else strides
        chunk_len, left, right = (int(round(s * rate / align) * align) for s in (chunk_s, left_s, right_s))
        if chunk_len <= left + right:
            raise InputError(f"chunk_length_s ({chunk_s}) must be longer than the two strides ({left_s} + {right_s}).")
        features = []
        for start in range(0, samples.shape[0], chunk_len - left - right):
            chunk = samples[start : start + chunk_len]
            is_last = start + chunk_len >= samples.shape[0]
            stride = (chunk.shape[0], 0 if start == 0 else left, 0 if is_last else right)
            if chunk.shape[0] > stride[1]:
                features.append(self._features(chunk, {"stride": stride}))
            if is_last:
                break
        return features

    def _frames(self, samples: int) -> int:
        """Frames the model's convolutions make of ``samples`` (unpadded, floor division)."""
        config = self.model.config
        for kernel, stride in zip(getattr(config, "conv_kernel", ()), getattr(config, "conv_stride", ())):
            samples = (samples - kernel) // stride + 1
        return samples

    def _postprocess(self, item, features, outputs, params):
        import torch

        pieces = []
        for feature, output in zip(features, outputs):
            tokens = output["logits"][: self._frames(feature.meta["samples"])].argmax(dim=-1)
            if "stride" in feature.meta:  # the reference's rounding, from samples to frames
                total, left, right = feature.meta["stride"]
                frames = round(total / self._align_to)
                tokens = tokens[round(left / total * frames) : frames - round(right / total * frames)]
            pieces.append(tokens)
        tokens = torch.cat(pieces).tolist()
        result: dict[str, Any] = {"text": self.tokenizer.decode(tokens, skip_special_tokens=False)}
        kind = params.get("return_timestamps")
        if kind:
            decoded = self.tokenizer.decode(
                tokens, skip_special_tokens=False, output_char_offsets=True, output_word_offsets=kind == "word"
            )
            offsets = decoded.word_offsets if kind == "word" else decoded.char_offsets
            seconds = self._align_to / self.feature_extractor.sampling_rate
            result["chunks"] = [
                {"text": o[kind], "timestamp": (o["start_offset"] * seconds, o["end_offset"] * seconds)}
                for o in offsets
            ]
        return result

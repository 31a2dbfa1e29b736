"""The audio pipelines: audio-classification and automatic-speech-recognition.

Items are 1-D sample arrays, ``{"raw": array, "sampling_rate": rate}`` dicts, or audio files (a path
or bytes), decoded and resampled to the feature extractor's rate. A dict at another rate is
resampled (soxr "HQ"); the feature extractor itself refuses arrays at another rate.

Speech recognition cut into windows (``chunk_length_s``) streams: a file is read block by block
(resampled by a soxr stream where its rate differs), each window is made into features only when
a batch needs it, and only each window's ids are kept, so memory stays flat however long the
recording is.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

from .errors import InputError, UnsupportedModelError
from .pipelines import (
    _ANY,
    _COUNT_OR_ALL,
    _SCORE_FUNCTION,
    Feature,
    Pipeline,
    _describe,
    _is_number,
    _must,
    _ranked,
)

# Seconds of a file read (and resampled) at a time when streaming.
_BLOCK_SECONDS = 10


def _is_file(item: Any) -> bool:
    return isinstance(item, (str, os.PathLike, bytes, bytearray))


def _open_audio(source: Any) -> Any:
    """An open ``soundfile.SoundFile`` for a path or the bytes of a file; :class:`InputError` where
    there is no such file or libsndfile cannot decode it."""
    import io

    import soundfile

    if isinstance(source, (bytes, bytearray)):
        what, handle = "the audio bytes given", io.BytesIO(source)
        if not source:
            raise InputError("The audio bytes given are empty: pass the contents of an audio file.")
    else:
        what = handle = os.fspath(source)
        if what.startswith(("http://", "https://")):
            raise InputError(f"Audio is read from local files; download {what!r} first and pass the file's path.")
        if not os.path.isfile(what):
            raise InputError(f"No audio file at {what!r}.")
        what = repr(what)
    try:
        return soundfile.SoundFile(handle)
    except (RuntimeError, TypeError, ValueError, OSError) as exc:
        raise InputError(
            f"Could not decode {what} as audio ({exc}). Readable formats are those of libsndfile: WAV, FLAC, "
            "OGG/Vorbis, MP3, AIFF and similar; convert others (m4a/AAC, video files...) first, e.g. with ffmpeg."
        ) from exc


def file_length(source: Any, rate: int) -> int:
    """Samples of the audio file ``source`` at ``rate`` Hz, from its header alone."""
    with _open_audio(source) as audio:
        return math.ceil(audio.frames * rate / audio.samplerate)


def stream_audio(source: Any, rate: int, block_seconds: float = _BLOCK_SECONDS) -> Iterator[Any]:
    """The audio file ``source`` as consecutive blocks of mono float32 samples at ``rate`` Hz: the
    samples :func:`leanformers.processing.audio.load_audio` gives, a block at a time (channels
    averaged; another native rate converted by a soxr "HQ" stream, which gives the one-shot
    conversion's samples, to the same ``ceil(frames * rate / native)`` count)."""
    import numpy as np

    from .processing.audio import RESAMPLING_QUALITY

    audio = _open_audio(source)
    with audio:
        native = audio.samplerate
        expected = math.ceil(audio.frames * rate / native)
        if expected == 0:
            raise InputError(f"The audio file {_source_name(source)} holds no samples.")
        converter = None
        if native != rate:
            import soxr

            converter = soxr.ResampleStream(native, rate, 1, dtype="float32", quality=RESAMPLING_QUALITY)
        given, block = 0, max(1, int(block_seconds * native))
        while given < expected:
            frames = audio.read(block, dtype="float32", always_2d=True)
            last = frames.shape[0] < block
            samples = frames.mean(axis=1, dtype=np.float32) if frames.shape[1] > 1 else frames[:, 0]
            if converter is not None:
                samples = converter.resample_chunk(samples, last=last)
            if last and given + samples.shape[0] < expected:  # as load_audio: padded to the expected count
                samples = np.concatenate([samples, np.zeros(expected - given - samples.shape[0], np.float32)])
            samples = np.ascontiguousarray(samples[: expected - given], dtype=np.float32)
            given += samples.shape[0]
            if samples.size:
                yield samples
            if last:
                break


def _source_name(source: Any) -> str:
    return "given as bytes" if isinstance(source, (bytes, bytearray)) else repr(os.fspath(source))


def windows(blocks: Iterator[Any], length: int, left: int, right: int) -> Iterator[tuple[Any, tuple[int, int, int]]]:
    """Windows of ``length`` samples over the sample ``blocks``, each starting ``length - left - right``
    after the one before, with its ``(samples, left stride, right stride)``: the first window has no
    left stride and the last none on the right; a last window no longer than its left stride (heard
    whole by the window before) is dropped. Only a window and a block are held at a time."""
    import numpy as np

    step = length - left - right
    held, held_from, start, ended = np.zeros(0, np.float32), 0, 0, False
    while True:
        # one sample past the window tells whether more audio follows it
        while not ended and held_from + held.shape[0] <= start + length:
            block = next(blocks, None)
            if block is None:
                ended = True
            else:
                held = np.concatenate([held, block])
        window = held[start - held_from : start - held_from + length]
        is_last = ended and start + length >= held_from + held.shape[0]
        stride = (window.shape[0], 0 if start == 0 else left, 0 if is_last else right)
        if window.shape[0] > stride[1]:
            yield window, stride
        if is_last:
            return
        start += step
        held, held_from = held[start - held_from :], start


class _AudioPipeline(Pipeline):
    _attention_mask: bool | None = None

    def _check_item(self, item: Any, params: dict[str, Any]) -> Any:
        if _is_file(item):
            return item
        if not isinstance(item, dict):
            return self._checked_samples(item)
        if "sampling_rate" not in item or not ("raw" in item or "array" in item):
            raise InputError('An audio dict needs a "raw" (or "array") key with the samples and "sampling_rate".')
        rate = item["sampling_rate"]
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
            raise InputError(f"The audio dict's sampling_rate must be a positive number (Hz), got {rate!r}.")
        samples = self._checked_samples(item["raw"] if item.get("raw") is not None else item.get("array"))
        return {"raw": samples, "sampling_rate": rate}

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

        from .processing.audio import RESAMPLING_QUALITY, load_audio

        rate = self.feature_extractor.sampling_rate
        if _is_file(item):
            _open_audio(item).close()  # our errors for a missing or undecodable file
            samples = load_audio(item, rate)
            if samples.size == 0:
                raise InputError(f"The audio file {_source_name(item)} holds no samples.")
            return samples
        if not isinstance(item, dict) or item["sampling_rate"] == rate:
            return item["raw"] if isinstance(item, dict) else item
        import soxr

        return soxr.resample(item["raw"].astype(np.float32), item["sampling_rate"], rate, quality=RESAMPLING_QUALITY)

    def input_length(self, item: Any) -> int:
        item = self._check_item(item, self._defaults)
        rate = self.feature_extractor.sampling_rate
        if _is_file(item):  # from the header: a long file is not read to be sorted
            return file_length(item, rate)
        if isinstance(item, dict):
            return math.ceil(item["raw"].shape[0] * rate / item["sampling_rate"])
        return int(item.shape[0])

    def _features(self, samples: Any, meta: dict[str, Any] | None = None, **options: Any) -> Feature:
        if self._attention_mask is not None:
            options["return_attention_mask"] = self._attention_mask
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


_STRIDES = _must("a number or a (left, right) pair of numbers", lambda v: _is_number(v) or (
    isinstance(v, (list, tuple)) and len(v) == 2 and all(map(_is_number, v))))
_GENERATION_DEFAULTS = {"max_new_tokens": 256, "num_beams": 5}  # the reference pipeline's, after openai's whisper


class AutomaticSpeechRecognitionPipeline(_AudioPipeline):
    """``pipe(audio)`` -> ``{"text": ...}``, from a CTC model (greedy decoding) or an encoder-decoder
    speech model such as Whisper (``generate``); the checkpoint decides which loads.

    - CTC: ``return_timestamps`` "char" or "word" adds timed ``"chunks"``.
    - Whisper: ``return_timestamps=True`` adds the timed segments as ``"chunks"``
      (``{"timestamp": (start, end), "text"}``); word timestamps are not available. Generation
      settings pass through (``language``, ``task``, ``max_new_tokens``, ``num_beams``...,
      or ``generate_kwargs={...}``); as the reference's pipeline, ``num_beams`` defaults to 5 and
      ``max_new_tokens`` to 256 where neither the call nor the model's generation config sets them.
    - ``chunk_length_s`` cuts long audio into windows overlapping by ``stride_length_s`` (default: a
      sixth of the window). CTC drops the overlaps' frames; Whisper joins the windows' texts where
      their tokens agree, and their segments' times. A file cut into windows is streamed: memory
      stays flat however long it is.
    - Whisper on audio longer than 30 seconds without ``chunk_length_s``: as the reference, the
      whole clip's features go to ``generate``, which transcribes one 30-second window after
      another, each starting where the last timestamp of the one before ended. The whole clip is
      in memory then: for recordings of hours, pass ``chunk_length_s=30``.

    Audio is an array of samples, ``{"raw": array, "sampling_rate": sr}`` (resampled), or a file path
    / bytes. Silence is transcribed like any audio (no error): the text is whatever the model makes of
    it, often empty, sometimes a short hallucination.
    """

    task = "automatic-speech-recognition"
    _attention_mask = True
    options = {
        "return_timestamps": (_ANY, False),
        "chunk_length_s": (_must("a positive number of seconds", _is_number), False),
        "stride_length_s": (_STRIDES, False),
        "generate_kwargs": (_must("a dict of generation settings", lambda v: isinstance(v, dict)), False),
        "language": (_ANY, False),
        "task": (_ANY, False),
    }

    def __init__(self, model: Any, *args: Any, **kwargs: Any) -> None:
        self._generates = bool(getattr(model.config, "is_encoder_decoder", False))
        self._chunk_batch: int | None = None
        super().__init__(model, *args, **kwargs)
        if self.feature_extractor is None or self.tokenizer is None:
            raise InputError(f"The {self.task} pipeline needs a feature_extractor and a tokenizer.")

    @classmethod
    def auto_model_name(cls, config: Any, spec: Any) -> str:
        return "AutoModelForSpeechSeq2Seq" if getattr(config, "is_encoder_decoder", False) else spec.auto_model

    @classmethod
    def check_model(cls, model: Any) -> None:
        if getattr(model.config, "is_encoder_decoder", False) and not callable(getattr(model, "generate", None)):
            raise UnsupportedModelError(
                f"The {cls.task} pipeline needs a CTC model or a speech encoder-decoder that generates "
                f"(AutoModelForSpeechSeq2Seq, e.g. WhisperForConditionalGeneration); got {type(model).__name__}."
            )

    # -- options ------------------------------------------------------------------------------------

    def _parameters(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        from .modeling.generation import FIELDS, GenerationConfig

        settings = {name: kwargs.pop(name) for name in FIELDS if name in kwargs}
        params = super()._parameters(kwargs)
        settings.update(params.pop("generate_kwargs", {}))
        for name in ("language", "task"):
            if name in params:
                settings[name] = params.pop(name)
        if settings and not self._generates:
            raise InputError(f"Generation settings {sorted(settings)} apply to models that generate (Whisper); "
                             f"{type(self.model).__name__} is a CTC model, decoded greedily.")
        if settings:
            GenerationConfig(**{k: v for k, v in settings.items() if k in FIELDS})  # a wrong value named now
            params["generate"] = settings
        kind = params.get("return_timestamps")
        if "return_timestamps" in params and not self._generates and kind not in ("char", "word"):
            raise InputError(f"return_timestamps must be 'char' or 'word' for a CTC model (character or word "
                             f"timestamps), got {kind!r}.")
        if self._generates and kind == "word":
            raise InputError("return_timestamps='word' (word times from cross-attention) is not available for "
                             "Whisper; return_timestamps=True gives the timed segments.")
        if self._generates and kind not in (None, True, False):
            raise InputError(f"return_timestamps must be True or False for Whisper (timed segments), got {kind!r}.")
        return params

    # -- running ------------------------------------------------------------------------------------

    def __call__(self, inputs: Any = None, *, batch_size: int | None = None, **kwargs: Any) -> Any:
        self._chunk_batch = batch_size
        try:
            return super().__call__(inputs, batch_size=batch_size, **kwargs)
        finally:
            self._chunk_batch = None

    @property
    def _align_to(self) -> int:
        """Waveform samples per output frame."""
        return 1 if self._generates else getattr(self.model.config, "inputs_to_logits_ratio", 1)

    def _window_plan(self, params: dict[str, Any]) -> tuple[int, int, int] | None:
        """(window, left, right stride) in samples where items are cut into windows, else None."""
        chunk_s = params.get("chunk_length_s")
        rate = self.feature_extractor.sampling_rate
        strides = params.get("stride_length_s")
        if not chunk_s:
            return None
        if strides is None:
            strides = chunk_s / 6
        left_s, right_s = (strides, strides) if _is_number(strides) else strides
        align = self._align_to
        chunk_len, left, right = (int(round(s * rate / align) * align) for s in (chunk_s, left_s, right_s))
        if chunk_len <= left + right:
            raise InputError(f"chunk_length_s ({chunk_s}) must be longer than the two strides ({left_s} + {right_s}).")
        return chunk_len, left, right

    def _item_features(self, item: Any, params: dict[str, Any]) -> Iterator[Feature]:
        """The features of ``item``'s windows, made as they are needed."""
        plan = self._window_plan(params)
        if plan is None:
            samples = self._samples(item)
            window = getattr(self.feature_extractor, "n_samples", None)
            if self._generates and window is not None and samples.shape[0] > window:
                # the whole clip's features: generate reads them a 30-second window after another
                yield self._features(samples, truncation=False, padding="longest")
            else:
                yield self._features(samples)
            return
        if _is_file(item):
            blocks = stream_audio(item, self.feature_extractor.sampling_rate)
        else:
            blocks = iter([self._samples(item)])
        for samples, stride in windows(blocks, *plan):
            yield self._features(samples, {"stride": stride})

    def _run(self, items: list[Any], params: dict[str, Any]) -> list[Any]:
        """Windows of all ``items``, in order, through the model ``batch size`` at a time; each
        item's per-window results are kept (ids only) until its last window, then decoded."""
        rows = self._chunk_batch or self.batch_size
        pieces: list[list[Any]] = [[] for _ in items]
        stream = ((index, feature) for index, item in enumerate(items) for feature in self._item_features(item, params))
        batch: list[tuple[int, Feature]] = []

        def run_batch() -> None:
            features = [feature for _, feature in batch]
            results = self._generate(features, params) if self._generates else self._ctc_tokens(features)
            for (index, _), result in zip(batch, results):
                pieces[index].append(result)
            batch.clear()

        for index, feature in stream:
            # Whisper's features are never padded: a long clip's (more frames) goes in a batch of its shape
            if batch and (len(batch) == rows or self._shape_of(feature) != self._shape_of(batch[0][1])):
                run_batch()
            batch.append((index, feature))
        if batch:
            run_batch()
        return [self._transcript(item_pieces, params) for item_pieces in pieces]

    def _shape_of(self, feature: Feature) -> Any:
        """What features must share to be batched (CTC pads any lengths)."""
        return tuple(feature.inputs["input_features"].shape) if self._generates else None

    def _ctc_tokens(self, features: list[Feature]) -> list[Any]:
        """Each window's greedy CTC ids, its strides' frames dropped (the reference's rounding)."""
        outputs = self._forward(features)
        tokens = []
        for feature, output in zip(features, outputs):
            ids = output["logits"][: self._frames(feature.meta["samples"])].argmax(dim=-1)
            if "stride" in feature.meta:
                total, left, right = feature.meta["stride"]
                frames = round(total / self._align_to)
                ids = ids[round(left / total * frames) : frames - round(right / total * frames)]
            tokens.append(ids)
        return tokens

    def _frames(self, samples: int) -> int:
        """Frames the model's convolutions make of ``samples`` (unpadded, floor division)."""
        config = self.model.config
        for kernel, stride in zip(getattr(config, "conv_kernel", ()), getattr(config, "conv_stride", ())):
            samples = (samples - kernel) // stride + 1
        return samples

    def _generate_kwargs(self, params: dict[str, Any]) -> dict[str, Any]:
        """The call's generation settings, and the pipeline's defaults for those neither the call
        nor the model's generation config sets (as the reference)."""
        from .modeling.generation import DEFAULTS

        kwargs = dict(params.get("generate", {}))
        config = self.model.generation_config
        chosen = {key for key, value in vars(config).items() if value is not None and value != DEFAULTS.get(key)}
        chosen |= set(kwargs)
        for key, value in _GENERATION_DEFAULTS.items():
            if key not in chosen and not (key == "max_new_tokens" and "max_length" in chosen):
                kwargs[key] = value
        if "pad_token_id" not in chosen and self.tokenizer.pad_token_id is not None:
            kwargs["pad_token_id"] = self.tokenizer.pad_token_id
        if self._timestamps(params):
            kwargs["return_timestamps"] = True
        return kwargs

    def _timestamps(self, params: dict[str, Any]) -> Any:
        kind = params.get("return_timestamps")
        if self._generates and not kind:  # Whisper's generation config may ask for them
            kind = bool(getattr(self.model.generation_config, "return_timestamps", False))
        return kind

    def _generate(self, features: list[Feature], params: dict[str, Any]) -> list[tuple[list[int], Any]]:
        """Each window's generated ids, with its strides in seconds."""
        import torch

        batch = self._collate(features)
        name = "input_features" if "input_features" in batch else getattr(self.model, "main_input_name", "input_values")
        mask = batch.pop("attention_mask", None)
        with torch.inference_mode():
            output = self.model.generate(batch[name], attention_mask=mask, **self._generate_kwargs(params))
        if isinstance(output, dict) or hasattr(output, "sequences"):
            output = output["sequences"]
        rate = self.feature_extractor.sampling_rate
        results = []
        for feature, ids in zip(features, output.cpu().tolist()):
            stride = feature.meta.get("stride")
            results.append((ids, None if stride is None else tuple(value / rate for value in stride)))
        return results

    def _transcript(self, pieces: list[Any], params: dict[str, Any]) -> dict[str, Any]:
        import torch

        kind = self._timestamps(params)
        if self._generates:
            precision = self.feature_extractor.chunk_length / self.model.config.max_source_positions
            text, segments = self.tokenizer.decode_asr(pieces, return_timestamps=bool(kind), time_precision=precision)
            return {"text": text, "chunks": segments} if kind else {"text": text}
        tokens = torch.cat(pieces).tolist()
        result: dict[str, Any] = {"text": self.tokenizer.decode(tokens, skip_special_tokens=False)}
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


__all__ = [
    "AudioClassificationPipeline", "AutomaticSpeechRecognitionPipeline", "file_length", "stream_audio", "windows",
]

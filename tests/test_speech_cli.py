"""Speech recognition from the command line and the batch engines: ``leanformers predict MODEL
speech.flac`` for Whisper and CTC checkpoints (timestamps, language), audio paths in a column of a
file (-i / -o, --resume), texts to translate in a file, and the Ray engine over audio paths and over
texts to summarise."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from parity import transformers
from test_asr_whisper import speech_like, whisper_dir  # noqa: F401  (a fixture)
from test_batch import read_output
from test_text2text import TEXTS, t5  # noqa: F401  (a fixture)

from leanformers import cli, pipeline

RATE = 16000


@pytest.fixture(scope="module")
def fast_whisper(whisper_dir, tmp_path_factory) -> Path:  # noqa: F811
    """The tiny Whisper with a generation config that asks for short greedy generations, as a
    checkpoint may: the command line's runs stay quick."""
    root = tmp_path_factory.mktemp("fast_whisper")
    for item in whisper_dir.iterdir():
        shutil.copy(item, root / item.name)
    settings = json.loads((root / "generation_config.json").read_text())
    settings.update({"max_length": 12, "num_beams": 1})
    (root / "generation_config.json").write_text(json.dumps(settings))
    return root


@pytest.fixture(scope="module")
def ctc_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ctc")
    config = transformers.Wav2Vec2Config(
        vocab_size=32, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    transformers.Wav2Vec2ForCTC(config).eval().save_pretrained(root)
    transformers.Wav2Vec2FeatureExtractor(return_attention_mask=True, do_normalize=True).save_pretrained(root)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ'"
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: 5 + i for i, c in enumerate(letters)}}
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Wav2Vec2CTCTokenizer", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>",
        "pad_token": "<pad>", "word_delimiter_token": "|",
    }))
    return root


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("clips")
    paths = []
    for index, seconds in enumerate((3, 1.5, 4.2)):
        paths.append(root / f"clip{index}.flac")
        soundfile.write(paths[-1], speech_like(seconds, 10 + index), RATE)
    return paths


def predict(capsys, *args: str) -> list[dict]:
    assert cli.main(["predict", *map(str, args), "--format", "json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def plain(result: dict) -> dict:
    return json.loads(json.dumps(result))  # tuples as JSON lists, as the command writes them


def test_predict_prints_whisper_and_ctc_transcripts(fast_whisper, ctc_dir, clips, capsys):
    for model in (fast_whisper, ctc_dir):
        pipe = pipeline("automatic-speech-recognition", model=str(model))
        rows = predict(capsys, model, clips[0], clips[1], "--task", "automatic-speech-recognition")
        assert rows == [{"audio": str(path), **plain(pipe(str(path)))} for path in clips[:2]]
        assert rows[0]["text"]
    # without --task: the checkpoint says what it does
    assert predict(capsys, fast_whisper, clips[2])[0]["text"] == pipeline(model=str(fast_whisper))(str(clips[2]))["text"]


def test_predict_speech_options(fast_whisper, ctc_dir, clips, capsys):
    whisper = pipeline("automatic-speech-recognition", model=str(fast_whisper))
    rows = predict(capsys, fast_whisper, clips[0], "--timestamps", "--language", "fr", "--chunk-length", "2")
    expected = whisper(str(clips[0]), return_timestamps=True, language="fr", chunk_length_s=2)
    assert rows == [{"audio": str(clips[0]), **plain(expected)}] and expected["chunks"]
    assert predict(capsys, fast_whisper, clips[0], "--translate")[0]["text"] == whisper(
        str(clips[0]), task="translate")["text"]
    ctc = pipeline("automatic-speech-recognition", model=str(ctc_dir))
    rows = predict(capsys, ctc_dir, clips[0], "--timestamps")
    assert rows == [{"audio": str(clips[0]), **plain(ctc(str(clips[0]), return_timestamps="word"))}]
    # Whisper-only settings are refused for a CTC model, in one line
    assert cli.main(["predict", str(ctc_dir), str(clips[0]), "--language", "fr"]) == 1
    assert "CTC" in capsys.readouterr().err


def test_audio_paths_in_a_file_with_resume(fast_whisper, clips, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    # paths relative to the input file are found beside it
    for path in clips:
        shutil.copy(path, tmp_path / path.name)
    relative = [path.name for path in clips]
    source.write_text("".join(json.dumps({"id": i, "audio": name}) + "\n" for i, name in enumerate(relative)))
    output = tmp_path / "out.jsonl"
    assert cli.main(["predict", str(fast_whisper), "-i", str(source), "-o", str(output), "-q"]) == 0
    pipe = pipeline("automatic-speech-recognition", model=str(fast_whisper))
    expected = [{"id": i, "audio": name, **plain(pipe(str(tmp_path / name)))} for i, name in enumerate(relative)]
    assert read_output(output) == expected
    # an interrupted run: its first row only, then --resume finishes the rest
    output.unlink()
    partial = Path(str(output) + ".partial")
    partial.write_text(json.dumps(expected[0]) + "\n")
    assert cli.main(["predict", str(fast_whisper), "-i", str(source), "-o", str(output), "--resume", "-q"]) == 0
    assert read_output(output) == expected and not partial.exists()


@pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(name) for name in ("ray", "pyarrow")),
    reason='Ray Data is not installed (pip install "leanformers[ray]")',
)
def test_ray_engine_over_audio_paths_and_texts(fast_whisper, clips, t5, tmp_path):  # noqa: F811
    import ray

    from leanformers.distributed import run_cli_prediction

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        audio_rows = tmp_path / "audio.jsonl"
        shutil.copy(clips[0], tmp_path / "beside.flac")  # a path relative to the input file, as locally
        names = ["beside.flac", *map(str, clips[1:])]
        audio_rows.write_text("".join(json.dumps({"audio": name}) + "\n" for name in names))
        audio_out = tmp_path / "audio_out.jsonl"
        stats = run_cli_prediction(str(fast_whisper), str(audio_rows), str(audio_out), batch_size=2, workers=1)
        pipe = pipeline("automatic-speech-recognition", model=str(fast_whisper))
        assert stats.items == len(clips)
        rows = sorted(read_output(audio_out), key=lambda row: row["id"])
        assert [row["text"] for row in rows] == [pipe(str(path))["text"] for path in clips]

        text_rows = tmp_path / "texts.jsonl"
        text_rows.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS))
        text_out = tmp_path / "summaries.jsonl"
        run_cli_prediction(str(t5[0]), str(text_rows), str(text_out), task="summarization", batch_size=2, workers=1)
        summarize = pipeline("summarization", model=str(t5[0]))
        rows = sorted(read_output(text_out), key=lambda row: row["id"])
        assert [row["summary_text"] for row in rows] == [summarize(text)[0]["summary_text"] for text in TEXTS]

        # a translation task's name carries its languages (and the checkpoint's settings for them) to the workers
        text_out = tmp_path / "translations.jsonl"
        task = "translation_en_to_de"
        run_cli_prediction(str(t5[0]), str(text_rows), str(text_out), task=task, batch_size=2, workers=1)
        translate = pipeline(task, model=str(t5[0]))
        rows = sorted(read_output(text_out), key=lambda row: row["id"])
        assert [row["translation_text"] for row in rows] == [translate(t)[0]["translation_text"] for t in TEXTS]
    finally:
        ray.shutdown()


def test_texts_to_translate_in_a_file_with_resume(t5, tmp_path):  # noqa: F811
    path = str(t5[0])
    source, output = tmp_path / "texts.jsonl", tmp_path / "translations.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": text}) + "\n" for i, text in enumerate(TEXTS)))
    translate = pipeline("translation_en_to_de", model=path)
    expected = [{"id": i, "text": text, "translation_text": translate(text)[0]["translation_text"]}
                for i, text in enumerate(TEXTS)]
    command = ["predict", path, "--task", "translation_en_to_de", "-i", str(source), "-o", str(output), "-q"]
    assert cli.main(command + ["--batch-size", "2"]) == 0
    assert read_output(output) == expected
    # an interrupted run: its first row only, then --resume finishes the rest
    output.unlink()
    partial = Path(str(output) + ".partial")
    partial.write_text(json.dumps(expected[0]) + "\n")
    assert cli.main(command + ["--resume"]) == 0
    assert read_output(output) == expected and not partial.exists()


def test_speech_options_on_another_task_are_refused(t5, capsys):  # noqa: F811
    assert cli.main(["predict", str(t5[0]), "--task", "summarization", "hello there", "--language", "fr"]) == 1
    assert "language" in capsys.readouterr().err


def test_cli_help_names_the_speech_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["predict", "--help"])
    out = capsys.readouterr().out
    assert all(option in out for option in ("--language", "--timestamps", "--chunk-length", "--translate"))


def test_ctc_streams_long_files_in_windows(ctc_dir, tmp_path, monkeypatch):
    """A file cut into windows is read block by block (resampled as it streams where its rate
    differs) and gives what the whole file's samples give; the reference agrees on the samples."""
    from leanformers import speech
    from leanformers.processing.audio import load_audio

    pipe = pipeline("automatic-speech-recognition", model=str(ctc_dir))
    reference = transformers.pipeline("automatic-speech-recognition", model=str(ctc_dir), device="cpu")
    streamed = []
    real_stream = speech.stream_audio
    monkeypatch.setattr(speech, "stream_audio", lambda *a, **k: (streamed.append(a), real_stream(*a, **k))[1])
    for rate in (RATE, 44100):
        path = tmp_path / f"long{rate}.flac"
        seconds = 8 if rate == RATE else 5
        soundfile.write(path, speech_like(seconds * rate / RATE, 20), rate)  # seconds of audio at rate
        samples = load_audio(str(path), RATE)
        for options in ({"chunk_length_s": 2}, {"chunk_length_s": 1.5, "stride_length_s": (0.2, 0.4),
                                               "return_timestamps": "word"}):
            got = pipe(str(path), **options)
            assert got == pipe(samples, **options)
            expected = reference(samples.copy(), **options)
            assert got["text"] == expected["text"]
            if "chunks" in expected:
                assert [c["text"] for c in got["chunks"]] == [c["text"] for c in expected["chunks"]]
                np.testing.assert_allclose([c["timestamp"] for c in got["chunks"]],
                                           [c["timestamp"] for c in expected["chunks"]], rtol=0, atol=1e-6)
    assert len(streamed) == 4

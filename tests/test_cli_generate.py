"""`leanformers generate` and `leanformers chat` on the tiny chat llama of test_text_generation: streamed
text equal to the pipeline's (itself tested against the reference), the chat loop's history and
commands, files through the batch engine (fields kept, --resume, parquet), one run on Ray (input
fields kept, our progress bar, no error lines from Ray), usage errors, and the options passed on.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys

import pytest
from test_text_generation import build_tiny_chat_model

import leanformers
from leanformers import cli

GREEDY = ["--max-new-tokens", "6", "--no-do-sample"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-chat-llama-cli"))


@pytest.fixture(scope="module")
def pipe(model_dir):
    return leanformers.pipeline("text-generation", model=model_dir, max_new_tokens=6, do_sample=False)


def reply(pipe, prompt) -> str:
    return pipe(prompt, return_full_text=False)[0]["generated_text"]


def run(capsys, *argv, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_streams_the_continuation(model_dir, pipe, capsys):
    code, out, _ = run(capsys, "generate", model_dir, "Hello world", *GREEDY)
    assert code == 0
    assert out == "Hello world" + reply(pipe, "Hello world") + "\n"
    code, out, _ = run(capsys, "generate", model_dir, "--chat", "--system", "Be nice", "Hello", *GREEDY)
    chat = [{"role": "system", "content": "Be nice"}, {"role": "user", "content": "Hello"}]
    assert (code, out) == (0, reply(pipe, chat) + "\n")


def test_seeded_sampling_repeats(model_dir, capsys):
    first = run(capsys, "generate", model_dir, "Hello", "--max-new-tokens", "8", "--seed", "3", "--top-k", "20")
    again = run(capsys, "generate", model_dir, "Hello", "--max-new-tokens", "8", "--seed", "3", "--top-k", "20")
    other = run(capsys, "generate", model_dir, "Hello", "--max-new-tokens", "8", "--seed", "4", "--top-k", "20")
    assert first[0] == 0 and first == again and other != first  # sampled (the pipeline's default), repeatably


def test_chat_keeps_history_and_obeys_commands(model_dir, pipe, capsys, monkeypatch):
    lines = "Hi there\n/reset\nHi there\n\nHello\n/exit\nnever read\n"
    code, out, err = run(capsys, "chat", model_dir, *GREEDY, stdin=lines, monkeypatch=monkeypatch)
    first = reply(pipe, [{"role": "user", "content": "Hi there"}])
    history = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": first},
               {"role": "user", "content": "Hello"}]
    assert code == 0
    assert out == f"{first}\n{first}\n{reply(pipe, history)}\n"
    assert "conversation cleared" in err
    code, out, _ = run(capsys, "chat", model_dir, *GREEDY, stdin="Hi there\n", monkeypatch=monkeypatch)  # EOF ends
    assert (code, out) == (0, first + "\n")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


PROMPTS = [{"id": 10, "prompt": "Hello world"}, {"id": 11, "prompt": "a"},
           {"id": 12, "prompt": "The quick brown fox jumps"}, {"id": 13, "prompt": "Once upon"}]


def test_file_of_prompts_through_the_batch_engine(model_dir, pipe, capsys, tmp_path, monkeypatch):
    source = write_jsonl(tmp_path / "prompts.jsonl", PROMPTS)
    output = tmp_path / "out.jsonl"
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # the progress bar is drawn
    code, _, err = run(capsys, "generate", model_dir, "-i", source, "-o", output, "-b", "3", *GREEDY)
    assert code == 0 and "predicted 4 items" in err and "4/4" in err
    monkeypatch.undo()
    expected = [{**row, "generated_text": reply(pipe, row["prompt"])} for row in PROMPTS]
    assert [json.loads(line) for line in output.read_text().splitlines()] == expected

    # an interrupted run: one row done and a torn one; --resume finishes it
    output.unlink()
    partial = tmp_path / "out.jsonl.partial"
    partial.write_text(json.dumps(expected[0]) + "\n" + '{"id": 11, "pro')
    code, _, err = run(capsys, "generate", model_dir, "-i", source, "-o", output, *GREEDY)
    assert code == 2 and "--resume" in err
    code, _, err = run(capsys, "generate", model_dir, "-i", source, "-o", output, "--resume", *GREEDY)
    assert code == 0 and "1 already done" in err
    assert [json.loads(line) for line in output.read_text().splitlines()] == expected


def test_chats_in_a_file_to_parquet(model_dir, pipe, capsys, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    chats = [[{"role": "user", "content": "Hi there"}],
             [{"role": "system", "content": "Be nice"}, {"role": "user", "content": "Hello"}]]
    source = write_jsonl(tmp_path / "chats.jsonl", [{"messages": chat, "n": i} for i, chat in enumerate(chats)])
    output = tmp_path / "out.parquet"
    code, _, _ = run(capsys, "generate", model_dir, "-i", source, "-o", output, "--full-text", *GREEDY)
    assert code == 0
    rows = pq.read_table(output).to_pylist()
    assert [row["n"] for row in rows] == [0, 1]
    for row, chat in zip(rows, chats):
        assert json.loads(row["messages"]) == chat
        assert json.loads(row["generated_text"]) == pipe(chat)[0]["generated_text"]


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason='needs Ray (pip install "leanformers[ray]")')
def test_ray_engine_keeps_fields_shows_progress_and_no_errors(model_dir, pipe, tmp_path):
    """One Ray run from the command line: the rows as the local engine writes them (plus Ray's id), the
    library's progress bar on stderr, and nothing from Ray that looks like an error."""
    source = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": row["prompt"]} for row in PROMPTS])
    output = tmp_path / "ray.jsonl"
    code = ("import sys; sys.stderr.isatty = lambda: True; from leanformers.cli import main; "
            f"sys.exit(main({[ 'generate', str(model_dir), '-i', str(source), '-o', str(output), '--engine', 'ray', '--workers', '2', '--chat', *GREEDY]!r}))")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "4/4" in done.stderr and "predicted 4 items" in done.stderr
    noise = [line for line in done.stderr.splitlines() + done.stdout.splitlines()
             if "ERROR" in line or "max_restarts" in line or " E " in line or "INFO" in line]
    assert not noise, noise
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["id"] for row in rows] == [0, 1, 2, 3]
    for row, given in zip(rows, PROMPTS):
        chat = [{"role": "user", "content": given["prompt"]}]
        assert row == {"id": row["id"], "prompt": given["prompt"], "generated_text": reply(pipe, chat)}


def test_usage_errors(model_dir, capsys, tmp_path):
    for argv, words in [
        (["--temperature", "0"], "--temperature must be a number greater than 0"),
        (["--top-p", "1.5"], "--top-p must be a number in (0, 1]"),
        (["--max-new-tokens", "0"], "--max-new-tokens must be a positive integer"),
        (["--top-k", "-1"], "--top-k must be 0"),
        (["-o", tmp_path / "x.jsonl"], "--output and --resume go with --input"),
    ]:
        code, _, err = run(capsys, "generate", model_dir, "Hi", *argv)
        assert code == 2 and words in err, err
    bare = tmp_path / "no-template"
    shutil.copytree(model_dir, bare, ignore=shutil.ignore_patterns("chat_template.jinja"))
    code, _, err = run(capsys, "chat", bare)
    assert code == 2 and "has no chat template" in err
    code, _, err = run(capsys, "generate", model_dir, "Hi", "--max-new-tokens", "2", "--repetition-penalty", "-1")
    assert code == 2 and "--repetition-penalty" in err


def test_gguf_file_and_settings_reach_the_pipeline(model_dir, capsys, monkeypatch):
    from leanformers import pipelines

    seen = {}
    real = pipelines.pipeline

    def spy(*args, **kwargs):
        seen.update(kwargs)
        kwargs.pop("gguf_file")
        pipe = real(*args, **kwargs)
        call = pipe.__call__
        pipe.__class__ = type("Spy", (type(pipe),), {"__call__": lambda self, *a, **k: seen.update(k) or call(*a, **k)})
        return pipe

    monkeypatch.setattr(pipelines, "pipeline", spy)
    code, _, _ = run(capsys, "generate", model_dir, "Hi", "--gguf-file", "model.Q4_1.gguf", "--max-new-tokens", "2",
                     "--temperature", "0.5", "--top-p", "0.9", "--top-k", "7", "--do-sample")
    assert code == 0
    assert seen["gguf_file"] == "model.Q4_1.gguf"
    assert {k: seen[k] for k in ("max_new_tokens", "temperature", "top_p", "top_k", "do_sample")} == {
        "max_new_tokens": 2, "temperature": 0.5, "top_p": 0.9, "top_k": 7, "do_sample": True}


def test_inspect_lists_text_generation(model_dir, capsys):
    code, out, _ = run(capsys, "inspect", model_dir, "--format", "json")
    assert code == 0
    assert "text-generation" in json.loads(out)["tasks"]


def test_predict_with_the_text_generation_task(model_dir, capsys):
    code, out, _ = run(capsys, "predict", model_dir, "Hello world", "--task", "text-generation", "--format", "json")
    row = json.loads(out)
    assert code == 0 and row["text"] == "Hello world" and row["generated_text"]

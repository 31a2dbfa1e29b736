"""Thread and batch defaults: the thread budget (leanformers.threads: CPUs counted from affinity and
cgroup quotas, the environment variable and set_num_threads, torch's intra-op threads fitted at
model load) and the command line's batch sizes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import leanformers
from leanformers import threads
from leanformers.errors import ConfigError, InputError


@pytest.fixture(autouse=True)
def restore_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv(threads.ENV_VAR, raising=False)
    monkeypatch.delenv("RAYON_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "_rayon_set_by_us", False)
    yield
    monkeypatch.delenv(threads.ENV_VAR, raising=False)
    threads.set_num_threads(None)
    torch.set_num_threads(before)


def test_available_cpus_counts_this_process():
    count = threads.available_cpus()
    assert 1 <= count <= (os.cpu_count() or 1)
    assert threads.num_threads() == count


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "garbage\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_cgroup_quota(tmp_path, files, limit):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert threads._cgroup_cpu_limit(str(tmp_path)) == limit


def test_quota_caps_the_count(monkeypatch):
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda: 0.5)
    assert threads.available_cpus() == 1


def test_environment_variable(monkeypatch):
    monkeypatch.setenv(threads.ENV_VAR, "3")
    assert threads.num_threads() == 3
    for bad in ("0", "-2", "two", "1.5"):
        monkeypatch.setenv(threads.ENV_VAR, bad)
        with pytest.raises(ConfigError, match=threads.ENV_VAR):
            threads.num_threads()


def test_set_num_threads_sets_torch_too():
    leanformers.set_num_threads(1)
    assert leanformers.num_threads() == 1 and torch.get_num_threads() == 1
    for bad in (0, -1, "x", True):
        with pytest.raises(InputError, match="positive whole number"):
            threads.set_num_threads(bad)
    threads.set_num_threads(None)
    assert threads.num_threads() == threads.available_cpus()
    # Back to the default puts torch back too (to its own count, at most the budget), so a
    # temporary budget does not leave torch oversubscribed.
    default = threads._torch_default
    threads.set_num_threads(4)
    assert torch.get_num_threads() == 4
    assert os.environ.get("RAYON_NUM_THREADS") == "4"  # for the tokenizer's pool, if not started yet
    threads.set_num_threads(None)
    assert torch.get_num_threads() == min(default, threads.num_threads())
    assert "RAYON_NUM_THREADS" not in os.environ


def test_torch_default_is_lowered_to_the_budget_only(monkeypatch):
    monkeypatch.setattr(threads, "available_cpus", lambda: 1)
    monkeypatch.setattr(threads, "_torch_default", None)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    torch.set_num_threads(2)
    assert threads.fit_torch_threads() == 1 and torch.get_num_threads() == 1
    # A count the user set (different from torch's default) is theirs to keep.
    torch.set_num_threads(3)
    assert threads.fit_torch_threads() == 3
    # So is one OMP_NUM_THREADS asked for.
    monkeypatch.setattr(threads, "_torch_default", None)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    torch.set_num_threads(2)
    assert threads.fit_torch_threads() == 2
    # Never raised above what torch had.
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(threads, "available_cpus", lambda: 8)
    monkeypatch.setattr(threads, "_torch_default", None)
    torch.set_num_threads(1)
    assert threads.fit_torch_threads() == 1


def test_from_pretrained_leaves_torch_threads_alone(tmp_path, monkeypatch):
    from leanformers import AutoModel
    from leanformers.models.bert import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16)).save_pretrained(tmp_path)
    monkeypatch.setenv(threads.ENV_VAR, "1")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        AutoModel.from_pretrained(tmp_path)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_import_writes_nothing_to_the_environment():
    import subprocess
    import sys

    code = ("import os; before = dict(os.environ); import leanformers, leanformers.processing.tokenizer; "
            "from leanformers import AutoTokenizer; print(sorted(set(os.environ.items()) ^ set(before.items())))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_threads_option(tmp_path, capsys):
    from leanformers import cli

    assert cli.main(["predict", str(tmp_path), "hello", "--threads", "0"]) == 2
    assert "--threads must be a positive integer" in capsys.readouterr().err


def test_importing_threads_is_light():
    code = "import sys, leanformers.threads as t; t.num_threads(); print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_cli_batch_size_defaults(tmp_path, monkeypatch, capsys):
    from leanformers import batch, cli
    from leanformers.models.bert import BertConfig, BertForSequenceClassification

    assert cli.default_batch_size("text-classification") == 32
    assert cli.default_batch_size(None) == 32
    assert cli.default_batch_size("image-classification") == 32
    assert cli.default_batch_size("audio-classification") == 8
    BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=16)).save_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello"]) + "\n")
    seen = []
    real_run = batch.run
    monkeypatch.setattr(batch, "run", lambda job: seen.append(job.batch_size) or real_run(job))
    assert cli.main(["predict", str(tmp_path), "hello", "--format", "json", "-q"]) == 0
    assert cli.main(["predict", str(tmp_path), "hello", "--format", "json", "-q", "--batch-size", "3"]) == 0
    assert seen == [32, 3]


_COUNT_THREADS = """
import os, sys
from leanformers import AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
before = len(os.listdir("/proc/self/task"))
tokenizer(["a few words of text"] * 2000, padding=True)
print(before, len(os.listdir("/proc/self/task")), os.environ.get("RAYON_NUM_THREADS"))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc")
def test_budget_sizes_the_tokenizer_pool(minilm_dir):
    """LEANFORMERS_NUM_THREADS=1 keeps the Rust tokenizer to one pool thread; a RAYON_NUM_THREADS
    the user set wins."""

    def run(**env):
        clean = {k: v for k, v in os.environ.items() if k not in (threads.ENV_VAR, "RAYON_NUM_THREADS",
                                                                     "TOKENIZERS_PARALLELISM")}
        out = subprocess.run([sys.executable, "-c", _COUNT_THREADS, str(minilm_dir)], capture_output=True,
                             text=True, check=True, env={**clean, **env})
        before, after, rayon = out.stdout.split()
        return int(after) - int(before), rayon

    assert run(LEANFORMERS_NUM_THREADS="1") == (1, "1")
    assert run(LEANFORMERS_NUM_THREADS="1", RAYON_NUM_THREADS="2") == (2, "2")
    if threads.available_cpus() > 1:
        started, rayon = run()
        assert started == threads.available_cpus() and rayon == "None"

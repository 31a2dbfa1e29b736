"""The ``leanformers`` command.

    leanformers inspect MODEL [--format table|json]
    leanformers predict MODEL [INPUT ...] [--input FILE] [--output FILE] [--task T] [--top-k K]
                              [--batch-size N] [--device D] [--compile] [--resume] [--format table|json]
    leanformers search MODEL --corpus FILE QUERY [--top-k K] [--compile]
    leanformers download MODEL [--revision R]

Exit codes: 0 success; 1 an error while doing the work (checkpoint not found or unreadable, bad
rows in an input file, download failure, an unexpected error); 2 a usage error (bad arguments,
unknown task or format, missing input file, a partial output present without ``--resume``);
130 interrupted (Ctrl-C or SIGTERM; finished rows are kept in ``OUT.partial``); 141 stdout closed
early (piped into ``head``). Errors are printed as one line on stderr; ``--debug`` prints the
traceback too.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .errors import LeanformersError

# files a checkpoint may use, in the order inspect lists them
_CHECKPOINT_FILES = (
    "config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "tokenizer.json",
    "tokenizer_config.json", "vocab.txt", "special_tokens_map.json", "preprocessor_config.json",
)
DOWNLOAD_PATTERNS = [
    "config.json", "*.safetensors", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt", "preprocessor_config.json",
]
_CONFIG_SUMMARY_KEYS = (
    "hidden_size", "dim", "num_hidden_layers", "n_layers", "num_attention_heads", "n_heads", "intermediate_size",
    "hidden_dim", "max_position_embeddings", "vocab_size", "image_size", "patch_size", "num_channels",
    "hidden_sizes", "depths", "embed_dim",
)


class UsageError(Exception):
    """A mistake in the command line (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


# -- inspect --------------------------------------------------------------------------------------


def inspect_model(name: str) -> dict[str, Any]:
    """What ``name`` resolves to: architecture, tasks, config, model, preprocessing, files."""
    from . import registry
    from .auto import AutoConfig
    from .tasks import registered_architectures, task_of

    config = AutoConfig.from_pretrained(name)
    model_type = config.model_type
    heads = registry.MODELS.get(model_type, ("", "", {}))[2]
    architectures = list(config.architectures or []) if "architectures" in config else []
    served = (task_of(architecture, model_type) for architecture in registered_architectures(model_type))
    info: dict[str, Any] = {
        "model": name, "config_class": type(config).__name__, "model_type": model_type,
        "architectures": architectures, "heads": dict(heads),
        "tasks": list(dict.fromkeys(task for task in served if task)), "config": _config_summary(config),
    }
    head = next((h for h, cls in heads.items() if cls in architectures), "base")
    model = registry.model_class_for(model_type, head, where=name).from_pretrained(name, config=config)
    info["model_class"] = type(model).__name__
    info["parameters"] = sum(p.numel() for p in model.parameters())
    info["dtype"] = str(model.dtype).removeprefix("torch.")
    info["files"] = _checkpoint_files(name)
    info["preprocessing"] = _preprocessing(name, info["files"], model_type)
    return info


def _config_summary(config: Any) -> dict[str, Any]:
    summary = {key: getattr(config, key) for key in _CONFIG_SUMMARY_KEYS if key in config}
    summary["num_labels"] = config.num_labels
    if config.id2label:
        labels = [config.id2label[i] for i in sorted(config.id2label)]
        summary["labels"] = labels if len(labels) <= 20 else labels[:20] + [f"... ({len(labels)} in all)"]
    return summary


def _checkpoint_files(name: str) -> dict[str, str]:
    from .hub import Source

    source, files = Source.of(name), {}
    for filename in _CHECKPOINT_FILES:
        try:
            path = source.resolve(filename, required=False)
        except LeanformersError:
            path = None
        if path:
            files[filename] = os.path.abspath(path)
    return files


def _preprocessing(name: str, files: dict[str, str], model_type: str) -> dict[str, Any]:
    """The tokenizer's and the image / audio processor's settings, or the error loading them."""
    from .auto import AutoFeatureExtractor, AutoImageProcessor, AutoTokenizer
    from .tasks import modality

    kind = modality(model_type)
    preprocessing: dict[str, Any] = {}
    if any(f in files for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        try:
            tok = AutoTokenizer.from_pretrained(name)
            preprocessing["tokenizer"] = {
                "class": getattr(tok, "class_name", type(tok).__name__), "vocab_size": tok.vocab_size,
                "model_max_length": tok.model_max_length if tok.model_max_length < 10**12 else None,
            }
        except LeanformersError as exc:
            preprocessing["tokenizer"] = {"error": _one_line(exc)}
    if "preprocessor_config.json" in files and kind != "text":
        try:
            if kind == "vision":
                keys = ("size", "crop_size", "image_mean", "image_std", "resample")
                preprocessing["image_processor"] = _settings(AutoImageProcessor.from_pretrained(name), keys)
            else:
                keys = ("sampling_rate", "feature_size", "do_normalize", "return_attention_mask")
                preprocessing["feature_extractor"] = _settings(AutoFeatureExtractor.from_pretrained(name), keys)
        except LeanformersError as exc:
            preprocessing["processor"] = {"error": _one_line(exc)}
    return preprocessing


def _settings(processor: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """A processor's class and those of ``keys`` it has set, for ``inspect``."""
    entry = {"class": getattr(processor, "class_name", type(processor).__name__)}
    entry.update({key: value for key in keys if (value := getattr(processor, key, None)) is not None})
    return entry


def _format_inspect(info: dict[str, Any]) -> str:
    lines = [f"model          {info['model']}"]
    config = f"config {info['config_class']}, model_type {info['model_type']!r}"
    lines.append(f"architecture   {info['model_class']} ({config})")
    if info["architectures"]:
        lines.append(f"architectures  {', '.join(info['architectures'])}")
    lines.append(f"tasks          {', '.join(info['tasks']) or '-'}")
    lines.append(f"parameters     {info['parameters']:,} ({info['dtype']})")
    lines.append("config")
    for key, value in info["config"].items():
        lines.append(f"  {key:<24} {value if not isinstance(value, list) else ', '.join(map(str, value))}")
    for kind, entry in info["preprocessing"].items():
        lines.append(kind.replace("_", " "))
        lines.extend(f"  {key:<24} {value}" for key, value in entry.items())
    lines.append("files")
    lines.extend(f"  {key:<24} {value}" for key, value in info["files"].items())
    return "\n".join(lines)


def cmd_inspect(args: argparse.Namespace) -> int:
    info = inspect_model(args.model)
    print(json.dumps(info, indent=2, default=str) if args.format == "json" else _format_inspect(info))
    return 0


# -- predict --------------------------------------------------------------------------------------


def _canonical_task(task: str | None) -> str | None:
    from .tasks import TASKS, TASK_ALIASES

    if task is None:
        return None
    task = TASK_ALIASES.get(task, task)
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}; choose one of: {', '.join(sorted(TASKS))}.")
    return task


def _cell(value: Any, width: int = 48) -> str:
    if isinstance(value, float):
        text = f"{value:.4f}"
    elif isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        text = f"[{len(value)}] " + ", ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in value[:4])
        text += ", ..." if len(value) > 4 else ""
    elif isinstance(value, list) and value and all(isinstance(v, dict) and "score" in v for v in value):
        text = ", ".join(
            f"{v.get('label', v.get('token_str', v.get('entity_group', v.get('entity', '?'))))} {v['score']:.3f}"
            for v in value
        )
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class _TableEmitter:
    """Rows as an aligned table on stdout; column widths fixed by the first window."""

    def __init__(self) -> None:
        self.widths: dict[str, int] | None = None

    def __call__(self, rows: list[dict[str, Any]]) -> None:
        cells = [{k: _cell(v) for k, v in row.items()} for row in rows]
        if self.widths is None:
            self.widths = {k: max(len(k), *(len(c.get(k, "")) for c in cells)) for k in rows[0]}
            print("  ".join(k.ljust(w) for k, w in self.widths.items()).rstrip())
            print("  ".join("-" * w for w in self.widths.values()))
        for c in cells:
            print("  ".join(c.get(k, "").ljust(w) for k, w in self.widths.items()).rstrip())
        sys.stdout.flush()


def _emit_jsonl(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _task_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if args.top_k is not None:
        kwargs["top_k"] = args.top_k
    if getattr(args, "pooling", None) and args.pooling != "none":
        kwargs["pooling"] = args.pooling
    if getattr(args, "normalize", False):
        kwargs["normalize"] = True
    return kwargs


# Items per forward pass when --batch-size is not given, by what an input is. Text batches are
# sorted by length, so they pad little; images and audio hold more activation memory per item.
DEFAULT_BATCH_SIZES = {"text": 32, "image": 16, "audio": 8}


def default_batch_size(task: str | None) -> int:
    from .tasks import input_kind

    return DEFAULT_BATCH_SIZES[input_kind(task)]


def _load_pipeline(
    model: str, task: str | None, device: str | None, batch_size: int, dtype: str | None, thread_count: int | None,
    compile: bool = False,
) -> Any:
    """The pipeline, with the thread budget set first; ``compile``: the model's forward compiled
    in place with torch.compile (the first batches pay the compilation)."""
    from . import threads
    from .pipelines import pipeline

    if thread_count is not None:
        if thread_count < 1:
            raise UsageError(f"--threads must be a positive integer, got {thread_count}.")
        threads.set_num_threads(thread_count)
    pipe = pipeline(task=task, model=model, device=device, batch_size=batch_size, dtype=dtype)
    if compile:
        pipe.model.compile()
    return pipe


def _checked_file(path: str, what: str) -> None:
    """A usage error unless ``path`` is a readable file of a format we read."""
    from .files import file_format

    if not os.path.isfile(path):
        raise UsageError(f"{what} {path!r} does not exist or is not a file.")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{what} {path!r} is not readable.")
    try:
        file_format(path, what)
    except LeanformersError as exc:
        raise UsageError(str(exc)) from None


def _predict_with_ray(args: argparse.Namespace, task: str | None) -> int:
    if not (args.input and args.output) or args.resume or args.inputs:
        raise UsageError("--engine ray needs --input FILE and --output FILE (and no --resume or inline inputs).")
    if args.workers < 1:
        raise UsageError(f"--workers must be a positive integer, got {args.workers}.")
    _checked_file(args.input, "input file")
    from .distributed import run_cli_prediction, summary_line

    summary = run_cli_prediction(
        args.model, args.input, args.output, task=task, column=args.column,
        batch_size=args.batch_size or default_batch_size(task), device=args.device, address=args.address,
        workers=args.workers, task_kwargs=_task_kwargs(args), dtype=args.dtype, compile=args.compile,
    )
    if not args.quiet:
        print(summary_line(summary), file=sys.stderr)
    return 0


def _check_local_predict(args: argparse.Namespace) -> bool:
    """Usage errors of a local predict, before the model loads; False when there is nothing to do."""
    from .files import file_format

    if args.input and args.inputs:
        raise UsageError("give inputs on the command line or with --input FILE, not both.")
    if args.input:
        _checked_file(args.input, "input file")
    if args.output:
        try:
            file_format(args.output, "output file")
        except LeanformersError as exc:
            raise UsageError(str(exc)) from None
        if args.input and os.path.abspath(args.output) == os.path.abspath(args.input):
            raise UsageError("--output must differ from --input.")
    if args.resume and not args.output:
        raise UsageError("--resume needs --output FILE (it continues FILE.partial).")
    partial = f"{args.output}.partial"
    if args.resume and os.path.exists(args.output) and not os.path.exists(partial):
        print(f"{args.output} is already complete; nothing to resume.", file=sys.stderr)
        return False
    if not args.input and not args.inputs and sys.stdin.isatty():
        raise UsageError("no inputs: give them on the command line, with --input FILE, or on stdin.")
    if args.output and not args.resume and os.path.exists(partial):
        raise UsageError(
            f"{partial!r} holds the partial output of an earlier run; pass --resume to continue it, or delete it "
            f"to start over."
        )
    return True


def _input_rows(args: argparse.Namespace, task: str, column: str) -> Callable[[], Iterable[dict[str, Any]]]:
    """A maker of fresh row iterators over the input: the file, the command line, or stdin."""
    from .files import read_rows

    if args.input:
        return lambda: read_rows(args.input, column)
    if not args.inputs:
        lines = (line.rstrip("\r\n") for line in sys.stdin)  # read once: stdin cannot be rewound
        return lambda: ({column: line} for line in lines if line.strip())
    if task != "question-answering":
        return lambda: ({column: value} for value in args.inputs)
    if not args.context:
        raise UsageError("question-answering needs --context TEXT for questions given on the command line.")
    return lambda: ({"question": q, "context": args.context} for q in args.inputs)


def cmd_predict(args: argparse.Namespace) -> int:
    from . import batch
    from .files import count_rows, default_column

    task = _canonical_task(args.task)
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be a positive integer, got {args.batch_size}.")
    if args.engine == "ray":
        return _predict_with_ray(args, task)
    if not _check_local_predict(args):
        return 0
    pipe = _load_pipeline(args.model, task, args.device, args.batch_size or 1, args.dtype, args.threads, args.compile)
    task = pipe.task
    pipe.batch_size = args.batch_size or default_batch_size(task)
    column = args.column or default_column(task)
    fmt = args.format or ("table" if sys.stdout.isatty() else "json")
    progress = sys.stderr.isatty() and not args.quiet
    job = batch.Job(
        pipe=pipe, rows=_input_rows(args, task, column), column=column, output=args.output,
        emit=None if args.output else _TableEmitter() if fmt == "table" else _emit_jsonl, batch_size=pipe.batch_size,
        window_batches=args.window, resume=args.resume,
        total=count_rows(args.input) if progress and args.input else None, progress=progress,
        base_dir=os.path.dirname(os.path.abspath(args.input)) if args.input else None,
        task_kwargs=_task_kwargs(args),
    )
    stats = batch.run(job)
    if not args.quiet and (args.output or args.input):
        print(batch.summary(stats, args.output), file=sys.stderr)
    return 0


# -- search ---------------------------------------------------------------------------------------


def cmd_search(args: argparse.Namespace) -> int:
    import torch

    from . import batch
    from .files import read_rows

    _checked_file(args.corpus, "corpus file")
    if args.top_k is not None and args.top_k < 1:
        raise UsageError("--top-k must be a positive integer.")
    pipe = _load_pipeline(
        args.model, "feature-extraction", args.device, args.batch_size, None, args.threads, args.compile
    )
    column = args.column or "text"

    def vector(result: Any) -> Any:
        return torch.as_tensor(batch.plain(result), dtype=torch.float32).reshape(-1)

    texts, vectors = [], []
    for window in batch.predict_windows(
        pipe, read_rows(args.corpus, column), batch_size=args.batch_size,
        item_of=lambda row: batch.make_item(row, "feature-extraction", column), pooling="mean", normalize=True,
    ):
        for row, result in window:
            texts.append(str(row[column]))
            vectors.append(vector(result))
    if not texts:
        raise UsageError(f"corpus file {args.corpus!r} holds no texts.")
    query = vector(pipe.run_batch([args.query], pooling="mean", normalize=True)[0])
    scores = torch.nn.functional.cosine_similarity(torch.stack(vectors), query.unsqueeze(0), dim=-1)
    top = torch.topk(scores, min(args.top_k or 5, len(texts)))
    json_lines = (args.format or ("table" if sys.stdout.isatty() else "json")) == "json"
    for rank, (score, index) in enumerate(zip(top.values.tolist(), top.indices.tolist()), 1):
        if json_lines:
            print(json.dumps({"rank": rank, "score": round(score, 4), "text": texts[index]}, ensure_ascii=False))
        else:
            print(f"{rank:>2}. {score:.4f}  {texts[index]}")
    return 0


# -- download -------------------------------------------------------------------------------------


def cmd_download(args: argparse.Namespace) -> int:
    from .hub import hub_cache_dir, is_offline

    if os.path.isdir(args.model):
        raise UsageError(f"{args.model!r} is a local folder; there is nothing to download.")
    if is_offline():
        raise LeanformersError(
            f"cannot download {args.model!r}: HF_HUB_OFFLINE is set (offline mode). Unset it and retry with "
            f"network access."
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise LeanformersError("downloading needs huggingface_hub: pip install huggingface_hub.") from exc
    try:
        path = snapshot_download(
            args.model, revision=args.revision, allow_patterns=DOWNLOAD_PATTERNS,
            cache_dir=hub_cache_dir(args.cache_dir),
        )
    except Exception as exc:  # huggingface_hub raises many types (HTTP, offline, not found, gated)
        raise LeanformersError(f"could not download {args.model!r}: {type(exc).__name__}: {_one_line(exc)}") from exc
    print(path)
    return 0


# -- the parser -----------------------------------------------------------------------------------


_THREADS_HELP = (
    "CPU threads for the model and preprocessing (default: the CPUs this process may use, or LEANFORMERS_NUM_THREADS)"
)
_COMPILE_HELP = "opt-in: compile the model with torch.compile; the first batches pay the compilation time"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback on errors")
    parser = _Parser(prog="leanformers", description="Inspect, run and fetch Transformers checkpoints.",
                     epilog="Exit codes: 0 ok, 1 error while working, 2 usage error, 130 interrupted.")
    parser.add_argument("--debug", action="store_true", default=False, help="show the full traceback on errors")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("inspect", parents=[common], help="show what a checkpoint resolves to")
    p.add_argument("model", help="a checkpoint folder or hub id")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("predict", parents=[common], help="run a pipeline over inputs or a file",
                       description="Inputs on the command line, from --input FILE (.txt, .jsonl, .csv, .parquet), "
                       "or on stdin. With --output FILE the rows (input fields + predictions) are written to "
                       "FILE.partial while running and renamed to FILE at the end; --resume continues FILE.partial.")
    p.add_argument("model", help="a checkpoint folder or hub id")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="texts (or image / audio file paths)")
    p.add_argument("--input", "-i", help="input file: .txt (an item per line), .jsonl, .csv, .parquet")
    p.add_argument("--output", "-o", help="output file: .txt, .jsonl, .csv, .parquet (by extension)")
    p.add_argument("--column", help="the input field to read (default: text / image / audio by task)")
    p.add_argument("--context", help="the context for question-answering questions given on the command line")
    p.add_argument("--task", help="e.g. text-classification, feature-extraction (default: from the checkpoint)")
    p.add_argument("--top-k", type=int, dest="top_k")
    p.add_argument("--pooling", choices=("mean", "cls", "none"), help="feature-extraction: pool token vectors")
    p.add_argument("--normalize", action="store_true", help="feature-extraction: L2-normalise pooled vectors")
    p.add_argument("--batch-size", "-b", type=int, default=None, dest="batch_size",
                   help="items per forward pass (default: 32 for text, 16 for images, 8 for audio)")
    p.add_argument("--window", type=int, default=64, help="batches per sorting window (default 64)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps ...")
    p.add_argument("--dtype", help="float32, float16, bfloat16 (default: the checkpoint's)")
    p.add_argument("--threads", type=int, help=_THREADS_HELP)
    p.add_argument("--compile", action="store_true", help=_COMPILE_HELP)
    p.add_argument("--resume", action="store_true", help="continue OUTPUT.partial from an interrupted run")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process; ray: a Ray cluster (pip install 'leanformers[ray]')")
    p.add_argument("--address", help="with --engine ray: the cluster address, e.g. auto (default: start a local one)")
    p.add_argument("--workers", type=int, default=1, help="with --engine ray: how many model workers")
    p.add_argument("--format", choices=("table", "json"), default=None,
                   help="stdout format (default: table on a terminal, JSON lines otherwise)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary line")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("search", parents=[common], help="semantic search over a text corpus")
    p.add_argument("model", help="a sentence-embedding checkpoint (folder or hub id)")
    p.add_argument("query")
    p.add_argument("--corpus", required=True, help="a .txt (a text per line), .jsonl, .csv or .parquet file")
    p.add_argument("--column", help="the text field of a .jsonl / .csv / .parquet corpus (default: text)")
    p.add_argument("--top-k", type=int, dest="top_k", default=5)
    p.add_argument("--batch-size", "-b", type=int, default=32, dest="batch_size")
    p.add_argument("--threads", type=int, help=_THREADS_HELP)
    p.add_argument("--compile", action="store_true", help=_COMPILE_HELP)
    p.add_argument("--device")
    p.add_argument("--format", choices=("table", "json"), default=None)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("download", parents=[common], help="fetch a model's files into the hub cache")
    p.add_argument("model", help="a hub id (org/name)")
    p.add_argument("--revision")
    p.add_argument("--cache-dir", dest="cache_dir")
    p.set_defaults(func=cmd_download)
    return parser


def _version() -> str:
    from . import __version__

    return f"leanformers {__version__}"


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C so finished rows are kept and the exit is clean."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # predict's INPUTs may also follow options: predict MODEL --task T "text"
        if args.command == "predict" and not any(e.startswith("-") for e in extra):
            args.inputs = list(args.inputs) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    debug = getattr(args, "debug", False)
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (an embedding caller): leave SIGTERM alone
        previous = None
    prog = f"leanformers {args.command}"
    try:
        return args.func(args)
    except UsageError as exc:
        _report(prog, exc, debug)
        return 2
    except KeyboardInterrupt as exc:
        where = getattr(args, "output", None)
        kept = f"; finished rows are kept in {where}.partial, rerun with --resume to continue" if where else ""
        what = "terminated" if isinstance(exc, _Terminated) else "interrupted"
        print(f"{prog}: {what}{kept}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed early (e.g. piped into head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (LeanformersError, OSError) as exc:
        _report(prog, exc, debug)
        return 1
    except Exception as exc:  # noqa: BLE001 - an unexpected failure: still one line, unless --debug
        _report(prog, exc, debug, unexpected=True)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _report(prog: str, exc: BaseException, debug: bool, unexpected: bool = False) -> None:
    if debug:
        traceback.print_exc()
    message = _one_line(exc) or type(exc).__name__
    if unexpected or isinstance(exc, OSError) and not isinstance(exc, LeanformersError):
        message = f"{type(exc).__name__}: {message}"
    hint = "" if debug else " (rerun with --debug for the traceback)" if unexpected else ""
    print(f"{prog}: error: {message}{hint}", file=sys.stderr)


"""The ``leanformers`` command.

    leanformers inspect MODEL [--format table|json]
    leanformers predict MODEL [INPUT ...] [--input FILE] [--output FILE] [--task T] [--top-k K]
                              [--batch-size N] [--device D] [--resume] [--format table|json]
    leanformers embed MODEL [INPUT ...] [--input FILE] [--output FILE] [--normalize] [--prompt P] [--engine ray]
    leanformers search MODEL --corpus FILE QUERY [--top-k K]
    leanformers search MODEL --images FOLDER QUERY [--cache FILE] [--top-k K]
    leanformers generate MODEL [PROMPT ...] [--input FILE --output FILE] [--chat] [--system S]
                               [--max-new-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S]
    leanformers chat MODEL [--system S] [generation options]
    leanformers download MODEL [--revision R]

Exit codes: 0 success; 1 an error while working (bad checkpoint or rows, download failure, anything
unexpected); 2 a usage error (bad arguments, task or format, missing input, a partial output without
``--resume``); 130 interrupted (finished rows kept in ``OUT.partial``); 141 stdout closed early. Errors
are one line on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .errors import LeanformersError

# files a checkpoint may use, in the order inspect lists them
_CHECKPOINT_FILES = (
    "config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "tokenizer.json",
    "tokenizer_config.json", "vocab.txt", "vocab.json", "merges.txt", "sentencepiece.bpe.model", "spm.model",
    "special_tokens_map.json", "preprocessor_config.json", "modules.json", "sentence_bert_config.json",
)
DOWNLOAD_PATTERNS = [
    "config.json", "*.safetensors", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt", "*.model",
    "preprocessor_config.json", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
    "*_Pooling/config.json", "*_Dense/*",
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
    from .tasks import task_of

    config = AutoConfig.from_pretrained(name)
    model_type = config.model_type
    heads = registry.MODELS.get(model_type, ("", "", {}))[2]
    architectures = list(config.architectures or []) if "architectures" in config else []
    served = [task_of(architecture, model_type) for architecture in heads.values()]
    if "feature-extraction" in served:  # any text encoder's states pool into sentence vectors
        served.append("sentence-embedding")
    if any(str(label).lower().startswith("entail") for label in (config.label2id or {})):
        served.append("zero-shot-classification")
    info: dict[str, Any] = {
        "model": name, "config_class": type(config).__name__, "model_type": model_type,
        "architectures": architectures, "heads": dict(heads),
        "tasks": list(dict.fromkeys(task for task in served if task)), "config": _config_summary(config),
    }
    if "sentence-embedding" in served:
        from .hub import Source
        from .sentence import SentenceModules

        modules = SentenceModules.read(Source.of(name))
        info["sentence_embedding"] = {
            "pooling": list(modules.pooling), "dense_layers": len(modules.dense), "normalize": modules.normalize,
            "max_seq_length": modules.max_seq_length,
        }
    head = next((h for h, cls in heads.items() if cls in architectures), "base")
    model = registry.model_class_for(model_type, head, where=name).from_pretrained(name, config=config)
    info["model_class"] = type(model).__name__
    info["parameters"] = sum(p.numel() for p in model.parameters())
    info["dtype"] = str(model.dtype).removeprefix("torch.")
    info["files"] = _checkpoint_files(name)
    info["preprocessing"] = _preprocessing(name, info["tasks"])
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


# what inspect shows of each processor
_PROCESSOR_KEYS = {
    "tokenizer": ("vocab_size", "model_max_length"),
    "image_processor": ("size", "crop_size", "image_mean", "image_std", "resample"),
    "feature_extractor": ("sampling_rate", "feature_size", "do_normalize", "return_attention_mask"),
}


def _preprocessing(name: str, tasks: list[str]) -> dict[str, Any]:
    """The settings of the processors ``tasks`` load, or the error loading them."""
    from . import auto
    from .tasks import PROCESSOR_CLASSES, TASKS

    preprocessing: dict[str, Any] = {}
    for kind in dict.fromkeys(kind for task in tasks for kind in TASKS[task].processors):
        try:
            processor = getattr(auto, PROCESSOR_CLASSES[kind]).from_pretrained(name)
        except LeanformersError as exc:
            preprocessing[kind] = {"error": _one_line(exc)}
            continue
        entry = {"class": getattr(processor, "class_name", type(processor).__name__)}
        for key in _PROCESSOR_KEYS[kind]:
            value = getattr(processor, key, None)
            if value is not None and not (key == "model_max_length" and value >= 10**12):  # 10**30: no limit
                entry[key] = value
        preprocessing[kind] = entry
    return preprocessing


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
    if "sentence_embedding" in info:
        lines.append("sentence embedding")
        lines.extend(f"  {key:<24} {value}" for key, value in info["sentence_embedding"].items())
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


@contextlib.contextmanager
def _usage_errors() -> Iterator[None]:
    """A :class:`LeanformersError` raised inside (a bad file name, task...) reported as a usage error."""
    try:
        yield
    except LeanformersError as exc:
        raise UsageError(str(exc)) from None


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


def _stdout_format(args: argparse.Namespace) -> str:
    return args.format or ("table" if sys.stdout.isatty() else "json")


def _task_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    if args.task == "text-generation":
        return {**_generation_kwargs(args), "return_full_text": getattr(args, "full_text", False)}
    kwargs: dict[str, Any] = {"top_k": args.top_k} if args.top_k is not None else {}
    if args.task == "sentence-embedding":
        return {"normalize_embeddings": args.normalize or None, "prompt": args.prompt}
    if getattr(args, "pooling", None) not in (None, "none"):
        kwargs["pooling"] = args.pooling
    if getattr(args, "normalize", False):
        kwargs["normalize"] = True
    options = {"labels": "candidate_labels", "multi_label": "multi_label", "hypothesis_template": "hypothesis_template"}
    kwargs.update({name: getattr(args, key) for key, name in options.items() if getattr(args, key, None)})
    if getattr(args, "labels", None) and _task_of(args) == "zero-shot-image-classification":
        # A command-line user has no tokenizer options to pass: labels past the text tower's positions
        # are cut as the tokenizer's truncation cuts them, instead of refused.
        kwargs["tokenizer_kwargs"] = {"truncation": True}
    return {**kwargs, **_speech_kwargs(args)}


def _task_of(args: argparse.Namespace) -> str:
    """The task a command runs: the one named, else the checkpoint's."""
    if args.task:
        return args.task
    from .auto import AutoConfig
    from .pipelines import infer_task

    return infer_task(AutoConfig.from_pretrained(args.model))


def _speech_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Speech-recognition options: another task's pipeline refuses them by name."""
    kwargs: dict[str, Any] = {}
    if getattr(args, "language", None):
        kwargs["language"] = args.language
    if getattr(args, "translate", False):
        kwargs["task"] = "translate"
    if getattr(args, "chunk_length", None) is not None:
        if args.chunk_length <= 0:
            raise UsageError(f"--chunk-length must be a positive number of seconds, got {args.chunk_length}.")
        kwargs["chunk_length_s"] = args.chunk_length
    if getattr(args, "timestamps", False):
        # Whisper times segments; a CTC model times words.
        from .auto import AutoConfig

        config = AutoConfig.from_pretrained(args.model)
        kwargs["return_timestamps"] = True if getattr(config, "is_encoder_decoder", False) else "word"
    return kwargs


# Items per forward pass when --batch-size is not given, by what an input is. Text batches are
# sorted by length, so they pad little; an audio item (up to a 30 s window) holds the most activation memory.
DEFAULT_BATCH_SIZES = {"text": 32, "image": 32, "audio": 8}


def default_batch_size(task: str | None) -> int:
    from .tasks import input_kind

    return DEFAULT_BATCH_SIZES[input_kind(task)]


def _check_positive(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {value}.")


def _load_pipeline(args: argparse.Namespace) -> Any:
    """The pipeline of ``args`` (thread budget, model, task, device, dtype, batch size)."""
    from . import threads
    from .pipelines import pipeline

    if args.threads is not None:
        threads.set_num_threads(args.threads)
    options = {"gguf_file": args.gguf_file} if getattr(args, "gguf_file", None) else {}
    task = getattr(args, "task_name", None) or args.task
    pipe = pipeline(task=task, model=args.model, device=args.device, dtype=args.dtype, **options)
    pipe.batch_size = getattr(args, "batch_size", None) or default_batch_size(pipe.task)
    return pipe


def _checked_file(path: str, what: str) -> None:
    """A usage error unless ``path`` is a readable file of a format we read."""
    from .files import file_format

    if not os.path.isfile(path):
        raise UsageError(f"{what} {path!r} does not exist or is not a file.")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{what} {path!r} is not readable.")
    with _usage_errors():
        file_format(path, what)


def _predict_with_ray(args: argparse.Namespace, task: str | None) -> int:
    if not (args.input and args.output) or args.resume or args.inputs:
        raise UsageError("--engine ray needs --input FILE and --output FILE (and no --resume or inline inputs).")
    _checked_file(args.input, "input file")
    from .batch import summary
    from .distributed import run_cli_prediction

    stats = run_cli_prediction(
        args.model, args.input, args.output, task=task, column=args.column,
        batch_size=args.batch_size or default_batch_size(args.task), device=args.device, address=args.address,
        workers=args.workers, task_kwargs=_task_kwargs(args), dtype=args.dtype,
        gguf_file=getattr(args, "gguf_file", None), item_of=getattr(args, "item_of", None),
        progress=sys.stderr.isatty() and not args.quiet,
    )
    if not args.quiet:
        where = f" with {args.workers} Ray worker(s) on {args.address or 'local'}"
        print(summary(stats, args.output, where), file=sys.stderr)
    return 0


def _check_local_predict(args: argparse.Namespace) -> bool:
    """Usage errors of a local predict, before the model loads; False when there is nothing to do."""
    from .batch import OutputComplete, check_output

    if args.input and args.inputs:
        raise UsageError("give inputs on the command line or with --input FILE, not both.")
    if args.input:
        _checked_file(args.input, "input file")
    if args.resume and not args.output:
        raise UsageError("--resume needs --output FILE (it continues FILE.partial).")
    if args.output:
        if args.input and os.path.abspath(args.output) == os.path.abspath(args.input):
            raise UsageError("--output must differ from --input.")
        with _usage_errors():
            try:
                check_output(args.output, args.resume)
            except OutputComplete as exc:
                print(exc, file=sys.stderr)
                return False
    if not args.input and not args.inputs and sys.stdin.isatty():
        raise UsageError("no inputs: give them on the command line, with --input FILE, or on stdin.")
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
    from .tasks import resolve_task

    with _usage_errors():
        # "translation_en_to_de" names the languages its resolved task loses: the pipeline gets the name.
        args.task_name = args.task
        task = args.task = None if args.task is None else resolve_task(args.task)
    _check_positive(args, "batch_size", "threads", "top_k", "workers")
    if args.engine == "ray":
        return _predict_with_ray(args, args.task_name)
    if not _check_local_predict(args):
        return 0
    pipe = _load_pipeline(args)
    task = pipe.task
    if task in ("zero-shot-classification", "zero-shot-image-classification") and not args.labels:
        raise UsageError(f"{task} needs the candidate labels: --labels 'a cat,a dog'.")
    column = args.column = args.column or default_column(task)
    progress = sys.stderr.isatty() and not args.quiet
    job = batch.Job(
        pipe=pipe, rows=_input_rows(args, task, column), column=column, output=args.output,
        emit=None if args.output else _TableEmitter() if _stdout_format(args) == "table" else _emit_jsonl,
        batch_size=pipe.batch_size, window_batches=args.window, resume=args.resume, task_kwargs=_task_kwargs(args),
        total=count_rows(args.input) if progress and args.input else None, progress=progress,
        base_dir=os.path.dirname(os.path.abspath(args.input)) if args.input else None,
        item_of=getattr(args, "item_of", None),
    )
    stats = batch.run(job)
    if not args.quiet and (args.output or args.input):
        print(batch.summary(stats, args.output), file=sys.stderr)
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    args.task = "sentence-embedding"
    return cmd_predict(args)


# -- generate and chat ----------------------------------------------------------------------------


def _generation_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The generation settings given on the command line (the rest come from the checkpoint)."""
    names = ("max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "do_sample")
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def as_chat(system: str | None, value: Any) -> Any:
    """A prompt as a chat: a user message (after ``system``'s message); a chat stays as it is."""
    if isinstance(value, (list, tuple)):
        return value
    chat = [{"role": "system", "content": system}] if system else []
    return chat + [{"role": "user", "content": value}]


def _stream(pipe: Any, prompt: Any, kwargs: dict[str, Any]) -> str:
    """Generate for one prompt (text or chat), printing the new text as it forms; the new text."""
    from .modeling.generation import TextStreamer

    if isinstance(prompt, str):
        sys.stdout.write(prompt)
        sys.stdout.flush()
    streamer = TextStreamer(pipe.tokenizer, skip_prompt=True, skip_special_tokens=True)
    result = pipe(prompt, streamer=streamer, return_full_text=False, **kwargs)
    return result[0]["generated_text"]


def _check_generation_args(args: argparse.Namespace) -> None:
    _check_positive(args, "max_new_tokens", "threads")
    for name, low, high in (("temperature", 0.0, None), ("top_p", 0.0, 1), ("repetition_penalty", 0.0, None)):
        value = getattr(args, name, None)
        if value is not None and (value <= low or (high is not None and value > high)):
            bound = f"in (0, {high}]" if high is not None else "greater than 0"
            raise UsageError(f"--{name.replace('_', '-')} must be a number {bound}, got {value}.")
    if getattr(args, "top_k", None) is not None and args.top_k < 0:
        raise UsageError(f"--top-k must be 0 (off) or a positive integer, got {args.top_k}.")


def _seed(args: argparse.Namespace) -> None:
    """Seed torch's generator (sampling draws from it) where --seed asks for a repeatable run."""
    if args.seed is not None:
        import torch

        torch.manual_seed(args.seed)


def cmd_generate(args: argparse.Namespace) -> int:
    """Stream the continuation of each prompt (command line or stdin), or run a file through the batch
    or Ray engine (rows keep their fields and gain ``generated_text``)."""
    args.task = "text-generation"
    _check_generation_args(args)
    if args.chat or args.system:
        args.item_of = functools.partial(as_chat, args.system)
    if args.input or args.engine == "ray":
        if args.input and not args.column:
            args.column = _prompt_column(args.input)
        if args.engine == "ray" and args.seed is not None:
            raise UsageError("--seed applies to local runs; Ray workers draw their own samples.")
        _seed(args)
        return cmd_predict(args)
    if args.output or args.resume:
        raise UsageError("--output and --resume go with --input FILE; prompts on the command line are streamed.")
    if not args.inputs and sys.stdin.isatty():
        raise UsageError("no prompt: give one on the command line, with --input FILE, or on stdin.")
    pipe = _load_pipeline(args)
    kwargs = _generation_kwargs(args)
    _seed(args)
    prompts = args.inputs or (line.rstrip("\r\n") for line in sys.stdin if line.strip())
    for prompt in prompts:
        _stream(pipe, as_chat(args.system, prompt) if args.chat or args.system else prompt, kwargs)
    return 0


def _prompt_column(path: str) -> str:
    """The field holding the prompts: "prompt", "text" or "messages", whichever the first row has."""
    from .files import read_rows

    with _usage_errors():
        first = next(iter(read_rows(path)), {})
    return next((name for name in ("prompt", "text", "messages") if name in first), "text")


_CHAT_HELP = "Type a message and press Enter; /reset clears the conversation, /exit (or Ctrl-D) quits."


def cmd_chat(args: argparse.Namespace) -> int:
    """Talk with a chat model: each line is a user message, the reply streams as it is generated, and
    the conversation so far goes through the chat template each turn."""
    args.task, args.batch_size = "text-generation", 1
    _check_generation_args(args)
    pipe = _load_pipeline(args)
    if getattr(pipe.tokenizer, "chat_template", None) is None:
        raise UsageError(f"{args.model!r} has no chat template (tokenizer_config.json or chat_template.jinja); "
                         "use 'leanformers generate' to continue plain text.")
    kwargs = _generation_kwargs(args)
    _seed(args)
    start = [{"role": "system", "content": args.system}] if args.system else []
    history = list(start)
    interactive = sys.stdin.isatty()
    if interactive:
        print(_CHAT_HELP, file=sys.stderr)
    while True:
        try:
            line = input("> " if interactive else "")
        except EOFError:
            break
        text = line.strip()
        if text in ("/exit", "/quit"):
            break
        if text == "/reset":
            history = list(start)
            print("(conversation cleared)", file=sys.stderr)
            continue
        if not text:
            continue
        history.append({"role": "user", "content": text})
        history.append({"role": "assistant", "content": _stream(pipe, history, kwargs)})
    return 0


# -- search ---------------------------------------------------------------------------------------


def cmd_search(args: argparse.Namespace) -> int:
    import torch

    from . import batch
    from .files import read_rows

    _check_positive(args, "batch_size", "threads", "top_k")
    if (args.corpus is None) == (args.images is None):
        raise UsageError("give --corpus FILE (texts) or --images FOLDER (photos), one of the two.")
    if args.images is not None:
        return _search_images(args)
    if args.cache is not None:
        raise UsageError("--cache goes with --images FOLDER (a text corpus is embedded on every search).")
    _checked_file(args.corpus, "corpus file")
    args.task, args.dtype = "sentence-embedding", None
    pipe = _load_pipeline(args)
    column = args.column or "text"

    def vector(result: Any) -> Any:
        return torch.as_tensor(batch.plain(result), dtype=torch.float32).reshape(-1)

    texts, vectors = [], []
    for window in batch.predict_windows(
        pipe, read_rows(args.corpus, column), batch_size=pipe.batch_size,
        item_of=lambda row: batch.make_item(row, "sentence-embedding", column),
    ):
        for row, result in window:
            texts.append(str(row[column]))
            vectors.append(vector(result))
    if not texts:
        raise UsageError(f"corpus file {args.corpus!r} holds no texts.")
    query = vector(pipe.run_batch([args.query])[0])
    scores = torch.nn.functional.cosine_similarity(torch.stack(vectors), query.unsqueeze(0), dim=-1)
    top = torch.topk(scores, min(args.top_k or 5, len(texts)))
    table = _stdout_format(args) == "table"
    for rank, (score, index) in enumerate(zip(top.values.tolist(), top.indices.tolist()), 1):
        row = {"rank": rank, "score": round(score, 4), "text": texts[index]}
        print(f"{rank:>2}. {score:.4f}  {texts[index]}" if table else json.dumps(row, ensure_ascii=False))
    return 0


def _model_key(model: str) -> str:
    """What identifies a model's embeddings: its folder and its files' sizes and times (a hub id as given)."""
    if not os.path.isdir(model):
        return model
    names = sorted(name for name in os.listdir(model) if name.endswith((".json", ".safetensors", ".bin")))
    stats = [(name, os.stat(os.path.join(model, name))) for name in names]
    return json.dumps([os.path.abspath(model)] + [[name, st.st_size, st.st_mtime_ns] for name, st in stats])


def _is_image_file(path: str) -> str | None:
    """None where Pillow recognises ``path`` as an image (its header only), else why not."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path):
            return None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        return _one_line(exc) or "not an image"


def _embed_images(pipe: Any, folder: str, keys: list[tuple[str, int, int]], batch_size: int,
                  progress: bool) -> dict[tuple[str, int, int], Any]:
    """Each file's embedding, or the reason it is not an image; in batches, with a progress bar."""
    entries: dict[tuple[str, int, int], Any] = {}
    images = []
    for key in keys:
        reason = _is_image_file(os.path.join(folder, key[0]))
        if reason is None:
            images.append(key)
        else:
            entries[key] = reason
    bar = None
    if progress and images:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(images), unit="image", desc="indexing", dynamic_ncols=True, file=sys.stderr)
    try:
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            paths = [os.path.join(folder, key[0]) for key in chunk]
            try:
                vectors = list(pipe.image_embeddings(paths))
            except LeanformersError:  # a damaged file past its header: embed one by one to find it
                vectors = []
                for path in paths:
                    try:
                        vectors.append(pipe.image_embeddings([path])[0])
                    except LeanformersError as exc:
                        vectors.append(_one_line(exc))
            entries.update(zip(chunk, vectors))
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return entries


def _search_images(args: argparse.Namespace) -> int:
    import torch

    from .files import (
        default_cache_path,
        folder_files,
        read_embedding_cache,
        write_embedding_cache,
    )

    folder = args.images
    with _usage_errors():
        files = folder_files(folder)
    cache = args.cache or default_cache_path(folder)
    args.task, args.dtype = "zero-shot-image-classification", None
    pipe = _load_pipeline(args)
    model_key = _model_key(args.model)
    known = read_embedding_cache(cache, model_key)
    entries = {key: known[key] for key in files if key in known}
    missing = [key for key in files if key not in known]
    if missing:
        progress = sys.stderr.isatty() and not args.quiet
        entries.update(_embed_images(pipe, folder, missing, pipe.batch_size, progress))
    if missing or len(known) != len(entries):  # new, changed or removed files: the cache follows the folder
        write_embedding_cache(cache, model_key, entries)
    skipped = {key[0]: value for key, value in entries.items() if isinstance(value, str)}
    names = [key[0] for key, value in entries.items() if not isinstance(value, str)]
    if skipped and not args.quiet:
        shown = "; ".join(f"{name} ({reason})" for name, reason in list(skipped.items())[:5])
        more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        print(f"leanformers search: skipped {len(skipped)} file(s) that are not images: {shown}{more}",
              file=sys.stderr)
    if not names:
        raise LeanformersError(f"none of the {len(files)} file(s) in {folder!r} is an image leanformers can read "
                               "(JPEG, PNG, WebP, ...); nothing to search.")
    vectors = torch.stack([value for value in entries.values() if not isinstance(value, str)])
    query = pipe.text_embeddings([args.query], truncation=True)[0]
    scores = vectors @ query
    top = torch.topk(scores, min(args.top_k or 5, len(names)))
    table = _stdout_format(args) == "table"
    for rank, (score, index) in enumerate(zip(top.values.tolist(), top.indices.tolist()), 1):
        path = os.path.join(folder, names[index])
        row = {"rank": rank, "score": round(score, 4), "path": path}
        print(f"{rank:>2}. {score:.4f}  {path}" if table else json.dumps(row, ensure_ascii=False))
    return 0


# -- download -------------------------------------------------------------------------------------


def cmd_download(args: argparse.Namespace) -> int:
    from .hub import hub_cache_dir, is_offline

    if os.path.isdir(args.model):
        raise UsageError(f"{args.model!r} is a local folder; there is nothing to download.")
    if is_offline():
        raise LeanformersError(f"cannot download {args.model!r}: HF_HUB_OFFLINE is set (offline mode). Unset it "
                               "and retry with network access.")
    from huggingface_hub import snapshot_download

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


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback on errors")
    parser = _Parser(prog="leanformers", description="Inspect, run and fetch Transformers checkpoints.",
                     epilog="Exit codes: 0 ok, 1 error while working, 2 usage error, 130 interrupted.")
    parser.add_argument("--debug", action="store_true", default=False, help="show the full traceback on errors")
    parser.add_argument("--version", action="version", version=f"leanformers {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    running = argparse.ArgumentParser(add_help=False, parents=[common])  # predict's and search's options
    running.add_argument("model", help="a checkpoint folder or hub id")
    running.add_argument("--column", help="the input field to read (default: text / image / audio by task)")
    running.add_argument("--top-k", type=int, dest="top_k")
    running.add_argument("--batch-size", "-b", type=int, dest="batch_size",
                         help="items per forward pass (default: 32 for text and images, 8 for audio)")
    running.add_argument("--device", help="cpu, cuda, cuda:1, mps ...")
    running.add_argument("--threads", type=int, help="CPU threads for the model and preprocessing (default: the "
                         "CPUs this process may use, or LEANFORMERS_NUM_THREADS)")
    running.add_argument("--format", choices=("table", "json"), default=None,
                         help="stdout format (default: table on a terminal, JSON lines otherwise)")

    p = sub.add_parser("inspect", parents=[common], help="show what a checkpoint resolves to")
    p.add_argument("model", help="a checkpoint folder or hub id")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_inspect)

    files = argparse.ArgumentParser(add_help=False)  # predict's and embed's inputs, outputs and engines
    files.add_argument("inputs", nargs="*", metavar="INPUT", help="texts (or image / audio file paths)")
    files.add_argument("--input", "-i", help="input file: .txt (an item per line), .jsonl, .csv, .parquet")
    files.add_argument("--output", "-o", help="output file: .txt, .jsonl, .csv, .parquet (by extension)")
    files.add_argument("--window", type=int, default=64, help="batches per sorting window (default 64; generate: 4)")
    files.add_argument("--dtype", help="float32, float16, bfloat16 (default: the checkpoint's)")
    files.add_argument("--resume", action="store_true", help="continue OUTPUT.partial from an interrupted run")
    files.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: this process; ray: a Ray cluster (pip install 'leanformers[ray]')")
    files.add_argument("--address", help="with --engine ray: the cluster address, e.g. auto (default: start a local one)")
    files.add_argument("--workers", type=int, default=1, help="with --engine ray: how many model workers")
    files.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary line")
    files_help = ("Inputs on the command line, from --input FILE (.txt, .jsonl, .csv, .parquet), or on stdin. With "
                  "--output FILE the rows (input fields + {what}) are written to FILE.partial while running and "
                  "renamed to FILE at the end; --resume continues FILE.partial.")

    p = sub.add_parser("predict", parents=[running, files], help="run a pipeline over inputs or a file",
                       description=files_help.format(what="predictions"))
    p.add_argument("--context", help="the context for question-answering questions given on the command line")
    p.add_argument("--task", help="e.g. text-classification, feature-extraction (default: from the checkpoint)")
    p.add_argument("--pooling", choices=("mean", "cls", "none"), help="feature-extraction: pool token vectors")
    p.add_argument("--normalize", action="store_true", help="feature-extraction: L2-normalise pooled vectors")
    p.add_argument("--labels", help="zero-shot classification (text with an NLI model, images with CLIP / SigLIP): "
                   "the candidate labels, comma-separated")
    p.add_argument("--multi-label", action="store_true", dest="multi_label",
                   help="zero-shot-classification: score each label on its own")
    p.add_argument("--language", help="automatic-speech-recognition with Whisper: the spoken language (en, "
                   "french...; default: detected)")
    p.add_argument("--translate", action="store_true", help="automatic-speech-recognition with Whisper: "
                   "translate the speech into English")
    p.add_argument("--timestamps", action="store_true", help="automatic-speech-recognition: timed chunks (Whisper: "
                   "segments; CTC models: words)")
    p.add_argument("--chunk-length", type=float, dest="chunk_length", metavar="SECONDS",
                   help="automatic-speech-recognition: read long audio in windows of SECONDS (Whisper: 30 by default "
                   "past 30 seconds)")
    p.add_argument("--hypothesis-template", dest="hypothesis_template",
                   help="zero-shot classification: the hypothesis, with {} for the label (default 'This example "
                   "is {}.'; for images 'This is a photo of {}.')")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("embed", parents=[running, files], help="sentence embeddings as sentence-transformers gives them",
                       description=files_help.format(what="an 'embedding' field"))
    p.add_argument("--normalize", action="store_true", help="L2-normalise (models with a Normalize module always are)")
    p.add_argument("--prompt", help="text put before every input (e.g. 'query: ')")
    p.set_defaults(func=cmd_embed)

    generation = argparse.ArgumentParser(add_help=False)  # generate's and chat's settings
    generation.add_argument("--max-new-tokens", type=int, dest="max_new_tokens",
                            help="tokens to generate at most (default: the checkpoint's, else 256)")
    generation.add_argument("--temperature", type=float, help="sampling temperature (default: the checkpoint's, "
                            "else 0.7)")
    generation.add_argument("--top-p", type=float, dest="top_p", help="sample from the smallest set of tokens "
                            "whose probability reaches P")
    generation.add_argument("--top-k", type=int, dest="top_k", help="sample from the K likeliest tokens (0: all)")
    generation.add_argument("--repetition-penalty", type=float, dest="repetition_penalty")
    generation.add_argument("--do-sample", action=argparse.BooleanOptionalAction, dest="do_sample", default=None,
                            help="sample (default: the checkpoint's choice, else sampling); --no-do-sample: greedy")
    generation.add_argument("--seed", type=int, help="seed the sampling, for a repeatable run")
    generation.add_argument("--system", help="a system message put before the conversation (implies --chat)")
    generation.add_argument("--gguf-file", dest="gguf_file", help="the .gguf file in MODEL to load")
    generation.add_argument("--device", help="cpu, cuda, cuda:1, mps ...")
    generation.add_argument("--dtype", help="float32, float16, bfloat16 (default: the checkpoint's)")
    generation.add_argument("--threads", type=int, help="CPU threads (default: the CPUs this process may use)")

    model_argument = argparse.ArgumentParser(add_help=False)  # first, so it comes before generate's prompts
    model_argument.add_argument("model", help="a checkpoint folder or hub id")
    p = sub.add_parser(
        "generate", parents=[common, model_argument, generation, files], conflict_handler="resolve",
        help="continue prompts with a causal language model (streamed), or a file of prompts",
        description="Prompts on the command line (or stdin lines) are streamed as the text forms. With --input "
        "FILE (.txt, .jsonl, .csv, .parquet; the field 'prompt', 'text' or 'messages', or --column) the "
        "rows, prompts grouped by length, are written to --output FILE with a 'generated_text' field (the new "
        "text; --full-text: prompt and new text), through FILE.partial; --resume continues it.",
    )
    p.add_argument("--chat", action="store_true", help="send each prompt as a user message through the chat template")
    p.add_argument("--full-text", action="store_true", dest="full_text",
                   help="with --input: generated_text holds the prompt and the new text (a chat: the conversation)")
    p.add_argument("--column", help="with --input: the field holding the prompts (text or a list of messages)")
    p.add_argument("--batch-size", "-b", type=int, dest="batch_size", help="prompts per batch (default 32)")
    p.add_argument("--format", choices=("table", "json"), default=None, help="stdout format for --input without "
                   "--output (default: table on a terminal, JSON lines otherwise)")
    # A batch of generation takes seconds, not milliseconds: rows are written (and kept for --resume)
    # every 4 batches, still sorted by length within those.
    p.set_defaults(func=cmd_generate, window=4)

    p = sub.add_parser("chat", parents=[common, model_argument, generation],
                       help="talk with a chat model in the terminal", description=_CHAT_HELP)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser(
        "search", parents=[running], help="semantic search over a text corpus or a folder of photos (default: top 5)",
        description="Rank the texts of --corpus FILE (a sentence-embedding model), or the photos under --images "
        "FOLDER (an image-text model such as CLIP or SigLIP), by their similarity to QUERY. Photo embeddings are "
        "computed once and kept in a cache file (by default beside the folder), recomputed only for files whose "
        "size or time changed; files that are not images are skipped and reported.",
    )
    p.add_argument("query")
    p.add_argument("--corpus", help="a .txt (a text per line), .jsonl, .csv or .parquet file")
    p.add_argument("--images", help="a folder of photos (subfolders included)")
    p.add_argument("--cache", help="with --images: the embedding cache file (default: .FOLDER.leanformers-index.pt "
                   "beside the folder)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or skipped-files report")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("download", parents=[common], help="fetch a model's files into the hub cache")
    p.add_argument("model", help="a hub id (org/name)")
    p.add_argument("--revision")
    p.add_argument("--cache-dir", dest="cache_dir")
    p.set_defaults(func=cmd_download)
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C so finished rows are kept and the exit is clean."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # predict's INPUTs may also follow options: predict MODEL --task T "text"
        if args.command in ("predict", "embed", "generate") and not any(e.startswith("-") for e in extra):
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


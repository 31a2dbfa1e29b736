"""Batch prediction scaled out with Ray Data: many workers, one machine or a cluster.

    ds = predict_dataset("reviews.jsonl", "path/to/checkpoint", concurrency=4)
    write_predictions(ds, "predictions.parquet")

Ray Data schedules, moves data and re-runs a dead worker's batches; a worker (:class:`Predictor`) loads
the pipeline once and answers each batch with one ``pipe.run_batch``. Output rows carry the input's id
column (the row's position where it has none). ``ray`` is imported on first use only.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .batch import Stats, prediction_fields
from .errors import InputError, LeanformersError
from .files import default_column, file_format, read_rows
from .pipelines import COUNT, NON_NEGATIVE

INSTALL_HINT = 'Ray is not installed; install the extra with: pip install "leanformers[ray]"'
WRITE_FORMATS = ("parquet", "jsonl", "csv")


class RayNotInstalledError(InputError, ImportError):
    """Ray (the ``leanformers[ray]`` extra) is needed for this call and is not installed."""


def require_ray() -> Any:
    """The ``ray`` module, or :class:`RayNotInstalledError` with the install command."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise RayNotInstalledError(INSTALL_HINT) from exc
    return ray


# -- what one worker does -------------------------------------------------------------------------


def _flatten(results: list[Any], task: str | None) -> dict[str, list[Any]]:
    """Results as columns named as the local engine names them (``batch.prediction_fields``): vectors
    of numbers as list columns, other nested values as JSON text."""
    def cell(value: Any) -> Any:
        if isinstance(value, list) and all(type(v) in (int, float) for v in value):
            return value
        return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value

    rows = [prediction_fields(result, task or "") for result in results]
    keys = list(dict.fromkeys(key for row in rows for key in row))
    return {key: [cell(row.get(key)) for row in rows] for key in keys}


def _items(table: Any, column: str | Sequence[str]) -> list[Any]:
    if isinstance(column, str):
        return table.column(column).to_pylist()
    columns = {name: table.column(name).to_pylist() for name in column}
    return [{name: values[i] for name, values in columns.items()} for i in range(table.num_rows)]


class Predictor:
    """A worker: the pipeline, loaded once, maps pyarrow tables of inputs to the same rows (id first)
    with the prediction fields added, renamed ``prediction_KEY`` where an input field has the name,
    as the local engine writes them. ``item_of`` turns each input into the pipeline's (e.g. a chat)."""

    def __init__(
        self, model: Any, task: str | None, device: Any, column: str | Sequence[str], id_column: str,
        task_kwargs: dict[str, Any], num_threads: int, pipeline_factory: Callable[..., Any] | None,
        dtype: Any = None, gguf_file: str | None = None, item_of: Callable[[Any], Any] | None = None,
    ) -> None:
        import torch

        torch.set_num_threads(max(1, num_threads))
        if pipeline_factory is None:
            from .pipelines import pipeline as pipeline_factory
        options = {"dtype": dtype} if dtype is not None else {}
        if gguf_file is not None:
            options["gguf_file"] = gguf_file
        self.pipe = pipeline_factory(task, model=model, device=device, **options)
        self.column, self.id_column, self.task_kwargs, self.item_of = column, id_column, task_kwargs, item_of

    def __call__(self, table: Any) -> Any:
        import pyarrow as pa

        names = [self.id_column] + [name for name in table.column_names if name != self.id_column]
        columns = {name: table.column(name) for name in names}
        if table.num_rows == 0:
            return pa.table(columns)
        items = _items(table, self.column)
        if self.item_of is not None:
            items = [self.item_of(item) for item in items]
        results = self.pipe.run_batch(items, **self.task_kwargs)
        if len(results) != table.num_rows:
            raise RuntimeError(f"run_batch returned {len(results)} results for {table.num_rows} items")
        for name, values in _flatten(results, getattr(self.pipe, "task", None)).items():
            columns[f"prediction_{name}" if name in columns else name] = values
        return pa.table(columns)


# -- reading, ids, prediction ---------------------------------------------------------------------


def read_dataset(
    path: str | os.PathLike, *, format: str | None = None, filesystem: Any = None, on_this_node: bool = False,
    rows_per_block: int = 1024,
) -> Any:
    """A Ray Dataset over ``path`` (a file, a directory or a URI such as ``s3://...``). ``on_this_node``:
    a local path is read here and handed to Ray in blocks (other machines need not have the file)."""
    ray = require_ray()
    path = os.fspath(path)
    fmt = file_format(path, "input", given=format)
    if "://" not in path:
        if not os.path.exists(path):
            raise InputError(f"input {path!r} does not exist.")
        if on_this_node and filesystem is None:
            return ray.data.from_arrow(_blocks(path, max(1, rows_per_block)))
    # Reading reserves no CPU: otherwise workers holding every CPU (2 workers x 1 CPU on 2 cores)
    # leave none for the read tasks that feed them, and Ray Data waits forever.
    options: dict[str, Any] = {"num_cpus": 0, **({"filesystem": filesystem} if filesystem is not None else {})}
    if fmt == "jsonl":
        return ray.data.read_json(path, lines=True, **options)
    read = {"parquet": ray.data.read_parquet, "csv": ray.data.read_csv, "txt": ray.data.read_text}[fmt]
    return read(path, **options)


def _blocks(path: str, rows_per_block: int) -> list[Any]:
    """The rows of a local input as pyarrow tables of ``rows_per_block`` rows, with one schema."""
    import pyarrow as pa

    rows = list(read_rows(path))
    if not rows:
        raise InputError(f"input {path!r} has no rows.")
    names = list(dict.fromkeys(name for row in rows for name in row))
    table = pa.table({name: [row.get(name) for row in rows] for name in names})
    return [table.slice(start, rows_per_block) for start in range(0, table.num_rows, rows_per_block)]


def with_row_ids(dataset: Any, id_column: str = "id") -> Any:
    """``dataset`` plus ``id_column`` = each row's position, numbered here once (in order), so a retried
    batch keeps its rows' ids; sets ``preserve_order`` on ``dataset``'s context."""
    ray = require_ray()
    import pyarrow as pa

    dataset.context.execution_options.preserve_order = True
    refs, start = [], 0
    for table in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
        if table.num_rows == 0:
            continue
        ids = pa.array(range(start, start + table.num_rows), type=pa.int64())
        refs.append(ray.put(table.append_column(id_column, ids)))
        start += table.num_rows
    if not refs:
        raise InputError("the input has no rows.")
    return ray.data.from_arrow_refs(refs)


def predict_dataset(
    data: Any, model: Any, task: str | None = None, *, batch_size: int = 32, concurrency: int = 1,
    num_cpus: float = 1, num_gpus: float = 0, device: Any = None, dtype: Any = None,
    column: str | Sequence[str] | None = None, id_column: str = "id", task_kwargs: dict[str, Any] | None = None,
    input_format: str | None = None, filesystem: Any = None, read_on_this_node: bool = False, max_retries: int = 3,
    pipeline_factory: Callable[..., Any] | None = None, gguf_file: str | None = None,
    item_of: Callable[[Any], Any] | None = None,
) -> Any:
    """A lazy Ray Dataset of the input rows with their predictions added, for ``data`` (a Ray Dataset or a
    path, see :func:`read_dataset`) by ``concurrency`` workers, each loading ``model`` once (with
    ``num_gpus`` = 1 for a CUDA ``device``). ``column``: the input column (a list gives dict items, e.g.
    ``["question", "context"]``); ``item_of`` (picklable) maps each input to the pipeline's;
    ``pipeline_factory(task, model=, device=[, dtype=, gguf_file=])`` replaces :func:`leanformers.pipeline`."""
    ray = require_ray()
    COUNT("batch_size", batch_size)
    COUNT("concurrency", concurrency)
    NON_NEGATIVE("max_retries", max_retries)
    if isinstance(data, (str, os.PathLike)):
        data = read_dataset(
            data, format=input_format, filesystem=filesystem, on_this_node=read_on_this_node,
            rows_per_block=4 * batch_size,
        )
    elif not isinstance(data, ray.data.Dataset):
        raise InputError(f"data must be a ray.data.Dataset or a path, got {type(data).__name__}.")
    named = task
    if pipeline_factory is None:
        task = _task_for(model, task)
    columns = list(data.columns() or [])
    column = column if column is not None else default_column(task, columns, id_column)
    if task == "translation" and named != task:
        task = named  # "translation_en_to_de" names the languages its resolved task loses
    missing = [c for c in ([column] if isinstance(column, str) else column) if c not in columns]
    if missing:
        raise InputError(f"the input has no column {missing[0]!r}; its columns are {columns}.")
    if id_column not in columns:
        data = with_row_ids(data, id_column)
    if device is not None and str(device).startswith("cuda") and not num_gpus:
        num_gpus = 1
    constructor = {
        "model": os.fspath(model) if isinstance(model, os.PathLike) else model, "task": task, "device": device,
        "column": column, "id_column": id_column, "task_kwargs": dict(task_kwargs or {}),
        "num_threads": int(num_cpus) or 1, "pipeline_factory": pipeline_factory, "dtype": dtype,
        "gguf_file": gguf_file, "item_of": item_of,
    }
    with warnings.catch_warnings():
        # Ray flags max_restarts / max_task_retries given as remote args as deprecated without
        # naming a replacement for actors; they are still what it applies.
        warnings.simplefilter("ignore", DeprecationWarning)
        return data.map_batches(
            Predictor, fn_constructor_kwargs=constructor, batch_size=batch_size, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=concurrency), num_cpus=num_cpus, num_gpus=num_gpus or None,
            max_restarts=max_retries, max_task_retries=max_retries,
        )


def _task_for(model: Any, task: str | None) -> str | None:
    """``task`` resolved, or the task a checkpoint path serves (None for anything else)."""
    from .tasks import infer_task, resolve_task

    if task is not None:
        return resolve_task(task)
    if not isinstance(model, (str, os.PathLike)):
        return None
    from .auto import AutoConfig

    return infer_task(AutoConfig.from_pretrained(os.fspath(model)))


# -- writing --------------------------------------------------------------------------------------


def write_predictions(
    dataset: Any, path: str | os.PathLike, *, format: str | None = None, ordered: bool = True,
    on_rows: Callable[[int], None] | None = None,
) -> int:
    """Write ``dataset`` to ONE file (``.parquet``, ``.jsonl`` or ``.csv``; a URI through its pyarrow
    filesystem) and return its row count; a local file is staged as ``path + ".partial"``.
    ``on_rows(n)`` is told of each block of ``n`` rows written (a progress bar)."""
    require_ray()
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.fs as pa_fs
    import pyarrow.parquet as pq

    path = os.fspath(path)
    fmt = file_format(path, "output", given=format, formats=WRITE_FORMATS)
    if ordered:
        dataset.context.execution_options.preserve_order = True
    remote = "://" in path
    if remote:
        filesystem, target = pa_fs.FileSystem.from_uri(path)
        stream = filesystem.open_output_stream(target)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        target = path + ".partial"
        stream = pa.OSFile(target, "wb")
    rows, writer, schema = 0, None, None
    try:
        for table in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
            rows += table.num_rows
            if table.num_rows == 0:
                continue
            if fmt == "jsonl":
                stream.write("".join(
                    json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in table.to_pylist()
                ).encode())
            else:
                table = table if fmt == "parquet" else _json_text_columns(table)
                schema = schema or table.schema
                writer = writer or (pq.ParquetWriter if fmt == "parquet" else pa_csv.CSVWriter)(stream, schema)
                writer.write_table(table.cast(schema))
            if on_rows is not None:
                on_rows(table.num_rows)
        if writer is not None:
            writer.close()
    finally:
        stream.close()
    if not remote:
        os.replace(target, path)
    return rows


def _json_text_columns(table: Any) -> Any:
    """``table`` with its nested columns (lists, structs: chats, vectors) as JSON text, which CSV can hold."""
    import pyarrow as pa

    for index, column in enumerate(table.schema):
        if pa.types.is_nested(column.type):
            values = [None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                      for v in table.column(index).to_pylist()]
            table = table.set_column(index, column.name, pa.array(values, pa.string()))
    return table


# -- the command line's one call ------------------------------------------------------------------


@contextlib.contextmanager
def _ray_console_in_file() -> Iterator[Any]:
    """Ray's console output (file descriptors 1 and 2: its driver threads print workers' failures to
    stdout) kept in a file for the run; yields a text stream on the real stderr for the command's own
    progress. A healthy Ray Data run prints start-up notices, INFO
    lines, and from its C++ core an ERROR line per actor pool (its actors take constructor arguments
    from the object store while restarts are on, ray-project/ray#57733; the restarts are what re-run a
    dead worker's batches, so they stay on). No public setting silences that core line without
    printing another (RAY_BACKEND_LOG_LEVEL announces itself at INFO), so the file keeps all of it:
    removed after a good run, named on stderr after a failed one."""
    import sys
    import tempfile

    sys.stdout.flush()
    sys.stderr.flush()
    handle, path = tempfile.mkstemp(prefix="leanformers-ray-", suffix=".log")
    real = {fd: os.dup(fd) for fd in (1, 2)}
    console = os.fdopen(os.dup(real[2]), "w", buffering=1, encoding="utf-8", errors="replace")
    for fd in real:
        os.dup2(handle, fd)
    failed = True
    try:
        yield console
        failed = False
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in real.items():
            os.dup2(saved, fd)
            os.close(saved)
        os.close(handle)
        console.close()
        if failed:
            print(f"Ray's console output of this run is in {path}", file=sys.stderr)
        else:
            os.remove(path)


def run_cli_prediction(
    model: str, input_path: str, output_path: str, *, task: str | None = None, column: str | None = None,
    batch_size: int = 32, device: str | None = None, address: str | None = None, workers: int = 1,
    task_kwargs: dict[str, Any] | None = None, num_cpus: float = 1, dtype: str | None = None,
    gguf_file: str | None = None, item_of: Callable[[Any], Any] | None = None, progress: bool = False,
) -> Stats:
    """``leanformers predict ... --engine ray``: connect to Ray at ``address`` (``"auto"``,
    ``"ray://host:10001"``...) or start a local one, predict ``input_path`` with ``workers``
    workers into ``output_path`` (rows in input order, with the input's fields), with a progress bar
    on stderr when ``progress`` and Ray's own console logging quiet; the rows predicted and the time."""
    ray = require_ray()
    started = time.perf_counter()
    if item_of is None:
        from .tasks import input_kind

        if input_kind(_task_for(model, task)) != "text":  # file paths relative to the input, as the local engine
            item_of = functools.partial(_found_beside, os.path.dirname(os.path.abspath(input_path)))
    own = not ray.is_initialized()
    with _ray_console_in_file() as console:
        if own:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = context.print_on_execution_start = False  # the command has its own bar
        bar = _progress_bar(input_path, console) if progress else None
        try:
            predictions = predict_dataset(
                input_path, model, task, batch_size=batch_size, concurrency=workers, num_cpus=num_cpus,
                device=device, dtype=dtype, column=column, task_kwargs=task_kwargs, gguf_file=gguf_file,
                item_of=item_of, read_on_this_node=True,  # the input file need not exist on the other machines
            )
            rows = write_predictions(predictions, output_path, on_rows=bar.update if bar is not None else None)
        except Exception as exc:
            cause = _worker_error(exc)
            if cause is None:
                raise
            raise LeanformersError(f"a Ray worker failed: {cause}") from exc
        finally:
            if bar is not None:
                bar.close()
            if own:
                ray.shutdown()
    return Stats(items=rows, seconds=time.perf_counter() - started)


def _found_beside(folder: str, value: Any) -> Any:
    """A file path of an input row; a relative one that is not found from here, in ``folder``."""
    if isinstance(value, str) and value and not os.path.isabs(value) and not os.path.exists(value):
        beside = os.path.join(folder, value)
        return beside if os.path.exists(beside) else value
    return value


def _worker_error(exc: BaseException) -> str | None:
    """The message of the library error that failed a worker, out of the traceback text Ray raises."""
    found = re.findall(r"leanformers\.errors\.\w+: (.+)", str(exc))
    return found[-1].strip() if found else None


def _progress_bar(input_path: str, console: Any) -> Any:
    """A bar over the input's rows on ``console`` (tqdm), or None without tqdm."""
    from .files import count_rows

    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=count_rows(input_path), unit="item", dynamic_ncols=True, file=console)


__all__ = [
    "Predictor", "RayNotInstalledError", "predict_dataset", "read_dataset", "require_ray", "run_cli_prediction",
    "with_row_ids", "write_predictions",
]

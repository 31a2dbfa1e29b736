"""Batch prediction scaled out with Ray Data: many workers, one machine or a cluster.

    ds = predict_dataset("reviews.jsonl", "path/to/checkpoint", concurrency=4)
    write_predictions(ds, "predictions.parquet")

Ray Data schedules, moves data and re-runs a dead worker's batches; a worker (:class:`Predictor`) loads
the pipeline once and answers each batch with one ``pipe.run_batch``. Output rows carry the input's id
column (the row's position where it has none). ``ray`` is imported on first use only.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .batch import Stats, prediction_fields
from .errors import InputError
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
    """A worker: the pipeline, loaded once, maps pyarrow tables of inputs to tables of predictions."""

    def __init__(
        self, model: Any, task: str | None, device: Any, column: str | Sequence[str], id_column: str,
        task_kwargs: dict[str, Any], num_threads: int, pipeline_factory: Callable[..., Any] | None,
        dtype: Any = None,
    ) -> None:
        import torch

        torch.set_num_threads(max(1, num_threads))
        if pipeline_factory is None:
            from .pipelines import pipeline as pipeline_factory
        options = {"dtype": dtype} if dtype is not None else {}
        self.pipe = pipeline_factory(task, model=model, device=device, **options)
        self.column, self.id_column, self.task_kwargs = column, id_column, task_kwargs

    def __call__(self, table: Any) -> Any:
        import pyarrow as pa

        if table.num_rows == 0:
            return pa.table({self.id_column: table.column(self.id_column)})
        results = self.pipe.run_batch(_items(table, self.column), **self.task_kwargs)
        if len(results) != table.num_rows:
            raise RuntimeError(f"run_batch returned {len(results)} results for {table.num_rows} items")
        columns = {self.id_column: table.column(self.id_column)}
        for name, values in _flatten(results, getattr(self.pipe, "task", None)).items():
            columns[name if name != self.id_column else f"{name}_prediction"] = values
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
    pipeline_factory: Callable[..., Any] | None = None,
) -> Any:
    """A lazy Ray Dataset of predictions for ``data`` (a Ray Dataset or a path, see :func:`read_dataset`)
    by ``concurrency`` workers, each loading ``model`` once (with ``num_gpus`` = 1 for a CUDA ``device``).
    ``column``: the input column (a list gives dict items, e.g. ``["question", "context"]``);
    ``pipeline_factory(task, model=, device=[, dtype=])`` replaces :func:`leanformers.pipeline`."""
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
    if pipeline_factory is None:
        task = _task_for(model, task)
    columns = list(data.columns() or [])
    column = column if column is not None else default_column(task, columns, id_column)
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


def write_predictions(dataset: Any, path: str | os.PathLike, *, format: str | None = None, ordered: bool = True) -> int:
    """Write ``dataset`` to ONE file (``.parquet``, ``.jsonl`` or ``.csv``; a URI through its pyarrow
    filesystem) and return its row count; a local file is staged as ``path + ".partial"``."""
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
    rows, writer = 0, None
    try:
        for table in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
            rows += table.num_rows
            if table.num_rows == 0:
                continue
            if fmt == "jsonl":
                stream.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in table.to_pylist()).encode())
                continue
            writer = writer or (pq.ParquetWriter if fmt == "parquet" else pa_csv.CSVWriter)(stream, table.schema)
            writer.write_table(table.cast(writer.schema) if fmt == "parquet" else table)
        if writer is not None:
            writer.close()
    finally:
        stream.close()
    if not remote:
        os.replace(target, path)
    return rows


# -- the command line's one call ------------------------------------------------------------------


def run_cli_prediction(
    model: str, input_path: str, output_path: str, *, task: str | None = None, column: str | None = None,
    batch_size: int = 32, device: str | None = None, address: str | None = None, workers: int = 1,
    task_kwargs: dict[str, Any] | None = None, num_cpus: float = 1, dtype: str | None = None,
) -> Stats:
    """``leanformers predict ... --engine ray``: connect to Ray at ``address`` (``"auto"``,
    ``"ray://host:10001"``...) or start a local one, predict ``input_path`` with ``workers``
    workers into ``output_path`` (rows in input order); the rows predicted and the time taken."""
    ray = require_ray()
    started = time.perf_counter()
    own = not ray.is_initialized()
    if own:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        predictions = predict_dataset(
            input_path, model, task, batch_size=batch_size, concurrency=workers, num_cpus=num_cpus, device=device,
            dtype=dtype, column=column, task_kwargs=task_kwargs,
            read_on_this_node=True,  # the command's input file need not exist on the other machines
        )
        rows = write_predictions(predictions, output_path)
    finally:
        if own:
            ray.shutdown()
    return Stats(items=rows, seconds=time.perf_counter() - started)


__all__ = [
    "Predictor", "RayNotInstalledError", "predict_dataset", "read_dataset", "require_ray", "run_cli_prediction",
    "with_row_ids", "write_predictions",
]

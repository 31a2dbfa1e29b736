"""Streaming batch prediction: rows in from a file, predictions out to a file, in input order.

Of a pipeline it needs only ``task``, ``input_length(item)`` and ``run_batch(items)``. Rows are read a
*window* at a time, sorted by length inside it and cut into batches (little padding), and written in input
order before the next window, so memory stays flat. Output is staged as JSON lines in ``OUT.partial``, whole
rows per write, so ``resume`` cuts a torn tail and appends; at the end it is renamed (or converted) to ``OUT``.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError
from .files import file_format, parquet
from .tasks import input_kind

# Non-dict results (lists, arrays) go into one field named by the task.
_RESULT_FIELD = {
    "token-classification": "entities", "fill-mask": "predictions", "feature-extraction": "embedding",
    "sentence-embedding": "embedding",
    "image-feature-extraction": "embedding", "text-classification": "labels", "image-classification": "labels",
    "audio-classification": "labels", "zero-shot-image-classification": "labels",
}
# Tasks whose result is a record per returned sequence ({"generated_text": ...}, {"summary_text": ...}).
_SEQUENCE_TASKS = ("text-generation", "text2text-generation", "summarization", "translation")


def make_item(row: dict[str, Any], task: str, column: str, base_dir: str | None = None) -> Any:
    """The pipeline input for one row: a string, a ``{question, context}`` pair, or a file path."""
    if task == "question-answering":
        missing = [key for key in ("question", "context") if key not in row]
        if missing:
            fields = ", ".join(row) or "none"
            raise InputError(f"question-answering rows need 'question' and 'context' fields; a row has only: {fields}.")
        return {"question": str(row["question"]), "context": str(row["context"])}
    if column not in row:
        fields = ", ".join(map(str, row)) or "none"
        raise InputError(f"an input row has no field {column!r} (its fields: {fields}); pick one with --column.")
    if task == "text-generation" and isinstance(row[column], (list, tuple)):
        return list(row[column])  # a chat: a list of {"role", "content"} messages
    value = "" if row[column] is None else str(row[column])
    if input_kind(task) != "text" and base_dir and not os.path.exists(value):  # a path relative to the input file
        beside = os.path.join(base_dir, value)
        return beside if os.path.exists(beside) else value
    return value


# -- results --------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A result made JSON-friendly: tensors and arrays to lists, numpy scalars to Python numbers."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def prediction_fields(result: Any, task: str) -> dict[str, Any]:
    """A result as named fields: a dict's own keys, anything else under one field named by task; a text
    generation's records (one per returned sequence) as their fields, a list each where there are several."""
    result = plain(result)
    if isinstance(result, dict):
        return result
    if task in _SEQUENCE_TASKS and isinstance(result, list) and result and isinstance(result[0], dict):
        if len(result) == 1:
            return result[0]
        return {key: [record.get(key) for record in result] for key in result[0]}
    return {_RESULT_FIELD.get(task, "prediction"): result}


def output_row(row: dict[str, Any], result: Any, task: str) -> dict[str, Any]:
    """Input row fields, then the prediction fields (renamed ``prediction_KEY`` on a clash)."""
    out = dict(row)
    for key, value in prediction_fields(result, task).items():
        out[f"prediction_{key}" if key in row else key] = value
    return out


# -- the engine -----------------------------------------------------------------------------------


@dataclass
class Stats:
    """What a run did: items predicted, batches, and padding (in ``input_length`` units)."""

    items: int = 0
    skipped: int = 0
    batches: int = 0
    real: int = 0
    padded: int = 0  # sum over batches of batch_size * longest - real
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else float("nan")


def predict_windows(
    pipe: Any, rows: Iterable[Any], *, batch_size: int = 8, window_batches: int = 64,
    item_of: Callable[[Any], Any] = lambda row: row, stats: Stats | None = None, bucket: bool = True,
    on_batch: Callable[[int], None] | None = None, **task_kwargs: Any,
) -> Iterator[list[tuple[Any, Any]]]:
    """Yield ``[(row, result), ...]`` a window at a time, in input order.

    ``bucket=False`` batches in input order (the naive way), for comparison. ``on_batch(n)`` is told of
    each batch of ``n`` items done (a progress bar moves per batch, not per window).
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}.")
    stats = stats if stats is not None else Stats()
    window_size = batch_size * max(1, window_batches)
    iterator = iter(rows)
    while window := list(itertools.islice(iterator, window_size)):
        items = [item_of(row) for row in window]
        lengths = [int(pipe.input_length(item)) for item in items]
        order = sorted(range(len(items)), key=lambda i: -lengths[i]) if bucket else list(range(len(items)))
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        results: list[Any] = [None] * len(items)
        for batch in batches:
            outputs = pipe.run_batch([items[i] for i in batch], **task_kwargs)
            if len(outputs) != len(batch):
                raise RuntimeError(f"run_batch returned {len(outputs)} results for {len(batch)} inputs.")
            for i, output in zip(batch, outputs):
                results[i] = output
            longest = max(lengths[i] for i in batch)
            real = sum(lengths[i] for i in batch)
            stats.batches += 1
            stats.real += real
            stats.padded += longest * len(batch) - real
            if on_batch is not None:
                on_batch(len(batch))
        stats.items += len(window)
        yield list(zip(window, results))


# -- writing ------------------------------------------------------------------------------------


def _append(fd: int, rows: list[dict[str, Any]]) -> None:
    """``rows`` appended as JSON lines: all encoded first, then one ``os.write`` loop."""
    # default=str: values JSON has no type for (dates from parquet input) spelled as CSV spells them
    text = "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
    view = memoryview(text.encode("utf-8"))
    while view:
        view = view[os.write(fd, view) :]


def complete_rows(path: str) -> int:
    """Count the complete rows of a staged (JSON lines) output, cutting any torn tail: a row is
    complete when its line ends with a newline and parses."""
    good_end = rows = 0
    with open(path, "r+b") as handle:
        for line in handle:  # binary lines split on b"\n" only, not on \x1c or \u2028
            if not line.endswith(b"\n") or not _parses(line):
                break
            good_end, rows = good_end + len(line), rows + 1
        handle.truncate(good_end)
    return rows


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _staged_chunks(staged: str, size: int) -> Iterator[list[dict[str, Any]]]:
    with open(staged, encoding="utf-8") as handle:
        while chunk := [json.loads(line) for _, line in zip(range(size), handle)]:
            yield chunk


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value


def _csv_from_jsonl(staged: str, target: str, rows_per_window: int) -> None:
    """The staged rows as CSV; the header is every key of the first window, in order of appearance."""
    with open(target + ".tmp", "w", encoding="utf-8", newline="") as handle:
        writer = None
        for chunk in _staged_chunks(staged, rows_per_window):
            if writer is None:
                fields = list(dict.fromkeys(key for row in chunk for key in row))
                writer = csv.DictWriter(handle, fields, restval="", extrasaction="ignore")
                writer.writeheader()
            writer.writerows({k: _csv_cell(v) for k, v in row.items()} for row in chunk)
    os.replace(target + ".tmp", target)


def _parquet_from_jsonl(staged: str, target: str, rows_per_group: int) -> None:
    """The staged rows as parquet, a row group per ``rows_per_group`` rows; vectors (lists of numbers,
    such as embeddings) as list columns, other nested values as JSON text."""
    import pyarrow as pa

    def cell(value: Any) -> Any:
        if isinstance(value, list) and all(type(v) in (int, float) for v in value):
            return value
        return json.dumps(value) if isinstance(value, (dict, list)) else value

    pq, tmp, writer = parquet(target), target + ".tmp", None
    try:
        for chunk in _staged_chunks(staged, rows_per_group):
            table = pa.Table.from_pylist([{k: cell(v) for k, v in row.items()} for row in chunk])
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        pq.write_table(pa.table({}), tmp)
    os.replace(tmp, target)


# -- runs -----------------------------------------------------------------------------------------


class PartialOutputExists(InputError):
    """A ``.partial`` output from an earlier run is present and ``resume`` was not asked for."""


class OutputComplete(InputError):
    """``resume`` was asked for, and the output is already complete."""


def check_output(output: str, resume: bool) -> str:
    """The format of ``output``, once sure a run may write it (callers check before loading a model)."""
    fmt, partial = file_format(output, "output file"), output + ".partial"
    if os.path.exists(partial) and not resume:
        raise PartialOutputExists(f"{partial!r} holds the partial output of an earlier run; pass --resume to "
                                  "continue it, or delete it to start over.")
    if resume and not os.path.exists(partial) and os.path.exists(output):
        raise OutputComplete(f"{output!r} is already complete; nothing to resume.")
    return fmt


@dataclass
class Job:
    """One file-to-file (or file-to-stream) batch prediction."""

    pipe: Any
    rows: Callable[[], Iterable[dict[str, Any]]]  # a fresh iterator of input rows
    column: str
    output: str | None = None  # None: results go to ``emit`` only
    emit: Callable[[list[dict[str, Any]]], None] | None = None
    batch_size: int = 8
    window_batches: int = 64
    resume: bool = False
    total: int | None = None
    progress: bool = False
    base_dir: str | None = None
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    item_of: Callable[[Any], Any] | None = None  # turns each row's input into the pipeline's (e.g. a chat)


def _progress_bar(job: Job, skip: int) -> Any:
    if not job.progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    total = None if job.total is None else max(0, job.total - skip)
    return tqdm(total=total, unit="item", dynamic_ncols=True, file=sys.stderr)


def run(job: Job) -> Stats:
    """Run a job; on an interruption the partial output keeps every finished window."""
    task, fd, skip = job.pipe.task, None, 0
    if job.output is not None:  # every format is staged as JSON lines in OUT.partial
        fmt, partial = check_output(job.output, job.resume), job.output + ".partial"
        skip = complete_rows(partial) if os.path.exists(partial) else 0
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_APPEND | (0 if skip else os.O_TRUNC), 0o644)
    stats, rows = Stats(skipped=skip), itertools.islice(job.rows(), skip, None)
    bar, start = _progress_bar(job, skip), time.perf_counter()
    to_item = job.item_of or (lambda item: item)
    try:
        for window in predict_windows(
            job.pipe, rows, batch_size=job.batch_size, window_batches=job.window_batches,
            item_of=lambda row: to_item(make_item(row, task, job.column, job.base_dir)), stats=stats,
            on_batch=bar.update if bar is not None else None, **job.task_kwargs,
        ):
            out_rows = [output_row(row, result, task) for row, result in window]
            if fd is not None:  # a .txt output holds the predictions only, a JSON object per line
                _append(fd, [prediction_fields(result, task) for _, result in window] if fmt == "txt" else out_rows)
            if job.emit is not None:
                job.emit(out_rows)
    finally:
        stats.seconds = time.perf_counter() - start
        if bar is not None:
            bar.close()
        if fd is not None:
            os.close(fd)
    if fd is not None:
        convert = {"csv": _csv_from_jsonl, "parquet": _parquet_from_jsonl}.get(fmt)
        if convert is None:
            os.replace(partial, job.output)
        else:
            convert(partial, job.output, job.batch_size * job.window_batches)
            os.remove(partial)
    return stats


def summary(stats: Stats, output: str | None = None, where: str = "") -> str:
    """One line for stderr: items, time, rate, resumed rows, where it ran (e.g. Ray workers), the output."""
    rate = f"{stats.rate:.1f} items/s" if not math.isnan(stats.rate) else "-"
    line = f"predicted {stats.items} items in {stats.seconds:.2f} s ({rate}){where}"
    if stats.skipped:
        line += f", {stats.skipped} already done (resumed)"
    return line + (f" -> {output}" if output else "")

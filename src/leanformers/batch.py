"""Streaming batch prediction: rows in from a file, predictions out to a file, in input order.

The engine needs only three things of a pipeline: ``task`` (a name), ``input_length(item)`` (a
cost, e.g. a token count) and ``run_batch(items, **kwargs)`` (one padded forward over ``items``,
results in the order given).

How a run goes:

* Input is read lazily, one row at a time (``.txt``: a line per item, blank lines skipped;
  ``.jsonl``: an object, or a bare string, per line; ``.csv``: a header row then records;
  ``.parquet`` when pyarrow is installed). Memory stays flat in the number of rows.
* Rows are taken a *window* at a time (``window_batches`` x ``batch_size`` rows). Inside a window
  the items are sorted by ``input_length`` and cut into batches, so each batch holds items of
  similar length and padding is small; the window's results are put back in input order, written
  and flushed before the next window is read.
* Output is written to ``OUT.partial`` while the run goes, and renamed to ``OUT`` when every row is
  done, so a file named ``OUT`` is always complete. Each window is encoded first and appended with
  one ``os.write`` loop on an ``O_APPEND`` descriptor, so an interrupted run (Ctrl-C, SIGTERM,
  SIGKILL) leaves only whole rows behind in practice; ``--resume`` additionally cuts any torn
  tail (a power cut mid-write), counts the complete rows, skips that many input rows and appends.
  A ``.parquet`` output is staged as JSON lines (``OUT.partial``) and converted at the end, one
  row group per window.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError

FORMATS = ("txt", "jsonl", "csv", "parquet")
TEXT_TASKS = {
    "text-classification",
    "token-classification",
    "feature-extraction",
    "fill-mask",
    "question-answering",
}
IMAGE_TASKS = {"image-classification", "image-feature-extraction"}
AUDIO_TASKS = {"audio-classification", "automatic-speech-recognition"}

# Non-dict results (lists, arrays) go into one field named by the task.
_RESULT_FIELD = {
    "token-classification": "entities",
    "fill-mask": "predictions",
    "feature-extraction": "embedding",
    "image-feature-extraction": "embedding",
    "text-classification": "labels",
    "image-classification": "labels",
    "audio-classification": "labels",
}


def default_column(task: str) -> str:
    if task in IMAGE_TASKS:
        return "image"
    if task in AUDIO_TASKS:
        return "audio"
    return "text"


def file_format(path: str | os.PathLike, what: str = "file") -> str:
    """The format of ``path`` from its extension; :class:`InputError` for an unknown one."""
    suffix = Path(path).suffix.lower().lstrip(".")
    suffix = {"ndjson": "jsonl"}.get(suffix, suffix)
    if suffix not in FORMATS:
        raise InputError(
            f"cannot tell the format of the {what} {os.fspath(path)!r} from its extension; "
            f"use one of: {', '.join('.' + f for f in FORMATS)}."
        )
    if suffix == "parquet":
        _pyarrow(path)
    return suffix


def _pyarrow(path: Any) -> Any:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise InputError(f"{os.fspath(path)!r} is a .parquet file, which needs pyarrow: pip install pyarrow.") from exc
    return pq


# ---------------------------------------------------------------------------------------- reading


def read_rows(path: str | os.PathLike, column: str = "text") -> Iterator[dict[str, Any]]:
    """The rows of an input file, one dict at a time (``.txt`` lines become ``{column: line}``)."""
    fmt = file_format(path, "input file")
    name = os.fspath(path)
    if fmt == "txt":
        with open(name, encoding="utf-8") as handle:
            for line in handle:
                line = line.rstrip("\r\n")
                if line.strip():
                    yield {column: line}
    elif fmt == "jsonl":
        with open(name, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"line {number} of {name!r} is not valid JSON ({exc.msg}).") from None
                if isinstance(value, str):
                    value = {column: value}
                if not isinstance(value, dict):
                    raise InputError(
                        f"line {number} of {name!r} holds a JSON {type(value).__name__}; each line must be an "
                        f"object (or a string)."
                    )
                yield value
    elif fmt == "csv":
        with open(name, encoding="utf-8", newline="") as handle:
            try:
                yield from csv.DictReader(handle)
            except csv.Error as exc:
                raise InputError(f"{name!r} is not a valid CSV file: {exc}.") from None
    else:
        pq = _pyarrow(path)
        for batch in pq.ParquetFile(name).iter_batches(batch_size=1024):
            yield from batch.to_pylist()


def count_rows(path: str | os.PathLike) -> int | None:
    """The number of rows ``read_rows`` will give (a cheap streaming pass; for a progress total)."""
    fmt = file_format(path, "input file")
    if fmt == "parquet":
        return _pyarrow(path).ParquetFile(os.fspath(path)).metadata.num_rows
    if fmt == "csv":
        with open(path, encoding="utf-8", newline="") as handle:
            return max(0, sum(1 for _ in csv.reader(handle)) - 1)
    with open(path, encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


def make_item(row: dict[str, Any], task: str, column: str, base_dir: str | None = None) -> Any:
    """The pipeline input for one row: a string, a ``{question, context}`` pair, or a file path."""
    if task == "question-answering":
        missing = [key for key in ("question", "context") if key not in row]
        if missing:
            raise InputError(
                f"question-answering rows need 'question' and 'context' fields; a row has only: "
                f"{', '.join(row) or 'none'}."
            )
        return {"question": str(row["question"]), "context": str(row["context"])}
    if column not in row:
        raise InputError(
            f"an input row has no field {column!r} (its fields: {', '.join(map(str, row)) or 'none'}); "
            f"pick one with --column."
        )
    value = row[column]
    if task in IMAGE_TASKS or task in AUDIO_TASKS:
        value = str(value)
        if base_dir and not os.path.isabs(value) and not os.path.exists(value):
            candidate = os.path.join(base_dir, value)
            if os.path.exists(candidate):
                value = candidate
        return value
    return "" if value is None else str(value)


# ------------------------------------------------------------------------------------- results


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
    """A result as named fields: a dict's own keys, anything else under one field named by task."""
    result = plain(result)
    if isinstance(result, dict):
        return result
    return {_RESULT_FIELD.get(task, "prediction"): result}


def output_row(row: dict[str, Any], result: Any, task: str) -> dict[str, Any]:
    """Input row fields, then the prediction fields (renamed ``prediction_KEY`` on a clash)."""
    out = dict(row)
    for key, value in prediction_fields(result, task).items():
        out[f"prediction_{key}" if key in row else key] = value
    return out


# ---------------------------------------------------------------------------------------- engine


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


def plan_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices of one window grouped into batches of similar length (longest first)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def predict_windows(
    pipe: Any,
    rows: Iterable[Any],
    *,
    batch_size: int = 8,
    window_batches: int = 64,
    item_of: Callable[[Any], Any] = lambda row: row,
    stats: Stats | None = None,
    bucket: bool = True,
    **task_kwargs: Any,
) -> Iterator[list[tuple[Any, Any]]]:
    """Yield ``[(row, result), ...]`` a window at a time, in input order.

    ``bucket=False`` batches in input order (the naive way), for comparison.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}.")
    stats = stats if stats is not None else Stats()
    window_size = batch_size * max(1, window_batches)
    iterator = iter(rows)
    while True:
        window = []
        for row in iterator:
            window.append(row)
            if len(window) >= window_size:
                break
        if not window:
            return
        items = [item_of(row) for row in window]
        lengths = [int(pipe.input_length(item)) for item in items]
        if bucket:
            batches = plan_batches(lengths, batch_size)
        else:
            batches = [list(range(i, min(i + batch_size, len(items)))) for i in range(0, len(items), batch_size)]
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
        stats.items += len(window)
        yield list(zip(window, results))


# ---------------------------------------------------------------------------------------- writing


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value


class RowWriter:
    """Appends complete rows to a file, one flushed ``os.write`` per window."""

    def __init__(self, path: str, fmt: str, append: bool = False, fields: list[str] | None = None) -> None:
        self.path, self.fmt, self.fields = path, fmt, fields
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (0 if append else os.O_TRUNC)
        self.fd = os.open(path, flags, 0o644)

    def write(self, rows: list[dict[str, Any]], predictions: list[Any]) -> None:
        if not rows:
            return
        buffer = io.StringIO()
        if self.fmt == "csv":
            if self.fields is None:
                self.fields = list(rows[0])
                for row in rows[1:]:
                    self.fields += [key for key in row if key not in self.fields]
                csv.writer(buffer).writerow(self.fields)
            writer = csv.DictWriter(buffer, self.fields, restval="", extrasaction="ignore")
            for row in rows:
                writer.writerow({k: _csv_cell(v) for k, v in row.items()})
        elif self.fmt == "txt":
            for prediction in predictions:
                buffer.write(json.dumps(prediction, ensure_ascii=False) + "\n")
        else:
            for row in rows:
                buffer.write(json.dumps(row, ensure_ascii=False) + "\n")
        _write_all(self.fd, buffer.getvalue().encode("utf-8"))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def staging_format(fmt: str) -> str:
    """The format a ``.partial`` file is written in (parquet is staged as JSON lines)."""
    return "jsonl" if fmt == "parquet" else fmt


def complete_rows(path: str, fmt: str) -> tuple[int, list[str] | None]:
    """Count the complete rows of a (partial) output, cutting any torn tail; also the CSV header.

    A row is complete when its line ends with a newline and parses (JSON lines), or when the CSV
    record is closed with a newline and has as many fields as the header.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    good_end = 0
    rows = 0
    header: list[str] | None = None
    if fmt == "csv":
        # physical lines split on b"\n" only (str.splitlines also splits on \x1c, \u2028, ...)
        raw_lines = data.split(b"\n")
        raw_lines = [line + b"\n" for line in raw_lines[:-1]] + ([raw_lines[-1]] if raw_lines[-1] else [])
        text_lines = [line.decode("utf-8", errors="replace") for line in raw_lines]
        offsets, total = [], 0
        for line in raw_lines:  # byte offset of each physical line's end
            total += len(line)
            offsets.append(total)
        reader = csv.reader(iter(text_lines), strict=True)
        try:
            for record in reader:
                consumed = reader.line_num
                if not text_lines[consumed - 1].endswith("\n"):
                    break
                if header is None:
                    header = record
                elif len(record) != len(header):
                    break
                else:
                    rows += 1
                good_end = offsets[consumed - 1]
        except csv.Error:
            pass
    else:
        position = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                json.loads(line)
            except ValueError:
                break
            position += len(line)
            rows += 1
            good_end = position
    if good_end < len(data):
        with open(path, "r+b") as handle:
            handle.truncate(good_end)
    return rows, header


def _parquet_from_jsonl(staged: str, target: str, rows_per_group: int) -> None:
    pq = _pyarrow(target)
    import pyarrow as pa

    writer = None
    tmp = target + ".tmp"
    try:
        chunk: list[dict[str, Any]] = []

        def flush() -> None:
            nonlocal writer
            if not chunk:
                return
            table = pa.Table.from_pylist(
                [{k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()} for row in chunk]
            )
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table.cast(writer.schema))
            chunk.clear()

        with open(staged, encoding="utf-8") as handle:
            for line in handle:
                chunk.append(json.loads(line))
                if len(chunk) >= rows_per_group:
                    flush()
        flush()
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        import pyarrow as pa

        pq.write_table(pa.table({}), tmp)
    os.replace(tmp, target)


# ----------------------------------------------------------------------------------------- runs


class PartialOutputExists(InputError):
    """A ``.partial`` output from an earlier run is present and ``resume`` was not asked for."""


@dataclass
class Job:
    """One file-to-file (or file-to-stream) batch prediction."""

    pipe: Any
    rows: Callable[[], Iterable[dict[str, Any]]]  # a fresh iterator of input rows
    column: str
    output: str | None = None  # None: results go to ``emit``
    emit: Callable[[list[dict[str, Any]], list[Any]], None] | None = None
    batch_size: int = 8
    window_batches: int = 64
    resume: bool = False
    total: int | None = None
    progress: bool = False
    base_dir: str | None = None
    task_kwargs: dict[str, Any] = field(default_factory=dict)


def run(job: Job) -> Stats:
    """Run a job; on an interruption the partial output keeps every finished window."""
    task = job.pipe.task
    stats = Stats()
    writer = None
    partial = None
    skip = 0
    if job.output is not None:
        fmt = file_format(job.output, "output file")
        stage_fmt = staging_format(fmt)
        partial = job.output + ".partial"
        header = None
        if os.path.exists(partial):
            if not job.resume:
                raise PartialOutputExists(
                    f"{partial!r} holds the partial output of an earlier run; pass --resume to continue it, "
                    f"or delete it to start over."
                )
            skip, header = complete_rows(partial, stage_fmt)
        elif job.resume and os.path.exists(job.output):
            raise InputError(f"{job.output!r} is already complete (no {os.path.basename(partial)!r} to resume).")
        writer = RowWriter(partial, stage_fmt, append=skip > 0 or header is not None, fields=header)
    stats.skipped = skip
    rows = iter(job.rows())
    for _ in range(skip):
        if next(rows, None) is None:
            break

    bar = None
    if job.progress:
        try:
            from tqdm.auto import tqdm

            total = None if job.total is None else max(0, job.total - skip)
            bar = tqdm(total=total, unit="item", dynamic_ncols=True, file=sys.stderr)
        except ImportError:
            bar = None
    start = time.perf_counter()
    try:
        windows = predict_windows(
            job.pipe,
            rows,
            batch_size=job.batch_size,
            window_batches=job.window_batches,
            item_of=lambda row: make_item(row, task, job.column, job.base_dir),
            stats=stats,
            **job.task_kwargs,
        )
        for window in windows:
            out_rows = [output_row(row, result, task) for row, result in window]
            predictions = [prediction_fields(result, task) for _, result in window]
            if writer is not None:
                writer.write(out_rows, predictions)
            if job.emit is not None:
                job.emit(out_rows, predictions)
            if bar is not None:
                bar.update(len(window))
    finally:
        stats.seconds = time.perf_counter() - start
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
    if job.output is not None and partial is not None:
        fmt = file_format(job.output, "output file")
        if fmt == "parquet":
            _parquet_from_jsonl(partial, job.output, job.batch_size * job.window_batches)
            os.remove(partial)
        else:
            os.replace(partial, job.output)
    return stats


def summary(stats: Stats, output: str | None = None) -> str:
    rate = f"{stats.rate:.1f} items/s" if not math.isnan(stats.rate) else "-"
    line = f"predicted {stats.items} items in {stats.seconds:.2f} s ({rate})"
    if stats.skipped:
        line += f", {stats.skipped} already done (resumed)"
    if output:
        line += f" -> {output}"
    return line

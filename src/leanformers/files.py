"""Input files: their format, their rows, and which column a task reads.

Every engine reads files here, so ``.txt`` (a line is ``{column: line}``), ``.jsonl``, ``.csv``, ``.parquet``
and directories of one of them mean the same rows everywhere. Folders of images (for search) are
listed here too, with the cache of their embeddings.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import InputError

FORMATS = ("txt", "jsonl", "csv", "parquet")
_SUFFIX_FORMATS = {"ndjson": "jsonl", "json": "jsonl", **{fmt: fmt for fmt in FORMATS}}


def _suffix_format(name: str) -> str | None:
    return _SUFFIX_FORMATS.get(Path(name.rstrip("/")).suffix.lower().lstrip("."))


def file_format(
    path: str | os.PathLike, what: str = "file", given: str | None = None, formats: Sequence[str] = FORMATS
) -> str:
    """The format of ``path``: ``given``, else its extension (a directory's: its files' one format);
    :class:`InputError` for one not in ``formats``, or parquet without pyarrow."""
    name = os.fspath(path)
    fmt = _SUFFIX_FORMATS.get(given, given) if given else _suffix_format(name)
    if fmt is None and "://" not in name and os.path.isdir(name):
        found = {_suffix_format(entry) for entry in os.listdir(name)} - {None}
        fmt = found.pop() if len(found) == 1 else None
    if fmt not in formats:
        raise InputError(
            f"cannot tell the format of the {what} {name!r} from its extension; use one of: "
            f"{', '.join('.' + f for f in formats)} (or pass the format)."
        )
    if fmt == "parquet":
        parquet(name)
    return fmt


def parquet(path: Any) -> Any:
    """``pyarrow.parquet``, or :class:`InputError` with the install command."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise InputError(f"{os.fspath(path)!r} is a .parquet file, which needs pyarrow: pip install pyarrow.") from exc
    return pq


def _files(path: str, fmt: str) -> list[str]:
    if not os.path.isdir(path):
        return [path]
    return sorted(os.path.join(path, name) for name in os.listdir(path) if _suffix_format(name) == fmt)


def read_rows(path: str | os.PathLike, column: str = "text") -> Iterator[dict[str, Any]]:
    """The rows of an input file (or of a directory's files, in name order), one dict at a time, lazily."""
    fmt = file_format(path, "input file")
    for name in _files(os.fspath(path), fmt):
        if fmt == "parquet":
            for batch in parquet(name).ParquetFile(name).iter_batches(batch_size=1024):
                yield from batch.to_pylist()
        elif fmt == "csv":
            with open(name, encoding="utf-8", newline="") as handle:
                try:
                    yield from csv.DictReader(handle)
                except csv.Error as exc:
                    raise InputError(f"{name!r} is not a valid CSV file: {exc}.") from None
        else:
            with open(name, encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    if line.strip():
                        yield {column: line.rstrip("\r\n")} if fmt == "txt" else _json_row(line, number, name, column)


def _json_row(line: str, number: int, name: str, column: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"line {number} of {name!r} is not valid JSON ({exc.msg}).") from None
    if isinstance(value, str):
        return {column: value}
    if not isinstance(value, dict):
        kind = type(value).__name__
        raise InputError(f"line {number} of {name!r} holds a JSON {kind}; each line must be an object (or a string).")
    return value


def count_rows(path: str | os.PathLike) -> int:
    """How many rows :func:`read_rows` gives (parquet's from its metadata), for a progress total."""
    fmt = file_format(path, "input file")
    if fmt == "parquet":
        return sum(parquet(name).ParquetFile(name).metadata.num_rows for name in _files(os.fspath(path), fmt))
    return sum(1 for _ in read_rows(path))


def default_column(
    task: str | None, columns: Sequence[str] | None = None, id_column: str | None = None
) -> str | list[str]:
    """The input column ``task`` reads (``text``, ``image`` or ``audio``); among ``columns``, question-
    answering reads ``["question", "context"]``, and else the one column besides ``id_column``."""
    from .tasks import input_kind

    wanted = input_kind(task)
    if columns is None:
        return wanted
    if task == "question-answering" and {"question", "context"} <= set(columns):
        return ["question", "context"]
    if wanted in columns:
        return wanted
    others = [c for c in columns if c != id_column]
    if len(others) == 1:
        return others[0]
    raise InputError(f"cannot tell which input column to predict on; pass column= (one of {others}).")


# -- folders of images, and the embeddings computed from them ---------------------------------------


def folder_files(folder: str | os.PathLike) -> list[tuple[str, int, int]]:
    """The files under ``folder`` (subfolders included, hidden names skipped) as ``(path relative to
    folder, size, mtime_ns)``, in name order; :class:`InputError` for a missing or empty folder."""
    root = os.fspath(folder)
    if not os.path.isdir(root):
        raise InputError(f"{root!r} is not a folder; pass the folder that holds the images.")
    found = []
    for directory, subfolders, names in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in names:
            path = os.path.join(directory, name)
            if name.startswith(".") or not os.path.isfile(path):
                continue
            stat = os.stat(path)
            found.append((os.path.relpath(path, root), stat.st_size, stat.st_mtime_ns))
    if not found:
        raise InputError(f"the folder {root!r} holds no files; put the images to search in it.")
    return sorted(found)


def default_cache_path(folder: str | os.PathLike) -> str:
    """Where an image folder's embeddings are kept by default: a file beside the folder, named after it."""
    root = os.path.abspath(os.fspath(folder))
    return os.path.join(os.path.dirname(root), f".{os.path.basename(root)}.leanformers-index.pt")


_CACHE_VERSION = 1


def read_embedding_cache(path: str, model_key: str) -> dict[tuple[str, int, int], Any]:
    """The entries of an embedding cache written for ``model_key``: ``(path, size, mtime_ns)`` -> a
    vector, or the reason the file was skipped (a string). Empty when there is no cache, it belongs to
    another model, or it cannot be read (it is then rebuilt, never trusted)."""
    import torch

    if not os.path.isfile(path):
        return {}
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        if data.get("version") != _CACHE_VERSION or data.get("model") != model_key:
            return {}
        entries, vectors = {}, data["embeddings"]
        for (name, size, mtime), row, reason in zip(data["files"], data["rows"], data["skipped"]):
            entries[(name, int(size), int(mtime))] = vectors[row] if row >= 0 else reason
        return entries
    except Exception:  # noqa: BLE001 - a damaged or foreign file: start over rather than fail the search
        return {}


def write_embedding_cache(path: str, model_key: str, entries: dict[tuple[str, int, int], Any]) -> None:
    """Write ``entries`` (as :func:`read_embedding_cache` returns them) to ``path`` atomically: a
    temporary file beside it, then a rename, so an interrupted run leaves the old cache whole."""
    import torch

    files, rows, skipped, vectors = [], [], [], []
    for key, value in entries.items():
        files.append(list(key))
        if isinstance(value, str):
            rows.append(-1)
            skipped.append(value)
        else:
            rows.append(len(vectors))
            skipped.append("")
            vectors.append(value)
    data = {
        "version": _CACHE_VERSION, "model": model_key, "files": files, "rows": rows, "skipped": skipped,
        "embeddings": torch.stack(vectors) if vectors else torch.empty(0),
    }
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        torch.save(data, temporary)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise InputError(f"cannot write the embedding cache {path!r} ({exc.strerror or exc}); pass --cache FILE "
                         "in a folder you can write to.") from None

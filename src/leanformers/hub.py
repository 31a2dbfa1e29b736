"""Turn ``(name_or_path, filename)`` into a file on disk.

A local folder is used as it is. Anything else is a hub repository id: the standard
huggingface_hub cache is read directly (so offline loads never import or ask the hub client), and
only when the file is not cached and the network is allowed is ``huggingface_hub`` asked to
download it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CheckpointNotFoundError, ConfigError, InputError

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}(/[A-Za-z0-9][\w.\-]{0,95})?$")
_COMMIT_HASH = re.compile(r"^[0-9a-f]{40}$")
_TRUE = {"1", "on", "yes", "true"}


# from_pretrained options that say where a checkpoint's files come from (``Source.of`` takes them).
SOURCE_OPTIONS = ("revision", "subfolder", "cache_dir", "local_files_only", "token")
# from_pretrained options that only mean something to the reference's hub client or class dispatch;
# the processors accept and drop them, so calls written for the reference keep working.
IGNORED_LOAD_OPTIONS = (
    "use_fast",
    "force_download",
    "resume_download",
    "proxies",
    "trust_remote_code",
    "code_revision",
    "_from_auto",
    "_from_pipeline",
    "_commit_hash",
)


def split_source_options(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Take the checkpoint-resolution options (``SOURCE_OPTIONS``) out of ``kwargs``: (them, the rest)."""
    options = {key: kwargs.pop(key) for key in SOURCE_OPTIONS if key in kwargs}
    return options, kwargs


@dataclass(frozen=True)
class Source:
    """Where a checkpoint comes from, with the options used to resolve each of its files."""

    name_or_path: str
    revision: str | None = None
    subfolder: str = ""
    cache_dir: str | None = None
    local_files_only: bool = False
    token: str | bool | None = None

    @classmethod
    def of(cls, name_or_path: str | os.PathLike, **options) -> "Source":
        if isinstance(name_or_path, Source):
            return name_or_path
        if not isinstance(name_or_path, (str, os.PathLike)):
            raise InputError(
                f"from_pretrained expects a checkpoint name or folder path (str or PathLike), "
                f"got {type(name_or_path).__name__}."
            )
        name = os.fspath(name_or_path)
        if not name.strip():
            raise InputError("from_pretrained was given an empty checkpoint name.")
        subfolder = _safe_relative(options.get("subfolder") or "", "subfolder")
        cache_dir = options.get("cache_dir")
        revision = options.get("revision")
        if revision is not None:
            _safe_relative(revision, "revision")  # a branch, tag or commit: never a path out of the cache
        return cls(
            name_or_path=name,
            revision=revision,
            subfolder=subfolder,
            cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
            local_files_only=bool(options.get("local_files_only", False)),
            token=options.get("token"),
        )

    @property
    def is_local(self) -> bool:
        return os.path.isdir(self.name_or_path)

    @property
    def folder(self) -> str:
        """The local folder holding the files (only for a local checkpoint)."""
        return os.path.join(self.name_or_path, self.subfolder) if self.subfolder else self.name_or_path

    def resolve(self, filename: str, required: bool = True) -> str | None:
        """Path of ``filename`` in this checkpoint; ``None`` if absent and not ``required``."""
        return resolve_file(self, filename, required=required)

    def describe(self) -> str:
        where = self.name_or_path + (f" (subfolder {self.subfolder!r})" if self.subfolder else "")
        if self.revision:
            where += f" at revision {self.revision!r}"
        return where


def _safe_relative(path: Any, what: str) -> str:
    """A path inside a checkpoint: relative, with no '..' step, so it cannot point outside it."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"{what} must be a string path inside the checkpoint, got {type(path).__name__}.")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise InputError(f"{what} must be a str path, got bytes {text!r}.")
    parts = text.replace("\\", "/").split("/")
    if text.startswith(("/", "\\")) or os.path.isabs(text) or ".." in parts or "\0" in text:
        raise InputError(
            f"{what}={text!r} points outside the checkpoint; give a path inside it, such as 'text_encoder'."
        )
    return "/".join(part for part in parts if part not in ("", "."))


def hub_cache_dir(cache_dir: str | None = None) -> str:
    """The huggingface_hub cache folder, read from the environment at call time."""
    if cache_dir:
        return os.path.expanduser(cache_dir)
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return os.path.expanduser(os.environ[var])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "huggingface"
    )
    return os.path.join(os.path.expanduser(home), "hub")


def is_offline() -> bool:
    return any(os.environ.get(v, "").lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def resolve_file(source: Source | str, filename: str, required: bool = True, **options) -> str | None:
    """Resolve one file of a checkpoint to a local path.

    Raises :class:`CheckpointNotFoundError` saying what was looked for and where when the
    checkpoint, or a ``required`` file, cannot be found.
    """
    source = Source.of(source, **options)
    filename = _safe_relative(filename, "filename")
    relative = f"{source.subfolder}/{filename}" if source.subfolder else filename
    if source.is_local:
        path = os.path.join(source.folder, filename)
        if os.path.isfile(path):
            return path
        if not required:
            return None
        raise CheckpointNotFoundError(
            f"No file named {filename!r} in the checkpoint folder {source.folder!r}. "
            f"It holds: {_listing(source.folder)}."
        )
    name = source.name_or_path
    if not _REPO_ID.match(name) or "--" in name or ".." in name:
        raise CheckpointNotFoundError(
            f"{source.name_or_path!r} is neither an existing folder nor a valid hub repository id "
            f"('org/name'). Check the path, or pass the id of a model on the hub."
        )

    cache = hub_cache_dir(source.cache_dir)
    cached = _from_cache(cache, source.name_or_path, relative, source.revision)
    if isinstance(cached, str):
        return cached
    if cached is False:
        if not required:
            return None
        raise CheckpointNotFoundError(
            f"{source.describe()} has no file {filename!r} (the hub cache {cache!r} records it as absent)."
        )
    offline = source.local_files_only or is_offline()
    if offline:
        if not required and _repo_is_cached(cache, source.name_or_path, source.revision):
            return None
        why = "local_files_only=True" if source.local_files_only else "HF_HUB_OFFLINE is set"
        raise CheckpointNotFoundError(
            f"{relative!r} of {source.describe()} is not in the hub cache {cache!r}, and the hub "
            f"cannot be asked because {why}. Download it once with network access, or pass a local folder."
        )
    return _download(source, filename, cache, required)


def _repo_folder(cache: str, repo_id: str) -> str:
    return os.path.join(cache, "models--" + repo_id.replace("/", "--"))


def _snapshot(cache: str, repo_id: str, revision: str | None) -> str | None:
    repo = _repo_folder(cache, repo_id)
    revision = revision or "main"
    commit = revision
    ref = os.path.join(repo, "refs", revision)
    if os.path.isfile(ref):
        with open(ref, encoding="utf-8") as handle:
            commit = handle.read().strip()
        if not _COMMIT_HASH.match(commit):
            return None  # not a commit hash: a damaged cache, never a path to follow
    elif not _COMMIT_HASH.match(revision):
        return None
    return commit


def _repo_is_cached(cache: str, repo_id: str, revision: str | None) -> bool:
    commit = _snapshot(cache, repo_id, revision)
    return commit is not None and os.path.isdir(os.path.join(_repo_folder(cache, repo_id), "snapshots", commit))


def _from_cache(cache: str, repo_id: str, relative: str, revision: str | None) -> str | bool | None:
    """The cached path; ``False`` when the cache records the file as absent; ``None`` when unknown."""
    commit = _snapshot(cache, repo_id, revision)
    if commit is None:
        return None
    repo = _repo_folder(cache, repo_id)
    path = os.path.join(repo, "snapshots", commit, *relative.split("/"))
    if os.path.isfile(path):
        return path
    if os.path.isfile(os.path.join(repo, ".no_exist", commit, *relative.split("/"))):
        return False
    return None


def _download(source: Source, filename: str, cache: str, required: bool) -> str | None:
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as exc:  # pragma: no cover - huggingface_hub is a declared dependency
        raise CheckpointNotFoundError(
            f"{source.name_or_path!r} is not a local folder and huggingface_hub is not installed to fetch it."
        ) from exc
    try:
        return hf_hub_download(
            source.name_or_path,
            filename,
            subfolder=source.subfolder or None,
            revision=source.revision,
            cache_dir=cache,
            token=source.token,
        )
    except EntryNotFoundError as exc:
        if not required:
            return None
        raise CheckpointNotFoundError(f"{source.describe()} on the hub has no file {filename!r}.") from exc
    except GatedRepoError as exc:
        raise CheckpointNotFoundError(
            f"{source.describe()} is gated on the hub: accept its terms and pass token=... ({exc})."
        ) from exc
    except RepositoryNotFoundError as exc:
        raise CheckpointNotFoundError(
            f"No repository {source.name_or_path!r} on the hub (or it is private: pass token=...)."
        ) from exc
    except RevisionNotFoundError as exc:
        raise CheckpointNotFoundError(f"{source.name_or_path!r} has no revision {source.revision!r}.") from exc
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise CheckpointNotFoundError(
            f"Could not fetch {filename!r} of {source.describe()} from the hub, and it is not in the cache "
            f"{cache!r}: {exc}. Check the network, or use a local folder / HF_HUB_OFFLINE=1 with a filled cache."
        ) from exc


def _listing(folder: str, limit: int = 12) -> str:
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return "(unreadable)"
    if not names:
        return "nothing"
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} files)" if len(names) > limit else "")


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so no reader ever
    sees a half-written file."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def temporary_path(path: str | os.PathLike) -> Path:
    """A sibling temporary name for ``path``, unique to this call (two threads or processes saving
    the same file never share one); the caller writes it, then ``os.replace``s it. Temporary files
    for ``path`` left by a process that no longer runs (a killed save) are removed first."""
    path = Path(path)
    _remove_stale_temporaries(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")


def _remove_stale_temporaries(path: Path) -> None:
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    stem = f".{path.name}."
    for name in names:
        pid = name[len(stem):].split(".")[0] if name.startswith(stem) and name.endswith(".tmp") else ""
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(path.parent / name)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists but belongs to someone else
    return True


def read_json(path: str, what: str = "", error: type[Exception] = ConfigError, object_only: bool = True) -> Any:
    """Parse a checkpoint's JSON file; every way it can be unreadable becomes one ``error`` that
    names the file (and ``what`` it is), and by default it must hold a JSON object."""
    where = f"{what} at {path!r}" if what else str(path)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except RecursionError as exc:
        raise error(f"{where} is nested too deeply to be a real file; it is corrupt or hostile.") from exc
    except json.JSONDecodeError as exc:
        raise error(
            f"{where} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}). "
            "Fix or re-download the file."
        ) from exc
    except UnicodeDecodeError as exc:
        raise error(f"{where} is not UTF-8 text; is it really a JSON file?") from exc
    except OSError as exc:
        raise CheckpointNotFoundError(f"Cannot read {where}: {exc}") from exc
    if object_only and not isinstance(data, dict):
        raise error(f"{where} must hold a JSON object, but holds a {type(data).__name__}.")
    return data

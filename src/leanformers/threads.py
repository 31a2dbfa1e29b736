"""How many CPU threads leanformers' own work may use, and torch's share of them.

One budget, ``num_threads()``: ``set_num_threads``, else ``LEANFORMERS_NUM_THREADS``, else the CPUs
this process may run on (affinity mask, capped by a cgroup CPU quota; ``os.cpu_count()`` counts the
host's cores and would oversubscribe a container). It serves the parallel steps the library runs
itself (image decoding and resizing), sizes the Rust tokenizer's pool when chosen explicitly, and
caps torch's intra-op threads where a pipeline runs a model; nothing changes at import or load.
Steps never overlap (tokenise, then run the model), so each may use the whole budget.
"""

from __future__ import annotations

import math
import os
import sys

from .errors import ConfigError, InputError

ENV_VAR = "LEANFORMERS_NUM_THREADS"
_TORCH_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")

_chosen: int | None = None  # set_num_threads()
_torch_default: int | None = None  # torch's own default, read once before leanformers changes it


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def _cgroup_cpu_limit(root: str = "/sys/fs/cgroup") -> float | None:
    """CPUs allowed by a cgroup quota (v2 ``cpu.max``, else v1 ``cfs_quota_us``), or None."""
    text = _read(os.path.join(root, "cpu.max"))
    if text is not None:  # v2: "QUOTA PERIOD", or "max PERIOD" for no limit
        fields = text.split()
        if len(fields) != 2 or fields[0] == "max":
            return None
        quota_text, period_text = fields
    else:
        quota_text, period_text = (
            _read(os.path.join(root, "cpu", name)) for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us")
        )
    try:
        quota, period = int(quota_text or ""), int(period_text or "")
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def available_cpus() -> int:
    """CPUs this process can run on: the affinity mask, capped by a cgroup CPU quota (at least 1)."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        count = min(count, max(1, math.ceil(limit)))
    return max(1, count)


def _parse(value: object, where: str, error: type[Exception]) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if isinstance(value, bool) or number < 1:
        raise error(f"{where} must be a positive whole number of threads, got {value!r}.")
    return number


def _env_budget() -> int | None:
    """``LEANFORMERS_NUM_THREADS``, or None when unset or empty (a ConfigError when malformed)."""
    env = os.environ.get(ENV_VAR)
    return None if env in (None, "") else _parse(env, f"The environment variable {ENV_VAR}", ConfigError)


def num_threads() -> int:
    """The thread budget: ``set_num_threads``, else ``LEANFORMERS_NUM_THREADS``, else ``available_cpus()``."""
    if _chosen is not None:
        return _chosen
    env = _env_budget()
    return env if env is not None else available_cpus()


_RAYON = "RAYON_NUM_THREADS"  # the Rust tokenizer's pool size, read once, when the pool starts
_rayon_set_by_us = False


def set_num_threads(count: int | None) -> None:
    """Set the thread budget for this process: torch's intra-op threads (if torch is imported) and
    the Rust tokenizer's pool (if it has not started, and ``RAYON_NUM_THREADS`` is not the user's).
    ``None`` goes back to the default budget, and torch back to the count it had before
    leanformers first changed it (lowered to the budget if larger)."""
    global _chosen, _rayon_set_by_us
    chosen = None if count is None else _parse(count, "set_num_threads(count)", InputError)
    if chosen is not None and (_RAYON not in os.environ or _rayon_set_by_us):
        os.environ[_RAYON], _rayon_set_by_us = str(chosen), True
    elif chosen is None and _rayon_set_by_us:
        os.environ.pop(_RAYON, None)
        _rayon_set_by_us = False
    if "torch" not in sys.modules:
        _chosen = chosen
        return
    import torch

    _remember_torch_default(torch)
    _chosen = chosen
    if chosen is not None:
        torch.set_num_threads(chosen)
    elif _torch_default is not None:
        torch.set_num_threads(min(_torch_default, num_threads()))


def size_tokenizer_pool() -> None:
    """Called before the Rust tokenizer's batch work (its pool starts on the first batch and keeps
    its size): an explicit budget (``set_num_threads`` or ``LEANFORMERS_NUM_THREADS``) sizes the
    pool, unless ``RAYON_NUM_THREADS`` is the user's. Without one the pool sizes itself."""
    global _rayon_set_by_us
    if _RAYON in os.environ and not _rayon_set_by_us:
        return
    try:
        count = _chosen if _chosen is not None else _env_budget()
    except ConfigError:
        return  # reported where the budget is used
    if count is not None:
        os.environ[_RAYON], _rayon_set_by_us = str(count), True


def _remember_torch_default(torch) -> None:
    global _torch_default
    if _torch_default is None:
        _torch_default = torch.get_num_threads()


def fit_torch_threads() -> int:
    """Make torch's intra-op thread count fit the budget and return it; called where a pipeline or
    the command line runs a model, never when one is loaded.

    Torch's default (one thread per core it sees) is lowered to the budget when it is larger, so a
    container or a CPU set with fewer CPUs than the host is not oversubscribed; a count the user
    chose (``OMP_NUM_THREADS``/``MKL_NUM_THREADS``, or ``torch.set_num_threads`` to anything but
    torch's default) is left alone, unless ``set_num_threads`` / ``LEANFORMERS_NUM_THREADS`` chose
    the budget (explicit choices win).
    """
    import torch

    _remember_torch_default(torch)
    current = torch.get_num_threads()
    explicit = _chosen is not None or os.environ.get(ENV_VAR) not in (None, "")
    budget = num_threads()
    if explicit:
        target = budget
    elif any(os.environ.get(name) for name in _TORCH_ENV_VARS) or current != _torch_default:
        return current
    else:
        target = min(current, budget)
    if target != current:
        torch.set_num_threads(target)
    return target


__all__ = ["ENV_VAR", "available_cpus", "fit_torch_threads", "num_threads", "set_num_threads", "size_tokenizer_pool"]

"""Read a checkpoint's weights without running anything from it.

``model.safetensors`` is memory-mapped and parsed here (header checked against the file size, so a
truncated download is reported rather than read past its end); shards are followed through their
index; ``pytorch_model.bin`` is only ever opened with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import itertools
import json
import mmap
import os
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import CheckpointNotFoundError, WeightsError
from ..hub import Source

SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
BIN_WEIGHTS = "pytorch_model.bin"
BIN_INDEX = "pytorch_model.bin.index.json"

_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": getattr(torch, "float8_e4m3fn", None),
    "F8_E5M2": getattr(torch, "float8_e5m2", None),
}
_MAX_HEADER = 100 * 1024 * 1024

class SafetensorsFile(Mapping):
    """A read-only mapping of tensor names to tensors backed by a private memory map.

    Tensors share the map's pages (no copy) and stay valid after this object is dropped; writing
    to one copies only the touched page, never the file.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            size = os.path.getsize(path)
            with open(path, "rb") as handle:
                head = handle.read(8)
                if len(head) < 8:
                    raise WeightsError(f"{path} is too short ({size} bytes) to be a safetensors file; re-download it.")
                (header_len,) = struct.unpack("<Q", head)
                if header_len > min(_MAX_HEADER, size - 8):
                    raise WeightsError(
                        f"{path} has a corrupt or truncated header (it claims {header_len} bytes, the file has "
                        f"{size}); re-download the file."
                    )
                header = json.loads(handle.read(header_len))
                self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY) if size > 0 else None
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise WeightsError(f"{path} has a header that is not valid JSON; the file is corrupt: {exc}") from exc
        except OSError as exc:
            raise WeightsError(f"Cannot read weights file {path}: {exc}") from exc
        if not isinstance(header, dict):
            raise WeightsError(f"{path} has a malformed header (not a JSON object).")
        self.metadata = header.pop("__metadata__", None) or {}
        data_start = 8 + header_len
        self._entries: dict[str, tuple[torch.dtype, list[int], int, int]] = {}
        for name, info in header.items():
            try:
                dtype = _SAFETENSORS_DTYPES[info["dtype"]]
                shape = list(info["shape"])
                begin, end = info["data_offsets"]
                # Only non-negative JSON integers: int() would accept "3", 2.5 or true, and two
                # negative dims would multiply to a plausible byte count.
                if not all(type(x) is int and x >= 0 for x in (*shape, begin, end)):
                    raise ValueError("dims and offsets must be non-negative integers")
                # torch sizes are signed 64-bit: a dim past that (beside a 0, so the tensor is
                # still empty) would fail inside torch instead of here.
                if any(d >= 2**63 for d in shape):
                    raise ValueError("a dim does not fit in 64 bits")
            except (KeyError, TypeError, ValueError) as exc:
                raise WeightsError(
                    f"{path}: tensor {name!r} has a malformed header entry {str(info)[:200]} ({exc}); "
                    f"the file is corrupt, re-download it."
                ) from exc
            if dtype is None:
                raise WeightsError(f"{path}: tensor {name!r} has dtype {info['dtype']}, which this torch cannot hold.")
            numel = 1
            for d in shape:
                numel *= d
            if end - begin != numel * dtype.itemsize or begin < 0:
                raise WeightsError(
                    f"{path}: tensor {name!r} of shape {shape} and dtype {info['dtype']} has {end - begin} bytes "
                    f"of data; the file is corrupt."
                )
            if data_start + end > size:
                raise WeightsError(
                    f"{path} is truncated: tensor {name!r} ends at byte {data_start + end} but the file has "
                    f"{size} bytes. Re-download the weights."
                )
            self._entries[name] = (dtype, shape, data_start + begin, end - begin)

    def __getitem__(self, name: str) -> torch.Tensor:
        dtype, shape, offset, nbytes = self._entries[name]
        if nbytes == 0:
            return torch.empty(shape, dtype=dtype)
        flat = torch.frombuffer(self._map, dtype=dtype, count=nbytes // dtype.itemsize, offset=offset)
        return flat.view(shape)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def dtype_of(self, name: str) -> torch.dtype:
        return self._entries[name][0]

    def shape_of(self, name: str) -> tuple[int, ...]:
        return tuple(self._entries[name][1])


class TensorDict(Mapping):
    """Tensors from one or more files, looked up by name; a shard is opened on first use."""

    def __init__(self, files: dict[str, str], opener) -> None:
        self._where = files  # tensor name -> file path
        self._opener = opener
        self._open: dict[str, Mapping] = {}

    def _file(self, path: str) -> Mapping:
        if path not in self._open:
            self._open[path] = self._opener(path)
        return self._open[path]

    def __getitem__(self, name: str) -> torch.Tensor:
        path = self._where[name]
        try:
            return self._file(path)[name]
        except KeyError:
            raise WeightsError(f"The shard index says {name!r} is in {path}, but that file does not hold it.") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def first_float_dtype(self) -> torch.dtype | None:
        for name in self._where:
            opened = self._file(self._where[name])
            dtype = opened.dtype_of(name) if isinstance(opened, SafetensorsFile) else opened[name].dtype
            if dtype.is_floating_point:
                return dtype
        return None


@dataclass
class Checkpoint:
    tensors: TensorDict
    files: list[str] = field(default_factory=list)
    format: str = "safetensors"


def open_weights(source: Source) -> Checkpoint:
    """Find and open a checkpoint's weights, preferring safetensors."""
    path = source.resolve(SAFE_WEIGHTS, required=False)
    if path:
        opened = SafetensorsFile(path)
        return Checkpoint(TensorDict({name: path for name in opened}, lambda p, o=opened: o), [path])
    index = source.resolve(SAFE_INDEX, required=False)
    if index:
        return _sharded(source, index, SafetensorsFile, "safetensors")
    path = source.resolve(BIN_WEIGHTS, required=False)
    if path:
        opened = read_bin(path)
        return Checkpoint(TensorDict({name: path for name in opened}, lambda p, o=opened: o), [path], "bin")
    index = source.resolve(BIN_INDEX, required=False)
    if index:
        return _sharded(source, index, read_bin, "bin")
    raise CheckpointNotFoundError(
        f"{source.describe()} has no weights: looked for {SAFE_WEIGHTS}, {SAFE_INDEX}, {BIN_WEIGHTS} and "
        f"{BIN_INDEX}. (TensorFlow and Flax weights are not supported; for a .gguf file pass gguf_file=\"NAME.gguf\".)"
    )


def _sharded(source: Source, index_path: str, opener, fmt: str) -> Checkpoint:
    try:
        with open(index_path, encoding="utf-8") as handle:
            index = json.load(handle)
        weight_map = index["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise WeightsError(f"The shard index {index_path} is malformed ({exc}); re-download it.") from exc
    resolved: dict[str, str] = {}
    for shard in sorted(set(weight_map.values())):
        if not isinstance(shard, str) or "/" in shard or "\\" in shard or shard.startswith("."):
            raise WeightsError(f"The shard index {index_path} names an unsafe shard file {shard!r}.")
        resolved[shard] = source.resolve(shard)
    files = {name: resolved[shard] for name, shard in weight_map.items()}
    return Checkpoint(TensorDict(files, opener), sorted(resolved.values()), fmt)


def read_bin(path: str) -> dict[str, torch.Tensor]:
    """A PyTorch pickle checkpoint, opened only in weights-only mode (no code can run)."""
    import pickle

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=_is_zip(path))
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{path} refused to load in weights-only mode: it holds objects other than tensors, which "
            f"leanformers never unpickles. Convert it to safetensors with a trusted tool. ({exc})"
        ) from exc
    except Exception as exc:  # torch.load reports a corrupt file as anything from EOFError to IndexError
        raise WeightsError(f"{path} is not a readable PyTorch weights file (truncated or corrupt?): {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a mapping of names to tensors.")
    return state


def _is_zip(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"PK\x03\x04"


# -- the conversion hook: checkpoint keys and tensors <-> module paths ----------------------------

_LEGACY = [(re.compile(r"\.gamma$"), ".weight"), (re.compile(r"\.beta$"), ".bias")]


@dataclass(frozen=True)
class Conversion:
    """How one family's checkpoint tensors become its modules' tensors, and back on save.

    ``renames``: (regex, replacement) pairs for checkpoint keys, after the legacy ``gamma``/``beta``
    ones; loading only (files are written with the module paths, the current names).
    ``transposed``: regexes of module keys whose tensor the checkpoint stores transposed (GPT-2's
    ``Conv1D`` keeps linear weights as (in, out)).
    ``fused``: (fused name, part names, dim): a checkpoint key with the path component ``fused`` holds
    the parts' tensors concatenated along ``dim`` (``qkv_proj`` -> ``q_proj``, ``k_proj``, ``v_proj``);
    each part's size is its module tensor's.
    """

    renames: tuple[tuple[str, str], ...] = ()
    transposed: tuple[str, ...] = ()
    fused: tuple[tuple[str, tuple[str, ...], int], ...] = ()

    def is_transposed(self, key: str) -> bool:
        return any(re.search(pattern, key) for pattern in self.transposed)


NO_CONVERSION = Conversion()


def rename_key(key: str, renames: Iterable[tuple[str, str]]) -> str:
    """Apply legacy renames, then the architecture's own (regex, replacement) pairs."""
    for pattern, repl in _LEGACY:
        key = pattern.sub(repl, key)
    for pattern, repl in renames:
        key = re.sub(pattern, repl, key)
    return key


def _prefixer(candidates: Iterable[str], expected: Mapping[str, Any], prefix: str) -> Callable[[str], str]:
    """A key mapper that adds or strips the base-model prefix where the checkpoint and the model
    disagree on it (a base checkpoint into a head model, a head checkpoint into a base model)."""
    dotted = prefix + "."
    ckpt_has = bool(prefix) and any(k.startswith(dotted) for k in candidates)
    model_has = bool(prefix) and any(k.startswith(dotted) for k in expected)
    if model_has and not ckpt_has:
        return lambda k: dotted + k if dotted + k in expected else k
    if ckpt_has and not model_has:
        return lambda k: k[len(dotted):] if k.startswith(dotted) else k
    return lambda k: k


def _swap_component(key: str, old: str, new: str) -> str | None:
    parts = key.split(".")
    if old not in parts:
        return None
    return ".".join(new if part == old else part for part in parts)


Piece = Callable[[torch.Tensor], torch.Tensor]


def _part(tensor: torch.Tensor, dim: int, start: int, size: int, total: int) -> torch.Tensor:
    if tensor.dim() <= dim or tensor.shape[dim] != total:
        raise RuntimeError(f"a fused tensor of {total} along dim {dim} was expected")
    return tensor.narrow(dim, start, size)


def convert_keys(
    checkpoint_keys: Iterable[str], shapes: Mapping[str, tuple[int, ...]], prefix: str, conversion: Conversion
) -> dict[str, tuple[str, Piece | None]]:
    """module key -> (checkpoint key, transform or None) for every module key the checkpoint fills.

    Renames first; a fused tensor stands for its parts; then the base-model prefix; the parts are
    cut at their module tensors' sizes (``shapes``), and transposes apply last. Checkpoint keys
    that fill nothing are left out (the caller reports them)."""
    groups: dict[str, tuple[list[str], int]] = {}  # checkpoint key -> (candidate module keys, fused dim)
    for ckpt_key in checkpoint_keys:
        key = rename_key(ckpt_key, conversion.renames)
        groups[ckpt_key] = ([key], -1)
        for fused, parts, dim in conversion.fused:
            if _swap_component(key, fused, fused):
                groups[ckpt_key] = ([_swap_component(key, fused, part) for part in parts], dim)
                break
    fix = _prefixer((k for keys, _ in groups.values() for k in keys), shapes, prefix)
    sources: dict[str, tuple[str, Piece | None]] = {}
    for ckpt_key, (keys, dim) in groups.items():
        keys = [fix(k) for k in keys]
        if not all(k in shapes for k in keys):
            continue
        if dim < 0:
            sources[keys[0]] = (ckpt_key, None)
            continue
        sizes = [shapes[key][dim] for key in keys]
        for key, start, size in zip(keys, itertools.accumulate([0, *sizes]), sizes):
            sources[key] = (ckpt_key, lambda t, d=dim, a=start, n=size, total=sum(sizes): _part(t, d, a, n, total))
    for key, (ckpt_key, piece) in list(sources.items()):
        if conversion.is_transposed(key):
            sources[key] = (ckpt_key, (lambda t: t.t()) if piece is None else (lambda t, p=piece: p(t).t()))
    return sources


def to_checkpoint(state: Mapping[str, torch.Tensor], conversion: Conversion) -> dict[str, torch.Tensor]:
    """Module tensors as the checkpoint stores them: transposed back, fused parts concatenated."""
    out = {key: (t.t() if conversion.is_transposed(key) else t) for key, t in state.items()}
    for fused, parts, dim in conversion.fused:
        for key in [k for k in out if _swap_component(k, parts[0], parts[0])]:
            names = [_swap_component(key, parts[0], part) for part in parts]
            if all(name in out for name in names):
                out[_swap_component(key, parts[0], fused)] = torch.cat([out.pop(name) for name in names], dim)
    return out

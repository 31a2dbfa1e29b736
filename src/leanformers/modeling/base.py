"""PreTrainedModel: build on the meta device, assign the checkpoint's tensors, initialise only
what is missing, tie, and save files the reference library loads.

An architecture subclass declares:
- ``config_class`` and ``base_model_prefix`` (the attribute holding the base model in head models);
- ``_tied_weights``: {target key: source key}, tied when ``config.tie_word_embeddings`` is true;
- ``_conversion``: how checkpoint keys and tensors differ from module paths (``loading.Conversion``:
  renames, transposed weights, fused tensors), used to load and, backwards, to save;
- ``_ignore_on_load``: regexes of checkpoint keys dropped silently (buffers older files carry);
- ``_init_weights(module)`` when it needs more than the default initialisation.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import nn

from ..configuration import PretrainedConfig, load_config
from ..errors import ConfigError, InputError, WeightsError
from ..hub import Source, split_source_options, temporary_path
from .gguf import open_gguf
from .loading import (
    NO_CONVERSION,
    SAFE_WEIGHTS,
    Checkpoint,
    Conversion,
    convert_keys,
    open_weights,
    to_checkpoint,
)

logger = logging.getLogger("leanformers")

_DTYPES = {
    "float32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "double": torch.float64,
}


def to_torch_dtype(value: Any, what: str = "dtype") -> torch.dtype:
    if isinstance(value, torch.dtype):
        return value
    if isinstance(value, str):
        name = value.removeprefix("torch.")
        if name in _DTYPES:
            return _DTYPES[name]
    raise InputError(
        f"{what} must be 'auto', a torch floating dtype or its name (float32, float16, bfloat16), got {value!r}."
    )


_BUILD = threading.local()  # per thread: how deep in model constructors, and whether to skip init


class _InitialisedOnBuild(type(nn.Module)):
    """``SomeModel(config)`` gives an initialised model, as in the reference: the outermost model
    initialises its whole tree once it is built (a head's inner base model does not initialise
    itself first). ``from_pretrained`` builds on the meta device with this skipped."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        _BUILD.depth = getattr(_BUILD, "depth", 0) + 1
        try:
            model = super().__call__(*args, **kwargs)
        finally:
            _BUILD.depth -= 1
        if _BUILD.depth == 0 and not getattr(_BUILD, "skip", False):
            model.init_weights()
        return model


class PreTrainedModel(nn.Module, metaclass=_InitialisedOnBuild):
    config_class: ClassVar[type[PretrainedConfig]] = PretrainedConfig
    base_model_prefix: ClassVar[str] = ""
    _tied_weights: ClassVar[dict[str, str]] = {}
    _conversion: ClassVar[Conversion] = NO_CONVERSION
    _ignore_on_load: ClassVar[list[str]] = []

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        if not isinstance(config, PretrainedConfig):
            raise InputError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}. "
                f"Use {type(self).__name__}.from_pretrained(...) or from_config(config)."
            )
        self.config = config

    # -- properties ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        for p in self.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.get_default_dtype()

    @property
    def base_model(self) -> nn.Module:
        return getattr(self, self.base_model_prefix, self)

    def num_parameters(self, only_trainable: bool = False) -> int:
        seen = {id(p): p for p in self.parameters() if p.requires_grad or not only_trainable}
        return sum(p.numel() for p in seen.values())

    def get_input_embeddings(self) -> nn.Module:
        base = self.base_model
        if base is not self:
            return base.get_input_embeddings()
        raise NotImplementedError(f"{type(self).__name__} has no input embeddings")

    # -- initialisation -----------------------------------------------------------------------
    def _resolve(self, output_attentions, output_hidden_states, return_dict) -> tuple[bool, bool, bool]:
        """A forward's output options, each falling back on the config's when not given."""
        config = self.config
        return (
            config.output_attentions if output_attentions is None else output_attentions,
            config.output_hidden_states if output_hidden_states is None else output_hidden_states,
            config.use_return_dict if return_dict is None else return_dict,
        )

    def _init_weights(self, module: nn.Module) -> None:
        """The reference's default scheme: normal(0, initializer_range) for linear and embedding
        weights (padding row zeroed), zero biases, unit norms."""
        std = getattr(self.config, "initializer_range", 0.02) or 0.02
        with torch.no_grad():
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                module.weight.normal_(0.0, std)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, std)
                if module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()
            elif isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d)):
                if module.weight is not None:
                    module.weight.fill_(1.0)
                if module.bias is not None:
                    module.bias.zero_()
                if getattr(module, "running_mean", None) is not None:
                    module.running_mean.zero_()
                    module.running_var.fill_(1.0)
                    module.num_batches_tracked.zero_()

    def init_weights(self) -> None:
        """Initialise every weight (a fresh model), then tie."""
        for module in self.modules():
            self._init_weights(module)
        self.tie_weights()

    def tie_weights(self) -> None:
        if not getattr(self.config, "tie_word_embeddings", True):
            return
        for target, source in self._tied_weights.items():
            try:
                shared = self.get_parameter(source)
                owner, name = self._owner(target)
            except AttributeError:
                continue  # this variant has no such module
            setattr(owner, name, shared)

    def _owner(self, key: str) -> tuple[nn.Module, str]:
        path, _, name = key.rpartition(".")
        return (self.get_submodule(path) if path else self), name

    def _tied_targets(self) -> set[str]:
        if not getattr(self.config, "tie_word_embeddings", True):
            return set()
        names = {n for n, _ in self.named_parameters(remove_duplicate=False)}
        return {t for t, s in self._tied_weights.items() if t in names and s in names}

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: PretrainedConfig, dtype: Any = None, **model_kwargs: Any) -> "PreTrainedModel":
        """A randomly initialised model for ``config``."""
        cls._check_config(config)
        torch_dtype = None if dtype in (None, "auto") else to_torch_dtype(dtype)
        model = cls(config, **model_kwargs)  # initialised by construction
        if torch_dtype is not None:
            model.to(torch_dtype)
        config.dtype = model.dtype
        return model

    @classmethod
    def _check_config(cls, config: Any) -> None:
        if not isinstance(config, cls.config_class):
            raise ConfigError(
                f"{cls.__name__} needs a {cls.config_class.__name__}, got a {type(config).__name__} "
                f"(model_type {getattr(config, 'model_type', None)!r})."
            )

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        config: PretrainedConfig | None = None,
        dtype: Any = "auto",
        torch_dtype: Any = None,
        device: Any = None,
        device_map: Any = None,
        ignore_mismatched_sizes: bool = False,
        output_loading_info: bool = False,
        **kwargs: Any,
    ) -> "PreTrainedModel":
        """Load a model and its weights from a folder or a hub id (see the README for the options)."""
        options, kwargs = split_source_options(dict(kwargs))
        source = Source.of(pretrained_model_name_or_path, **options)
        kwargs.pop("use_safetensors", None)
        kwargs.pop("low_cpu_mem_usage", None)
        attn = kwargs.pop("attn_implementation", None)
        if attn not in (None, "sdpa", "eager"):
            raise InputError(
                f"attn_implementation={attn!r} is not available: leanformers uses PyTorch's "
                "scaled_dot_product_attention ('sdpa'), and an explicit softmax ('eager') when attentions are requested."
            )
        gguf_file = kwargs.pop("gguf_file", None)  # llama.cpp's single file: config, weights and tokenizer
        gguf = None if gguf_file is None else open_gguf(source, gguf_file)
        if config is None:
            config_dict = None if gguf is None else gguf.config_dict()
            config, model_kwargs = load_config(cls.config_class, source, config_dict=config_dict, **kwargs)
        else:
            cls._check_config(config)
            model_kwargs = {}
            for key, value in kwargs.items():
                if key in config or key == "num_labels":
                    setattr(config, key, value)
                else:
                    model_kwargs[key] = value
        if torch_dtype is not None and dtype == "auto":
            dtype = torch_dtype
        if device is None and device_map is not None:
            if not isinstance(device_map, (str, int, torch.device)) or device_map == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            else:
                device = device_map

        checkpoint = open_weights(source) if gguf is None else Checkpoint(gguf.tensors(), [gguf.path], "gguf")
        if dtype == "auto" or dtype is None:
            target_dtype = (
                to_torch_dtype(config.dtype, "config.json dtype")
                if config.dtype
                else checkpoint.tensors.first_float_dtype() or torch.float32
            )
            target_dtype = _computable(target_dtype, device)
        else:
            target_dtype = to_torch_dtype(dtype)

        try:
            with torch.device("meta"), _skipping_init():
                model = cls(config, **model_kwargs)
        except TypeError as exc:
            raise InputError(f"{cls.__name__}.from_pretrained got an unexpected argument: {exc}") from exc
        report = model._load_checkpoint(checkpoint.tensors, target_dtype, ignore_mismatched_sizes)
        model.config.dtype = target_dtype
        model.config.name_or_path = source.name_or_path
        if device is not None:
            model.to(device)
        model.eval()
        report.log(cls.__name__, source.describe())
        if output_loading_info:
            return model, report.as_dict()
        return model

    def _load_checkpoint(self, tensors, dtype: torch.dtype, ignore_mismatched_sizes: bool) -> "LoadReport":
        state = self.state_dict(keep_vars=True)
        tied = self._tied_targets()
        shapes = {key: tuple(tensor.shape) for key, tensor in state.items()}
        sources = convert_keys(list(tensors), shapes, self.base_model_prefix, self._conversion)
        for target in tied:
            # a checkpoint that kept only the tied copy fills the source from it
            if target in sources and self._tied_weights[target] not in sources:
                sources[self._tied_weights[target]] = sources[target]
        report = LoadReport()
        used = {ckpt_key for ckpt_key, _ in sources.values()}
        ignored = [re.compile(p) for p in self._ignore_on_load]
        report.unexpected = sorted(k for k in tensors if k not in used and not any(p.search(k) for p in ignored))
        assign: dict[str, torch.Tensor] = {}
        for model_key, (ckpt_key, piece) in sources.items():
            if model_key in tied and self._tied_weights[model_key] in sources:
                continue  # a tied copy: the source tensor fills it
            tensor = tensors[ckpt_key]
            if piece is not None:
                try:
                    tensor = piece(tensor)
                except (IndexError, RuntimeError) as exc:
                    raise WeightsError(
                        f"The checkpoint's {ckpt_key!r} of shape {tuple(tensor.shape)} cannot be converted to "
                        f"{model_key!r} ({exc}); the checkpoint is for another configuration."
                    ) from exc
            want = shapes[model_key]
            if tuple(tensor.shape) != want:
                if not ignore_mismatched_sizes:
                    raise WeightsError(
                        f"The checkpoint's {ckpt_key!r} has shape {tuple(tensor.shape)}, but the model expects "
                        f"{want} for {model_key!r}. If the head is meant to be replaced (e.g. a different "
                        f"num_labels), pass ignore_mismatched_sizes=True."
                    )
                report.mismatched.append((model_key, tuple(tensor.shape), want))
                continue
            if state[model_key].is_floating_point() and not tensor.is_floating_point():
                raise WeightsError(
                    f"The checkpoint's {ckpt_key!r} holds {tensor.dtype} values, but {model_key!r} is a "
                    f"floating-point weight; the weights file is corrupt or for another model. Re-download it."
                )
            if tensor.is_floating_point() and tensor.dtype != dtype:
                tensor = tensor.to(dtype)
            assign[model_key] = tensor
        self.load_state_dict(assign, strict=False, assign=True)
        mismatched = {k for k, _, _ in report.mismatched}
        report.missing = sorted(k for k in state if k not in assign and k not in tied and k not in mismatched)
        # Tie first so a tied copy (an MLM decoder the size of the vocabulary) is never allocated and
        # initialised only to be thrown away; tie again for sources that were themselves missing.
        self.tie_weights()
        self._materialise(dtype)
        self.tie_weights()
        return report

    def _materialise(self, dtype: torch.dtype) -> None:
        """Give every tensor still on the meta device real memory and its initial value, without
        touching the loaded tensors that share its module."""
        for module in self.modules():
            own = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
            if not any(tensor.is_meta for _, tensor in own):
                continue
            kept = {name: tensor for name, tensor in own if not tensor.is_meta}
            for name, tensor in own:
                wanted = dtype if tensor.is_meta and tensor.is_floating_point() else tensor.dtype
                setattr(module, name, _placeholder(tensor, wanted))
            self._init_weights(module)
            for name, tensor in kept.items():
                setattr(module, name, tensor)

    # -- saving -------------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | os.PathLike, safe_serialization: bool = True) -> None:
        """Write config.json and model.safetensors, each through a temporary name and a rename."""
        from safetensors.torch import save_file

        if not safe_serialization:
            raise InputError("leanformers only writes safetensors; call save_pretrained(dir) without safe_serialization.")
        if os.path.isfile(save_directory):
            raise InputError(f"save_pretrained needs a folder, but {os.fspath(save_directory)!r} is a file.")
        os.makedirs(save_directory, exist_ok=True)
        tied = self._tied_targets()
        state = {key: tensor.detach().to("cpu") for key, tensor in self.state_dict().items() if key not in tied}
        state = {key: tensor.contiguous() for key, tensor in to_checkpoint(state, self._conversion).items()}
        weights = os.path.join(save_directory, SAFE_WEIGHTS)
        tmp = temporary_path(weights)
        try:
            save_file(state, os.fspath(tmp), metadata={"format": "pt"})
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())  # the data is on disk before the name points at it
            os.replace(tmp, weights)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.config.architectures = [type(self).__name__]
        self.config.dtype = self.dtype
        self.config.save_pretrained(save_directory)


_INIT_FUNCTIONS = (
    "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_",
)
_guard_lock = threading.Lock()
_guarded = False


def _skippable(fn: Any) -> Any:
    """``fn``, except in a thread that is building a model to load (``_BUILD.skip``), where it
    leaves its tensor as it is."""

    def initialiser(tensor: Any, *args: Any, **kwargs: Any) -> Any:
        return tensor if getattr(_BUILD, "skip", False) else fn(tensor, *args, **kwargs)

    initialiser.__wrapped__ = fn
    return initialiser


def _guard_initialisers() -> None:
    """Route torch's initialisers through ``_skippable`` (once per process). The switch is per
    thread, so another thread building or training a model meanwhile initialises as usual."""
    global _guarded
    with _guard_lock:
        if _guarded:
            return
        for name in _INIT_FUNCTIONS:
            if hasattr(nn.init, name):
                setattr(nn.init, name, _skippable(getattr(nn.init, name)))
        _guarded = True


@contextmanager
def _skipping_init() -> Iterator[None]:
    """Skip torch's initialisers in this thread while a model is built on the meta device: they
    would initialise tensors about to be replaced, and random ops on meta tensors are slow to
    dispatch (the first one imports torch's compiler stack)."""
    _guard_initialisers()
    skipping = getattr(_BUILD, "skip", False)
    _BUILD.skip = True
    try:
        yield
    finally:
        _BUILD.skip = skipping


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX on x86, BF16 on Arm).
    Without it PyTorch emulates bf16 matmuls, several times slower than float32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            flags = set()
            for line in handle:
                if line.startswith(("flags", "Features")):
                    flags.update(line.split(":", 1)[1].split())
                    break
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def _computable(dtype: torch.dtype, device: Any) -> torch.dtype:
    """The dtype an ``"auto"`` load computes in: the checkpoint's, except bfloat16 on a CPU that
    would only emulate it, where float32 gives the same numbers faster (an explicit dtype is kept)."""
    on_cpu = device is None or torch.device(device).type == "cpu"
    if dtype != torch.bfloat16 or not on_cpu or cpu_has_native_bf16():
        return dtype
    logger.warning(
        "The checkpoint is bfloat16 but this CPU has no native bf16 matmul (AVX512-BF16 or AMX): computing in "
        "float32, which is several times faster here. Pass dtype=torch.bfloat16 to keep bfloat16."
    )
    return torch.float32


def _placeholder(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    empty = torch.empty(tensor.shape, dtype=dtype, device="cpu")
    if isinstance(tensor, nn.Parameter):
        return nn.Parameter(empty, requires_grad=tensor.requires_grad)
    return empty


class LoadReport:
    """What did not line up between a checkpoint and the model, logged as one message."""

    def __init__(self) -> None:
        self.missing: list[str] = []
        self.unexpected: list[str] = []
        self.mismatched: list[tuple[str, tuple, tuple]] = []

    def as_dict(self) -> dict[str, list]:
        return {"missing_keys": self.missing, "unexpected_keys": self.unexpected, "mismatched_keys": self.mismatched}

    def log(self, model_name: str, where: str) -> None:
        if not (self.missing or self.unexpected or self.mismatched):
            return
        parts = [f"Loaded {model_name} from {where}."]
        if self.missing:
            parts.append(f"Newly initialised (not in the checkpoint; train before use): {_short(self.missing)}.")
        if self.mismatched:
            shown = ", ".join(f"{k} {a}->{b}" for k, a, b in self.mismatched[:6])
            parts.append(f"Re-initialised because of shape mismatch: {shown}.")
        if self.unexpected:
            parts.append(f"Unused checkpoint weights: {_short(self.unexpected)}.")
        logger.warning(" ".join(parts))


def _short(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")

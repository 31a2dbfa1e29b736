"""Sentence embeddings as sentence-transformers computes them, from the same checkpoint folders.

A sentence-transformers checkpoint lists its modules in ``modules.json``: the Transformer (the
folder's own model), then Pooling (``1_Pooling/config.json``: cls, mean, max, mean of square-root
length, position-weighted mean, last token, several concatenated), optional Dense layers
(``2_Dense/config.json`` plus weights) and Normalize. ``sentence_bert_config.json`` sets the
truncation length and ``config_sentence_transformers.json`` the named prompts. A folder without
``modules.json`` gets what sentence-transformers gives a plain checkpoint: mean pooling.

Nothing named in these files is imported or run: module types and activations are looked up in
the small tables below, and anything else is refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, InputError, UnsupportedModelError
from .hub import Source, read_json, split_source_options
from .pipelines import _ANY, _FLAG, COUNT, _describe, _TextPipeline

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
# The legacy per-mode switches of 1_Pooling/config.json, in the order their vectors are concatenated.
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
# Dense activations by the class name sentence-transformers saves (its last dotted part).
_ACTIVATIONS = {"Tanh": "tanh", "Identity": None, "ReLU": "relu", "GELU": "gelu", "Sigmoid": "sigmoid", "SiLU": "silu"}
_MODULES = ("Transformer", "Pooling", "Dense", "Normalize")


@dataclass
class DenseLayer:
    weight: Any
    bias: Any
    activation: str | None
    residual: Any = None


@dataclass
class SentenceModules:
    """What turns a model's token states into one sentence vector."""

    pooling: tuple[str, ...] = ("mean",)
    include_prompt: bool = True
    dense: list[DenseLayer] = field(default_factory=list)
    normalize: bool = False
    max_seq_length: int | None = None
    do_lower_case: bool = False
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    transformer_path: str = ""

    @classmethod
    def read(cls, source: Source) -> "SentenceModules":
        """The modules of ``source``; defaults (mean pooling) where it has no modules.json."""
        found = cls()
        where = source.describe()
        for kind, path in _module_entries(source):
            if kind == "Transformer":
                found.transformer_path = path
                settings = _optional_json(source, _join(path, "sentence_bert_config.json"))
                found.max_seq_length = settings.get("max_seq_length")
                found.do_lower_case = bool(settings.get("do_lower_case", False))
            elif kind == "Pooling":
                found.pooling, found.include_prompt = _pooling(_optional_json(source, _join(path, "config.json")), where)
            elif kind == "Dense":
                found.dense.append(_dense(source, path))
            else:
                found.normalize = True
        prompts = _optional_json(source, "config_sentence_transformers.json")
        found.prompts = dict(prompts.get("prompts") or {})
        found.default_prompt_name = prompts.get("default_prompt_name")
        if found.max_seq_length is not None and not (type(found.max_seq_length) is int and found.max_seq_length > 0):
            raise ConfigError(f"max_seq_length in sentence_bert_config.json of {where} must be a positive integer.")
        return found

    def pool(self, hidden: Any, length: int) -> Any:
        """One vector from ``hidden`` (tokens, width), of which the first ``length`` rows are real."""
        import torch

        states = hidden[:length].float()
        parts = []
        for mode in self.pooling:
            if mode == "cls":
                parts.append(states[0])
            elif mode == "max":
                parts.append(states.max(dim=0).values)
            elif mode == "mean":
                parts.append(states.sum(0) / max(length, 1e-9))
            elif mode == "mean_sqrt_len_tokens":
                parts.append(states.sum(0) / max(length, 1e-9) ** 0.5)
            elif mode == "weightedmean":
                weights = torch.arange(1, length + 1, dtype=states.dtype)[:, None]
                parts.append((states * weights).sum(0) / weights.sum().clamp(min=1e-9))
            else:  # lasttoken
                parts.append(states[length - 1])
        vector = torch.cat(parts)
        for layer in self.dense:
            out = torch.nn.functional.linear(vector, layer.weight, layer.bias)
            out = out if layer.activation is None else getattr(torch, layer.activation)(out)
            if layer.residual is not None:
                out = out + (vector if layer.residual is True else torch.nn.functional.linear(vector, layer.residual))
            vector = out
        return torch.nn.functional.normalize(vector, p=2, dim=-1) if self.normalize else vector


def _module_entries(source: Source) -> list[tuple[str, str]]:
    """(module kind, folder) for each entry of modules.json, in order; none without the file."""
    where = source.describe()
    listing = source.resolve("modules.json", required=False)
    if listing is None:
        return []
    modules = read_json(listing, "modules.json", object_only=False)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise ConfigError(f"modules.json of {where} must be a list of module entries.")
    entries = []
    for entry in sorted(modules, key=lambda m: m.get("idx", 0)):
        kind = str(entry.get("type", "")).rpartition(".")[2]
        if kind not in _MODULES:
            raise UnsupportedModelError(
                f"modules.json of {where} lists a {entry.get('type')!r} module, which leanformers does not "
                f"provide (it reads {', '.join(_MODULES)}) and never imports from a checkpoint."
            )
        entries.append((kind, entry.get("path") or ""))
    return entries


def _join(folder: str, name: str) -> str:
    return f"{folder.strip('/')}/{name}" if folder else name


def _optional_json(source: Source, name: str) -> dict[str, Any]:
    path = source.resolve(name, required=False)
    return read_json(path, name) if path else {}


def _pooling(config: dict[str, Any], where: str) -> tuple[tuple[str, ...], bool]:
    modes = config.get("pooling_mode")
    if modes is None:
        modes = [mode for key, mode in _LEGACY_POOLING_KEYS.items() if config.get(key)] or ["mean"]
    modes = [modes] if isinstance(modes, str) else list(modes)
    unknown = [mode for mode in modes if mode not in POOLING_MODES]
    if unknown or not modes:
        raise ConfigError(f"The pooling config of {where} asks for {unknown or 'no'} pooling; known: {', '.join(POOLING_MODES)}.")
    return tuple(modes), bool(config.get("include_prompt", True))


def _dense(source: Source, path: str) -> DenseLayer:
    import torch

    from .modeling.loading import open_weights

    where = f"{source.describe()} ({path or 'its root'})"
    config = _optional_json(source, _join(path, "config.json"))
    activation = str(config.get("activation_function", "torch.nn.modules.activation.Tanh")).rpartition(".")[2]
    if activation not in _ACTIVATIONS:
        raise UnsupportedModelError(
            f"The Dense module of {where} uses activation {activation!r}; leanformers knows "
            f"{', '.join(_ACTIVATIONS)} and never imports a function named by a checkpoint."
        )
    options = split_source_options({"subfolder": _join(source.subfolder, path).strip("/"), "revision": source.revision,
                                    "cache_dir": source.cache_dir, "local_files_only": source.local_files_only,
                                    "token": source.token})[0]
    tensors = open_weights(Source.of(source.name_or_path, **options)).tensors
    if "linear.weight" not in tensors:
        raise ConfigError(f"The Dense module of {where} has no 'linear.weight' tensor.")
    weight = tensors["linear.weight"].to(torch.float32)
    expected = (config.get("out_features", weight.shape[0]), config.get("in_features", weight.shape[1]))
    if tuple(weight.shape) != tuple(expected):
        raise ConfigError(f"The Dense module of {where}: linear.weight is {tuple(weight.shape)}, config says {expected}.")
    bias = tensors["linear.bias"].to(torch.float32) if "linear.bias" in tensors else None
    residual = None
    if config.get("use_residual"):
        residual = tensors["residual.weight"].to(torch.float32) if "residual.weight" in tensors else True
    return DenseLayer(weight, bias, _ACTIVATIONS[activation], residual)


class SentenceEmbeddingPipeline(_TextPipeline):
    """``pipe("text")`` -> the sentence vector sentence-transformers gives for the checkpoint (a list
    of floats; a tensor with ``return_tensors=True``). A list of texts is run longest-first in
    batches of similar length and returned in input order."""

    task = "sentence-embedding"
    skips_batch_padding = True
    options = {
        "normalize_embeddings": (_FLAG, False), "prompt": (_ANY, False), "prompt_name": (_ANY, False),
        "return_tensors": (_FLAG, True),
    }

    def __init__(self, model: Any, tokenizer: Any = None, *, modules: SentenceModules | None = None, **kwargs: Any) -> None:
        if modules is None:
            path = getattr(model.config, "name_or_path", None)
            modules = SentenceModules.read(Source.of(path)) if path else SentenceModules()
        self.modules = modules
        super().__init__(model, tokenizer, **kwargs)
        limits = [modules.max_seq_length, getattr(tokenizer, "model_max_length", None)]
        if modules.max_seq_length is None:
            limits.append(getattr(model.config, "max_position_embeddings", None))
        self.max_length = min((n for n in limits if isinstance(n, int) and 0 < n < 10**9), default=None)

    @classmethod
    def model_subfolder(cls, checkpoint: str, source_options: dict[str, Any]) -> str:
        # Older sentence-transformers folders keep the model in a module folder such as 0_Transformer.
        # Only modules.json is read here; the modules themselves (Dense weights too) once, by the pipeline.
        entries = _module_entries(Source.of(checkpoint, **source_options))
        return next((path.strip("/") for kind, path in entries if kind == "Transformer"), "")

    def _prompt(self, params: dict[str, Any]) -> str:
        if params.get("prompt") is not None:
            if not isinstance(params["prompt"], str):
                raise InputError(f"prompt must be a string, got {_describe(params['prompt'])}.")
            return params["prompt"]
        name = params.get("prompt_name", self.modules.default_prompt_name)
        if name is None:
            return ""
        if name not in self.modules.prompts:
            known = ", ".join(map(repr, self.modules.prompts)) or "none"
            raise InputError(f"prompt_name={name!r} is not one of this model's prompts ({known}).")
        return self.modules.prompts[name]

    def _preprocess(self, item, params):
        prompt = self._prompt(params)
        if prompt and not self.modules.include_prompt:
            raise UnsupportedModelError("This model pools without its prompt tokens (include_prompt=False), which "
                                        "leanformers does not implement; encode without a prompt.")
        text = prompt + item
        text = text.lower() if self.modules.do_lower_case else text
        truncate = {"truncation": True, "max_length": self.max_length} if self.max_length else {}
        return [self._encode_one(text, **truncate)]

    def _postprocess(self, item, features, outputs, params):
        import torch

        vector = self.modules.pool(outputs[0]["last_hidden_state"], len(features[0].inputs["input_ids"]))
        if params.get("normalize_embeddings") and not self.modules.normalize:
            vector = torch.nn.functional.normalize(vector, p=2, dim=-1)
        return vector if params.get("return_tensors") else vector.tolist()

    def __call__(self, inputs: Any = None, *, batch_size: int | None = None, **kwargs: Any) -> Any:
        if not isinstance(inputs, (list, tuple)):
            return super().__call__(inputs, batch_size=batch_size, **kwargs)
        # Longest first, as sentence-transformers orders them: each batch holds texts of similar length.
        order = sorted(range(len(inputs)), key=lambda i: -len(inputs[i]) if isinstance(inputs[i], str) else 0)
        results = super().__call__([inputs[i] for i in order], batch_size=batch_size, **kwargs)
        ordered = [None] * len(order)
        for position, index in enumerate(order):
            ordered[index] = results[position]
        return ordered


# The pipelines ``encode`` loaded by name, the most recent last; a few are kept, not every model ever named.
_PIPELINES: dict[tuple, SentenceEmbeddingPipeline] = {}
_KEPT_PIPELINES = 2


def encode(
    sentences: str | list[str], model: Any, *, batch_size: int = 32, normalize_embeddings: bool = False,
    prompt: str | None = None, prompt_name: str | None = None, convert_to_tensor: bool = False,
    convert_to_numpy: bool = True, device: Any = None, **load_options: Any,
) -> Any:
    """Embeddings of ``sentences`` as ``SentenceTransformer(model).encode`` gives them: a (n, dim)
    numpy array (one vector for one string), or a tensor with ``convert_to_tensor=True``.

    ``model`` is a checkpoint folder or hub id (the loaded pipeline is kept for the next calls with the
    same arguments; the last two are kept) or a ``SentenceEmbeddingPipeline``."""
    import torch

    from .pipelines import pipeline

    if isinstance(model, SentenceEmbeddingPipeline):
        pipe = model
    elif isinstance(model, (str, os.PathLike)):
        key = (os.fspath(model), str(device), tuple(sorted((k, repr(v)) for k, v in load_options.items())))
        pipe = _PIPELINES.pop(key, None)
        if pipe is None:
            pipe = pipeline("sentence-embedding", model=os.fspath(model), device=device, **load_options)
        _PIPELINES[key] = pipe
        while len(_PIPELINES) > _KEPT_PIPELINES:
            del _PIPELINES[next(iter(_PIPELINES))]
    else:
        raise InputError(f"model must be a checkpoint path, a hub id or a SentenceEmbeddingPipeline, got {_describe(model)}.")
    single = isinstance(sentences, str)
    texts = [sentences] if single else sentences
    if not isinstance(texts, (list, tuple)) or not texts:
        raise InputError(f"sentences must be a string or a non-empty list of strings, got {_describe(sentences)}.")
    options = {"normalize_embeddings": normalize_embeddings, "return_tensors": True, "prompt": prompt,
               "prompt_name": prompt_name}
    vectors = torch.stack(pipe(list(texts), batch_size=COUNT("batch_size", batch_size), **options))
    vectors = vectors[0] if single else vectors
    return vectors if convert_to_tensor or not convert_to_numpy else vectors.numpy()


__all__ = ["SentenceEmbeddingPipeline", "SentenceModules", "encode"]

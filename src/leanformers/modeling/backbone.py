"""The one backbone mechanism: which stages a backbone returns, for every architecture.

A backbone config has ``stage_names`` (``["stem", "stage1", ...]``) and stores the chosen stages as
``out_features`` / ``out_indices``; ``align_out_features`` fills one from the other (default: the
last stage), accepts negative indices, and rejects unknown, duplicate or out-of-order choices
with a message naming the valid stages. A backbone model mixes in ``BackboneMixin``, declares its
channels per stage in ``num_features``, and returns ``BackboneOutput``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .outputs import ModelOutput


def align_out_features(
    stage_names: Sequence[str], out_features: Sequence[str] | None, out_indices: Sequence[int] | None
) -> tuple[list[str], list[int]]:
    """Validate and align ``out_features`` / ``out_indices`` against ``stage_names``.

    Indices are returned as given (negative ones included), as the reference keeps them.
    """
    stages = list(stage_names or [])
    if not stages:
        raise ConfigError("A backbone config needs stage_names; this config has none.")
    count = len(stages)
    features = None if out_features is None else _as_list(out_features, "out_features", str)
    indices = None if out_indices is None else _as_list(out_indices, "out_indices", int)

    if features is not None:
        unknown = [f for f in features if f not in stages]
        if unknown:
            raise ConfigError(f"out_features {unknown} are not stages of this backbone; its stages are {stages}.")
        if len(set(features)) != len(features):
            raise ConfigError(f"out_features must not repeat a stage, got {features}.")
        ordered = [s for s in stages if s in features]
        if features != ordered:
            raise ConfigError(f"out_features must follow the order of the stages {stages}: use {ordered}.")
    if indices is not None:
        bad = [i for i in indices if not -count <= i < count]
        if bad:
            raise ConfigError(
                f"out_indices {bad} are out of range for a backbone with {count} stages {stages} "
                f"(valid: {-count} to {count - 1})."
            )
        positive = [i % count for i in indices]
        if len(set(positive)) != len(positive):
            raise ConfigError(f"out_indices must not name a stage twice, got {indices} (stages {positive}).")
        if positive != sorted(positive):
            raise ConfigError(f"out_indices must follow the order of the stages, got {indices}; sort them.")

    if features is None and indices is None:
        return [stages[-1]], [count - 1]
    if features is None:
        return [stages[i] for i in indices], indices
    if indices is None:
        return features, [stages.index(f) for f in features]
    if [stages[i] for i in indices] != features:
        raise ConfigError(
            f"out_features {features} and out_indices {indices} name different stages; give only one of them."
        )
    return features, indices


def _as_list(value: Any, name: str, kind: type) -> list:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"{name} must be a list or tuple of {kind.__name__}, got {value!r}.")
    items = list(value)
    if not all(isinstance(v, kind) and not isinstance(v, bool) for v in items):
        raise ConfigError(f"{name} must hold only {kind.__name__} values, got {items!r}.")
    return items


def align_backbone_config(config: Any) -> None:
    """Fill and check a backbone config's ``out_features`` / ``out_indices`` in place."""
    features, indices = align_out_features(
        config.stage_names, config._values.get("out_features"), config._values.get("out_indices")
    )
    config._values["out_features"] = features
    config._values["out_indices"] = indices


class BackboneConfigMixin:
    """For backbone configs (mixed in before PretrainedConfig): assigning one of ``out_features`` /
    ``out_indices`` realigns the other, so ``config.out_indices = (1,)`` never leaves a stale
    ``out_features`` behind."""

    linked_keys = {"out_features": "out_indices", "out_indices": "out_features"}

    @property
    def out_features(self) -> list[str]:
        return self._values["out_features"]

    @out_features.setter
    def out_features(self, value: Sequence[str]) -> None:
        self._values["out_features"], self._values["out_indices"] = align_out_features(self.stage_names, value, None)

    @property
    def out_indices(self) -> list[int]:
        return self._values["out_indices"]

    @out_indices.setter
    def out_indices(self, value: Sequence[int]) -> None:
        self._values["out_features"], self._values["out_indices"] = align_out_features(self.stage_names, None, value)


class BackboneMixin:
    """For backbone models: ``stage_names``, ``out_features``, ``out_indices``, ``channels``.

    The model sets ``self.num_features`` (channels of every stage, in stage order).
    """

    num_features: list[int]

    @property
    def stage_names(self) -> list[str]:
        return list(self.config.stage_names)

    @property
    def out_features(self) -> list[str]:
        return list(self.config.out_features)

    @out_features.setter
    def out_features(self, value: Sequence[str]) -> None:
        self.config.out_features = value

    @property
    def out_indices(self) -> list[int]:
        return list(self.config.out_indices)

    @out_indices.setter
    def out_indices(self, value: Sequence[int]) -> None:
        self.config.out_indices = value

    @property
    def out_feature_channels(self) -> dict[str, int]:
        return dict(zip(self.stage_names, self.num_features))

    @property
    def channels(self) -> list[int]:
        return [self.out_feature_channels[name] for name in self.out_features]

    def select_stages(self, stage_outputs: Sequence[Any]) -> tuple:
        """Pick the configured stages from one output per stage (in stage order)."""
        return tuple(stage_outputs[self.stage_names.index(name)] for name in self.out_features)


@dataclass(repr=True)
class BackboneOutput(ModelOutput):
    feature_maps: tuple | None = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None

"""The exception hierarchy every public entry point raises.

Each class also derives from the built-in exception a caller would naturally catch
(``FileNotFoundError``, ``ValueError``, ...), so code written against the reference library's
behaviour keeps working, while ``except LeanformersError`` catches everything of ours.
"""

from __future__ import annotations


class LeanformersError(Exception):
    """Base class of every error this library raises on purpose."""


class CheckpointNotFoundError(LeanformersError, FileNotFoundError):
    """A checkpoint folder, hub repository or one of its files could not be found."""


class ConfigError(LeanformersError, ValueError):
    """A configuration file or value is malformed or inconsistent."""


class UnsupportedModelError(LeanformersError, ValueError):
    """The checkpoint names an architecture, task or class this library does not provide."""


class RemoteCodeError(UnsupportedModelError):
    """The checkpoint asks to run its own code, which this library never does."""


class WeightsError(LeanformersError, ValueError):
    """A weights file is unreadable, truncated, unsafe, or does not fit the model."""


class InputError(LeanformersError, ValueError):
    """A call received an argument of the wrong type, shape or value."""


class TokenizerError(LeanformersError, ValueError):
    """A tokenizer could not be built from the files given, or was asked something it cannot do."""


__all__ = [
    "LeanformersError",
    "CheckpointNotFoundError",
    "ConfigError",
    "UnsupportedModelError",
    "RemoteCodeError",
    "WeightsError",
    "InputError",
    "TokenizerError",
]

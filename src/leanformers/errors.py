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


class UnknownNameError(UnsupportedModelError, KeyError):
    """A lookup by name found nothing (an unknown pipeline task, label or registered class name).

    Also a ``KeyError``, as the reference raises for an unknown pipeline task, so both
    ``except KeyError`` and ``except ValueError`` keep working.
    """

    __str__ = Exception.__str__  # KeyError would show the message quoted, as a key


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
    "UnknownNameError",
    "RemoteCodeError",
    "WeightsError",
    "InputError",
    "TokenizerError",
]

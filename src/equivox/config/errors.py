"""The error classes for mistakes in what a user gave (settings, options, files), as opposed to bugs.

``equivox``'s command line prints a :class:`UserError` (and the library's :class:`~equivox.data.DataError`,
``FileNotFoundError`` and ``NotADirectoryError``) as one line with exit code 2; any other exception is an internal
error and keeps its traceback.
"""
from __future__ import annotations

__all__ = ["UserError", "ConfigError"]


class UserError(Exception):
    """A mistake in what the user gave: the message names it and says what to give instead (one line)."""


class ConfigError(UserError, ValueError):
    """A bad setting of :class:`~equivox.config.TrainConfig` (a value out of range, an unknown key, a malformed
    YAML file): the message names the field. A ``ValueError``, so code catching ``ValueError`` keeps working."""

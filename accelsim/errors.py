"""The only exceptions accelsim raises on purpose.

Every user-facing error derives from :class:`AccelsimError`; the CLI turns those into a one-line
message and exit status 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class AccelsimError(Exception):
    """Base class of errors caused by user input (files, options, data)."""


class ConfigError(AccelsimError, ValueError):
    """A configuration file holds a value that is not allowed."""

    def __init__(self, path: Path | str, key: str, expected: str, got: object) -> None:
        super().__init__(f"{path}: {key}: expected {expected}, got {got!r}")
        self.path, self.key, self.expected, self.got = path, key, expected, got


class ModelFormatError(AccelsimError, ValueError):
    """A network description or weight file is corrupt or inconsistent."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


class ShapeError(AccelsimError, ValueError):
    """An array handed to a kernel or a network has the wrong shape or dtype."""


class DatasetError(AccelsimError, FileNotFoundError):
    """A dataset is missing or its files are malformed."""

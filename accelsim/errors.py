"""The only exceptions accelsim raises on purpose.

Every user-facing error derives from :class:`AccelsimError`; the CLI turns those into a one-line
message and exit status 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


def one_line(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped (``\\n``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class AccelsimError(Exception):
    """Base class of errors caused by user input (files, options, data). The message is always
    one line: a key, file name or value that holds a line break shows it escaped.

    An error about a function's argument sets ``parameter`` and writes ``{parameter}`` where
    it names it: the library spells it as the parameter's name (or ``spelled``), the CLI as its
    own flag (``exc.render("--data-dir")``)."""

    parameter: str | None = None

    def __init__(
        self, *args: object, parameter: str | None = None, spelled: str | None = None
    ) -> None:
        if parameter is not None and args and isinstance(args[0], str):
            self.parameter, self.message = parameter, one_line(args[0])
            args = (self.render(spelled or parameter), *args[1:])
        super().__init__(*(one_line(a) if isinstance(a, str) else a for a in args))

    def render(self, name: str) -> str:
        """The message with the parameter spelled ``name``."""
        if self.parameter is None:
            return str(self)
        return self.message.replace("{parameter}", name)


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


class ParameterError(AccelsimError, ValueError):
    """A function was called with an argument it does not take; ``message`` names it as
    ``{parameter}`` (see :class:`AccelsimError`)."""

    def __init__(self, parameter: str, message: str, *, spelled: str | None = None) -> None:
        super().__init__(message, parameter=parameter, spelled=spelled)


def positive_int(parameter: str, value: object) -> int:
    """``value`` when it is an int >= 1, else a :class:`ParameterError` naming ``parameter``."""
    return _int_from(parameter, value, 1)


def seed_int(parameter: str, value: object) -> int:
    """``value`` when it is a usable seed (an int in [0, 2**63 - 1]), else a
    :class:`ParameterError` naming ``parameter``."""
    return _int_from(parameter, value, 0, 2**63 - 1)


def _int_from(parameter: str, value: object, lo: int, hi: int | None = None) -> int:
    bad = isinstance(value, bool) or not isinstance(value, int) or value < lo
    if bad or (hi is not None and value > hi):
        want = f"an int >= {lo}" if hi is None else f"an int in [{lo}, {hi}]"
        raise ParameterError(parameter, f"{{parameter}}: expected {want}, got {value!r}")
    return value

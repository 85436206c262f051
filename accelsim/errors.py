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
    one line: a key, file name or value that holds a line break shows it escaped."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(one_line(a) if isinstance(a, str) else a for a in args))


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
    """A function was called with an argument it does not take.

    ``message`` names the parameter as ``{parameter}``: the library spells it as the
    parameter's name (or ``spelled``), and the CLI renders it as its own flag
    (``exc.render("--workers")``)."""

    def __init__(self, parameter: str, message: str, *, spelled: str | None = None) -> None:
        self.parameter, self.message = parameter, message
        super().__init__(self.render(spelled or parameter))

    def render(self, name: str) -> str:
        return self.message.format(parameter=name)


def positive_int(parameter: str, value: object) -> int:
    """``value`` when it is an int >= 1, else a :class:`ParameterError` naming ``parameter``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParameterError(parameter, f"{{parameter}}: expected an int >= 1, got {value!r}")
    return value

"""Tiny validators that build error messages naming the file, the dotted key, what is allowed
and what was found: ``arch/x.yaml: pe_array.rows: expected an int in [1, 4096], got 0``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from accelsim import files
from accelsim.errors import ConfigError

PRESETS = Path(__file__).resolve().parents[1] / "presets"
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "nothing (missing key)"})()


@dataclass(frozen=True)
class Ctx:
    """Where we are: a file and a key path inside it."""

    path: Path | str
    keys: tuple[str, ...] = ()

    def at(self, key: str | int) -> Ctx:
        return Ctx(self.path, (*self.keys, str(key)))

    @property
    def dotted(self) -> str:
        return ".".join(self.keys) or "<root>"

    def fail(self, expected: str, got: object) -> NoReturn:
        raise ConfigError(self.path, self.dotted, expected, got)


def locate(path: Path | str, kind: str) -> Path:
    """``path`` itself, unless it is a bare name with no such file: then the built-in
    ``presets/KIND/NAME.yaml`` (``kind`` is ``arch`` or ``workloads``)."""
    path = Path(path)
    if path.exists() or path.suffix or len(path.parts) != 1:
        return path
    builtin = PRESETS / kind / f"{path}.yaml"
    if builtin.is_file():
        return builtin
    names = ", ".join(sorted(p.stem for p in (PRESETS / kind).glob("*.yaml")))
    raise ConfigError(path, "<file>", f"a YAML file or a built-in name ({names})", "no such file")


def read_yaml(path: Path) -> Any:
    """``yaml.safe_load`` of a file; unreadable or malformed files are ConfigErrors."""
    if Path(path).exists() and not Path(path).is_file():  # a folder, FIFO or device
        raise ConfigError(path, "<file>", "a readable YAML file", "not a regular file")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, "<file>", "a readable YAML file", exc.strerror or str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            path, "<file>", "a UTF-8 text file", f"byte {exc.start} not UTF-8"
        ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "the file"
        raise ConfigError(path, "<file>", "valid YAML", f"a syntax error at {where}") from exc


def write_yaml(path: Path, doc: Mapping[str, Any]) -> None:
    """Write ``doc`` as block-style YAML that ``read_yaml`` reads back unchanged."""
    files.write_text(path, yaml.safe_dump(dict(doc), sort_keys=False, width=100))


def mapping(raw: Any, ctx: Ctx) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        ctx.fail("a mapping", raw)
    return raw


def only_keys(
    raw: Any, ctx: Ctx, *, required: Iterable[str] = (), optional: Iterable[str] = ()
) -> Mapping[str, Any]:
    """``raw`` as a mapping that has every required key and nothing unknown."""
    raw = mapping(raw, ctx)
    required, optional = tuple(required), tuple(optional)
    allowed = set(required) | set(optional)
    for key in raw:
        if key not in allowed:
            ctx.at(str(key)).fail(
                f"one of the keys {{{', '.join(sorted(allowed))}}}", "an unknown key"
            )
    for key in required:
        if key not in raw:
            ctx.at(key).fail("a value", MISSING)
    return raw


def header(raw: Any, ctx: Ctx, top: str) -> Mapping[str, Any]:
    """Check ``version: 1`` plus exactly one other top-level key ``top``; return its body."""
    raw = only_keys(raw, ctx, required=("version", top))
    if raw["version"] != 1 or isinstance(raw["version"], bool):
        ctx.at("version").fail("1 (the only schema version)", raw["version"])
    return raw[top]


def int_in(
    raw: Mapping[str, Any], key: str, ctx: Ctx, lo: int, hi: int, default: Any = MISSING
) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        ctx.at(key).fail(f"an int in [{lo}, {hi}]", value)
    return value


def float_in(
    raw: Mapping[str, Any],
    key: str,
    ctx: Ctx,
    lo: float,
    hi: float,
    default: Any = MISSING,
    *,
    lo_open: bool = False,
) -> float:
    value = raw.get(key, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > hi or value < lo or (lo_open and value == lo):
        ctx.at(key).fail(f"a number in {'(' if lo_open else '['}{lo}, {hi}]", value)
    return float(value)


def boolean(raw: Mapping[str, Any], key: str, ctx: Ctx, default: Any = MISSING) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        ctx.at(key).fail("true or false", value)
    return value


def string(raw: Mapping[str, Any], key: str, ctx: Ctx, default: Any = MISSING) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value:
        ctx.at(key).fail("a non-empty string", value)
    return value


def one_of(
    raw: Mapping[str, Any], key: str, ctx: Ctx, allowed: Iterable[str], default: Any = MISSING
) -> str:
    allowed = tuple(allowed)
    value = raw.get(key, default)
    if value not in allowed or not isinstance(value, str):
        ctx.at(key).fail(f"one of {{{', '.join(allowed)}}}", value)
    return value


def number_list(
    raw: Mapping[str, Any],
    key: str,
    ctx: Ctx,
    lo: float,
    hi: float,
    default: Any = MISSING,
    *,
    min_len: int = 1,
    integer: bool = False,
) -> tuple[float, ...]:
    value = raw.get(key, default)
    kind = "int" if integer else "number"
    want = f"a list of at least {min_len} {kind}s in [{lo}, {hi}]"
    if not isinstance(value, list | tuple) or len(value) < min_len:
        ctx.at(key).fail(want, value)
    for i, item in enumerate(value):
        ok = isinstance(item, int if integer else int | float) and not isinstance(item, bool)
        if not ok or not math.isfinite(item) or not lo <= item <= hi:
            ctx.at(key).at(i).fail(f"{'an int' if integer else 'a number'} in [{lo}, {hi}]", item)
    return tuple(value)


def string_list(
    raw: Mapping[str, Any], key: str, ctx: Ctx, allowed: Iterable[str], default: Any = MISSING
) -> tuple[str, ...]:
    allowed = tuple(allowed)
    value = raw.get(key, default)
    if not isinstance(value, list | tuple) or not value:
        ctx.at(key).fail(f"a non-empty list of {{{', '.join(allowed)}}}", value)
    for i, item in enumerate(value):
        if item not in allowed:
            ctx.at(key).at(i).fail(f"one of {{{', '.join(allowed)}}}", item)
    if len(set(value)) != len(value):
        ctx.at(key).fail("a list without repeats", value)
    return tuple(value)

"""Hostile inputs for the fuzz tests: mutated documents, damaged files, odd file kinds, and the
one check every target shares (success, or one clean line naming the input; never a traceback,
a hang or a half-written file)."""

from __future__ import annotations

import contextlib
import copy
import math
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from accelsim.errors import AccelsimError

DEFAULT_EXAMPLES, SLOW_EXAMPLES = 50, 1000
HANG_SECONDS = 30  # one example past this is a hang

NUMBERS = st.one_of(
    st.sampled_from([0, 1, -1, 2, 7, 255, 256, 2**15, 2**31 - 1, 2**31, 2**63 - 1, -(2**63),
                     10**30, 0.5, -0.0, 1e-300, 1e300, math.nan, math.inf, -math.inf]),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)  # fmt: skip
SCALARS = st.one_of(
    st.none(), st.booleans(), NUMBERS, st.text(max_size=12),
    st.sampled_from(["", "none", "split", "tmr", "lenet5", "all", "leveugle", "1e3", "-1",
                     "output_stationary", "single_bit", "sample", "test", "../x", "/dev/null"]),
)  # fmt: skip
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=4),
    st.dictionaries(st.text(max_size=8), SCALARS, max_size=3),
)


def fuzz(examples: int) -> Callable:
    """Hypothesis settings of the fuzz tests: deterministic in the default suite, no deadline
    (CI machines are loaded), no example database in the source tree."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=examples <= DEFAULT_EXAMPLES,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                               HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )  # fmt: skip


# every target runs twice: in the default suite (50 examples) and under ``-m slow`` (1,000)
SIZES = [
    pytest.param(DEFAULT_EXAMPLES, id="default"),
    pytest.param(SLOW_EXAMPLES, id="slow", marks=pytest.mark.slow),
]


def _paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _get(node: Any, path: tuple) -> Any:
    for key in path:
        node = node[key]
    return node


def mutate(data: st.DataObject, doc: dict, max_changes: int = 3) -> dict:
    """``doc`` with 1..max_changes of: a value replaced (any type), a key deleted, an unknown
    key added, a list shortened or lengthened, a mapping replaced by a list."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, max_changes), label="changes")):
        paths = list(_paths(doc))
        path = data.draw(st.sampled_from(paths), label="path")
        op = data.draw(st.sampled_from(["replace", "delete", "add", "resize", "retype"]))
        if not path:
            if op == "add":
                doc[data.draw(st.text(max_size=6))] = data.draw(VALUES)
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        node = parent[key]
        if op == "replace":
            parent[key] = data.draw(VALUES, label="value")
        elif op == "delete":
            del parent[key]
        elif op == "add" and isinstance(node, dict):
            node[data.draw(st.text(max_size=8), label="key")] = data.draw(VALUES)
        elif op == "resize" and isinstance(node, list):
            if node and data.draw(st.booleans()):
                node.pop()
            else:
                node.append(copy.deepcopy(node[0]) if node else data.draw(SCALARS))
        elif op == "retype":
            parent[key] = list(node.values()) if isinstance(node, dict) else {"x": node}
    return doc


def dump(doc: Any) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False).encode()


def damage(data: st.DataObject, blob: bytes) -> bytes:
    """The bytes kept, truncated, with bytes flipped, with junk appended, or random."""
    how = data.draw(st.sampled_from(["keep", "truncate", "flip", "append", "random", "empty"]))
    if how == "truncate" and blob:
        return blob[: data.draw(st.integers(0, len(blob) - 1))]
    if how == "flip" and blob:
        out = bytearray(blob)
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(out) - 1))
            out[i] = data.draw(st.integers(0, 255))
        return bytes(out)
    if how == "append":
        return blob + data.draw(st.binary(min_size=1, max_size=64))
    if how == "random":
        return data.draw(st.binary(max_size=512))
    if how == "empty":
        return b""
    return blob


def place(data: st.DataObject, path: Path, blob: bytes, *, kinds: bool = True) -> None:
    """Put ``blob`` at ``path`` as a plain file, or make ``path`` something hostile instead:
    missing, a folder, a FIFO (a read would block), a dangling or looping symlink, unreadable."""
    kind = data.draw(st.sampled_from(
        ["file"] * 6 + (["missing", "folder", "fifo", "dangling", "loop", "unreadable"]
                        if kinds else [])
    ), label="file kind")  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind in ("file", "unreadable"):
        path.write_bytes(blob)
        if kind == "unreadable":
            path.chmod(0)
    elif kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dangling":
        path.symlink_to(path.parent / "nowhere")
    elif kind == "loop":
        path.symlink_to(path)


class HangError(Exception):
    pass


@contextlib.contextmanager
def no_hang(seconds: int = HANG_SECONDS) -> Iterator[None]:
    def alarm(*_: object) -> None:
        raise HangError(f"no answer in {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def clean(call: Callable[[], Any], *names: object) -> Any:
    """``call()``'s result, or None after an AccelsimError whose message is one line naming one
    of ``names`` (the file, key or parameter). Anything else fails the test as it is."""
    with no_hang():
        try:
            return call()
        except AccelsimError as exc:
            message = str(exc)
            assert "\n" not in message, f"a message of several lines: {message!r}"
            assert any(str(n) in message for n in names), (
                f"the message names none of {names}: {message!r}"
            )
            return None


def no_partial_files(folder: Path) -> None:
    """Nothing half-written: no temporary files of accelsim's atomic writes are left."""
    if folder.exists():
        left = [p for p in folder.rglob(".*.tmp") if p.is_file()]
        assert not left, f"partly written files left: {left}"

"""Campaign results streamed into SQLite: one row per fault, committed as batches arrive.

The ``meta`` table holds the campaign's settings (network hash, protection plan, fault model,
sample, images) as JSON; a database written under other settings is refused, so ``--resume``
can only continue the campaign it belongs to. A new database is built under a temporary name
and renamed into place, so no interrupt leaves one without its settings. WAL journaling: a
killed process (Ctrl-C, ``kill -9``) loses at most the batch it was writing, never a committed
one.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from accelsim.errors import AccelsimError, ParameterError
from accelsim.files import atomic_path, remove_leftovers

I64 = npt.NDArray[np.int64]
SCHEMA_VERSION = 1


@dataclass(frozen=True, eq=False)
class FaultRows:
    """Per fault, sorted by id: layer, neuron, copy, bit mask, kind code, images whose class
    changed, images still classified correctly (all int64 arrays)."""

    ids: I64
    layer: I64
    neuron: I64
    copy: I64
    mask: I64
    kind: I64
    n_changed: I64
    n_correct: I64

    def __post_init__(self) -> None:
        for name in _FIELDS:
            getattr(self, name).setflags(write=False)

    def __len__(self) -> int:
        return int(self.ids.size)

    def take(self, rows: npt.ArrayLike) -> FaultRows:
        rows = np.asarray(rows)
        return FaultRows(*(getattr(self, name)[rows] for name in _FIELDS))

    @staticmethod
    def concat(parts: list[FaultRows]) -> FaultRows:
        """The rows of ``parts`` together, sorted by id (none: no rows)."""
        if not parts:
            return FaultRows(*(np.zeros(0, np.int64) for _ in _FIELDS))
        joined = [np.concatenate([getattr(r, name) for r in parts]) for name in _FIELDS]
        order = np.argsort(joined[0], kind="stable")
        return FaultRows(*(a[order] for a in joined))


_FIELDS = ("ids", "layer", "neuron", "copy", "mask", "kind", "n_changed", "n_correct")


def open_store(
    path: Path,
    settings: dict[str, Any],
    *,
    resume: bool,
    on_note: Callable[[str], None] | None = None,
) -> sqlite3.Connection:
    """Open (or create) the campaign database at ``path`` for ``settings``.

    A new database is built under a temporary name (schema and settings in one transaction)
    and renamed into place, so ``path`` never holds a database without its settings. One that
    holds no campaign (an empty file, or tables without settings, as older versions could leave
    when interrupted) is started again with a note through ``on_note``. One written for other
    settings, or not an accelsim database, is refused, as is an existing campaign unless
    ``resume``."""
    path = Path(path)
    note = on_note or _note
    remove_leftovers(path)
    if path.exists():
        state = _inspect(path, settings)
        if state == "complete":
            if not resume:
                raise ParameterError(
                    "resume",
                    f"{path} already holds a campaign; pass {{parameter}} to continue it, or "
                    "remove the file (or choose another output folder) to start again",
                    spelled="resume=True",
                )
            return _connect(path)
        note(f"{path} holds no campaign ({state}; an interrupted creation): starting it again")
        _remove(path)
    _create(path, settings)
    return _connect(path)


def _note(message: str) -> None:
    sys.stderr.write(f"note: {message}\n")


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    return con


def _remove(path: Path) -> None:
    for extra in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{extra}").unlink()


def _create(path: Path, settings: dict[str, Any]) -> None:
    """Schema and settings in one transaction of a temporary database, renamed into place."""
    with atomic_path(path) as tmp:
        con = sqlite3.connect(tmp, isolation_level=None)  # transactions spelled out below
        try:
            con.execute("BEGIN")
            con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            con.execute(
                "CREATE TABLE faults (id INTEGER PRIMARY KEY, layer INTEGER, neuron INTEGER, "
                "copy INTEGER, mask INTEGER, kind INTEGER, n_changed INTEGER, n_correct INTEGER)"
            )
            con.execute(
                "INSERT INTO meta VALUES ('schema', ?), ('settings', ?)",
                (str(SCHEMA_VERSION), json.dumps(settings, sort_keys=True)),
            )
            con.execute("COMMIT")
        finally:
            con.close()


def _inspect(path: Path, settings: dict[str, Any]) -> str:
    """'complete' for a database of this campaign; 'empty file' / 'no tables' / 'no settings'
    for one an interrupt left; raises for anything else."""
    if path.is_dir():
        raise AccelsimError(f"{path}: expected a campaign database file, got a folder")
    if path.stat().st_size == 0:
        return "empty file"
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as err:
        raise AccelsimError(
            f"{path}: not an accelsim campaign database (unreadable: {err})"
        ) from None
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return "no tables"
        if not {"meta", "faults"} <= tables:
            raise AccelsimError(
                f"{path}: not an accelsim campaign database (expected tables meta and faults, "
                f"found {', '.join(sorted(tables))})"
            )
        if con.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise AccelsimError(f"{path}: campaign database damaged (its integrity check fails)")
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        if not meta:
            return "no settings"
        _check_settings(meta, path, settings)
        _check_rows(con, path)
    except (sqlite3.Error, UnicodeDecodeError) as err:  # damaged text: names, settings
        raise AccelsimError(
            f"{path}: not an accelsim campaign database (unreadable: {err})"
        ) from None
    finally:
        con.close()
    return "complete"


def _check_settings(meta: dict[Any, Any], path: Path, settings: dict[str, Any]) -> None:
    if meta.get("schema") != str(SCHEMA_VERSION) or "settings" not in meta:
        raise AccelsimError(f"{path}: not an accelsim campaign database of schema {SCHEMA_VERSION}")
    try:
        stored = json.loads(meta["settings"])
    except (TypeError, ValueError):
        stored = None
    if not isinstance(stored, dict):
        raise AccelsimError(f"{path}: its campaign settings are not a JSON object (corrupt file)")
    wanted = json.loads(json.dumps(settings, sort_keys=True))
    differ = sorted(k for k in stored.keys() | wanted.keys() if stored.get(k) != wanted.get(k))
    if differ:
        detail = "; ".join(f"{k}: stored {stored.get(k)!r}, now {wanted.get(k)!r}" for k in differ)
        raise AccelsimError(
            f"{path} was written for another campaign ({detail}); it cannot be resumed with "
            "these settings: remove it or choose another output folder"
        )


def _check_rows(con: sqlite3.Connection, path: Path) -> None:
    columns = [r[1] for r in con.execute("PRAGMA table_info(faults)")]
    if columns != ["id", *_FIELDS[1:]]:
        raise AccelsimError(
            f"{path}: table faults: expected columns {', '.join(['id', *_FIELDS[1:]])}, "
            f"got {', '.join(map(str, columns))}"
        )
    typed = " OR ".join(f"typeof({c}) != 'integer'" for c in columns)
    bad = con.execute(f"SELECT id FROM faults WHERE {typed} LIMIT 1").fetchone()
    if bad is not None:
        raise AccelsimError(
            f"{path}: table faults: expected integers, got a row that is not ({bad[0]!r})"
        )


def database_path(con: sqlite3.Connection) -> str:
    """The file behind ``con``, for error messages."""
    try:
        return con.execute("PRAGMA database_list").fetchone()[2] or "the campaign database"
    except sqlite3.Error:
        return "the campaign database"


@contextlib.contextmanager
def _damaged(con: sqlite3.Connection):
    """SQLite errors of a database damaged after it was opened, as one clean line."""
    try:
        yield
    except (sqlite3.DatabaseError, UnicodeDecodeError) as err:
        raise AccelsimError(f"{database_path(con)}: campaign database damaged ({err})") from None


def done_ids(con: sqlite3.Connection) -> set[int]:
    with _damaged(con):
        return {row[0] for row in con.execute("SELECT id FROM faults")}


def write_rows(con: sqlite3.Connection, rows: FaultRows) -> None:
    """Insert one batch in one transaction."""
    columns = [getattr(rows, name).tolist() for name in _FIELDS]
    with _damaged(con), con:
        con.executemany(
            f"INSERT INTO faults VALUES ({', '.join('?' * len(_FIELDS))})",
            zip(*columns, strict=True),
        )


def read_rows(con: sqlite3.Connection) -> FaultRows:
    with _damaged(con):
        data = con.execute("SELECT * FROM faults ORDER BY id").fetchall()
    try:
        arr = np.array(data, np.int64).reshape(-1, len(_FIELDS))
    except (TypeError, ValueError, OverflowError):
        raise AccelsimError(
            f"{database_path(con)}: campaign database damaged (rows that are not integers)"
        ) from None
    return FaultRows(*(np.ascontiguousarray(arr[:, i]) for i in range(len(_FIELDS))))

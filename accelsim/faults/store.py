"""Campaign results streamed into SQLite: one row per fault, committed as batches arrive.

The ``meta`` table holds the campaign's settings (network hash, protection plan, fault model,
sample, images) as JSON; a database written under other settings is refused, so ``--resume``
can only continue the campaign it belongs to. WAL journaling: a killed process (Ctrl-C,
``kill -9``) loses at most the batch it was writing, never a committed one.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from accelsim.errors import AccelsimError

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


_FIELDS = ("ids", "layer", "neuron", "copy", "mask", "kind", "n_changed", "n_correct")


def open_store(path: Path, settings: dict[str, Any], *, resume: bool) -> sqlite3.Connection:
    """Open (or create) the campaign database at ``path`` for ``settings``."""
    exists = path.exists()
    if exists and not resume:
        raise AccelsimError(
            f"{path} already holds a campaign; pass --resume to continue it, or remove the "
            "file (or choose another --output-dir) to start again"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    if exists and _no_tables(con):  # a creation interrupted (Ctrl-C) before its tables: new
        exists = False
    if exists:
        try:
            _check_settings(con, path, settings)
        except AccelsimError:
            con.close()
            raise
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    if exists:
        return con
    with con:
        con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        con.execute(
            "CREATE TABLE faults (id INTEGER PRIMARY KEY, layer INTEGER, neuron INTEGER, "
            "copy INTEGER, mask INTEGER, kind INTEGER, n_changed INTEGER, n_correct INTEGER)"
        )
        con.execute(
            "INSERT INTO meta VALUES ('schema', ?), ('settings', ?)",
            (str(SCHEMA_VERSION), json.dumps(settings, sort_keys=True)),
        )
    return con


def _no_tables(con: sqlite3.Connection) -> bool:
    try:
        return con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    except sqlite3.DatabaseError:  # not SQLite at all: _check_settings says so
        return False


def _check_settings(con: sqlite3.Connection, path: Path, settings: dict[str, Any]) -> None:
    try:
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as err:
        raise AccelsimError(f"{path} is not an accelsim campaign database ({err})") from None
    if meta.get("schema") != str(SCHEMA_VERSION) or "settings" not in meta:
        raise AccelsimError(f"{path}: not an accelsim campaign database of schema {SCHEMA_VERSION}")
    stored = json.loads(meta["settings"])
    wanted = json.loads(json.dumps(settings, sort_keys=True))
    differ = sorted(k for k in stored.keys() | wanted.keys() if stored.get(k) != wanted.get(k))
    if differ:
        detail = "; ".join(f"{k}: stored {stored.get(k)!r}, now {wanted.get(k)!r}" for k in differ)
        raise AccelsimError(
            f"{path} was written for another campaign ({detail}); it cannot be resumed with "
            "these settings: remove it or choose another --output-dir"
        )


def done_ids(con: sqlite3.Connection) -> set[int]:
    return {row[0] for row in con.execute("SELECT id FROM faults")}


def write_rows(con: sqlite3.Connection, rows: FaultRows) -> None:
    """Insert one batch in one transaction."""
    columns = [getattr(rows, name).tolist() for name in _FIELDS]
    with con:
        con.executemany(
            f"INSERT INTO faults VALUES ({', '.join('?' * len(_FIELDS))})",
            zip(*columns, strict=True),
        )


def read_rows(con: sqlite3.Connection) -> FaultRows:
    data = con.execute("SELECT * FROM faults ORDER BY id").fetchall()
    arr = np.array(data, np.int64).reshape(-1, len(_FIELDS))
    return FaultRows(*(np.ascontiguousarray(arr[:, i]) for i in range(len(_FIELDS))))

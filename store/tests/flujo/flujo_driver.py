"""Drives the real flujo 0.4.35 `SQLiteBackend` for store/tests/flujo_compat.rs.

Usage (run with a Python that has flujo 0.4.35 and sqlvalidator installed):

    python flujo_driver.py check
    python flujo_driver.py write DB_PATH  < runs.json
    python flujo_driver.py inspect DB_PATH

`write` reads a JSON list of `{"run_id": ..., "state": {...}}` from stdin and calls flujo's
`save_state(run_id, state)` for each, in order. `created_at` / `updated_at` are ISO strings turned into
`datetime` objects with `datetime.fromisoformat`, so a naive spelling stays naive and an offset stays aware
(flujo then stores `isoformat()` of that value, exactly as a flujo application would).

`inspect` lets flujo open the file and report what it sees: `list_workflows()` (unbounded),
`get_workflow_stats()`, `get_failed_workflows()`, and `load_state` of every listed run, then runs
`PRAGMA integrity_check` and counts the rows with Python's sqlite3. Datetimes come back
as `{"iso": dt.isoformat(), "epoch_us": <microseconds since the epoch, naive read as UTC>, "aware": bool}`.
A `load_state` that raises is reported per run as `{"error": "Type: message"}` rather than aborting.

Every command also reports whether flujo renamed the database aside (`corrupt_files`: the `*.corrupt.*`
files in the directory; `same_inode`: whether the path still names the same file afterwards).

The result is one JSON document on stdout. flujo's logger writes INFO lines to stdout; they are moved to
stderr (WARNING and above only) so stdout stays parseable. Any unexpected failure exits non-zero with the
traceback on stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _quiet_flujo_logger() -> None:
    logger = logging.getLogger("flujo")
    logger.setLevel(logging.WARNING)
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)


def _import_flujo() -> Any:
    import flujo  # noqa: F401  (fails loudly when flujo or sqlvalidator is missing)
    from flujo.state import SQLiteBackend

    _quiet_flujo_logger()
    return SQLiteBackend


def _dt_out(value: Any) -> Any:
    if not isinstance(value, datetime):
        return {"not_a_datetime": repr(value)}
    aware = value.tzinfo is not None and value.utcoffset() is not None
    as_utc = value if aware else value.replace(tzinfo=timezone.utc)
    return {
        "iso": value.isoformat(),
        "epoch_us": (as_utc - EPOCH) // timedelta(microseconds=1),
        "aware": aware,
    }


def _dt_in(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _plain(value: Any) -> Any:
    """A strict-JSON copy: objects flujo hands back (datetimes, ...) become their repr, and non-finite floats
    (which strict JSON cannot hold) become `{"non_finite_float": "nan"}`."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"non_finite_float": repr(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def _corrupt_files(db: Path) -> List[str]:
    return sorted(p.name for p in db.parent.iterdir() if ".corrupt." in p.name)


def _inode(db: Path) -> Any:
    try:
        return os.stat(db).st_ino
    except FileNotFoundError:
        return None


def _sqlite_facts(db: Path) -> Dict[str, Any]:
    """What Python's own sqlite3 (the library flujo uses) says about the file after flujo used it."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return {
            "integrity_check": [row[0] for row in conn.execute("PRAGMA integrity_check")],
            "row_count": conn.execute("SELECT count(*) FROM workflow_state").fetchone()[0],
        }
    finally:
        conn.close()


async def _write(backend_cls: Any, db: Path) -> Dict[str, Any]:
    runs = json.load(sys.stdin)
    before = _inode(db)
    backend = backend_cls(db)
    for run in runs:
        state = dict(run["state"])
        for key in ("created_at", "updated_at"):
            if key in state:
                state[key] = _dt_in(state[key])
        await backend.save_state(run["run_id"], state)
    await backend.close()
    return {
        "written": len(runs),
        "corrupt_files": _corrupt_files(db),
        "existed_before": before is not None,
        "same_inode": before is None or before == _inode(db),
    }


async def _inspect(backend_cls: Any, db: Path) -> Dict[str, Any]:
    before = _inode(db)
    backend = backend_cls(db)
    listed = await backend.list_workflows()
    stats = await backend.get_workflow_stats()
    failed = await backend.get_failed_workflows(hours_back=24 * 365 * 50)
    states: Dict[str, Any] = {}
    for row in listed:
        run_id = row["run_id"]
        try:
            state = await backend.load_state(run_id)
        except Exception as exc:  # reported, asserted on by the Rust test
            states[run_id] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        if state is None:
            states[run_id] = None
            continue
        out = {k: _plain(v) for k, v in state.items() if k not in ("created_at", "updated_at")}
        out["created_at"] = _dt_out(state["created_at"])
        out["updated_at"] = _dt_out(state["updated_at"])
        states[run_id] = out
    await backend.close()
    return {
        **_sqlite_facts(db),
        "list_run_ids": [row["run_id"] for row in listed],
        "list": _plain(listed),
        "stats": _plain(stats),
        "failed_run_ids": [row["run_id"] for row in failed],
        "states": states,
        "corrupt_files": _corrupt_files(db),
        "existed_before": before is not None,
        "same_inode": before is not None and before == _inode(db),
    }


def main(argv: List[str]) -> int:
    if len(argv) < 2 or argv[1] not in ("check", "write", "inspect"):
        print(__doc__, file=sys.stderr)
        return 2
    backend_cls = _import_flujo()
    command = argv[1]
    if command == "check":
        import sqlite3
        from importlib.metadata import version

        result: Dict[str, Any] = {
            "flujo": version("flujo"),
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
        }
    else:
        if len(argv) != 3:
            print(__doc__, file=sys.stderr)
            return 2
        db = Path(argv[2])
        if command == "write":
            result = asyncio.run(_write(backend_cls, db))
        else:
            result = asyncio.run(_inspect(backend_cls, db))
    sys.stdout.write(json.dumps(result, ensure_ascii=False, allow_nan=False))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

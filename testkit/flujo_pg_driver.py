"""Drives the real flujo 0.6.11 `PostgresBackend` for flowstate's tests (testkit/src/flujo_pg.rs).

    python flujo_pg_driver.py DSN

Run with the Python of the flujo[postgres] 0.6.11 venv (`scripts/prereqs.sh flujo-pg`: .venv-flujo-pg). One
long-lived process per database: it reads one JSON request per line on stdin and answers one JSON line on stdout,
`{"ok": true, "result": ...}` or `{"ok": false, "error": "Type: message"}`. The first line it writes, before any
request, says it is ready: `{"ok": true, "result": {"flujo": "0.6.11", "python": "3.13.0"}}`.

Before flujo's first use of the database the driver creates `flujo_schema_versions` as flujo does (when missing)
and marks versions 3 and 5 applied: those migrations need the pgvector extension, which Debian's PostgreSQL lacks,
and do not touch `workflow_state`. flujo then creates and migrates everything else itself on first use.

Requests (`cmd` and its arguments), each calling the flujo method of the same name:

    {"cmd": "save_state", "run_id": "r1", "state": {...}}       -> null
    {"cmd": "load_state", "run_id": "r1"}                        -> the state, or null
    {"cmd": "delete_state", "run_id": "r1"}                      -> null
    {"cmd": "get_workflow_stats"}                                -> flujo's dict
    {"cmd": "list_workflows", "status": null, "pipeline_id": null, "limit": null, "offset": 0} -> [rows]
    {"cmd": "get_failed_workflows", "hours_back": 24}            -> [rows]
    {"cmd": "cleanup_old_workflows", "days_old": 30}             -> the count flujo reports
    {"cmd": "shutdown"}                                          -> null, then the process exits

`state` is what flujo's save_state takes: pipeline_id, pipeline_name, pipeline_version, current_step_index
(required); pipeline_context, last_step_output, step_history, metadata (any JSON); status (default "running"),
created_at and updated_at (ISO strings, which flujo parses with datetime.fromisoformat; default now), total_steps
(default 0), error_message, execution_time_ms, memory_usage_mb, is_background_task (default false),
parent_run_id, task_id, background_error. It is passed to flujo as it is.

Values come back exactly as flujo returns them, made JSON: datetimes as `isoformat()` strings (asyncpg gives
aware UTC values: `2026-12-06T09:00:00.123456+00:00`); JSON columns flujo hands back as JSON *text* (asyncpg's
default for jsonb) parsed into values, so a column holds the same value whichever way flujo returned it;
`Decimal`s (AVG) as numbers; non-finite floats (a REAL column may hold NaN) as `{"non_finite_float": "nan"}`.

stdout carries only the answers: anything else written to it (flujo's logs, prints) goes to stderr.
"""

from __future__ import annotations

import asyncio
import decimal
import json
import logging
import math
import os
import sys
import warnings
from datetime import date, datetime
from typing import Any, Dict

# The columns flujo stores as JSONB; load_state/list_workflows may return them as JSON text.
JSON_COLUMNS = ("pipeline_context", "last_step_output", "step_history", "metadata")
# flujo's own advisory lock key for its migrations (flujo/state/backends/postgres.py: MIGRATION_LOCK_KEY).
FLUJO_MIGRATION_LOCK = 0xF1F0C0DE
# Migrations that need pgvector.
PGVECTOR_MIGRATIONS = (3, 5)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"non_finite_float": repr(value)}
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return {"repr": repr(value)}


def _row(row: Any) -> Any:
    if not isinstance(row, dict):
        return _plain(row)
    out = dict(row)
    for column in JSON_COLUMNS:
        if isinstance(out.get(column), str):
            # asyncpg hands jsonb over as its text, and flujo passes that on unparsed: the text is JSON.
            out[column] = json.loads(out[column])
    return _plain(out)


async def _prepare(dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", FLUJO_MIGRATION_LOCK)
            # flujo's own definition (its base schema creates it the same way, IF NOT EXISTS).
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS flujo_schema_versions ("
                " version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW())"
            )
            await conn.executemany(
                "INSERT INTO flujo_schema_versions (version) VALUES ($1) ON CONFLICT DO NOTHING",
                [(v,) for v in PGVECTOR_MIGRATIONS],
            )
    finally:
        await conn.close()


async def _handle(backend: Any, req: Dict[str, Any]) -> Any:
    cmd = req.get("cmd")
    if cmd == "save_state":
        await backend.save_state(req["run_id"], req["state"])
        return None
    if cmd == "load_state":
        return _row(await backend.load_state(req["run_id"]))
    if cmd == "delete_state":
        await backend.delete_state(req["run_id"])
        return None
    if cmd == "get_workflow_stats":
        return _plain(await backend.get_workflow_stats())
    if cmd == "list_workflows":
        rows = await backend.list_workflows(
            status=req.get("status"),
            pipeline_id=req.get("pipeline_id"),
            limit=req.get("limit"),
            offset=req.get("offset") or 0,
        )
        return [_row(r) for r in rows]
    if cmd == "get_failed_workflows":
        return [_row(r) for r in await backend.get_failed_workflows(hours_back=req.get("hours_back", 24))]
    if cmd == "cleanup_old_workflows":
        return await backend.cleanup_old_workflows(days_old=req.get("days_old", 30))
    raise ValueError(f"unknown cmd {cmd!r}")


async def _main(dsn: str, out: Any) -> None:
    def answer(doc: Dict[str, Any]) -> None:
        out.write(json.dumps(doc, allow_nan=False) + "\n")
        out.flush()

    warnings.filterwarnings("ignore")
    import importlib.metadata

    from flujo.state.backends.postgres import PostgresBackend

    logging.getLogger("flujo").setLevel(logging.WARNING)
    await _prepare(dsn)
    backend = PostgresBackend(dsn)
    answer(
        {
            "ok": True,
            "result": {
                "flujo": importlib.metadata.version("flujo"),
                "python": ".".join(map(str, sys.version_info[:3])),
            },
        }
    )
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            if not line.strip():
                continue
            try:
                req = json.loads(line)
                if req.get("cmd") == "shutdown":
                    answer({"ok": True, "result": None})
                    break
                answer({"ok": True, "result": await _handle(backend, req)})
            except Exception as exc:  # reported to the caller, which decides
                answer({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        await backend.shutdown()


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: flujo_pg_driver.py DSN")
    # The answers go to the real stdout; fd 1 then points at stderr, so nothing else can reach the answers.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    asyncio.run(_main(sys.argv[1], out))


if __name__ == "__main__":
    main()

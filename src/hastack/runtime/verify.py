"""Verifying a backup (`hastack verify-backup`, `up`): prove that a backup restores and that
what it restores is sound.

pgBackRest checks every file of the repository against its checksum (`pgbackrest verify`);
the set is restored into the scratch instance at exactly its end (`--type=immediate`),
started, checked with `pg_amcheck --heapallindexed` (every table, every B-tree index, each
heap tuple found in each index) and its rows counted. The counts are recorded in the
repository with the result (`pgbackrest annotate`), and a later verification of the same set
must find the same counts: a repository that changed under a backup is caught.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from hastack.errors import HastackError
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.scratch import ScratchBusy
from hastack.runtime.stack import Stack

COUNT_SQL = """
SELECT n.nspname || '.' || c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1
"""


@dataclass
class VerifyResult:
    label: str
    type: str
    ok: bool = False
    problems: list[str] = field(default_factory=list)
    repository_checked: bool = False
    restore_s: float | None = None
    amcheck_s: float | None = None
    count_s: float | None = None
    total_s: float | None = None
    tables: int | None = None
    rows: int | None = None
    rows_recorded_before: int | None = None
    verified_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _count_rows(stack: Stack) -> tuple[int, int]:
    """(tables, rows) over every user table of every database of the scratch instance."""
    scratch = stack.scratch()
    with scratch.connect("postgres") as conn:
        databases = [
            str(r[0])
            for r in conn.execute(
                "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate"
            )
        ]
    tables = rows = 0
    for db in databases:
        with scratch.connect(db) as conn:
            for (name,) in conn.execute(COUNT_SQL).fetchall():
                schema, table = str(name).split(".", 1)
                row = conn.execute(
                    f'SELECT count(*) FROM "{schema}"."{table}"'  # names from the catalog
                ).fetchone()
                tables += 1
                rows += int(str(row[0])) if row else 0
    return tables, rows


def verify_backup(
    stack: Stack, label: str | None = None, progress: Progress | None = None
) -> VerifyResult:
    progress = progress or NullProgress()
    tool = stack.pgbackrest()
    info = tool.info()
    chosen = next((b for b in info.backups if b.label == label), None) if label else info.last()
    if chosen is None:
        known = ", ".join(b.label for b in info.backups) or "none"
        raise HastackError(
            f"no backup {label!r} in the repository" if label else "the repository has no backup",
            f"hastack backups (sets: {known})" if label else "hastack backup",
        )
    result = VerifyResult(label=chosen.label, type=chosen.type)
    scratch = stack.scratch()
    scratch.on_wait = progress.step
    scratch.wait_until_free()
    t0 = time.monotonic()
    progress.step("pgbackrest verify: every file of the repository against its checksum")
    try:
        findings = tool.verify()
    except HastackError as exc:
        findings = [exc.what]
    result.repository_checked = not findings
    result.problems += [f"pgbackrest verify: {f}" for f in findings]
    progress.step(f"restoring {chosen.label} into the scratch instance")
    try:
        restored = scratch.restore("immediate", None, f"backup {chosen.label}", chosen.label, True)
        result.restore_s = restored.total_s
        progress.step("pg_amcheck --heapallindexed on every database")
        t1 = time.monotonic()
        amcheck = scratch.amcheck()
        result.amcheck_s = round(time.monotonic() - t1, 2)
        if not amcheck.ok:
            result.problems.append(f"pg_amcheck: {amcheck.tail(6)}")
        t2 = time.monotonic()
        result.tables, result.rows = _count_rows(stack)
        result.count_s = round(time.monotonic() - t2, 2)
    except ScratchBusy:
        raise  # taken meanwhile: no verdict on this backup, nothing recorded
    except HastackError as exc:
        result.problems.append(exc.what)
    finally:
        scratch.cleanup(only_mine=True)
    recorded = chosen.annotations.get("rows")
    if recorded is not None and result.rows is not None:
        result.rows_recorded_before = int(recorded)
        if result.rows_recorded_before != result.rows:
            result.problems.append(
                f"{result.rows} rows restored, but {recorded} when this set was verified before"
            )
    result.ok = not result.problems and result.rows is not None
    result.total_s = round(time.monotonic() - t0, 2)
    _record(stack, result)
    return result


def _record(stack: Stack, result: VerifyResult) -> None:
    """The result, in the repository itself (`pgbackrest annotate`)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    notes = {"verify": "amcheck-ok" if result.ok else "failed", "verify_attempted_at": now}
    if result.ok:
        result.verified_at = now
        notes.update(verified_at=now, rows=str(result.rows), tables=str(result.tables))
    options = [f"--set={result.label}", *(f"--annotation={k}={v}" for k, v in notes.items())]
    annotated = stack.pgbackrest().run("annotate", *options, timeout_s=120)
    if not annotated.ok:
        result.problems.append(f"pgbackrest annotate: {annotated.tail(3)}")
        result.ok = False

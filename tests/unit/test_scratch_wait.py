"""A restore into the scratch instance waits for a verification holding it (the scheduler's
after each full backup), never for anything else."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from hastack.runtime import backup_scheduler
from hastack.runtime.scratch import Scratch, ScratchBusy
from hastack.spec import StackSpec, derive_plan


def _scratch(tmp_path: Path, marker: dict[str, object] | None) -> Scratch:
    plan = derive_plan(StackSpec(state_dir=tmp_path / "stack"))
    path = plan.paths.scratch_marker
    path.parent.mkdir(parents=True)
    if marker is not None:
        path.write_text(json.dumps(marker))
    return Scratch(plan)


def test_a_restore_waits_for_a_verification_to_give_the_instance_back(tmp_path: Path) -> None:
    scratch = _scratch(
        tmp_path, {"target": "backup X", "created_at": time.time(), "temporary": True}
    )
    said: list[str] = []
    scratch.on_wait = said.append
    done = threading.Timer(1.0, scratch.plan.paths.scratch_marker.unlink)
    done.start()
    t0 = time.monotonic()
    scratch.wait_for_a_verification()
    assert time.monotonic() - t0 >= 0.9
    assert said == ["waiting for the scratch instance: backup X in progress"]


def test_no_wait_for_an_operators_restore_or_a_stale_claim(tmp_path: Path) -> None:
    for marker in (
        {"target": "a restore", "created_at": time.time(), "temporary": False},
        {"target": "backup X", "created_at": time.time() - 3600, "temporary": True},
        None,
    ):
        scratch = _scratch(tmp_path / str(id(marker)), marker)
        t0 = time.monotonic()
        scratch.wait_for_a_verification()
        assert time.monotonic() - t0 < 0.5


def test_a_busy_scratch_instance_postpones_the_schedulers_verification(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Someone's restore holding the scratch instance is no verdict on the backup: the
    scheduler records nothing (status shows no failed verification) and tries again."""

    def busy(_stack: object, _label: str) -> None:
        raise ScratchBusy("a scratch instance already exists (/x)")

    monkeypatch.setattr(backup_scheduler, "verify_backup", busy)
    state = backup_scheduler.SchedulerState()
    backup_scheduler._verify(None, "20261128-053538F", state)  # type: ignore[arg-type]
    assert state.last_verify_ok is None and state.last_verify_label is None

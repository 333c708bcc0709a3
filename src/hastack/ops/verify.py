"""`hastack verify-backup`: restore a backup into the scratch instance and check it
(runtime/verify.py does the work; `up` and the backup verifier use it too)."""

from __future__ import annotations

from hastack.ops.backup import require_backups
from hastack.runtime.progress import Progress
from hastack.runtime.stack import Stack
from hastack.runtime.verify import VerifyResult
from hastack.runtime.verify import verify_backup as _verify

__all__ = ["VerifyResult", "verify_backup"]


def verify_backup(
    stack: Stack, label: str | None = None, progress: Progress | None = None
) -> VerifyResult:
    require_backups(stack)
    return _verify(stack, label, progress)

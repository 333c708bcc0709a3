"""Atomic, owned writes: a reader never sees a half-written file."""

from __future__ import annotations

import os
import pwd
import tempfile
from pathlib import Path


def uid_gid(user: str) -> tuple[int, int]:
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def ensure_dir(path: Path, owner: str = "root", mode: int = 0o755) -> None:
    """Create `path` (not its parents) if missing, then set owner and mode."""
    path.mkdir(mode=mode, exist_ok=True)
    uid, gid = uid_gid(owner)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def write_atomic(path: Path, content: str, owner: str = "root", mode: int = 0o600) -> bool:
    """Write `content` to `path` through a temp file + rename. False if it was already equal
    (and owned as asked), so callers know whether a reload is due."""
    uid, gid = uid_gid(owner)
    try:
        st = path.stat()
        if (
            path.read_text(encoding="utf-8") == content
            and (st.st_uid, st.st_gid) == (uid, gid)
            and st.st_mode & 0o7777 == mode
        ):
            return False
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True

"""Atomic, owned writes that a local user cannot redirect.

Root creates and chowns files inside directories that service users own (a node's directory
belongs to its user). There, a user can replace any name with a symlink between our check and
our use, so nothing here acts on a path below such a directory: every file and directory is
opened through the descriptor of its parent, with `O_NOFOLLOW`, and changed through its own
descriptor (`fchown`, `fchmod`). Root follows a symlink only inside a directory that only root
can write (then root itself put it there)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pwd
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hastack.errors import HastackError


class UnsafePath(HastackError):
    """A path root was about to use leads through something another user controls."""


def uid_gid(user: str) -> tuple[int, int]:
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def only_root_writes(st: os.stat_result) -> bool:
    """A directory whose entries nobody but root can add, remove or rename."""
    return st.st_uid == 0 and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _nofollow_unless_trusted(dir_fd: int) -> int:
    return 0 if only_root_writes(os.fstat(dir_fd)) else os.O_NOFOLLOW


def _refused(path: Path, exc: OSError) -> UnsafePath:
    return UnsafePath(
        f"refusing to use {path}: it is a symlink (or leads through one) in a directory "
        f"that a non-root user can write ({exc.strerror})",
        "remove the symlink; a service user may be trying to make root write elsewhere",
    )


@contextlib.contextmanager
def parent_fd(path: Path) -> Iterator[int]:
    """A descriptor of `path`'s parent directory, reached from `/` without following a
    symlink anywhere below a directory another user can write."""
    path = Path(os.path.abspath(path))
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in path.parent.parts[1:]:
            flags = os.O_RDONLY | os.O_DIRECTORY | _nofollow_unless_trusted(fd)
            try:
                nxt = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _refused(path, exc) from None
                raise
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


def _open_in(dir_fd: int, name: str, flags: int, path: Path, mode: int = 0o600) -> int:
    try:
        return os.open(name, flags | _nofollow_unless_trusted(dir_fd), mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _refused(path, exc) from None
        raise


def ensure_dir(path: Path, owner: str = "root", mode: int = 0o755) -> None:
    """Create `path` (not its parents) if missing, then set owner and mode through its own
    descriptor."""
    uid, gid = uid_gid(owner)
    with parent_fd(path) as parent:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path.name, mode, dir_fd=parent)
        fd = _open_in(parent, path.name, os.O_RDONLY | os.O_DIRECTORY, path)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)


def open_nofollow(path: Path, flags: int) -> int:
    """A descriptor of `path`, reached without following a symlink that another user could
    have planted (see the module's docstring)."""
    with parent_fd(path) as parent:
        return _open_in(parent, path.name, flags, path)


def open_regular(path: Path) -> int | None:
    """A read-only descriptor of `path`, reached as `open_nofollow` does, if it is a regular
    file; None if something else is there (a FIFO would block the reader forever)."""
    fd = open_nofollow(path, os.O_RDONLY | os.O_NONBLOCK)
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return fd
    os.close(fd)
    return None


def read_regular(path: Path, limit_bytes: int = -1) -> bytes | None:
    """The bytes of `path` (at most `limit_bytes`), reached as `open_regular` does: for files
    another user writes (a node's certificate, the backup scheduler's state). None when it
    is missing or not a regular file."""
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        return None
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit_bytes)


def read_json_object(path: Path, limit_bytes: int = 65536) -> dict[str, Any] | None:
    """A JSON object from a file another user writes (read as `read_regular` does); None
    when it is missing, not a regular file, not JSON or not an object."""
    raw = read_regular(path, limit_bytes)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def count_in_file(path: Path, text: str) -> int:
    """How often `text` occurs in a file (a log line that marks an event); 0 when the file
    is missing."""
    raw = read_regular(path)
    return 0 if raw is None else raw.decode(errors="replace").count(text)


def write_atomic(path: Path, content: str, owner: str = "root", mode: int = 0o600) -> bool:
    """Write `content` to `path` through a temp file + rename. False if it was already equal
    (and owned as asked), so callers know whether a reload is due."""
    uid, gid = uid_gid(owner)
    data = content.encode("utf-8")
    with parent_fd(path) as parent:
        if _same_file(parent, path, data, uid, gid, mode):
            return False
        tmp = f".{path.name}.{secrets.token_hex(6)}"
        fd = _open_in(parent, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, path, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
                os.fchown(handle.fileno(), uid, gid)
                os.fchmod(handle.fileno(), mode)
            os.replace(tmp, path.name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=parent)
            raise
    return True


def _same_file(parent: int, path: Path, data: bytes, uid: int, gid: int, mode: int) -> bool:
    try:
        fd = _open_in(parent, path.name, os.O_RDONLY | os.O_NONBLOCK, path)
    except (FileNotFoundError, UnsafePath):
        return False  # missing, or a symlink: the rename below replaces the link itself
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            return False
        return (
            (st.st_uid, st.st_gid) == (uid, gid)
            and st.st_mode & 0o7777 == mode
            and handle.read(len(data) + 1) == data
        )

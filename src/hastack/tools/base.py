"""Running external programs: argv in, a typed result with its context out."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hastack.errors import HastackError
from hastack.namespaces import in_network_namespace


@dataclass(frozen=True)
class ToolResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 15) -> str:
        """The last lines of stderr (or stdout when stderr is empty), for error messages."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return "\n".join(text[-lines:])


class ToolError(HastackError):
    """An external program failed; carries the command, exit code and the tail of its output
    (in the details, so the user sees what the program said)."""

    def __init__(self, what: str, result: ToolResult | None = None, hint: str = "") -> None:
        self.result = result
        details = []
        if result is not None:
            details.append(f"command: {' '.join(result.argv)} (exit {result.returncode})")
            tail = result.tail()
            if tail:
                details += ["output:", *("    " + ln for ln in tail.splitlines())]
        super().__init__(what, hint, details)


def primary_gid(user: str | None) -> int | None:
    """The user's own group: a program run as another user keeps none of root's groups."""
    if user is None:
        return None
    try:
        return pwd.getpwnam(user).pw_gid
    except KeyError:
        raise HastackError(
            f"system user {user} does not exist", "run `hastack up` (it creates the users)"
        ) from None


def as_user(user: str | None) -> dict[str, Any]:
    """`subprocess` arguments that drop to `user` with its own group and no other (root's
    supplementary groups are not inherited); nothing when `user` is None."""
    if user is None or _is_me(user):
        return {}
    return {"user": user, "group": primary_gid(user), "extra_groups": []}


def _is_me(user: str) -> bool:
    """A program of the stack already running as `user` (the backup scheduler) runs others
    as itself: dropping groups needs root."""
    try:
        return pwd.getpwnam(user).pw_uid == os.geteuid() != 0
    except KeyError:
        return False


def _already_in(netns: str) -> bool:
    """This process runs in that network namespace already (the backup scheduler, a program
    of the repository's host, verifying a backup): nsenter, which needs root, is not needed."""
    try:
        mine, theirs = os.stat("/proc/self/ns/net"), os.stat(netns)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def run(
    argv: Sequence[str],
    *,
    timeout_s: float = 60.0,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    user: str | None = None,
    netns: str | None = None,
) -> ToolResult:
    """Run a program to completion (as `user` if given, with that user's own group and no
    other: never root's group), inside the network namespace `netns` (its /run/netns path)
    if given. Never raises for a non-zero exit; check `.ok`."""
    full_env = {**os.environ, **(env or {})}
    if netns is not None and not _already_in(netns):
        argv, user = in_network_namespace(netns, user, argv), None
    start = time.monotonic()
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            # A program may print bytes that are not UTF-8 (pgBackRest quotes a file that
            # decrypted to garbage): replaced, never a crash.
            errors="replace",
            timeout=timeout_s,
            env=full_env,
            input=input_text,
            check=False,
            **as_user(user),
        )
    except FileNotFoundError:
        return ToolResult(tuple(argv), 127, "", f"{argv[0]}: not found", 0.0)
    except subprocess.TimeoutExpired as exc:
        return timed_out(argv, timeout_s, exc.stdout, exc.stderr, timeout_s)
    return ToolResult(
        tuple(argv), proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start
    )


def timed_out(
    argv: Sequence[str],
    timeout_s: float,
    out: str | bytes | None,
    err: str | bytes | None,
    took_s: float,
) -> ToolResult:
    """The result of a command killed at its timeout: exit 124 (timeout(1)'s), with what it
    printed until then and the reason on stderr."""

    def text(stream: str | bytes | None) -> str:
        return stream.decode(errors="replace") if isinstance(stream, bytes) else (stream or "")

    return ToolResult(
        tuple(argv), 124, text(out), text(err) + f"\ntimed out after {timeout_s:.0f} s", took_s
    )


def run_session(
    argv: Sequence[str], *, timeout_s: float, env: Mapping[str, str] | None = None
) -> ToolResult:
    """Run a command someone else wrote (the operator's fence command: a shell line that
    may start a cloud CLI, ssh, ipmitool) in a session of its own, to completion. At the
    timeout the whole process group is killed, not only the shell, so nothing it started
    lingers or keeps its output pipes open (exit 124)."""
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    except FileNotFoundError:
        return ToolResult(tuple(argv), 127, "", f"{argv[0]}: not found", 0.0)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        try:
            out, err = proc.communicate(timeout=5.0)
        except subprocess.TimeoutExpired:  # a child left the group and holds the pipes
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            proc.kill()
            proc.wait()
            out, err = "", ""
        return timed_out(argv, timeout_s, out, err, time.monotonic() - start)
    return ToolResult(tuple(argv), proc.returncode, out, err, time.monotonic() - start)


def run_pipeline(
    first: Sequence[str],
    second: Sequence[str],
    *,
    timeout_s: float = 3600.0,
    env_first: Mapping[str, str] | None = None,
    env_second: Mapping[str, str] | None = None,
) -> tuple[ToolResult, ToolResult]:
    """`first | second` (both as the caller), to completion: the results of both. A
    non-zero exit of either is the caller's to check; a timeout kills both (exit 124)."""
    start = time.monotonic()
    with tempfile.TemporaryFile() as first_err:
        try:
            p1 = subprocess.Popen(
                list(first),
                stdout=subprocess.PIPE,
                stderr=first_err,
                env={**os.environ, **(env_first or {})},
            )
        except FileNotFoundError:
            return ToolResult(tuple(first), 127, "", f"{first[0]}: not found", 0.0), ToolResult(
                tuple(second), 127, "", "not started", 0.0
            )
        try:
            p2 = subprocess.Popen(
                list(second),
                stdin=p1.stdout,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, **(env_second or {})},
            )
        except FileNotFoundError:
            p1.kill()
            p1.wait()
            return ToolResult(tuple(first), -9, "", "killed", 0.0), ToolResult(
                tuple(second), 127, "", f"{second[0]}: not found", 0.0
            )
        assert p1.stdout is not None
        p1.stdout.close()  # second sees end of input when first exits
        expired = False
        try:
            out2, err2 = p2.communicate(timeout=timeout_s)
            p1.wait(timeout=60)
        except subprocess.TimeoutExpired:
            expired = True
            for proc in (p1, p2):
                proc.kill()
            out2, err2 = p2.communicate()
            p1.wait()
        first_err.seek(0)
        err1 = first_err.read().decode(errors="replace")
    took = time.monotonic() - start
    if expired:
        return (
            timed_out(first, timeout_s, "", err1, took),
            timed_out(second, timeout_s, out2, err2, took),
        )
    return (
        ToolResult(tuple(first), p1.returncode, "", err1, took),
        ToolResult(
            tuple(second),
            p2.returncode,
            out2.decode(errors="replace"),
            err2.decode(errors="replace"),
            took,
        ),
    )


def run_checked(argv: Sequence[str], what: str, hint: str = "", **kwargs: object) -> ToolResult:
    result = run(argv, **kwargs)  # type: ignore[arg-type]
    if not result.ok:
        raise ToolError(what, result, hint)
    return result


def _environment(user: str | None, extra: Mapping[str, str] | None) -> dict[str, str] | None:
    """The caller's environment plus `extra`; run as another user, that user's HOME (libpq,
    for one, reads ~/.postgresql and fails on root's with "Permission denied")."""
    if user is None and not extra:
        return None
    env = {**os.environ, **(extra or {})}
    if user is not None:
        env["HOME"] = pwd.getpwnam(user).pw_dir
    return env


class Background:
    """A program running while the caller works (a load generator); stopped with SIGINT."""

    def __init__(
        self,
        argv: Sequence[str],
        user: str | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`cwd`: where it runs (a program run as another user may not be able to enter, or
        return to, the caller's directory: a checkout under root's home). `env`: added to
        the caller's environment (secrets go here, never into argv)."""
        self.argv = tuple(argv)
        self.start = time.monotonic()
        self.proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=cwd,
            env=_environment(user, env),
            **as_user(user),
        )

    def interrupt(self, timeout_s: float = 30.0) -> ToolResult:
        """SIGINT, then its output once it exits (SIGKILL past `timeout_s`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, err = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return ToolResult(self.argv, self.proc.returncode, out, err, time.monotonic() - self.start)

    def terminate(self, timeout_s: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

"""Each rendered config checked by the program that will read it."""

from __future__ import annotations

import os
import pwd
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from hastack.polling import WaitTimeout, poll
from hastack.tools.base import ToolError, ToolResult, as_user, run

_UNREACHABLE_DCS = re.compile(r"^etcd3?\.hosts\.\d+ .* is not reachable$")


def check_haproxy_config(binary: Path, config: Path) -> ToolResult:
    result = run([str(binary), "-c", "-f", str(config)], timeout_s=30)
    if not result.ok:
        raise ToolError(f"HAProxy rejects {config}", result)
    return result


def check_patroni_config(binary: Path, config: Path, *, dcs_running: bool) -> ToolResult:
    """`patroni --validate-config`. Before etcd runs, its "not reachable" findings are expected
    and ignored; every other finding is an error."""
    result = run([str(binary), "--validate-config", "--ignore-listen-port", str(config)])
    if result.ok:
        return result
    findings = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
    if not dcs_running:
        findings = [ln for ln in findings if not _UNREACHABLE_DCS.match(ln.strip())]
    if findings:
        raise ToolError(
            f"Patroni rejects {config}:\n    " + "\n    ".join(findings), None, "check the spec"
        )
    return result


def check_pgbouncer_config(
    binary: Path, config_text: str, auth_text: str, scratch_port: int, user: str | None = None
) -> None:
    """Start PgBouncer on a scratch port with this config and auth file, then stop it.

    PgBouncer has no check mode; a short real start finds bad settings, unreadable auth files
    and unknown keys. It refuses to run as root, so as root pass the `user` it will run as.
    """
    with tempfile.TemporaryDirectory(prefix="hastack-pgb-") as tmp:
        auth = Path(tmp) / "userlist.txt"
        auth.write_text(auth_text)
        text = re.sub(r"(?m)^listen_port = .*$", f"listen_port = {scratch_port}", config_text)
        text = re.sub(r"(?m)^listen_addr = .*$", "listen_addr = 127.0.0.1", text)
        text = re.sub(r"(?m)^auth_file = .*$", f"auth_file = {auth}", text)
        scratch = Path(tmp) / "pgbouncer.ini"
        scratch.write_text(text)
        if user is not None:
            entry = pwd.getpwnam(user)
            # The files first, the directory last: once the user owns the directory it could
            # swap a name for a symlink, and root must not chown through it.
            for path in (scratch, auth, Path(tmp)):
                os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
        argv = [str(binary), str(scratch)]
        start = time.monotonic()
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            **as_user(user),
        )
        try:
            out = _wait_listening_or_exit(proc, scratch_port, timeout_s=5.0)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if out is not None:
            result = ToolResult(
                tuple(argv), proc.returncode or 1, "", out, time.monotonic() - start
            )
            raise ToolError("PgBouncer rejects its rendered configuration", result)


def _wait_listening_or_exit(proc: subprocess.Popen[str], port: int, timeout_s: float) -> str | None:
    """None once PgBouncer listens on `port`; its output if it exits first."""

    def check() -> tuple[str | None, str]:
        if proc.poll() is not None:
            return (proc.stdout.read() if proc.stdout else "") or "exited", ""
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return ("" if sock.connect_ex(("127.0.0.1", port)) == 0 else None), "not listening"

    try:
        out = poll(check, what="PgBouncer listening", timeout_s=timeout_s, interval_s=0.05)
    except WaitTimeout:
        return f"did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s"
    return out or None

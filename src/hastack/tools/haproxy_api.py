"""HAProxy's runtime API on its admin socket."""

from __future__ import annotations

import csv
import io
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServerState:
    backend: str
    server: str
    status: str
    """UP, DOWN, MAINT, DRAIN, NOLB, "UP 1/2" while going down, ..."""
    current_sessions: int
    check_status: str

    @property
    def up(self) -> bool:
        return self.status == "UP" or self.status.startswith("UP ")


class HAProxyUnavailable(Exception):
    pass


def command(sock_path: Path, line: str, timeout_s: float = 2.0) -> str:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(sock_path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError as exc:
        raise HAProxyUnavailable(f"HAProxy admin socket {sock_path}: {exc}") from None
    return b"".join(chunks).decode()


def server_states(sock_path: Path) -> list[ServerState]:
    """Every backend server (not frontends or backend summary rows)."""
    text = command(sock_path, "show stat").lstrip("# ")
    rows = csv.DictReader(io.StringIO(text))
    return [
        ServerState(
            backend=row["pxname"],
            server=row["svname"],
            status=row["status"],
            current_sessions=int(row["scur"] or 0),
            check_status=row.get("check_status", ""),
        )
        for row in rows
        if row.get("svname") not in ("FRONTEND", "BACKEND", None)
    ]


def set_maintenance(sock_path: Path, backend: str, server: str) -> str:
    """Take a server out of rotation until set ready again (passing checks do not bring it
    back), and cut its sessions."""
    out = command(sock_path, f"set server {backend}/{server} state maint")
    out += command(sock_path, f"shutdown sessions server {backend}/{server}")
    return out.strip()


def set_ready(sock_path: Path, backend: str, server: str) -> str:
    """Back into rotation; its health checks decide from here on."""
    return command(sock_path, f"set server {backend}/{server} state ready").strip()

"""HAProxy's runtime API on its admin socket."""

from __future__ import annotations

import csv
import io
import socket
from dataclasses import dataclass
from pathlib import Path

from hastack.errors import Unavailable


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


class HAProxyUnavailable(Unavailable):
    pass


class HAProxyAdmin:
    """The runtime API of one HAProxy (its master-worker admin socket)."""

    def __init__(self, socket_path: Path, timeout_s: float = 2.0) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s

    def command(self, line: str) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout_s)
                sock.connect(str(self.socket_path))
                sock.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise HAProxyUnavailable(
                f"HAProxy admin socket {self.socket_path}: {exc}", "hastack logs haproxy"
            ) from None
        return b"".join(chunks).decode()

    def server_states(self) -> list[ServerState]:
        """Every backend server (not frontends or backend summary rows)."""
        text = self.command("show stat").lstrip("# ")
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

    def counters(self, proxy: str) -> dict[str, dict[str, int]]:
        """One proxy's numeric `show stat` counters by row (its servers, FRONTEND or
        BACKEND): hrsp_5xx, chkdown, qmax, ... (empty fields as 0)."""
        text = self.command("show stat").lstrip("# ")
        return {
            row["svname"]: {k: int(v) for k, v in row.items() if k and v and v.isdigit()}
            for row in csv.DictReader(io.StringIO(text))
            if row.get("pxname") == proxy and row.get("svname")
        }

    def servers_of(self, backend: str) -> dict[str, ServerState]:
        """One backend's servers by name (empty when HAProxy does not answer)."""
        try:
            return {s.server: s for s in self.server_states() if s.backend == backend}
        except HAProxyUnavailable:
            return {}

    def set_state(self, backend: str, server: str, state: str) -> str:
        """`ready`, `drain` or `maint`."""
        return self.command(f"set server {backend}/{server} state {state}").strip()

    def set_maintenance(self, backend: str, server: str) -> str:
        """Take a server out of rotation until set ready again (passing checks do not bring it
        back), and cut its sessions."""
        out = self.set_state(backend, server, "maint")
        out += self.command(f"shutdown sessions server {backend}/{server}")
        return out.strip()

    def set_ready(self, backend: str, server: str) -> str:
        """Back into rotation; its health checks decide from here on."""
        return self.set_state(backend, server, "ready")

    def clear_table(self, table: str) -> None:
        self.command(f"clear table {table}")

    def servers_state_text(self) -> str:
        """`show servers state`: what a reloaded HAProxy starts from (server-state file)."""
        return self.command("show servers state")

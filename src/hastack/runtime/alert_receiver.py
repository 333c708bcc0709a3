"""hastack's alert receiver: Alertmanager's webhook target. It writes every notification it
gets, as one JSON line, to the stack's alerts log (drill reports and `status` read it).

Run by supervisord as the monitoring user:
`<hastack python> -m hastack.runtime.alert_receiver ADDRESS:PORT PASSWORD_FILE ALERTS_LOG`.
Alertmanager authenticates with the monitoring password (HTTP Basic, user `hastack`), read
again at each request so a rotation needs no restart; anything else is refused.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from hastack.runtime.logline import say

USER = "hastack"
MAX_BODY = 1024 * 1024
ROTATE_BYTES = 5 * 1024 * 1024
RECEIVERS = ("page", "ticket")


class AlertLog:
    """Appends records, one JSON per line, rotating to `<log>.1` past ROTATE_BYTES."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self.lock:
            with contextlib.suppress(OSError):
                if self.path.stat().st_size > ROTATE_BYTES:
                    self.path.replace(self.path.with_name(self.path.name + ".1"))
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)


def authorized(header: str | None, password: str) -> bool:
    if not header or not header.startswith("Basic "):
        return False
    try:
        user, _, given = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return user == USER and hmac.compare_digest(given.encode(), password.encode())


def record_of(receiver: str, payload: dict[str, Any]) -> dict[str, Any]:
    """What is kept of one notification: when, to whom, and each alert's state and labels."""
    return {
        "received_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "receiver": receiver,
        "status": payload.get("status"),
        "alerts": [
            {
                "status": a.get("status"),
                "labels": a.get("labels", {}),
                "annotations": a.get("annotations", {}),
                "startsAt": a.get("startsAt"),
                "endsAt": a.get("endsAt"),
            }
            for a in payload.get("alerts", [])
            if isinstance(a, dict)
        ],
    }


def make_handler(password_file: Path, log: AlertLog) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver = self.path.strip("/")
            try:
                password = password_file.read_text(encoding="utf-8").strip()
            except OSError:
                self._answer(503, "password file unreadable")
                return
            if not authorized(self.headers.get("Authorization"), password):
                self._answer(401, "unauthorized")
                return
            if receiver not in RECEIVERS:
                self._answer(404, "no such receiver")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_BODY:
                self._answer(413 if length > MAX_BODY else 400, "bad body length")
                return
            try:
                payload = json.loads(self.rfile.read(length))
            except ValueError:
                self._answer(400, "not JSON")
                return
            if not isinstance(payload, dict):
                self._answer(400, "not a notification")
                return
            log.append(record_of(receiver, payload))
            self._answer(200, "ok")

        def do_GET(self) -> None:
            self._answer(200 if self.path == "/health" else 404, "ok")

        def _answer(self, code: int, text: str) -> None:
            body = (text + "\n").encode()
            self.send_response(code)
            if code == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="hastack"')
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            say(f"{self.address_string()} {format % args}")

    return Handler


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    if len(argv) != 4:
        print(
            "usage: python -m hastack.runtime.alert_receiver ADDRESS:PORT PASSWORD_FILE LOG",
            file=sys.stderr,
        )
        return 2
    host, _, port = argv[1].rpartition(":")
    server = ThreadingHTTPServer(
        (host, int(port)), make_handler(Path(argv[2]), AlertLog(Path(argv[3])))
    )
    say(f"alert receiver on {argv[1]}, writing {argv[3]}")
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())

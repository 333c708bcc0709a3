"""supervisord: start the daemon and drive it over XML-RPC on its unix socket.

XML-RPC costs ~2 ms a call against ~100 ms for a `supervisorctl` process, which matters when
a drill or a fence has to act within a second.
"""

from __future__ import annotations

import contextlib
import xmlrpc.client
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import psutil
from supervisor.xmlrpc import Faults, SupervisorTransport

from hastack.errors import HastackError
from hastack.polling import until
from hastack.tools.base import ToolError, run


@dataclass(frozen=True)
class ProcessInfo:
    """One supervised process as supervisord reports it."""

    group: str
    name: str
    state: str
    """STOPPED, STARTING, RUNNING, BACKOFF, STOPPING, EXITED, FATAL or UNKNOWN."""
    pid: int
    uptime_s: int
    description: str

    @property
    def process_name(self) -> str:
        return f"{self.group}:{self.name}"

    @property
    def running(self) -> bool:
        return self.state == "RUNNING"


class SupervisorError(HastackError):
    """supervisord refused an operation or does not answer."""


class Supervisor:
    """The supervisord of one stack."""

    def __init__(self, config: Path, socket: Path, pidfile: Path, python: Path) -> None:
        self.config = config
        self.socket = socket
        self.pidfile = pidfile
        self.python = python
        """The installed hastack's Python (supervisord runs as root: never a checkout's)."""

    def _proxy(self) -> Any:
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def is_running(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(self._proxy().getState()["statename"] == "RUNNING")
        except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
            return False

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def start_daemon(self, timeout_s: float = 15.0) -> None:
        """Start supervisord (it daemonizes) and wait until its API answers."""
        argv = [str(self.python), "-m", "supervisor.supervisord", "-c", str(self.config)]
        result = run(argv, timeout_s=timeout_s)
        if not result.ok:
            raise ToolError("supervisord did not start", result, f"see {self.config}")
        until(
            self.is_running,
            what=f"supervisord's socket {self.socket} answering",
            timeout_s=timeout_s,
            interval_s=0.05,
            hint="hastack logs supervisord",
        )

    def processes(self) -> list[ProcessInfo]:
        infos = self._proxy().getAllProcessInfo()
        return [
            ProcessInfo(
                group=i["group"],
                name=i["name"],
                state=i["statename"],
                pid=int(i["pid"]),
                uptime_s=int(i["now"] - i["start"]) if i["statename"] == "RUNNING" else 0,
                description=i["description"],
            )
            for i in infos
        ]

    def process(self, process_name: str) -> ProcessInfo:
        group, name = process_name.split(":", 1)
        for info in self.processes():
            if info.group == group and info.name == name:
                return info
        raise SupervisorError(f"supervisord has no process {process_name}")

    def wait_stopped(self, process_names: Collection[str], timeout_s: float = 70) -> None:
        """Until none of `process_names` is STOPPING (a stop in progress has finished)."""

        def settled() -> bool:
            return not any(
                i.state == "STOPPING" for i in self.processes() if i.process_name in process_names
            )

        until(
            settled,
            what=f"{', '.join(process_names)} stopped",
            timeout_s=timeout_s,
            interval_s=0.05,
        )

    def _call(self, what: str, allowed_fault: int, method: str, *args: object) -> None:
        """An XML-RPC call; the one fault that means "already so" is not an error."""
        try:
            getattr(self._proxy(), method)(*args)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != allowed_fault:
                raise SupervisorError(f"cannot {what}: {fault.faultString}") from None

    def start(self, process_name: str, wait: bool = True, stop_timeout_s: float = 70) -> None:
        """Start a process; one still STOPPING is first allowed to finish stopping."""
        self.wait_stopped([process_name], stop_timeout_s)
        self._call(
            f"start {process_name}", Faults.ALREADY_STARTED, "startProcess", process_name, wait
        )

    def stop(self, process_name: str, wait: bool = True) -> None:
        self._call(f"stop {process_name}", Faults.NOT_RUNNING, "stopProcess", process_name, wait)

    def stop_group(self, group: str, wait: bool = True) -> None:
        self._proxy().stopProcessGroup(group, wait)

    def signal(self, process_name: str, signal_name: str) -> None:
        try:
            self._proxy().signalProcess(process_name, signal_name)
        except xmlrpc.client.Fault as fault:
            raise SupervisorError(
                f"cannot signal {process_name} ({signal_name}): {fault.faultString}"
            ) from None

    def reload_config(self) -> tuple[list[str], list[str], list[str]]:
        """Re-read the config file: (added, changed, removed) group names. Applies nothing."""
        result = self._proxy().reloadConfig()
        added, changed, removed = result[0]
        return cast(list[str], added), cast(list[str], changed), cast(list[str], removed)

    def add_group(self, group: str) -> None:
        self._call(f"add group {group}", Faults.ALREADY_ADDED, "addProcessGroup", group)

    def remove_group(self, group: str) -> None:
        self._proxy().removeProcessGroup(group)

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Stop supervisord itself (after its programs) and wait for its pid to exit."""
        pid = self.pid()
        with contextlib.suppress(OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
            self._proxy().shutdown()
        if pid is not None:
            until(
                lambda: not psutil.pid_exists(pid),
                what=f"supervisord (pid {pid}) exiting",
                timeout_s=timeout_s,
                interval_s=0.05,
            )

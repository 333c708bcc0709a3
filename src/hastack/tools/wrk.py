"""wrk: HTTP load with latency percentiles reported as JSON by a small Lua hook."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hastack.tools.base import Background, ToolError, ToolResult, run

REPORT_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "HASTACK_JSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"non_2xx\\":%d,\\"socket_errors\\":%d,"
    .. "\\"p50_us\\":%d,\\"p95_us\\":%d,\\"p99_us\\":%d}\\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def rotating_header_lua(name: str, values: list[str]) -> str:
    """A request hook sending `values` of header `name` in turn (one per request), e.g. the
    tokens of several users so that a per-user limit is not what gets measured."""
    quoted = ", ".join(json.dumps(v) for v in values)
    return (
        f"local values = {{{quoted}}}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i + 1\n"
        f"  wrk.headers[{json.dumps(name)}] = values[(i % #values) + 1]\n"
        "  return wrk.format()\n"
        "end\n"
    )


@dataclass(frozen=True)
class WrkResult:
    url: str
    connections: int
    requests: int
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


def _script(headers: dict[str, str], rotate: tuple[str, list[str]] | None) -> Path:
    """The Lua script: headers set here, not with -H (a token on the command line is visible
    to every user in `ps`), the report hook, and an optional rotating header. 0600."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        for key, value in headers.items():
            script.write(f"wrk.headers[{json.dumps(key)}] = {json.dumps(value)}\n")
        script.write(REPORT_LUA)
        if rotate is not None:
            script.write(rotating_header_lua(*rotate))
    return Path(script.name)


def _parse(url: str, connections: int, result: ToolResult) -> WrkResult:
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("HASTACK_JSON ")), None)
    if line is None:
        raise ToolError(f"wrk against {url} failed", result, hint="apt-get install wrk")
    data = json.loads(line.removeprefix("HASTACK_JSON "))
    return WrkResult(
        url=url,
        connections=connections,
        requests=data["requests"],
        requests_per_s=round(data["requests"] / max(data["duration_us"] / 1e6, 1e-6), 1),
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        non_2xx=data["non_2xx"],
        socket_errors=data["socket_errors"],
    )


class Wrk:
    """wrk (Debian's package), one run to completion or one run in the background."""

    def __init__(self, binary: str = "wrk") -> None:
        self.binary = binary

    def _argv(
        self,
        url: str,
        script: Path,
        duration_s: int,
        connections: int,
        threads: int,
        timeout_s: int | None = None,
    ) -> list[str]:
        return [
            self.binary,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration_s}s",
            *([f"--timeout={timeout_s}s"] if timeout_s is not None else []),
            "-s",
            str(script),
            url,
        ]

    def run(
        self,
        url: str,
        *,
        duration_s: int = 10,
        connections: int = 32,
        threads: int = 1,
        headers: dict[str, str] | None = None,
        rotate: tuple[str, list[str]] | None = None,
    ) -> WrkResult:
        script = _script(headers or {}, rotate)
        try:
            result = run(
                self._argv(url, script, duration_s, connections, threads), timeout_s=duration_s + 60
            )
        finally:
            script.unlink(missing_ok=True)
        if not result.ok:
            raise ToolError(f"wrk against {url} failed", result, hint="apt-get install wrk")
        return _parse(url, connections, result)

    def start(
        self,
        url: str,
        *,
        duration_s: int,
        connections: int,
        headers: dict[str, str],
        threads: int = 1,
        rotate: tuple[str, list[str]] | None = None,
        timeout_s: int | None = None,
    ) -> WrkRun:
        """Load in the background until `WrkRun.stop()` (or `duration_s`). `timeout_s`: how
        long wrk waits for an answer before it counts a socket error (its default: 2 s)."""
        script = _script(headers, rotate)
        argv = self._argv(url, script, duration_s, connections, threads, timeout_s)
        return WrkRun(url, connections, script, Background(argv))


class WrkRun:
    def __init__(self, url: str, connections: int, script: Path, proc: Background) -> None:
        self.url = url
        self.connections = connections
        self.script = script
        self.proc = proc

    def stop(self) -> WrkResult:
        """SIGINT: wrk stops and reports what it did so far."""
        try:
            result = self.proc.interrupt(timeout_s=30)
        finally:
            self.script.unlink(missing_ok=True)
        return _parse(self.url, self.connections, result)

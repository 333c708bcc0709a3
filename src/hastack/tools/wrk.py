"""wrk: HTTP load with latency percentiles reported as JSON by a small Lua hook."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hastack.tools.base import ToolError, run

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


def wrk(
    url: str,
    *,
    duration_s: int = 10,
    connections: int = 32,
    threads: int = 1,
    headers: dict[str, str] | None = None,
    rotate: tuple[str, list[str]] | None = None,
) -> WrkResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(REPORT_LUA)
        if rotate is not None:
            script.write(rotating_header_lua(*rotate))
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "-s", script.name]
    for key, value in (headers or {}).items():
        argv += ["-H", f"{key}: {value}"]
    argv.append(url)
    try:
        result = run(argv, timeout_s=duration_s + 60)
    finally:
        Path(script.name).unlink(missing_ok=True)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("HASTACK_JSON ")), None)
    if not result.ok or line is None:
        raise ToolError(f"wrk against {url} failed", result, hint="apt-get install wrk")
    data = json.loads(line.removeprefix("HASTACK_JSON "))
    return WrkResult(
        url=url,
        connections=connections,
        requests=data["requests"],
        requests_per_s=round(data["requests"] / (data["duration_us"] / 1e6), 1),
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        non_2xx=data["non_2xx"],
        socket_errors=data["socket_errors"],
    )

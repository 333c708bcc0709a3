"""Stand-ins for unit tests of ops and decisions: a clock that only moves when slept on, a
process table instead of supervisord, and a `Stack` whose snapshots are scripted.

Shipped with hastack (as httpx ships MockTransport) so that tests of code built on the
`Stack` need no running process.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from hastack.render.programs import stack_programs
from hastack.runtime.snapshot import ServiceProbe, StackSnapshot
from hastack.runtime.stack import Stack
from hastack.runtime.supervisor import ProcessInfo, Supervisor, SupervisorError
from hastack.spec.plan import StackPlan
from hastack.spec.secrets import Secrets


class FakeClock:
    """Monotonic and wall time that advance only through `sleep` (or `advance`)."""

    def __init__(self, start: float = 1000.0, wall_offset: float = 1.7e9) -> None:
        self.now = start
        self.wall_offset = wall_offset
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self.wall_offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSupervisor(Supervisor):
    """supervisord as a dict of program states; `calls` records every start and stop."""

    def __init__(self, plan: StackPlan, running: bool = True) -> None:
        p = plan.paths
        super().__init__(p.supervisor_config, p.supervisor_socket, p.supervisor_pidfile, Path("/x"))
        self.running = running
        self.states = {prog.process_name: "RUNNING" for prog in stack_programs(plan)}
        self.calls: list[tuple[str, str]] = []

    def is_running(self) -> bool:
        return self.running

    def pid(self) -> int | None:
        return None

    def processes(self) -> list[ProcessInfo]:
        return [
            ProcessInfo(name.split(":")[0], name.split(":")[1], state, 0, 0, "")
            for name, state in self.states.items()
        ]

    def _known(self, process_name: str) -> None:
        if process_name not in self.states:
            raise SupervisorError(f"supervisord has no process {process_name}")

    def start(self, process_name: str, wait: bool = True, stop_timeout_s: float = 70) -> None:
        self._known(process_name)
        self.calls.append(("start", process_name))
        self.states[process_name] = "RUNNING"

    def stop(self, process_name: str, wait: bool = True) -> None:
        self._known(process_name)
        self.calls.append(("stop", process_name))
        self.states[process_name] = "STOPPED"

    def wait_stopped(self, process_names: Collection[str], timeout_s: float = 70) -> None:
        return None

    def signal(self, process_name: str, signal_name: str) -> None:
        self._known(process_name)
        self.calls.append((f"signal {signal_name}", process_name))


def fake_secrets() -> Secrets:
    return Secrets(**{name: f"secret-{name}" for name in Secrets.names()})


def empty_snapshot(plan: StackPlan) -> StackSnapshot:
    """A snapshot of a stack where nothing answers; tests `replace()` what they need."""
    return StackSnapshot(
        plan=plan,
        taken_at=0.0,
        supervisor_running=True,
        programs=(),
        etcd=(),
        leader_key=None,
        leader_key_error=None,
        members=(),
        haproxy=(),
        haproxy_error=None,
        pgbouncer=ServiceProbe(ok=True),
        redis=ServiceProbe(ok=True),
    )


class FakeStack(Stack):
    """A `Stack` whose snapshots come from a script (one per call, the last one repeating),
    with a fake clock, a fake supervisor and fixed secrets. Clients are not faked: code under
    test that needs one is an integration test."""

    def __init__(
        self,
        plan: StackPlan,
        snapshots: Sequence[StackSnapshot | Callable[[FakeStack], StackSnapshot]] = (),
        clock: FakeClock | None = None,
        leader: str | None = None,
    ) -> None:
        super().__init__(plan, clock=clock or FakeClock())
        self.fake_clock = self.clock
        self.script: Iterator[StackSnapshot | Callable[[FakeStack], StackSnapshot]] = iter(
            snapshots
        )
        self.last: StackSnapshot = empty_snapshot(plan)
        self.fake_leader = leader
        self.__dict__["supervisor"] = FakeSupervisor(plan)
        self.__dict__["secrets"] = fake_secrets()
        self.snapshots_taken = 0

    def snapshot(self, services: bool = True) -> StackSnapshot:
        self.snapshots_taken += 1
        step = next(self.script, None)
        if step is not None:
            self.last = step(self) if callable(step) else step
        return replace(self.last, taken_at=self.clock.wall())

    def leader(self) -> str | None:
        return self.fake_leader

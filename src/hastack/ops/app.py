"""App-tier operations: rolling restart, scale."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from hastack.errors import HastackError
from hastack.runtime.apptier import RollingResult, rolling_restart
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.stack import Stack


def restart_app(
    stack: Stack, *, rolling: bool = True, progress: Progress | None = None
) -> RollingResult:
    """Restart every instance. Rolling (the default): drain each in HAProxy, wait for its
    requests, restart, wait until ready, put it back: zero failed requests."""
    progress = progress or NullProgress()
    programs = stack.programs("app")
    if not programs:
        raise HastackError(
            "this stack has no app instances (app.instances is 0)", "hastack scale app=2"
        )
    sup = stack.supervisor
    if not stack.in_containers and not sup.is_running():
        raise HastackError(f"stack {stack.name!r} is not running", "hastack up")
    # The instances are stopped on purpose: the watcher must not start them meanwhile.
    with stack.hold(60.0 * (len(programs) + 1), "hastack app restart"):
        if rolling:
            return rolling_restart(stack, programs, progress)
        if stack.in_containers:
            raise HastackError(
                "an all-at-once restart is not offered for a container deployment",
                "hastack app restart --rolling",
            )
        result = RollingResult()
        for program in programs:
            progress.step(f"restarting {program.name}")
            sup.stop(program.process_name)
            sup.start(program.process_name)
        return result


def set_instances(spec_path: Path, instances: int) -> int:
    """Write `app.instances` into the spec, keeping its comments and layout. Returns the old
    count. Scaling is declarative: the spec says how many, `up` converges to it."""
    if not 0 <= instances <= 16:
        raise HastackError("app instances must be between 0 and 16", "hastack scale app=2")
    yaml = YAML(typ="rt")
    data = yaml.load(spec_path.read_text()) or CommentedMap()
    app = data.setdefault("app", CommentedMap())
    old = int(app.get("instances", 2))
    app["instances"] = instances
    tmp = spec_path.with_name(f".{spec_path.name}.tmp")
    with tmp.open("w") as handle:
        yaml.dump(data, handle)
    tmp.replace(spec_path)
    return old

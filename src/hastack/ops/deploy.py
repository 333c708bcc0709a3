"""`hastack deploy --target swarm`: render, build the image, deploy, wait until healthy, then
converge what `up` converges beyond processes (roles, database, migrations, the backup stanza
and the first backup), inside the stack's own containers.

The render goes to `<state>/targets/<target>/deploy` (root's alone: it holds the secrets);
the secrets and the CA are the stack's, in its state directory, so the deployed stack's
clients (and `hastack status`, `hastack env`) use the same as for a local stack.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hastack.errors import HastackError
from hastack.ops.container_init import request
from hastack.polling import poll
from hastack.runtime.containers import (
    SwarmHealth,
    compose_down,
    compose_up,
    ensure_labels,
    ensure_swarm,
    exec_json,
    health,
    remove_stack,
    remove_volumes,
    require_engine,
    task_of,
)
from hastack.runtime.image import build_image
from hastack.runtime.layout import prepare_root_dirs
from hastack.runtime.progress import NullProgress, Progress
from hastack.runtime.stack import Stack
from hastack.runtime.target_render import install_client_cert, render_target
from hastack.spec.names import RO_BACKEND
from hastack.spec.plan import StackPlan

if TYPE_CHECKING:
    from hastack.tools.docker import Docker

DEPLOY_TARGETS = ("swarm", "compose")
HEALTHY_TIMEOUT_S = 180.0
CONTAINER_PYTHON = ("/opt/hastack/venv/bin/python", "-m", "hastack.ops.container_init")


@dataclass
class DeployResult:
    target: str
    stack: str
    image: str
    engine: str
    swarm_made: bool = False
    image_build_s: float = 0.0
    healthy_after_s: float = 0.0
    """From `docker stack deploy` (or `docker-compose up`) until every service had a
    healthy task."""
    services: int = 0
    said: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0


def deploy_dir(plan: StackPlan, target: str) -> Path:
    return plan.paths.state_dir / "targets" / target / "deploy"


def deploy(stack: Stack, target: str, progress: Progress | None = None) -> DeployResult:
    if target != stack.plan.spec.target:
        raise HastackError(
            f"the spec's target is {stack.plan.spec.target}, not {target}: status, destroy "
            "and the drills follow the spec's target",
            f"set target: {target} in the spec, then deploy again",
        )
    if target not in DEPLOY_TARGETS:
        raise HastackError(
            f"`hastack deploy` runs {', '.join(DEPLOY_TARGETS)}, not {target}",
            f"render it with `hastack render {target} --out DIR` and apply that",
        )
    progress = progress or NullProgress()
    started = time.monotonic()
    plan, docker = stack.plan, stack.docker()
    engine = require_engine(docker)
    out = deploy_dir(plan, target)
    progress.step(f"rendering {target} into {out}")
    rendered = render_target(plan, target, out)
    prepare_root_dirs(plan)
    install_client_cert(plan, out / target / "client")
    tag, build_s = build_image(plan, docker, out / "image", progress)
    result = DeployResult(target=target, stack=plan.name, image=tag, engine=engine)
    result.image_build_s = round(build_s, 1)
    if target == "swarm":
        result.swarm_made = ensure_swarm(docker, plan, progress)
        ensure_labels(docker, plan)
        progress.step(f"docker stack deploy {plan.name} ({len(rendered.files)} files)")
        deployed = time.monotonic()
        docker.stack_deploy(out / "swarm" / "stack.yml", plan.name)
    else:
        progress.step(f"docker-compose up {plan.name} ({len(rendered.files)} files)")
        deployed = time.monotonic()
        compose_up(docker, plan, out / "compose")
    final = _wait_healthy(docker, plan, progress)
    result.healthy_after_s = round(time.monotonic() - deployed, 1)
    result.services = len(final.healthy)
    progress.done(f"{final.sentence()} {result.healthy_after_s} s after deploy")
    result.said = _converge(stack, docker, progress)
    if len(plan.postgres_nodes) > 1:
        result.said.append(_reads_to_replicas(stack, progress))
    result.elapsed_s = round(time.monotonic() - started, 1)
    return result


def _wait_healthy(docker: Docker, plan: StackPlan, progress: Progress) -> SwarmHealth:
    said = [""]

    def check() -> tuple[SwarmHealth | None, str]:
        now = health(docker, plan)
        if now.sentence() != said[0] and not now.ready:
            said[0] = now.sentence()
            progress.step(said[0])
        return (now if now.ready else None), now.sentence()

    return poll(
        check,
        what=f"every service of {plan.name} healthy",
        timeout_s=HEALTHY_TIMEOUT_S,
        interval_s=1.0,
        hint=f"docker stack ps {plan.name} --no-trunc; docker service logs {plan.name}_SERVICE",
    )


def _leader(stack: Stack) -> str:
    """The leader, as Patroni's members say (their REST APIs are on the host network)."""

    def check() -> tuple[str | None, str]:
        leader = stack.leader()
        return leader, "no leader yet" if leader is None else ""

    return poll(check, what="a Patroni leader", timeout_s=60, interval_s=0.5)


def _converge(stack: Stack, docker: Docker, progress: Progress) -> list[str]:
    plan = stack.plan
    leader = _leader(stack)
    said: list[str] = []
    steps = [("database", f"{leader}-patroni", plan.node(leader).user)]
    if plan.backup_enabled:
        # As root in the repository's container: pgBackRest runs as the backup user there,
        # as the local runtime runs it.
        steps.append(("backups", "backup-repo", "0"))
    for step, service, user in steps:
        progress.step(f"{step}: in {service}")
        answer = exec_json(
            docker,
            task_of(docker, plan, service),
            user,
            CONTAINER_PYTHON,
            request(plan.spec, stack.secrets, step, leader),
        )
        if not answer.get("ok"):
            raise HastackError(
                f"{step} in {service} failed: {answer.get('error')}", str(answer.get("hint", ""))
            )
        said_now = answer.get("said", [])
        lines = [str(x) for x in said_now] if isinstance(said_now, list) else []
        for line in lines:
            progress.done(line)
        said += lines
    return said


def _reads_to_replicas(stack: Stack, progress: Progress) -> str:
    """Every service starts at once: PgBouncer's read-only pool may have connected while no
    replica passed HAProxy's check yet (HAProxy then sends reads to the primary), and it
    keeps its server connections. Once a replica is in, the pool reconnects."""
    plan = stack.plan

    def replica_in() -> tuple[bool | None, str]:
        leader = stack.leader()
        up = [
            s
            for s in stack.haproxy().server_states()
            if s.backend == RO_BACKEND and s.up and s.server != leader
        ]
        return (True, "") if up else (None, "no replica in HAProxy's read-only backend yet")

    poll(replica_in, what="a replica serving reads", timeout_s=90, interval_s=0.5)
    stack.pgbouncer().command(f"RECONNECT {plan.spec.postgres.database}_ro", timeout_s=10)
    line = "PgBouncer's read-only pool reconnected: reads go to the replicas"
    progress.done(line)
    return line


def undeploy(stack: Stack, volumes: bool) -> list[str]:
    """Remove the deployed stack (and with `volumes` its data). The volumes removed."""
    plan, docker = stack.plan, stack.docker()
    require_engine(docker)
    if plan.spec.target == "compose":
        render_dir = deploy_dir(plan, "compose") / "compose"
        if (render_dir / "compose.yml").is_file():
            return compose_down(docker, plan, render_dir, volumes)
        return remove_volumes(docker, plan) if volumes else []
    return remove_stack(docker, plan, volumes)

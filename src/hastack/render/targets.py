"""The deployment targets beyond this machine, as data: what `hastack render TARGET` writes.

Each target's renderer is a pure function of the plan and the stack's material (its generated
secrets and TLS files, read from the state directory by the runtime), returning the files to
write under the output directory. A target reuses the component renderers (Patroni, HAProxy,
PgBouncer, ...) the local runtime uses, so every target runs the same configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import PurePosixPath

from hastack.spec.plan import StackPlan
from hastack.spec.secrets import Secrets

SECRET_MODE = 0o600
"""Mode of every rendered file that holds a password or a private key."""


@dataclass(frozen=True)
class TargetFile:
    """One file of a render, relative to the output directory."""

    path: PurePosixPath
    content: str
    mode: int = 0o644
    """SECRET_MODE for anything holding a password or a private key; 0o755 for scripts."""

    @property
    def secret(self) -> bool:
        return self.mode & 0o077 == 0


@dataclass(frozen=True)
class CertRequest:
    """A certificate a target needs that the local stack does not have (other names)."""

    common_name: str
    hostnames: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    client: bool = False
    """Also valid as a client certificate (etcd peers, pgBackRest, hastack itself)."""


@dataclass(frozen=True)
class IssuedCert:
    cert_pem: str
    key_pem: str


@dataclass(frozen=True)
class StackMaterial:
    """What a renderer needs beyond the plan. Read from the stack's state directory."""

    secrets: Secrets
    ca_cert_pem: str
    """The stack's CA, which issued every certificate below; clients trust the stack by it."""
    issued: dict[str, IssuedCert] = field(default_factory=dict)
    """The target's own certificates, by the names its `CertRequest`s had."""


@dataclass(frozen=True)
class Target:
    name: str
    summary: str
    render: Callable[[StackPlan, StackMaterial], list[TargetFile]]
    certificates: Callable[[StackPlan], dict[str, CertRequest]] = lambda plan: {}
    """The certificates `render` expects in `material.issued`."""
    next_steps: Callable[[StackPlan, str], list[str]] = lambda plan, out: []
    """What to run with the render (shown after it is written); `out` is its directory."""


def targets() -> dict[str, Target]:
    """Every target `hastack render` knows, by name."""
    # Imported here: each target module imports this one for the types above.
    found: dict[str, Target] = {}
    for module in _TARGET_MODULES:
        target: Target = import_module(f"hastack.render.{module}").TARGET
        found[target.name] = target
    return found


_TARGET_MODULES: tuple[str, ...] = ("swarm", "compose", "systemd", "kubernetes")
"""The modules under `hastack.render` that each define one `TARGET`."""

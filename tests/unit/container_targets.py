"""What the swarm and compose render tests share: deterministic material, the render as a
dict, golden files, the offline validators and the secret scan."""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from hastack.render.container_files import secret_values
from hastack.render.targets import IssuedCert, StackMaterial, TargetFile, targets
from hastack.spec import StackSpec, derive_plan
from hastack.spec.plan import StackPlan
from tests.unit.factories import fixed_secrets

GOLDEN = Path(__file__).parent.parent / "golden"
BIN = Path(sys.executable).parent

FAKE_CA = "-----BEGIN CERTIFICATE-----\nFAKE CA\n-----END CERTIFICATE-----\n"


def fake_material(plan: StackPlan, target: str) -> StackMaterial:
    """Fixed secrets and a fake PEM for every certificate the target asks for."""
    issued = {
        name: IssuedCert(
            f"-----BEGIN CERTIFICATE-----\nFAKE {name}\n-----END CERTIFICATE-----\n",
            f"-----BEGIN PRIVATE KEY-----\nFAKE KEY {name}\n-----END PRIVATE KEY-----\n",
        )
        for name in targets()[target].certificates(plan)
    }
    return StackMaterial(fixed_secrets(), FAKE_CA, issued)


def render(target: str, spec: StackSpec | None = None) -> dict[str, TargetFile]:
    """The render of `spec` (the default spec's is made once: bcrypt makes it slow)."""
    if spec is None:
        return dict(_render_default(target))
    return _render(target, spec)


@functools.cache
def _render_default(target: str) -> dict[str, TargetFile]:
    return _render(target, StackSpec())


def _render(target: str, spec: StackSpec) -> dict[str, TargetFile]:
    plan = derive_plan(spec)
    files = targets()[target].render(plan, fake_material(plan, target))
    by_path = {str(f.path): f for f in files}
    assert len(by_path) == len(files), "two files at one path"
    return by_path


def load_yaml(text: str) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(text)
    return data


def manifest(files: dict[str, TargetFile]) -> str:
    """Every file's path, mode and content digest: one golden file for the mounted files
    (whose text is render_stack's own, golden-tested already) and the certificates."""
    lines = [
        f"{path} {f.mode:04o} {hashlib.sha256(f.content.encode()).hexdigest()[:16]}"
        for path, f in sorted(files.items())
    ]
    return "\n".join(lines) + "\n"


def golden_files(files: dict[str, TargetFile], texts: tuple[str, ...]) -> dict[str, str]:
    """Golden name -> content: the files named in `texts` in full, and the manifest."""
    found = {path.replace("/", "__"): files[path].content for path in texts}
    found["manifest.txt"] = manifest(files)
    return found


def check_golden(directory: str, name: str, content: str, request: pytest.FixtureRequest) -> None:
    golden = GOLDEN / directory / name
    if request.config.getoption("--update-golden"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(content)
    assert golden.exists(), f"no golden file {golden}; run pytest --update-golden"
    assert content == golden.read_text()


def write_out(files: dict[str, TargetFile], out: Path) -> None:
    for path, f in files.items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f.content)
        target.chmod(f.mode)


def run_tool(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A validator from the dev venv, with no Docker daemon to reach: each must work
    offline (DOCKER_HOST points at a socket that does not exist)."""
    env = {**os.environ, "DOCKER_HOST": f"unix://{cwd}/no-daemon.sock"}
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    """The compose-spec JSON schema (vendored in check-jsonschema: no network)."""
    tool = BIN / "check-jsonschema"
    return run_tool([str(tool), "--builtin-schema", "vendor.compose-spec", str(path)], path.parent)


def leaked_secrets(files: dict[str, TargetFile]) -> list[str]:
    """Every (file, what) where a secret value or a private key sits in a file that is not
    written as a secret."""
    values = secret_values(fixed_secrets())
    leaks = []
    for path, f in files.items():
        if f.secret:
            continue
        leaks += [f"{path}: {v}" for v in values if v in f.content]
        if "PRIVATE KEY" in f.content:
            leaks.append(f"{path}: a private key")
    return leaks


def unescape(value: Any) -> Any:
    """The stack file's `$$` is the program's `$`."""
    return value.replace("$$", "$") if isinstance(value, str) else value

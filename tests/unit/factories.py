"""Small builders for unit tests: specs from YAML text, fixed secrets."""

from __future__ import annotations

from pathlib import Path

from hastack.render.secrets import Secrets
from hastack.spec import LoadedSpec, MachineFacts, load_spec


def fixed_secrets() -> Secrets:
    """Deterministic secrets so rendered files can be compared with golden files."""
    return Secrets(**{name: f"{name}-VALUE" for name in Secrets.names()})


def load_text(tmp_path: Path, text: str, machine: MachineFacts | None = None) -> LoadedSpec:
    path = tmp_path / "hastack.yaml"
    path.write_text(text)
    return load_spec(path, machine)

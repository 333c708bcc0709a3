"""The demo app's schema, as migrations `hastack up` applies (no web framework imported)."""

from __future__ import annotations

from importlib import resources


def demo_migrations() -> list[tuple[str, str]]:
    """(name, SQL) of every migration, in name order."""
    folder = resources.files("hastack.demo") / "sql"
    return [
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".sql")
    ]

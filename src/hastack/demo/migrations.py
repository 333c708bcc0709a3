"""The demo app's schema, as migrations `hastack up` applies (no web framework imported)."""

from __future__ import annotations

from importlib import resources

from hastack.runtime.migrations import Migration


def demo_migrations() -> list[Migration]:
    folder = resources.files("hastack.demo") / "sql"
    return [
        Migration(entry.name, entry.read_text(encoding="utf-8"))
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".sql")
    ]

"""pg_dump and pg_restore argv: logical dumps in PostgreSQL's custom format (compressed),
through a Unix socket directory."""

from __future__ import annotations

from pathlib import Path


def dump_argv(bin_dir: Path, socket_dir: Path, port: int, user: str, dbname: str) -> list[str]:
    """The whole database, custom format, to stdout (zlib-compressed by pg_dump)."""
    return [
        str(bin_dir / "pg_dump"),
        f"--host={socket_dir}",
        f"--port={port}",
        f"--username={user}",
        f"--dbname={dbname}",
        "--format=custom",
        "--no-password",
    ]


def restore_argv(bin_dir: Path, socket_dir: Path, port: int, user: str, dbname: str) -> list[str]:
    """A custom-format dump from stdin into an existing database; the first error stops it."""
    return [
        str(bin_dir / "pg_restore"),
        f"--host={socket_dir}",
        f"--port={port}",
        f"--username={user}",
        f"--dbname={dbname}",
        "--exit-on-error",
        "--no-password",
    ]

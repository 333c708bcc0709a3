"""The command line: parse, call ops/runtime, format. No logic of its own."""

from hastack.cli import app_tier as _app_tier  # noqa: F401
from hastack.cli import backup as _backup  # noqa: F401
from hastack.cli import cluster as _cluster  # noqa: F401  (registers its commands)
from hastack.cli import drill as _drill  # noqa: F401
from hastack.cli import lab as _lab  # noqa: F401
from hastack.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]

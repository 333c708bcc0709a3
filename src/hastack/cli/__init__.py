"""The command line: parse, call ops/runtime, format. No logic of its own."""

from hastack.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]

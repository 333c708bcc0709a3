"""`-c FILE` is accepted after the subcommand too (`hastack check -c FILE` is what people type):
`hoist_config` moves it to the front, where the root callback reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hastack.cli import app
from hastack.cli.app import hoist_config
from hastack.spec import example_spec

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "hoisted"),
    [
        pytest.param(["check", "-c", "x.yaml"], ["-c", "x.yaml", "check"], id="short-after"),
        pytest.param(
            ["check", "--config", "x.yaml", "--json"],
            ["--config", "x.yaml", "check", "--json"],
            id="long-after",
        ),
        pytest.param(
            ["status", "--config=x.yaml", "--json"],
            ["--config=x.yaml", "status", "--json"],
            id="long-equals-after",
        ),
        pytest.param(["-c", "x.yaml", "up"], ["-c", "x.yaml", "up"], id="already-in-front"),
        pytest.param(["logs", "pg1", "patroni"], ["logs", "pg1", "patroni"], id="nothing-to-move"),
        pytest.param([], [], id="no-args"),
        pytest.param(
            ["drill", "run", "-c", "x.yaml", "--", "-c", "not-ours"],
            ["-c", "x.yaml", "drill", "run", "--", "-c", "not-ours"],
            id="stops-at-double-dash",
        ),
        pytest.param(
            ["exec", "--", "--config=y.yaml"], ["exec", "--", "--config=y.yaml"], id="only-after"
        ),
        # A trailing `-c` without its file is left for the parser to report.
        pytest.param(["check", "-c"], ["check", "-c"], id="dangling-option"),
    ],
)
def test_hoist_config_moves_the_spec_option_before_the_subcommand(
    args: list[str], hoisted: list[str]
) -> None:
    assert hoist_config(args) == hoisted


def test_hoist_config_leaves_its_argument_untouched() -> None:
    args = ["check", "-c", "x.yaml"]
    hoist_config(args)
    assert args == ["check", "-c", "x.yaml"]


@pytest.mark.parametrize(
    "option", [pytest.param("-c", id="short"), pytest.param("--config", id="long")]
)
def test_check_accepts_the_spec_after_the_command(tmp_path: Path, option: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(example_spec("demo"))
    result = runner.invoke(app, ["check", option, str(path)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_check_accepts_the_spec_after_the_command_with_equals(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(example_spec("demo"))
    result = runner.invoke(app, ["check", f"--config={path}"])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_check_help_shows_no_bool_metavar() -> None:
    # A flag takes no value: `--json <bool>` would tell people to type one.
    result = runner.invoke(app, ["check", "--help"])
    assert result.exit_code == 0
    assert "--json" in result.output
    assert "<bool>" not in result.output

"""The CLI's own behaviour (no stack needed): messages, exit codes, --json."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hastack.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_help_lists_every_command() -> None:
    code, out, _ = invoke("--help")
    assert code == 0
    for command in ("init", "check", "plan", "up", "status", "env", "logs", "restart", "down"):
        assert command in out


def test_init_writes_a_valid_spec_and_refuses_to_overwrite(tmp_path: Path) -> None:
    spec = tmp_path / "hastack.yaml"
    code, out, _ = invoke("-c", str(spec), "init", "--name", "shop")
    assert code == 0 and "wrote" in out
    assert "name: shop" in spec.read_text()
    spec.write_text(spec.read_text() + "# my edit\n")
    code, _, err = invoke("-c", str(spec), "init")
    assert code == 1
    assert "exists; not overwriting it" in err
    assert spec.read_text().endswith("# my edit\n")


def test_check_reports_file_line_and_exits_1(tmp_path: Path) -> None:
    spec = tmp_path / "hastack.yaml"
    spec.write_text("name: demo\npostgres:\n  nodes: three\n")
    code, _, err = invoke("-c", str(spec), "check")
    assert code == 1
    assert f"{spec}:3: postgres.nodes: expected a whole number, got 'three'" in err
    assert f"1 problem(s) in {spec}; nothing was changed" in err


def test_check_json(tmp_path: Path) -> None:
    spec = tmp_path / "hastack.yaml"
    spec.write_text("etcd:\n  members: 2\n")
    code, out, _ = invoke("-c", str(spec), "check", "--json")
    assert code == 1
    data = json.loads(out)
    assert data["valid"] is False
    assert data["issues"][0]["key"] == "etcd.members"
    assert data["issues"][0]["line"] == 2


def test_check_ok(tmp_path: Path) -> None:
    spec = tmp_path / "hastack.yaml"
    spec.write_text("name: ok\n")
    code, out, _ = invoke("-c", str(spec), "check")
    assert code == 0 and "valid (stack 'ok')" in out


def test_plan_json_has_every_section(tmp_path: Path) -> None:
    spec = tmp_path / "hastack.yaml"
    spec.write_text("name: p\n")
    code, out, _ = invoke("-c", str(spec), "plan", "--json")
    assert code == 0
    data = json.loads(out)
    assert set(data["sections"]) == {
        *("nodes", "endpoints", "postgres", "pooling", "ha", "app tier", "backups", "stack")
    }
    assert data["derived"]["admission"]["maxconn_per_instance"] == 20
    assert data["derived"]["postgres"]["shared_buffers_kb"] == 65536


def test_missing_spec_says_how_to_start(tmp_path: Path) -> None:
    code, _, err = invoke("-c", str(tmp_path / "none.yaml"), "status")
    assert code == 1
    assert "no such file" in err and "hastack init" in err


def test_destroy_needs_yes(tmp_path: Path) -> None:
    spec = tmp_path / "hastack.yaml"
    spec.write_text(f"name: d\nstate_dir: {tmp_path / 'state'}\n")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "keep").write_text("data")
    code, _, err = invoke("-c", str(spec), "destroy")
    assert code == 1
    assert "hastack destroy --yes" in err
    assert (tmp_path / "state" / "keep").read_text() == "data"


def test_secrets_list_shows_names_not_values() -> None:
    code, out, _ = invoke("secrets", "list")
    assert code == 0
    assert "app_password" in out and "redis_password" in out


def test_secret_show_unknown_name(tmp_path: Path) -> None:
    spec = tmp_path / "hastack.yaml"
    spec.write_text(f"name: s\nstate_dir: {tmp_path / 'state'}\n")
    code, _, err = invoke("-c", str(spec), "secrets", "show", "nope")
    assert code == 1
    assert "no secret named 'nope'" in err


def test_env_before_up_explains(tmp_path: Path) -> None:
    spec = tmp_path / "hastack.yaml"
    spec.write_text(f"name: e\nstate_dir: {tmp_path / 'state'}\n")
    code, _, err = invoke("-c", str(spec), "env")
    assert code == 1
    assert "run `hastack up` first" in err


def test_drill_list_names_data_and_web_scenarios() -> None:
    code, out, _ = invoke("drill", "list", "--json")
    assert code == 0
    tiers = {d["name"]: d["tier"] for d in json.loads(out)}
    assert tiers["node-loss"] == "data" and tiers["rolling-restart"] == "web"


def test_root_refuses_a_spec_others_can_write_but_check_still_reads_it(tmp_path: Path) -> None:
    spec = tmp_path / "hastack.yaml"
    spec.write_text("name: demo\n")
    spec.chmod(0o666)
    code, _, err = invoke("-c", str(spec), "status")
    assert code == 1
    assert (
        f"refusing to act as root on {spec}" in err and "writable by its group or by others" in err
    )
    assert f"chmod go-w {spec}" in err
    code, out, _ = invoke("-c", str(spec), "check")
    assert code == 0 and "valid" in out

"""Bad input and refusals: a clear message, a non-zero exit, nothing created or deleted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hastack.tools.system_users import user_exists
from tests.integration.conftest import STATE_DIR, Stack, hastack, write_spec


def test_port_in_use_is_named_before_anything_starts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    spec = write_spec(tmp_path / "s.yaml", "hsport", "127.0.214.0/24", state)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket,time; s=socket.socket(); s.bind(('127.0.214.100', 6432)); "
            "s.listen(); print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        result = hastack(spec, "up")
    finally:
        holder.kill()
        holder.wait()
    assert result.code == 1
    assert "port 6432 on 127.0.214.100 (pgbouncer.port) is in use by pid" in result.err
    assert f"pid {holder.pid} (python" in result.err
    assert "nothing was changed" in result.err
    assert not state.exists()
    assert not user_exists("hs-hsport-pg1")


def test_missing_program_names_its_package(tmp_path: Path) -> None:
    state = tmp_path / "state"
    spec = write_spec(
        tmp_path / "s.yaml",
        "hsmiss",
        "127.0.215.0/24",
        state,
        "binaries:\n  haproxy: /usr/sbin/haproxy-not-installed\n",
    )
    result = hastack(spec, "up")
    assert result.code == 1
    assert "/usr/sbin/haproxy-not-installed is missing (binaries.haproxy)" in result.err
    assert "apt-get install haproxy" in result.err
    assert not state.exists()


def test_invalid_yaml_fails_with_its_line(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("name: hsyaml\npostgres:\n  nodes: [3\n")
    result = hastack(spec, "up")
    assert result.code == 1
    assert f"{spec}:" in result.err and "invalid YAML" in result.err


def test_state_dir_of_another_stack_is_refused(stack: Stack, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", "hsother", "127.0.216.0/24", STATE_DIR)
    for command in (["up"], ["destroy", "--yes"]):
        result = hastack(spec, *command)
        assert result.code == 1, command
        assert "belongs to stack 'hstest'" in result.err
    assert stack.status()[0] == 0


def test_foreign_directory_is_never_touched(tmp_path: Path, open_tmp: Path) -> None:
    state = open_tmp / "precious"
    state.mkdir()
    (state / "data.txt").write_text("keep me")
    spec = write_spec(tmp_path / "s.yaml", "hsforeign", "127.0.217.0/24", state)
    for command in (["up"], ["destroy", "--yes"]):
        result = hastack(spec, *command)
        assert result.code == 1, command
        assert "not created by hastack" in result.err
    assert (state / "data.txt").read_text() == "keep me"
    assert not user_exists("hs-hsforeign-pg1")


def test_down_and_destroy_when_nothing_exists(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", "hsnever", "127.0.218.0/24", tmp_path / "state")
    down = hastack(spec, "down")
    assert down.code == 0 and "is not running; nothing to stop" in down.out
    destroy = hastack(spec, "destroy", "--yes")
    assert destroy.code == 0 and "does not exist; nothing to destroy" in destroy.out
    status = hastack(spec, "status")
    assert status.code == 2 and "supervisord is not running" in status.out


def test_destroy_without_yes_keeps_everything(stack: Stack) -> None:
    result = stack.run("destroy")
    assert result.code == 1 and "--yes" in result.err
    assert stack.status()[0] == 0


@pytest.mark.parametrize("command", [["restart", "haproxy"], ["logs", "pg1"]])
def test_commands_on_a_stack_that_was_never_up(tmp_path: Path, command: list[str]) -> None:
    spec = write_spec(tmp_path / "s.yaml", "hsnever", "127.0.218.0/24", tmp_path / "state")
    result = hastack(spec, *command)
    assert result.code == 1
    assert "not running" in result.err or "no log yet" in result.err

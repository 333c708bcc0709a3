"""Root never follows a symlink another user planted, and never acts on files another user
could change. These tests run as root (like the suite) and use `nobody` as the other user."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from hastack.ops.logs import printable, tail
from hastack.runtime.files import UnsafePath, ensure_dir, write_atomic
from hastack.runtime.preflight import (
    check_installed,
    check_own_tls_trusted,
    check_programs_trusted,
    root_trusts,
    spec_file_problem,
)
from hastack.spec import StackSpec, derive_plan
from hastack.spec.model import BinariesSpec

NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """A directory a service user owns, inside a root-only one (like a node's directory)."""
    os.chmod(tmp_path, 0o755)
    owned = tmp_path / "node"
    owned.mkdir(mode=0o700)
    os.chown(owned, NOBODY.pw_uid, NOBODY.pw_gid)
    return owned


def test_ensure_dir_refuses_a_symlink_planted_by_the_owner(tmp_path: Path, user_dir: Path) -> None:
    target = tmp_path / "root-only"
    target.mkdir(mode=0o700)
    (user_dir / "log").symlink_to(target)
    with pytest.raises(UnsafePath, match="is a symlink"):
        ensure_dir(user_dir / "log", "nobody", 0o700)
    assert target.stat().st_uid == 0 and target.stat().st_mode & 0o777 == 0o700


def test_write_atomic_refuses_a_symlinked_parent(tmp_path: Path, user_dir: Path) -> None:
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    (user_dir / "conf").symlink_to(elsewhere)
    with pytest.raises(UnsafePath):
        write_atomic(user_dir / "conf" / "cron", "* * * * * root sh\n", "root", 0o644)
    assert list(elsewhere.iterdir()) == []


def test_write_atomic_replaces_a_symlink_instead_of_writing_through_it(
    tmp_path: Path, user_dir: Path
) -> None:
    victim = tmp_path / "shadow"
    victim.write_text("root's\n")
    (user_dir / "patroni.yml").symlink_to(victim)
    assert write_atomic(user_dir / "patroni.yml", "config\n", "nobody", 0o600)
    assert victim.read_text() == "root's\n" and victim.stat().st_uid == 0
    written = user_dir / "patroni.yml"
    assert not written.is_symlink() and written.read_text() == "config\n"
    assert (written.stat().st_uid, written.stat().st_mode & 0o777) == (NOBODY.pw_uid, 0o600)
    assert not write_atomic(written, "config\n", "nobody", 0o600)  # unchanged: no rewrite


def test_ensure_dir_sets_owner_and_mode(tmp_path: Path) -> None:
    ensure_dir(tmp_path / "svc", "nobody", 0o750)
    st = (tmp_path / "svc").stat()
    assert (st.st_uid, st.st_mode & 0o777) == (NOBODY.pw_uid, 0o750)


def test_logs_are_read_without_following_a_planted_symlink(tmp_path: Path, user_dir: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("do not show\n")
    (user_dir / "postgresql-Fri.log").symlink_to(secret)
    with pytest.raises(UnsafePath):
        tail(user_dir / "postgresql-Fri.log", 10)


def test_escape_sequences_in_logs_are_shown_not_sent() -> None:
    assert printable("ok\x1b]0;owned\x07 \x9b2J\tend") == "ok\\x1b]0;owned\\x07 \\x9b2J\tend"


def test_a_spec_someone_else_can_write_is_refused(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    spec = tmp_path / "hastack.yaml"
    spec.write_text("name: demo\n")
    os.chmod(spec, 0o644)
    assert spec_file_problem(spec) is None
    os.chmod(spec, 0o664)
    problem = spec_file_problem(spec)
    assert problem is not None and "writable by its group or by others" in problem.what
    assert f"chmod go-w {spec}" in problem.fix
    os.chmod(spec, 0o644)
    os.chown(spec, NOBODY.pw_uid, NOBODY.pw_gid)
    problem = spec_file_problem(spec)
    assert problem is not None and f"belongs to uid {NOBODY.pw_uid}, not root" in problem.what


def test_a_sticky_directory_is_trusted_but_a_file_owned_by_another_user_in_it_is_not(
    tmp_path: Path,
) -> None:
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    os.chmod(tmp_path, 0o755)
    mine = sticky / "spec.yaml"
    mine.write_text("")
    assert root_trusts(mine) is None
    os.chown(mine, NOBODY.pw_uid, NOBODY.pw_gid)
    assert root_trusts(mine) is not None


def test_binaries_in_a_users_directory_are_refused(user_dir: Path) -> None:
    haproxy = user_dir / "haproxy"
    haproxy.write_text("#!/bin/sh\n")
    plan = derive_plan(StackSpec(binaries=BinariesSpec(haproxy=haproxy)))
    problems = [p for p in check_programs_trusted(plan) if "binaries.haproxy" in p.what]
    (problem,) = problems
    assert f"{user_dir} belongs to uid {NOBODY.pw_uid}, not root" in problem.what


def test_a_venv_in_a_checkout_others_can_write_is_refused(user_dir: Path) -> None:
    python = user_dir / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    (user_dir / "venv" / "lib").mkdir()
    python.write_text("")
    plan = derive_plan(StackSpec(binaries=BinariesSpec(hastack_python=python)))
    (problem,) = check_installed(plan)
    assert f"root would run hastack from {user_dir / 'venv'}" in problem.what
    assert "/opt/hastack/venv" in problem.fix


def test_an_operator_certificate_a_user_could_swap_is_refused(user_dir: Path) -> None:
    cert, key = user_dir / "site.crt", user_dir / "site.key"
    cert.write_text("")
    key.write_text("")
    spec = StackSpec.model_validate({"http": {"tls": {"cert": str(cert), "key": str(key)}}})
    problems = check_own_tls_trusted(derive_plan(spec))
    assert [p.what.split(" = ")[0] for p in problems] == ["http.tls.cert", "http.tls.key"]
    assert f"{user_dir} belongs to uid {NOBODY.pw_uid}, not root" in problems[0].what

"""Logical dumps: names carry their time, retention keeps the newest, argv as intended."""

from __future__ import annotations

from pathlib import Path

import pytest

from hastack.errors import HastackError
from hastack.runtime.dumps import DumpFile, dump_name, expired, parse_name, resolve_dump
from hastack.spec import StackSpec, derive_plan
from hastack.tools.gpg import decrypt_argv, encrypt_argv
from hastack.tools.pg_dump import dump_argv


def test_a_dump_name_carries_its_database_and_time() -> None:
    name = dump_name("app", 1795773600.0)
    assert name == "app-20261127T100000Z.dump.gpg"
    assert parse_name(name) == 1795773600.0
    for other in ("app.dump.gpg", ".app-20261127T100000Z.dump.gpg.partial", "x-2026.dump.gpg"):
        assert parse_name(other) is None


def test_retention_removes_the_oldest_beyond_keep() -> None:
    dumps = [DumpFile(f"d{i}", f"/x/d{i}", 1, float(i)) for i in (3, 1, 2, 5, 4)]
    assert [d.name for d in expired(dumps, 3)] == ["d1", "d2"]
    assert expired(dumps, 5) == [] and expired(dumps, 9) == []


def test_only_a_dump_name_is_accepted(tmp_path: Path) -> None:
    plan = derive_plan(StackSpec())
    with pytest.raises(HastackError, match="is not the name of a dump"):
        resolve_dump(plan, "/etc/passwd")
    with pytest.raises(HastackError, match="no dump file at"):
        resolve_dump(plan, "app-20261127T100000Z.dump.gpg")
    real = tmp_path / "app-20261127T100000Z.dump.gpg"
    real.write_bytes(b"x")
    assert resolve_dump(plan, str(real)) == real
    link = tmp_path / "app-20261127T110000Z.dump.gpg"
    link.symlink_to(real)
    with pytest.raises(HastackError, match="no dump file at"):
        resolve_dump(plan, str(link))


def test_dumps_are_whole_compressed_and_encrypted_with_a_passphrase_file() -> None:
    argv = dump_argv(Path("/usr/lib/postgresql/15/bin"), Path("/run/x"), 5432, "postgres", "app")
    assert "--format=custom" in argv and "--no-password" in argv
    enc = encrypt_argv(Path("/h"), Path("/s/pass"), Path("/d/out"))
    assert "--symmetric" in enc and "--cipher-algo=AES256" in enc
    assert "--passphrase-file=/s/pass" in enc and "--output=/d/out" in enc
    assert not any("pass" in a and "file" not in a for a in enc)  # never the passphrase itself
    assert decrypt_argv(Path("/h"), Path("/s/pass"), Path("/d/out"))[-2:] == ["--decrypt", "/d/out"]

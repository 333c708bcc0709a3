"""A second repository in S3-compatible storage (backup.s3): the spec's checks, the
repository host's config (pgBackRest's repo2), the operator's credentials file, and the
scheduler and `status` treating each repository on its own."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hastack.errors import HastackError
from hastack.ops.backup import backup_problems
from hastack.render.pgbackrest import (
    render_node_pgbackrest,
    render_repo_pgbackrest,
    render_restore_pgbackrest,
    render_scheduler_config,
)
from hastack.runtime.configs import parse_s3_credentials
from hastack.spec import SpecError, load_spec
from hastack.spec.model import BackupSpec, S3RepoSpec
from hastack.spec.secrets import S3Credentials, Secrets
from hastack.tools.pgbackrest import RepoStatus, StanzaInfo, parse_info

S3 = (
    "backup:\n  s3:\n    endpoint: s3.eu-central-1.amazonaws.com\n    bucket: acme-backups\n"
    "    region: eu-central-1\n    credentials_file: /etc/hastack/s3.cred\n"
)
SECRETS = Secrets(**{name: f"{name}-x" for name in Secrets.names()} | {"app_login": "app_a"})
CREDS = S3Credentials(key="AKIAEXAMPLE", secret="s3cr3t/ex+ample")
INFO_JSON = (Path(__file__).parent / "data" / "pgbackrest_info.json").read_text()


def _spec(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "hastack.yaml"
    path.write_text("name: demo\n" + body)
    return path


def _error(tmp_path: Path, body: str) -> str:
    with pytest.raises(SpecError) as caught:
        load_spec(_spec(tmp_path, body))
    return "\n".join(i.format() for i in caught.value.errors)


def test_the_s3_repository_is_repo2_on_the_repository_host(tmp_path: Path) -> None:
    plan = load_spec(_spec(tmp_path, S3)).plan
    assert plan.backup_repos == (1, 2)
    text = render_repo_pgbackrest(plan, SECRETS, CREDS)
    for line in (
        "repo2-type=s3",
        "repo2-path=/hastack/demo",
        "repo2-s3-endpoint=s3.eu-central-1.amazonaws.com",
        "repo2-storage-port=443",
        "repo2-s3-bucket=acme-backups",
        "repo2-s3-region=eu-central-1",
        "repo2-s3-uri-style=host",
        "repo2-s3-key=AKIAEXAMPLE",
        "repo2-s3-key-secret=s3cr3t/ex+ample",
        "repo2-storage-verify-tls=y",
        "repo2-cipher-type=aes-256-cbc",
        "repo2-cipher-pass=backup_s3_cipher_pass-x",  # its own passphrase, not repo1's
        "repo2-retention-full=2",
    ):
        assert f"\n{line}\n" in text, line
    # Scratch restores and verifications can read either repository.
    assert "\nrepo2-s3-bucket=acme-backups\n" in render_restore_pgbackrest(plan, SECRETS, CREDS)
    assert '"repos": [\n    1,\n    2\n  ]' in render_scheduler_config(plan)


def test_without_s3_there_is_only_the_local_repository(tmp_path: Path) -> None:
    plan = load_spec(_spec(tmp_path, "")).plan
    assert plan.backup_repos == (1,)
    assert "repo2" not in render_repo_pgbackrest(plan, SECRETS, CREDS)


def test_a_path_style_endpoint_with_a_private_ca(tmp_path: Path) -> None:
    body = S3.replace("    region: eu-central-1\n", "") + (
        "    port: 9000\n    uri_style: path\n    ca_file: /etc/hastack/minio-ca.pem\n"
        "    path: /backups/\n    retention_full: 4\n"
    )
    plan = load_spec(_spec(tmp_path, body)).plan
    text = render_repo_pgbackrest(plan, SECRETS, CREDS)
    for line in (
        "repo2-storage-port=9000",
        "repo2-s3-uri-style=path",
        "repo2-s3-region=us-east-1",
        "repo2-storage-ca-file=/etc/hastack/minio-ca.pem",
        "repo2-path=/backups/demo",
        "repo2-retention-full=4",
    ):
        assert f"\n{line}\n" in text, line


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("s3.eu-central-1.amazonaws.com", "https://s3.example.com", "must be a host name only"),
        ("s3.eu-central-1.amazonaws.com", "s3.example.com:9000", "the port goes in `port`"),
        ("acme-backups", "Acme_Backups", "must be an S3 bucket name"),
        ("/etc/hastack/s3.cred", "s3.cred", "must be an absolute path"),
    ],
)
def test_bad_s3_settings_are_named_with_their_line(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    said = _error(tmp_path, S3.replace(old, new))
    assert expected in said and "hastack.yaml:" in said and "backup.s3" in said, said


def test_s3_needs_an_endpoint_a_bucket_and_credentials(tmp_path: Path) -> None:
    said = _error(tmp_path, "backup:\n  s3:\n    endpoint: s3.example.com\n")
    assert "backup.s3.bucket" in said and "backup.s3.credentials_file" in said, said


def test_the_credentials_file_is_two_lines() -> None:
    creds = parse_s3_credentials("# acme\nkey = AKIA1\n\nsecret=abc/def+ghi\n", "/etc/s3.cred")
    assert creds == S3Credentials("AKIA1", "abc/def+ghi")
    with pytest.raises(HastackError, match=r"/etc/s3\.cred: no `secret=` line"):
        parse_s3_credentials("key=AKIA1\n", "/etc/s3.cred")
    with pytest.raises(HastackError, match=r"/etc/s3\.cred:2: expected `key=ACCESS_KEY`"):
        parse_s3_credentials("key=AKIA1\naws_secret_access_key=x\n", "/etc/s3.cred")


def _two_repos() -> StanzaInfo:
    """The fixture's sets in the local repository, and a copy of its full one in S3."""
    parsed = parse_info(INFO_JSON, "hsdev")
    full = parsed.backups[0]
    in_s3 = replace(full, label=full.label.replace("161013F", "161100F"), repo=2)
    return replace(parsed, backups=(*parsed.backups, in_s3))


def test_each_repository_keeps_its_own_sets() -> None:
    both = _two_repos()
    assert [b.repo for b in parse_info(INFO_JSON, "hsdev").backups] == [1, 1]
    assert [b.type for b in both.in_repo(1).backups] == ["full", "incr"]
    assert [b.type for b in both.in_repo(2).backups] == ["full"]


def test_a_missing_or_overdue_s3_backup_is_its_own_problem() -> None:
    spec = BackupSpec(s3=S3RepoSpec.model_validate(_s3_fields()))
    both = _two_repos()
    now = max(b.stop for b in both.backups) + 60
    assert backup_problems(spec, now, both, None, None) == ()
    local_only = both.in_repo(1)
    assert backup_problems(spec, now, local_only, None, None) == (
        "backup: no full backup in the S3 repository (repo2); `hastack backup --repo 2`",
    )
    # The local repository's backups are fresh; S3's full backup is a week and a day old.
    week = 8 * 24 * 3600.0
    aged = replace(
        both,
        backups=tuple(
            replace(b, stop=b.stop - week, start=b.start - week) if b.repo == 2 else b
            for b in both.backups
        ),
    )
    problems = backup_problems(spec, now, aged, None, None)
    assert any(p.startswith("backup: the last full backup in S3 is overdue") for p in problems)
    assert not any("the last full backup is overdue" in p for p in problems)


def _s3_fields() -> dict[str, str]:
    return {
        "endpoint": "s3.example.com",
        "bucket": "acme-backups",
        "credentials_file": "/etc/hastack/s3.cred",
    }


def test_an_unreadable_s3_repository_is_a_problem_of_its_own() -> None:
    spec = BackupSpec(s3=S3RepoSpec.model_validate(_s3_fields()))
    both = _two_repos()
    unreachable = RepoStatus(
        2, 99, "[HostConnectError] unable to connect to 's3.example.com:443': [111] refused"
    )
    down = replace(both.in_repo(1), repos=(RepoStatus(1, 0, "ok"), unreachable), status_code=4)
    now = max(b.stop for b in both.backups) + 60
    (problem,) = backup_problems(spec, now, down, None, None)
    assert problem.startswith("backup: the S3 repository (repo2) cannot be read: [HostConnect")
    assert down.repo(2) == unreachable and down.repo(1).code == 0


def test_nodes_push_each_segment_to_both_repositories_through_the_repository_host(
    tmp_path: Path,
) -> None:
    plan = load_spec(_spec(tmp_path, S3)).plan
    text = render_node_pgbackrest(plan, plan.postgres_nodes[0])
    for repo in (1, 2):
        assert f"\nrepo{repo}-host=127.0.10.105\n" in text
        assert f"\nrepo{repo}-host-config={plan.paths.backup_config}\n" in text
    # The S3 key and the passphrases stay on the repository host.
    assert "s3-key" not in text and "cipher-pass" not in text
    # With S3 out of reach a push gives up on it in seconds, not minutes.
    assert "\n[global:archive-push]\nio-timeout=5\n" in text
    plain = load_spec(_spec(tmp_path, "")).plan
    assert "archive-push]" not in render_node_pgbackrest(plain, plain.postgres_nodes[0])

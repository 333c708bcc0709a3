"""Every rendered config is accepted by the program that reads it; broken ones are refused."""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from hastack.render import render_stack
from hastack.render.alerts import (
    ALERTS,
    alert_test_files,
    render_alert_rules,
    render_alert_tests,
    render_alertmanager,
)
from hastack.render.haproxy import render_bench_haproxy, render_haproxy
from hastack.render.pgbackrest import render_repo_pgbackrest
from hastack.runtime.tls import TlsFiles, ensure_tls, make_ca, make_server_cert
from hastack.spec import StackSpec, derive_plan
from hastack.spec.model import S3RepoSpec
from hastack.spec.secrets import S3Credentials
from hastack.tools.base import ToolError
from hastack.tools.config_checks import (
    check_haproxy_config,
    check_patroni_config,
    check_pgbouncer_config,
)
from hastack.tools.pgbackrest import parse_info
from tests.unit.factories import fixed_secrets

PLAN = derive_plan(StackSpec(state_dir=Path("/tmp/hastack-render-check")))
FILES = {f.path: f.content for f in render_stack(PLAN, fixed_secrets())}
BIN = PLAN.spec.binaries


def haproxy_config_in(scratch: Path, rendered: str | None = None) -> str:
    """The rendered config, pointed at a real certificate, CA and Lua file in `scratch`
    (haproxy -c opens them all)."""
    files = TlsFiles(scratch / "ca.crt", scratch / "ca.key", scratch / "site.pem")
    ensure_tls(files, PLAN.name, ["localhost"], [PLAN.services_address], "root")
    lua = scratch / "hold.lua"
    lua.write_text(FILES[PLAN.paths.haproxy_hold_lua])
    return (
        (rendered or FILES[PLAN.paths.haproxy_config])
        .replace(str(PLAN.paths.haproxy_pem), str(files.haproxy_pem))
        .replace(str(PLAN.paths.haproxy_hold_lua), str(lua))
        .replace(str(PLAN.paths.ca_cert), str(files.ca_cert))
        .replace(str(PLAN.paths.haproxy_stats_pem), str(files.haproxy_pem))
    )


def test_haproxy_accepts_the_rendered_config(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(haproxy_config_in(tmp_path))
    assert check_haproxy_config(BIN.haproxy, cfg).ok


def test_haproxy_accepts_secrets_that_look_like_flags(tmp_path: Path) -> None:
    """Generated secrets are URL-safe base64: one in 64 starts with "-"."""
    secrets = replace(fixed_secrets(), load_test_token="-v", haproxy_stats_password="-f")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(haproxy_config_in(tmp_path, render_haproxy(PLAN, secrets)))
    assert check_haproxy_config(BIN.haproxy, cfg).ok


def test_haproxy_accepts_the_bench_http_throwaway_config(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    bench = render_bench_haproxy(PLAN, "127.0.10.161", 8080, 8443)
    cfg.write_text(haproxy_config_in(tmp_path, bench))
    assert check_haproxy_config(BIN.haproxy, cfg).ok


def test_haproxy_refuses_a_broken_config(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(haproxy_config_in(tmp_path).replace("fall 16", "fall sixteen"))
    with pytest.raises(ToolError, match="HAProxy rejects"):
        check_haproxy_config(BIN.haproxy, cfg)


def test_patroni_accepts_the_rendered_config(tmp_path: Path) -> None:
    cfg = tmp_path / "patroni.yml"
    cfg.write_text(FILES[PLAN.node("pg1").paths.patroni_config])
    check_patroni_config(BIN.patroni, cfg, dcs_running=False)


def test_patroni_refuses_a_broken_config(tmp_path: Path) -> None:
    cfg = tmp_path / "patroni.yml"
    text = FILES[PLAN.node("pg1").paths.patroni_config]
    cfg.write_text(text.replace("ttl: 20", "ttl: twenty"))
    with pytest.raises(ToolError, match=r"bootstrap\.dcs\.ttl"):
        check_patroni_config(BIN.patroni, cfg, dcs_running=False)


def pgbouncer_config_in(scratch: Path) -> str:
    """The rendered config with its TLS files (PgBouncer loads them at start) made in
    `scratch` (a directory other users can enter), readable by the user the check runs
    PgBouncer as."""
    ca_key, ca_cert = make_ca(PLAN.name)
    key, cert = make_server_cert(ca_key, ca_cert, [], [PLAN.services_address])
    files = {
        PLAN.paths.ca_cert: ca_cert.public_bytes(serialization.Encoding.PEM),
        PLAN.paths.pgbouncer_tls_cert: cert.public_bytes(serialization.Encoding.PEM),
        PLAN.paths.pgbouncer_tls_key: key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    }
    text = FILES[PLAN.paths.pgbouncer_config]
    nobody = pwd.getpwnam("nobody")
    for path, pem in files.items():
        local = scratch / path.name
        local.write_bytes(pem)
        local.chmod(0o600)
        os.chown(local, nobody.pw_uid, nobody.pw_gid)
        text = text.replace(str(path), str(local))
    return text


def test_pgbouncer_starts_with_the_rendered_config(open_tmp: Path) -> None:
    check_pgbouncer_config(
        BIN.pgbouncer,
        pgbouncer_config_in(open_tmp),
        FILES[PLAN.paths.pgbouncer_auth_file],
        scratch_port=16499,
        user="nobody",
    )


def test_pgbouncer_refuses_an_unknown_setting(open_tmp: Path) -> None:
    broken = pgbouncer_config_in(open_tmp) + "no_such_setting = 1\n"
    with pytest.raises(ToolError, match="PgBouncer rejects"):
        check_pgbouncer_config(
            BIN.pgbouncer,
            broken,
            FILES[PLAN.paths.pgbouncer_auth_file],
            scratch_port=16498,
            user="nobody",
        )


def test_pgbackrest_takes_the_s3_repository_config_and_reports_an_unreachable_endpoint(
    tmp_path: Path,
) -> None:
    """No S3-compatible server installs here (Debian 12 and PyPI have none that is not a
    mock): pgBackRest itself reads the rendered repo2 options (an unknown or misspelt one
    fails with [031]) and, the endpoint refusing, reports repo2 as unreadable next to the
    local repository, which is what `status` and `up` act on."""
    s3 = S3RepoSpec(
        endpoint="localhost",
        port=9,  # discard: nothing listens
        bucket="acme-backups",
        uri_style="path",
        credentials_file=Path("/etc/hastack/s3.cred"),
    )
    spec = StackSpec(state_dir=tmp_path / "state")
    spec = spec.model_copy(update={"backup": spec.backup.model_copy(update={"s3": s3})})
    plan = derive_plan(spec)
    config = tmp_path / "pgbackrest.conf"
    config.write_text(
        render_repo_pgbackrest(plan, fixed_secrets(), S3Credentials("AKIATEST", "secret"))
    )
    for sub in ("log", "lock", "spool"):
        (plan.paths.backup_work_dir / sub).mkdir(parents=True)
    result = subprocess.run(
        [
            str(BIN.pgbackrest),
            f"--config={config}",
            f"--stanza={plan.stanza}",
            "--io-timeout=1",
            "--log-level-file=off",
            "info",
            "--output=json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    info = parse_info(result.stdout, plan.stanza)
    assert info.repo(1).code == 1  # missing stanza path: the local repository, untouched
    assert info.repo(2).code == 99
    assert "unable to connect to 'localhost:9'" in info.repo(2).message


PROMTOOL, AMTOOL = "/usr/bin/promtool", "/usr/bin/amtool"


def _tool(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def test_alert_rules_pass_promtool_and_every_rule_fires_and_stays_quiet(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(render_alert_rules())
    checked = _tool(PROMTOOL, "check", "rules", "rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout
    files = render_alert_tests()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    tested = _tool(PROMTOOL, "test", "rules", *alert_test_files(files), cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout[-4000:] + tested.stderr[-2000:]


def test_a_broken_rule_fails_its_test(tmp_path: Path) -> None:
    """The tests can fail: a replication-lag rule whose threshold was mistyped (100 s instead
    of 10 s) no longer fires on 30 s of lag."""
    (lag,) = [a for a in ALERTS if a.name == "ReplicationLagHigh"]
    broken = replace(lag, expr=lag.expr.replace("> 10", "> 100"))
    files = render_alert_tests((broken,))
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    tested = _tool(PROMTOOL, "test", "rules", *alert_test_files(files), cwd=tmp_path)
    assert tested.returncode != 0
    assert "ReplicationLagHigh" in tested.stdout + tested.stderr


def test_alertmanager_routes_pages_and_tickets(tmp_path: Path) -> None:
    (tmp_path / "alertmanager.yml").write_text(render_alertmanager("http://127.0.0.1:9/alerts"))
    checked = _tool(AMTOOL, "check-config", "alertmanager.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for severity, receiver in (("P0", "page"), ("P1", "page"), ("P2", "ticket"), ("P3", "ticket")):
        routed = _tool(
            AMTOOL,
            "config",
            "routes",
            "test",
            "--config.file=alertmanager.yml",
            f"severity={severity}",
            cwd=tmp_path,
        )
        assert routed.stdout.strip() == receiver, (severity, routed.stdout, routed.stderr)


def _monitoring_files_in(scratch: Path) -> dict[str, Path]:
    """The rendered monitoring files, moved under `scratch` with every file they name
    (certificates, passwords, rules): promtool and amtool open them all."""
    root = str(PLAN.paths.state_dir)
    placed = {}
    for path, content in FILES.items():
        if path.is_relative_to(PLAN.paths.monitor_dir):
            target = scratch / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content.replace(root, str(scratch)))
            placed[path.name] = target
    ca_key, ca_cert = make_ca(PLAN.name)
    key, cert = make_server_cert(ca_key, ca_cert, [], [PLAN.monitor_address])
    pem = serialization.Encoding.PEM
    (scratch / "tls").mkdir()
    (scratch / "tls" / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    monitor = scratch / PLAN.paths.monitor_dir.relative_to(root)
    (monitor / "monitor.pem").write_bytes(cert.public_bytes(pem))
    (monitor / "monitor.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return placed


def test_prometheus_and_alertmanager_accept_the_rendered_configs(tmp_path: Path) -> None:
    placed = _monitoring_files_in(tmp_path)
    checked = _tool(PROMTOOL, "check", "config", str(placed["prometheus.yml"]), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout
    web = _tool(PROMTOOL, "check", "web-config", str(placed["web.yml"]), cwd=tmp_path)
    assert web.returncode == 0, web.stdout + web.stderr
    am = _tool(AMTOOL, "check-config", str(placed["alertmanager.yml"]), cwd=tmp_path)
    assert am.returncode == 0, am.stdout + am.stderr


def test_promtool_refuses_a_broken_scrape_config(tmp_path: Path) -> None:
    placed = _monitoring_files_in(tmp_path)
    config = placed["prometheus.yml"]
    config.write_text(config.read_text().replace("scrape_interval: 5s", "scrape_interval: 5 s"))
    checked = _tool(PROMTOOL, "check", "config", str(config), cwd=tmp_path)
    assert checked.returncode != 0
    assert "scrape_interval" in checked.stdout + checked.stderr or "duration" in (
        checked.stdout + checked.stderr
    )

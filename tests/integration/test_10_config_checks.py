"""Every rendered config is accepted by the program that reads it; broken ones are refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hastack.render import render_stack
from hastack.render.haproxy import render_haproxy
from hastack.runtime.tls import TlsFiles, ensure_tls
from hastack.spec import StackSpec, derive_plan
from hastack.tools.base import ToolError
from hastack.tools.config_checks import (
    check_haproxy_config,
    check_patroni_config,
    check_pgbouncer_config,
)
from tests.unit.factories import fixed_secrets

PLAN = derive_plan(StackSpec(state_dir=Path("/tmp/hastack-render-check")))
FILES = {f.path: f.content for f in render_stack(PLAN, fixed_secrets())}
BIN = PLAN.spec.binaries


def haproxy_config_in(scratch: Path, rendered: str | None = None) -> str:
    """The rendered config, pointed at a real certificate and Lua file in `scratch` (haproxy -c
    opens both)."""
    files = TlsFiles(scratch / "ca.crt", scratch / "ca.key", scratch / "site.pem")
    ensure_tls(files, PLAN.name, ["localhost"], [PLAN.services_address], "root")
    lua = scratch / "hold.lua"
    lua.write_text(FILES[PLAN.paths.haproxy_hold_lua])
    return (
        (rendered or FILES[PLAN.paths.haproxy_config])
        .replace(str(PLAN.paths.haproxy_pem), str(files.haproxy_pem))
        .replace(str(PLAN.paths.haproxy_hold_lua), str(lua))
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


def test_pgbouncer_starts_with_the_rendered_config() -> None:
    check_pgbouncer_config(
        BIN.pgbouncer,
        FILES[PLAN.paths.pgbouncer_config],
        FILES[PLAN.paths.pgbouncer_auth_file],
        scratch_port=16499,
        user="nobody",
    )


def test_pgbouncer_refuses_an_unknown_setting() -> None:
    broken = FILES[PLAN.paths.pgbouncer_config] + "no_such_setting = 1\n"
    with pytest.raises(ToolError, match="PgBouncer rejects"):
        check_pgbouncer_config(
            BIN.pgbouncer,
            broken,
            FILES[PLAN.paths.pgbouncer_auth_file],
            scratch_port=16498,
            user="nobody",
        )

"""A standby cluster's spec: checked against its primary's, and rendered as Patroni's
standby_cluster (at bootstrap only, never in what `up` converges)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hastack.render.patroni import dcs_settings, render_patroni, standby_settings
from hastack.render.pgbackrest import render_primary_repo_pgbackrest, render_repo_pgbackrest
from hastack.render.programs import stack_programs
from hastack.runtime.wan_link import serve
from hastack.spec import SpecError, load_spec
from hastack.spec.plan import StackPlan
from hastack.spec.secrets import Secrets

PRIMARY = "name: main\nnetwork:\n  subnet: 127.0.10.0/24\n"


def _standby(tmp_path: Path, body: str, primary: str = PRIMARY) -> Path:
    (tmp_path / "main.yaml").write_text(primary)
    spec = tmp_path / "dr.yaml"
    spec.write_text(f"{body}standby_cluster:\n  primary: {tmp_path / 'main.yaml'}\n")
    return spec


def _errors(spec: Path) -> list[str]:
    try:
        load_spec(spec)
    except SpecError as exc:
        return [i.format() for i in exc.errors]
    return []


GOOD = "name: dr\nnetwork:\n  subnet: 127.0.11.0/24\npostgres:\n  node_prefix: dr\n"


def test_a_standby_is_planned_from_its_primary(tmp_path: Path) -> None:
    plan = load_spec(_standby(tmp_path, GOOD)).plan
    assert plan.standby is not None
    assert (plan.standby.primary_name, plan.standby.host, plan.standby.port) == (
        "main",
        "127.0.10.100",
        5000,
    )
    assert [n.name for n in plan.postgres_nodes] == ["dr1", "dr2", "dr3"]
    assert "link" not in {p.component for p in stack_programs(plan)}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("name: dr\npostgres:\n  node_prefix: dr\n", "network.subnet: the primary stack uses"),
        ("name: dr\nnetwork:\n  subnet: 127.0.11.0/24\n", "postgres.node_prefix: this stack's"),
        (GOOD + "  version: 16\n", "postgres.version: the primary runs PostgreSQL 15"),
        ("name: main\nnetwork:\n  subnet: 127.0.11.0/24\npostgres:\n  node_prefix: dr\n", "name:"),
    ],
)
def test_a_standby_must_differ_from_its_primary(tmp_path: Path, body: str, expected: str) -> None:
    found = _errors(_standby(tmp_path, body))
    assert any(expected in e for e in found), found


def test_a_missing_primary_spec_is_named(tmp_path: Path) -> None:
    spec = tmp_path / "dr.yaml"
    spec.write_text(GOOD + f"standby_cluster:\n  primary: {tmp_path / 'nope.yaml'}\n")
    (found,) = _errors(spec)
    assert "dr.yaml" in found and "standby_cluster.primary" in found and "no such file" in found


def test_a_relative_primary_path_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "dr.yaml"
    spec.write_text(GOOD + "standby_cluster:\n  primary: main.yaml\n")
    (found,) = _errors(spec)
    assert "must be an absolute path" in found


def test_standby_cluster_is_bootstrap_only(tmp_path: Path) -> None:
    plan = load_spec(_standby(tmp_path, GOOD.replace("dr\n", "dr\n", 1))).plan
    secrets = Secrets(**{name: "x" for name in Secrets.names()} | {"app_login": "app_a"})
    text = render_patroni(plan, plan.postgres_nodes[0], secrets)
    assert "standby_cluster:" in text and "trusted-ca.pem" in text
    assert "standby_cluster" not in dcs_settings(plan)


def test_latency_adds_the_relay_on_loopback(tmp_path: Path) -> None:
    spec = _standby(tmp_path, GOOD)
    spec.write_text(spec.read_text() + "  latency_ms: 20\n")
    plan = load_spec(spec).plan
    assert plan.standby is not None and (plan.standby.host, plan.standby.port) == (
        "127.0.0.1",
        5099,
    )
    (link,) = [p for p in stack_programs(plan) if p.component == "link"]
    assert "--to=127.0.10.100:5000" in link.argv and "--delay-ms=20" in link.argv


def test_the_relay_forwards_every_byte_in_order() -> None:
    async def run() -> bytes:
        async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while data := await r.read(4096):
                w.write(data)
                await w.drain()
            w.close()

        upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
        up_port = upstream.sockets[0].getsockname()[1]
        relay = asyncio.create_task(serve(("127.0.0.1", 47391), ("127.0.0.1", up_port), 0.005))
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", 47391)
        payload = bytes(range(256)) * 2000
        writer.write(payload)
        writer.write_eof()
        got = await reader.read(-1)
        writer.close()
        relay.cancel()
        upstream.close()
        return got

    assert asyncio.run(run()) == bytes(range(256)) * 2000


def test_two_specs_naming_each_other_do_not_loop(tmp_path: Path) -> None:
    main = tmp_path / "main.yaml"
    dr = tmp_path / "dr.yaml"
    main.write_text(PRIMARY + f"standby_cluster:\n  primary: {dr}\n")
    dr.write_text(GOOD + f"standby_cluster:\n  primary: {main}\n")
    assert _errors(dr) == []  # fine once the other was promoted: `up` finds out
    warnings = [w.format() for w in load_spec(dr).warnings]
    assert any("was born a standby cluster" in w for w in warnings), warnings


def test_a_promoted_standby_is_planned_as_a_primary(tmp_path: Path) -> None:
    from hastack.runtime.stack import Stack

    spec = _standby(tmp_path, GOOD + f"state_dir: {tmp_path / 'state'}\n")
    plan = load_spec(spec).plan
    assert Stack(plan).plan.standby is not None
    plan.paths.state_dir.mkdir()
    plan.paths.standby_promoted.write_text("{}\n")
    promoted = Stack(plan).plan
    assert promoted.standby is None
    # ... so a cluster restore bootstraps a primary, and the relay is gone.
    secrets = Secrets(**{name: "x" for name in Secrets.names()} | {"app_login": "app_a"})
    assert "standby_cluster" not in render_patroni(promoted, promoted.postgres_nodes[0], secrets)
    # Patroni's environment is the standby's still: a promotion must not restart Patroni.
    before = {p.name: p.environment for p in stack_programs(plan)}
    assert before == {p.name: p.environment for p in stack_programs(promoted)}


def _patroni_env(plan: StackPlan, node: str) -> dict[str, str]:
    (patroni,) = [p for p in stack_programs(plan) if p.name == f"{node}-patroni"]
    return patroni.environment


def test_wal_comes_from_the_primarys_repository_when_streaming_breaks(tmp_path: Path) -> None:
    plan = load_spec(_standby(tmp_path, GOOD)).plan
    standby = standby_settings(plan)["standby_cluster"]
    # One command for every node (it lives in the DCS): the config comes from the
    # environment, and names the primary's stanza, repository host and the node's data.
    assert "/usr/bin/timeout " in standby["restore_command"]
    assert standby["restore_command"].startswith(f"[ ! -e {plan.paths.primary_abandoned} ] && ")
    assert standby["restore_command"].endswith('--stanza=main archive-get %f "%p"')
    assert "--config" not in standby["restore_command"]
    for node in plan.postgres_nodes:
        config = render_primary_repo_pgbackrest(plan, node)
        assert config is not None
        env = _patroni_env(plan, node.name)
        assert env["PGBACKREST_CONFIG"] == str(node.paths.primary_repo_config)
        assert "repo1-host=127.0.10.105\n" in config and "[main]\n" in config
        assert f"pg1-path={node.paths.pgdata}\n" in config
        assert f"repo1-host-cert-file={node.paths.primary_repo_cert}\n" in config
        assert "archive-async=n\n" in config
        assert "cipher" not in config  # the passphrase stays on the primary's repository host
    # ... and the primary's repository host admits the standby's certificate for its stanza.
    primary = load_spec(tmp_path / "main.yaml").plan
    secrets = Secrets(**{name: "x" for name in Secrets.names()} | {"app_login": "app_a"})
    assert "tls-server-auth=standby=main\n" in render_repo_pgbackrest(primary, secrets)
    # A primary's nodes have none of it.
    assert "PGBACKREST_CONFIG" not in _patroni_env(primary, "pg1")
    assert render_primary_repo_pgbackrest(primary, primary.postgres_nodes[0]) is None


def test_no_repository_fallback_when_the_primary_takes_no_backups(tmp_path: Path) -> None:
    spec = _standby(tmp_path, GOOD, primary=PRIMARY + "backup:\n  enabled: false\n")
    plan = load_spec(spec).plan
    assert "restore_command" not in standby_settings(plan)["standby_cluster"]
    assert render_primary_repo_pgbackrest(plan, plan.postgres_nodes[0]) is None

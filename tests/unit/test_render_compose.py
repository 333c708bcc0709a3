"""`hastack render compose`: the single-host variant of the Swarm render. Golden files, the
compose-spec schema, Compose v2's own `config -q` (offline, no daemon), and what differs
from the Swarm file (nothing but the documented keys)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from hastack.render.compose import TARGET
from hastack.render.container_files import system_users
from hastack.render.targets import SECRET_MODE, targets
from hastack.runtime.containers import volume_seeders
from hastack.spec import StackSpec, derive_plan
from tests.unit.container_targets import (
    BIN,
    GOLDEN,
    check_golden,
    golden_files,
    leaked_secrets,
    load_yaml,
    render,
    run_tool,
    schema_check,
    write_out,
)

TEXTS = ("compose/compose.yml", "compose/owners.sh")

SWARM_ONLY = {"networks", "deploy"}
COMPOSE_ONLY = {"network_mode", "restart", "labels"}


@functools.cache
def compose() -> dict[str, Any]:
    return load_yaml(render("compose")["compose/compose.yml"].content)


@functools.cache
def swarm() -> dict[str, Any]:
    return load_yaml(render("swarm")["swarm/stack.yml"].content)


@pytest.mark.parametrize("name", sorted(golden_files(render("compose"), TEXTS)))
def test_matches_golden(name: str, request: pytest.FixtureRequest) -> None:
    check_golden("compose", name, golden_files(render("compose"), TEXTS)[name], request)


def test_no_stale_golden_files() -> None:
    found = sorted(p.name for p in (GOLDEN / "compose").iterdir())
    assert found == sorted(golden_files(render("compose"), TEXTS))


def test_the_target_is_registered() -> None:
    assert targets()["compose"] is TARGET


def test_the_compose_file_passes_the_schema_and_compose_config(tmp_path: Path) -> None:
    write_out(render("compose"), tmp_path)
    path = tmp_path / "compose" / "compose.yml"
    result = schema_check(path)
    assert result.returncode == 0, result.stdout + result.stderr
    result = run_tool([str(BIN / "docker-compose"), "-f", str(path), "config", "-q"], path.parent)
    assert result.returncode == 0, result.stderr
    # uid/gid/mode would only be ignored outside Swarm (with a warning): none are written.
    assert "not supported" not in result.stderr


def test_compose_config_catches_a_wrong_file(tmp_path: Path) -> None:
    """Compose v2 refuses what the schema alone lets through: the Swarm file's external
    host network beside `network_mode` is one of them."""
    write_out(render("compose"), tmp_path)
    path = tmp_path / "compose" / "compose.yml"
    text = path.read_text().replace("network_mode: host", "network_mode: host\n    networks: [x]")
    path.write_text(text + "networks:\n  x: {external: true, name: host}\n")
    result = run_tool([str(BIN / "docker-compose"), "-f", str(path), "config", "-q"], path.parent)
    assert result.returncode != 0
    assert "network_mode" in result.stderr


def test_the_services_are_the_swarm_services_but_for_the_engine_keys() -> None:
    """One service list, two variants: every key but the documented ones is the same."""
    assert set(compose()["services"]) == set(swarm()["services"])
    for name, service in compose()["services"].items():
        theirs = swarm()["services"][name]
        assert set(service) - COMPOSE_ONLY == set(theirs) - SWARM_ONLY, name
        for key in set(service) - COMPOSE_ONLY - {"configs", "secrets"}:
            assert service[key] == theirs[key], (name, key)
        for kind in ("configs", "secrets"):
            mine = [(m["source"], m["target"]) for m in service.get(kind, [])]
            assert mine == [(m["source"], m["target"]) for m in theirs.get(kind, [])]
        assert service["network_mode"] == "host"
        assert service["restart"] == "always"
    assert compose()["volumes"] == swarm()["volumes"]
    assert compose()["configs"] == swarm()["configs"]
    assert compose()["secrets"] == swarm()["secrets"]
    assert compose()["name"] == "demo" and "version" not in compose()


def test_the_image_is_the_swarm_one() -> None:
    mine, theirs = render("compose"), render("swarm")
    for path in ("image/Dockerfile", "image/README"):
        assert mine[path] == theirs[path]


def test_owners_gives_every_mounted_file_its_owner_and_mode() -> None:
    plan = derive_plan(StackSpec())
    uids = {u.name: u.uid for u in system_users(plan)}
    script = render("compose")["compose/owners.sh"]
    assert script.mode == 0o755
    for kind in ("configs", "secrets"):
        for key in compose()[kind]:
            mount = next(
                m
                for s in swarm()["services"].values()
                for m in s.get(kind, [])
                if m["source"] == key
            )
            line = f"chown {mount['uid']}:{mount['gid']} {kind}/{key} && chmod {mount['mode']:04o}"
            assert line in script.content, key
    assert set(uids.values()) >= {
        int(line.split()[1].split(":")[0])
        for line in script.content.splitlines()
        if line.startswith("chown") and not line.startswith("chown 0:")
    }


def test_no_secret_outside_a_secret_file() -> None:
    files = render("compose")
    assert leaked_secrets(files) == []
    for path, f in files.items():
        if path.startswith(("compose/secrets/", "compose/client/")):
            assert f.mode == SECRET_MODE, path


def test_a_changed_file_changes_only_its_readers_label() -> None:
    """Compose recreates a service when its definition changes, not when a bind-mounted
    file does: the label carries the digest of the service's files."""
    before = compose()["services"]
    changed = StackSpec.model_validate({"redis": {"maxmemory_mb": 96}})
    after = load_yaml(render("compose", changed)["compose/compose.yml"].content)["services"]
    differs = {n for n in before if before[n]["labels"] != after[n]["labels"]}
    assert "redis" in differs
    assert "pg1-patroni" not in differs and "haproxy" not in differs


def test_each_shared_volume_is_first_mounted_by_one_container_alone() -> None:
    """Compose gives up when two containers race to fill one fresh volume (seen in a
    clean-clone run: "failed to mkdir .../alertmanager-data: file exists"): one service per
    shared volume starts first."""
    rendered = compose()
    rounds = volume_seeders(rendered)
    shared = {"monitor", "pg1", "pg2", "pg3", "backup", "app"}
    seeded: list[str] = []
    for services in rounds:
        mounted = [v.split(":", 1)[0] for s in services for v in rendered["services"][s]["volumes"]]
        assert len(mounted) == len(set(mounted)), mounted  # no two in a round share one
        seeded += mounted
    assert set(seeded) == shared and len(seeded) == len(shared)
    two = {
        "volumes": {"a": None, "b": None},
        "services": {
            "x": {"volumes": ["a:/a", "b:/b"]},
            "y": {"volumes": [{"type": "volume", "source": "a", "target": "/a"}]},
            "z": {"volumes": ["b:/b", "/etc/hosts:/etc/hosts:ro"]},
        },
    }
    assert volume_seeders(two) == [["x"]]
    assert volume_seeders({"volumes": {"a": None}, "services": {"x": {"volumes": ["a:/a"]}}}) == []

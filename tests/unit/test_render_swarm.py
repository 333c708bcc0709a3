"""`hastack render swarm`: the stack file, its configs and secrets, and the image context.
Golden files (update with `pytest --update-golden`), the compose-spec schema, and the
promises: one service per program of the local stack, every file it reads at its path, no
secret outside a secret file, one address and port per listener."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import pytest

from hastack.errors import HastackError
from hastack.render import render_stack, stack_programs
from hastack.render.container_files import (
    certificates,
    container_files,
    state_dirs,
    system_users,
)
from hastack.render.containers import EXCLUDED_COMPONENTS
from hastack.render.swarm import TARGET, label_command
from hastack.render.targets import SECRET_MODE, TargetFile, targets
from hastack.spec import StackSpec, derive_plan
from tests.unit.container_targets import (
    GOLDEN,
    check_golden,
    fake_material,
    golden_files,
    leaked_secrets,
    load_yaml,
    render,
    schema_check,
    unescape,
    write_out,
)

TEXTS = ("swarm/stack.yml", "image/Dockerfile", "image/README")


@functools.cache
def stack() -> dict[str, Any]:
    return load_yaml(render("swarm")["swarm/stack.yml"].content)


@pytest.mark.parametrize("name", sorted(golden_files(render("swarm"), TEXTS)))
def test_matches_golden(name: str, request: pytest.FixtureRequest) -> None:
    check_golden("swarm", name, golden_files(render("swarm"), TEXTS)[name], request)


def test_no_stale_golden_files() -> None:
    found = sorted(p.name for p in (GOLDEN / "swarm").iterdir())
    assert found == sorted(golden_files(render("swarm"), TEXTS))


def test_the_target_is_registered() -> None:
    assert targets()["swarm"] is TARGET


def test_the_stack_file_passes_the_compose_spec_schema(tmp_path: Path) -> None:
    write_out(render("swarm"), tmp_path)
    result = schema_check(tmp_path / "swarm" / "stack.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_wrong_stack_file(tmp_path: Path) -> None:
    """The validator above can fail: a misspelt key is refused."""
    files = render("swarm")
    text = files["swarm/stack.yml"].content.replace("stop_grace_period:", "stop_grace:", 1)
    path = tmp_path / "stack.yml"
    path.write_text(text)
    result = schema_check(path)
    assert result.returncode != 0
    assert "stop_grace" in result.stdout + result.stderr


def test_every_program_of_the_local_stack_has_its_service() -> None:
    plan = derive_plan(StackSpec())
    programs = {p.name: p for p in stack_programs(plan)}
    services = stack()["services"]
    excluded = {n for n, p in programs.items() if p.component in EXCLUDED_COMPONENTS}
    assert excluded == {"fencer"}  # the default spec has no WAN link
    assert set(services) == set(programs) - excluded
    for name, service in services.items():
        program = programs[name]
        assert [unescape(a) for a in service["command"]] == list(program.argv), name
        assert service["user"] == program.user
        assert service["working_dir"] == str(program.directory)
        environment = {k: unescape(v) for k, v in service["environment"].items()}
        assert environment == {"HOME": str(program.directory), **program.environment}
        assert service["stop_grace_period"] == f"{program.stop_wait_s}s"
        assert service["stop_signal"] == f"SIG{program.stop_signal}"


def _read_here(text: str) -> str:
    """A config without the paths pgBackRest hands to its remote end, read over there: the
    remote's config (repoN-/pgN-host-config) and, for a node reached over TLS, its data
    directory and socket."""
    text = re.sub(r"(?m)^(?:repo|pg)\d+-host-config=.*$", "", text)
    if re.search(r"(?m)^pg\d+-host=", text):
        text = re.sub(r"(?m)^pg\d+-(?:path|socket-path)=.*$", "", text)
    return text


def _paths_named(text: str, state_dir: str) -> set[str]:
    return {m.rstrip(".") for m in re.findall(re.escape(state_dir) + r"[^\s,;:'\"\]\)]*", text)}


def test_every_path_a_service_names_is_there() -> None:
    """Each path under the state directory in a service's argv, environment, health check
    or any file it mounts is a mounted file, inside its volume, or baked into the image."""
    plan = derive_plan(StackSpec())
    state_dir = str(plan.paths.state_dir)
    image_dirs = {str(p) for p, _, _ in state_dirs(plan)}
    material = fake_material(plan, "swarm")
    known_files = {str(f.target) for f in container_files(plan, material)}
    known_files |= {str(f.path) for f in render_stack(plan, material.secrets)}
    files = render("swarm")
    for name, service in stack()["services"].items():
        mounts = service.get("configs", []) + service.get("secrets", [])
        targets_ = {m["target"] for m in mounts}
        volume_dir = service["volumes"][0].split(":", 1)[1]
        kind = {
            m["source"]: ("secrets" if m in service.get("secrets", []) else "configs")
            for m in mounts
        }
        texts = [*service["command"], *service["environment"].values()]
        texts += service.get("healthcheck", {}).get("test", [])
        texts += [
            _read_here(files[f"swarm/{kind[m['source']]}/{m['source']}"].content) for m in mounts
        ]
        for path in sorted(set().union(*(_paths_named(t, state_dir) for t in texts))):
            if path in known_files:  # rendered or issued: only a mount puts it there
                ok = path in targets_
            else:  # made at run time: its directory must be there
                ok = (
                    path in image_dirs
                    or str(Path(path).parent) in image_dirs
                    or path.startswith(volume_dir + "/")
                    or path == volume_dir
                )
            assert ok, f"{name} names {path}: not mounted, not in its volume or the image"


def test_every_file_a_program_reads_is_mounted_at_its_path() -> None:
    plan = derive_plan(StackSpec())
    services = stack()["services"]
    for f in render_stack(plan, fake_material(plan, "swarm").secrets):
        # "app": every app instance (each restarts when it changes).
        readers = [r for r in f.readers if r != "app"]
        readers += [i.name for i in plan.app_instances] if "app" in f.readers else []
        for reader in readers:
            if reader not in services:
                assert reader == "fencer"
                continue
            service = services[reader]
            mounted = {m["target"]: m for m in service.get("secrets", [])}
            assert str(f.path) in mounted, f"{reader} does not get {f.path}"
            uid = next(u.uid for u in system_users(plan) if u.name == f.owner)
            assert mounted[str(f.path)]["uid"] == str(uid)
            assert mounted[str(f.path)]["mode"] == f.mode


def test_no_secret_outside_a_secret_file() -> None:
    files = render("swarm")
    assert leaked_secrets(files) == []
    assert files["swarm/stack.yml"].mode == 0o644  # what is checked above is not a secret
    for path, f in files.items():
        if path.startswith("swarm/secrets/") or path.startswith("swarm/client/"):
            assert f.mode == SECRET_MODE, path


def test_the_secret_scan_finds_a_password_where_it_does_not_belong() -> None:
    files = render("swarm")
    stack_file = files["swarm/stack.yml"]
    leaked = type(stack_file)(stack_file.path, stack_file.content + "# redis_password-VALUE\n")
    assert leaked_secrets({**files, "swarm/stack.yml": leaked}) != []


def test_every_config_and_secret_is_declared_once_and_written() -> None:
    files = render("swarm")
    document = stack()
    used = {
        (kind, m["source"])
        for service in document["services"].values()
        for kind in ("configs", "secrets")
        for m in service.get(kind, [])
    }
    declared = {(kind, key) for kind in ("configs", "secrets") for key in document[kind]}
    assert used == declared
    written = {
        tuple(p.split("/")[1:]) for p in files if p.startswith(("swarm/configs/", "swarm/secrets/"))
    }
    assert written == declared
    names = [o["name"] for kind in ("configs", "secrets") for o in document[kind].values()]
    assert len(set(names)) == len(names)
    assert all(len(n) <= 64 and n.startswith("demo-") for n in names)


ADDRESS = r"(\d+\.\d+\.\d+\.\d+:\d+)"


def _listeners(service: dict[str, Any], files: dict[str, TargetFile]) -> set[str]:
    """address:port a service listens on: its argv's listen flags, what its health check
    asks, and for a pgBackRest server the address its config gives it."""
    command = " ".join(service["command"])
    check = " ".join(service.get("healthcheck", {}).get("test", []))
    found = set(re.findall(r"listen[-a-z.]*=(?:https?://)?" + ADDRESS, command))
    found |= set(re.findall(r"https?://" + ADDRESS, check))
    found |= set(re.findall(r"--endpoints=https://" + ADDRESS, check))
    found |= {f"{a}:{p}" for a, p in re.findall(r"-h (\S+) -p (\d+)", check)}
    if service["command"][0].endswith("pgbackrest"):
        config = next(a for a in service["command"] if a.startswith("--config="))
        (mount,) = [m for m in service["secrets"] if m["target"] == config.split("=", 1)[1]]
        text = files[f"swarm/secrets/{mount['source']}"].content
        address = re.search(r"^tls-server-address=(.+)$", text, re.M)
        port = re.search(r"^tls-server-port=(.+)$", text, re.M)
        assert address and port
        found.add(f"{address.group(1)}:{port.group(1)}")
    return found


def test_no_two_services_listen_on_one_address_and_port() -> None:
    files = render("swarm")
    seen: dict[str, str] = {}
    for name, service in stack()["services"].items():
        listeners = _listeners(service, files)
        if name == "backup-scheduler":
            assert listeners == set()  # it listens nowhere
        else:
            assert listeners, f"{name}: no listener found"
        for endpoint in listeners:
            assert endpoint not in seen, f"{name} and {seen[endpoint]} both use {endpoint}"
            seen[endpoint] = name
    assert len(seen) >= len(stack()["services"])


def test_every_service_except_the_scheduler_has_a_health_check() -> None:
    services = stack()["services"]
    without = sorted(n for n, s in services.items() if "healthcheck" not in s)
    assert without == ["backup-scheduler"]
    checks = {n: s["healthcheck"]["test"] for n, s in services.items() if n in ("pg1-patroni",)}
    assert checks["pg1-patroni"][-1] == "https://127.0.10.1:8008/liveness"
    assert "--cacert" in checks["pg1-patroni"]


def test_deploy_restarts_places_and_updates_every_service() -> None:
    plan = derive_plan(StackSpec())
    labels = " ".join(label_command(plan))
    for name, service in stack()["services"].items():
        deploy = service["deploy"]
        assert deploy["restart_policy"]["condition"] == "any"
        assert deploy["update_config"]["order"] == "stop-first"
        (constraint,) = deploy["placement"]["constraints"]
        label = re.fullmatch(r"node\.labels\.(\S+) == true", constraint)
        assert label is not None, constraint
        assert f"--label-add {label.group(1)}=true" in labels, name
        assert service["networks"] == ["hostnet"]
    assert stack()["services"]["pg1-postgres-exporter"]["deploy"]["placement"] == {
        "constraints": ["node.labels.hastack.pg1 == true"]
    }


def test_the_certificates_are_those_the_local_stack_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same names and addresses as runtime/tls.py (ensure_node_tls, and HAProxy's site
    certificate from runtime/apptier.py), recorded from the runtime's own code."""
    from hastack.runtime import apptier, tls

    made: list[tuple[tuple[str, ...], tuple[str, ...]]] = []

    def record(
        _key: object, _ca: object, hostnames: list[str], addresses: list[str], **_: object
    ) -> tuple[object, object]:
        made.append((tuple(hostnames), tuple(addresses)))
        return object(), object()

    plan = derive_plan(StackSpec())
    monkeypatch.setattr(tls, "load_or_make_ca", lambda *a: (object(), object()))
    monkeypatch.setattr(tls, "make_server_cert", record)
    monkeypatch.setattr(tls, "_current", lambda path: None)
    monkeypatch.setattr(tls, "write_atomic", lambda *a, **k: True)
    monkeypatch.setattr(tls, "key_pem", lambda key: b"")
    monkeypatch.setattr(tls, "cert_pem", lambda cert: "")
    tls.ensure_node_tls(plan)

    def record_site(
        _files: object,
        _stack: str,
        hostnames: list[str],
        addresses: list[str],
        *_: object,
        **__: object,
    ) -> bool:
        made.append((tuple(hostnames), tuple(addresses)))
        return True

    monkeypatch.setattr(apptier, "ensure_tls", record_site)
    monkeypatch.setattr(apptier, "write_atomic", lambda *a, **k: True)
    apptier.prepare_http(plan)
    asked = {(r.hostnames, r.addresses) for r in certificates(plan).values()}
    assert asked == set(made)
    assert len(certificates(plan)) == len(made)


def test_what_the_container_targets_do_not_carry_is_refused() -> None:
    plan = derive_plan(StackSpec.model_validate({"binaries": {"etcd": "/opt/etcd/etcd"}}))
    with pytest.raises(HastackError, match="cannot be rendered for swarm") as error:
        TARGET.render(plan, fake_material(plan, "swarm"))
    assert any("binaries.etcd" in d for d in error.value.details)


def test_the_image_has_every_user_and_directory_of_the_plan() -> None:
    plan = derive_plan(StackSpec())
    dockerfile = render("swarm")["image/Dockerfile"].content
    uids = [u.uid for u in system_users(plan)]
    assert len(set(uids)) == len(uids) == len(plan.all_users)
    for user in system_users(plan):
        assert f"useradd --uid {user.uid} --gid {user.uid} " in dockerfile
        assert dockerfile.count(f" {user.name}") >= 2
    for path, _, mode in state_dirs(plan):
        assert f"-m {mode:04o} {path}\n" in dockerfile or f"-m {mode:04o} {path} " in dockerfile
    assert "postgresql-15=15.20-0+deb12u1" in dockerfile
    assert "redis-server=5:7.0.15-1~deb12u10" in dockerfile


def test_the_image_directories_are_those_the_runtime_makes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hastack.runtime import layout

    made: list[tuple[Path, str, int]] = []
    monkeypatch.setattr(
        layout, "ensure_dir", lambda p, owner="root", mode=0o755: made.append((p, owner, mode))
    )
    plan = derive_plan(StackSpec())
    layout.prepare_dirs(plan)
    assert state_dirs(plan) == made
    minimal = derive_plan(
        StackSpec.model_validate({"backup": {"enabled": False}, "monitoring": {"enabled": False}})
    )
    made.clear()
    layout.prepare_dirs(minimal)
    assert state_dirs(minimal) == made

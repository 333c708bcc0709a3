"""Target systemd: every host's units, firewall and install script, each checked by its own
tool (systemd-analyze verify, nft -c, bash -n, shellcheck), golden files for the structure
(update with `pytest --update-golden`), and the firewall's flow table."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from hastack.render.fencer import render_watcher_config
from hastack.render.nftables import Flow, flows, host_rules
from hastack.render.patroni import pg_hba
from hastack.render.pgbackrest import render_node_pgbackrest, render_repo_pgbackrest
from hastack.render.program import Program
from hastack.render.systemd import TARGET, placed_programs, program_unit, secret_values
from hastack.render.systemd_units import UnitContext, exec_line, service_unit
from hastack.render.targets import IssuedCert, StackMaterial, TargetFile, targets
from hastack.runtime.fencing import WatcherConfig
from hastack.spec.plan import StackPlan
from tests.unit.factories import fixed_secrets, load_text

GOLDEN = Path(__file__).parent.parent / "golden" / "systemd"

SPEC = """\
name: demo
target: systemd
fencing:
  command: "/usr/local/bin/fence-vm --token s3cr3t-fence-token $HASTACK_FENCE_HOST"
hosts:
  - {name: db1, address: 10.0.0.11}
  - {name: db2, address: 10.0.0.12}
  - {name: db3, address: 10.0.0.13, runs: [pg3, backup]}
  - {name: web1, address: 10.0.0.21, runs: [app1, app2]}
"""
"""Three database hosts and one app host: the app host shows what the firewall keeps from it."""

ADDRESSES = {"db1": "10.0.0.11", "db2": "10.0.0.12", "db3": "10.0.0.13", "web1": "10.0.0.21"}


def _pem(kind: str, name: str) -> str:
    return f"-----BEGIN {kind}-----\nFAKE-{name}\n-----END {kind}-----\n"


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> StackPlan:
    return load_text(tmp_path_factory.mktemp("spec"), SPEC).plan


def material_for(plan: StackPlan) -> StackMaterial:
    issued = {
        name: IssuedCert(_pem("CERTIFICATE", name), _pem("PRIVATE KEY", name))
        for name in TARGET.certificates(plan)
    }
    return StackMaterial(fixed_secrets(), _pem("CERTIFICATE", "ca"), issued)


@pytest.fixture(scope="module")
def files(plan: StackPlan) -> list[TargetFile]:
    return TARGET.render(plan, material_for(plan))


@pytest.fixture(scope="module")
def tree(files: list[TargetFile], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("render")
    for f in files:
        path = out / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f.content)
        path.chmod(f.mode)
    return out


def _golden_files(files: list[TargetFile]) -> dict[str, str]:
    """Everything but the copied config files (render_stack's own golden files cover them)."""
    return {str(f.path).replace("/", "__"): f.content for f in files if f.path.parts[1] != "files"}


def test_the_target_is_registered() -> None:
    assert targets()["systemd"] is TARGET


def test_rendered_files_match_golden(
    files: list[TargetFile], request: pytest.FixtureRequest
) -> None:
    rendered = _golden_files(files)
    if request.config.getoption("--update-golden"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        GOLDEN.mkdir(parents=True)
        for name, content in rendered.items():
            (GOLDEN / name).write_text(content)
    assert sorted(p.name for p in GOLDEN.iterdir()) == sorted(rendered), "run --update-golden"
    for name, content in rendered.items():
        assert content == (GOLDEN / name).read_text(), name


def test_every_program_is_placed_on_exactly_one_host(
    plan: StackPlan, files: list[TargetFile]
) -> None:
    units = [
        str(f.path) for f in files if f.path.suffix == ".service" and "-firewall" not in str(f.path)
    ]
    for program in placed_programs(plan):
        where = [u for u in units if u.endswith(f"/hastack-demo-{program.name}.service")]
        assert len(where) == 1, (program.name, where)
        host = plan.host_of(program_unit(plan, program))
        assert host is not None and where[0].startswith(f"{host.name}/units/")
    assert len(units) == len(placed_programs(plan))
    # A node's PostgreSQL exporter listens on its node's address: it runs there.
    assert "db2/units/hastack-demo-pg2-postgres-exporter.service" in units
    assert "web1/units/hastack-demo-app2.service" in units


def test_units_run_the_local_stacks_argv_user_and_stop_signal(plan: StackPlan, tree: Path) -> None:
    pgbouncer = next(p for p in placed_programs(plan) if p.name == "pgbouncer")
    text = (tree / "db1/units/hastack-demo-pgbouncer.service").read_text()
    assert f"ExecStart={exec_line(pgbouncer.argv)}\n" in text
    assert f"User={pgbouncer.user}\n" in text
    assert "KillSignal=SIGINT\n" in text and "TimeoutStopSec=15\n" in text
    patroni = (tree / "db2/units/hastack-demo-pg2-patroni.service").read_text()
    # systemd would expand $0 and $@ itself: doubled, the shell sees them.
    assert '"exec \\"$$0\\" \\"$$@\\" </dev/null"' in patroni
    assert (
        "After=network-online.target hastack-demo-firewall.service hastack-demo-pg2-etcd" in patroni
    )
    assert "ReadWritePaths=-/var/lib/hastack/demo/nodes/pg2\n" in patroni
    target = (tree / "db2/units/hastack-demo.target").read_text()
    assert "hastack-demo-pg2-patroni.service" in target


def _verify_problems(output: str, plan: StackPlan) -> list[str]:
    """systemd-analyze's complaints, less a binary this machine lacks (the units name the
    spec's binaries; scripts/install-deps installs them)."""
    binaries = {str(v) for v in plan.spec.binaries.model_dump().values() if v is not None}
    return [
        line
        for line in output.splitlines()
        if line.strip() and not any(f"Command {b} is not executable" in line for b in binaries)
    ]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
@pytest.mark.parametrize("host", sorted(ADDRESSES))
def test_every_unit_passes_systemd_analyze_verify(plan: StackPlan, tree: Path, host: str) -> None:
    units = sorted(str(p) for p in (tree / host / "units").iterdir())
    # --man=no: no documentation lookups; the units' own directory is on the unit path, so
    # the target's Wants= resolve to the rendered services. Warnings (an unknown key, a bad
    # signal name) exit 0: any output line but a missing binary fails the test.
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *units],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_LOG_LEVEL": "warning"},
    )
    problems = _verify_problems(result.stdout + result.stderr, plan)
    assert problems == [], "\n".join(problems)
    assert result.returncode == 0 or not problems


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_catches_a_broken_unit(plan: StackPlan, tmp_path: Path) -> None:
    """The check above can fail: an unbalanced quote and an unknown key are reported."""
    bad = tmp_path / "hastack-demo-bad.service"
    bad.write_text('[Service]\nExecStart=/bin/true "open\nNoSuchKey=1\n')
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(bad)], capture_output=True, text=True
    )
    assert len(_verify_problems(result.stdout + result.stderr, plan)) >= 2


@pytest.mark.skipif(shutil.which("nft") is None, reason="no nft (Debian package nftables)")
@pytest.mark.parametrize("host", sorted(ADDRESSES))
def test_nft_accepts_each_hosts_firewall(tree: Path, host: str) -> None:
    result = subprocess.run(
        ["nft", "-c", "-f", str(tree / host / "nftables.conf")], capture_output=True, text=True
    )
    if result.returncode != 0 and "Operation not permitted" in result.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("host", sorted(ADDRESSES))
def test_install_script_parses_and_passes_shellcheck(tree: Path, host: str) -> None:
    script = tree / host / "install.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert "set -euo pipefail" in script.read_text()
    assert f"ADDRESS={ADDRESSES[host]}\n" in script.read_text()
    if shutil.which("shellcheck"):
        result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout


def test_install_refuses_a_machine_without_the_hosts_address(tree: Path, tmp_path: Path) -> None:
    """Run for real as far as its first check, with `ip` and `id` stubbed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ip").write_text("#!/bin/sh\necho '1: lo    inet 127.0.0.1/8 scope host lo'\n")
    (bin_dir / "id").write_text("#!/bin/sh\necho 0\n")
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    result = subprocess.run(
        ["bash", str(tree / "db1" / "install.sh")],
        capture_output=True,
        text=True,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert "this machine has no address 10.0.0.11" in result.stderr


def test_no_secret_value_in_a_non_secret_file(files: list[TargetFile]) -> None:
    values = [*secret_values(material_for_secrets()), "s3cr3t-fence-token"]
    for f in files:
        if f.secret:
            continue
        leaked = [v for v in values if v in f.content]
        assert leaked == [], (str(f.path), leaked)
    # The fence command is in the watcher's root-only config, and (the spec copied whole into
    # it) in the backup scheduler's config, 0600 for the backup user: docs/deploy-systemd.md
    # says to keep credentials in a file the command reads, not on its command line.
    holders = sorted(str(f.path) for f in files if "s3cr3t-fence-token" in f.content)
    assert holders == [
        "db1/files/var/lib/hastack/demo/fencing/watcher.json",
        "db3/files/var/lib/hastack/demo/services/backup/scheduler-config.json",
    ]
    assert all(f.secret for f in files if str(f.path) in holders)


def material_for_secrets() -> StackMaterial:
    return StackMaterial(fixed_secrets(), "")


def test_a_secret_environment_variable_goes_to_an_environment_file(plan: StackPlan) -> None:
    program = Program(
        name="tool",
        group="haproxy",
        component="haproxy",
        argv=("/usr/bin/tool", "100%"),
        user="hs-demo-haproxy",
        directory=Path("/srv/tool dir"),
        log_file=Path("/dev/null"),
        environment={"API_TOKEN": "abc", "DSN": "x:redis_password-VALUE@y", "MODE": "fast"},
    )
    unit = service_unit(plan, program, UnitContext(writable=()), ["redis_password-VALUE"])
    assert "abc" not in unit.text and "redis_password-VALUE" not in unit.text
    assert 'Environment="MODE=fast"' in unit.text
    assert "EnvironmentFile=/etc/hastack/demo/tool.env" in unit.text
    assert unit.env_file == "API_TOKEN=abc\nDSN=x:redis_password-VALUE@y\n"
    assert 'WorkingDirectory="/srv/tool dir"' in unit.text
    assert "ExecStart=/usr/bin/tool 100%%\n" in unit.text


def test_secret_files_are_private(files: list[TargetFile]) -> None:
    modes = {str(f.path): f.mode for f in files}
    assert modes["db1/files/var/lib/hastack/demo/nodes/pg1/patroni.yml"] == 0o600
    assert modes["db1/files/var/lib/hastack/demo/nodes/pg1/node.key"] == 0o600
    assert modes["db1/files/var/lib/hastack/demo/tls/ca.pem"] == 0o644
    assert modes["db1/install.sh"] == 0o755


def _sources(plan: StackPlan, host: str, flow: str) -> set[str] | None:
    h = next(h for h in plan.hosts if h.name == host)
    rules = [r for r in host_rules(plan, h) if r.flow == flow]
    if not rules:
        return set()
    return None if rules[0].sources is None else set(rules[0].sources)


@pytest.mark.parametrize(
    ("host", "flow", "sources"),
    [
        # etcd's peer port only from the other etcd hosts (web1 runs no member).
        ("db1", "etcd-peer", {"10.0.0.12", "10.0.0.13"}),
        # etcd's clients: the other nodes' Patroni; the watcher is on db1 with pg1 (loopback).
        ("db2", "etcd-client", {"10.0.0.11", "10.0.0.13"}),
        # PostgreSQL: peers, HAProxy and the watcher (db1), the repository (db3); never web1.
        ("db2", "postgres", {"10.0.0.11", "10.0.0.13"}),
        ("db3", "pgbackrest-node", set()),  # the repository is on db3 itself
        ("db1", "pgbackrest-node", {"10.0.0.13"}),
        ("db3", "pgbackrest-repo", {"10.0.0.11", "10.0.0.12"}),
        # The services' ports from the app host only.
        ("db1", "pgbouncer", {"10.0.0.21"}),
        ("db1", "redis", {"10.0.0.21"}),
        ("db1", "haproxy-rw", {"10.0.0.21"}),
        ("web1", "app-app1", {"10.0.0.11"}),
        ("db1", "https", None),
        ("web1", "ssh", None),
        ("db2", "postgres-exporter", {"10.0.0.11"}),
        ("web1", "postgres", set()),  # web1 runs no PostgreSQL: nothing opened
    ],
)
def test_flow_table(plan: StackPlan, host: str, flow: str, sources: set[str] | None) -> None:
    assert _sources(plan, host, flow) == sources


def test_postgres_and_etcd_are_never_open_to_the_app_host(plan: StackPlan) -> None:
    closed = {"postgres", "patroni-rest", "etcd-client", "etcd-peer", "pgbackrest-node"}
    for host in plan.hosts:
        for rule in host_rules(plan, host):
            if rule.flow in closed:
                assert rule.sources is not None and "10.0.0.21" not in rule.sources, rule


def test_every_listening_port_has_one_flow(plan: StackPlan) -> None:
    table: list[Flow] = flows(plan)
    names = [f.name for f in table]
    assert len(names) == len(set(names))
    for f in table:
        assert f.listeners, f.name
        assert f.clients is None or f.clients, f.name


def test_the_firewall_drops_by_default_and_keeps_ssh(tree: Path) -> None:
    text = (tree / "web1" / "nftables.conf").read_text()
    assert "policy drop;" in text and "tcp dport 22 accept" in text
    assert "tcp dport 5432" not in text and "tcp dport 2379" not in text


def test_the_watcher_is_rendered_only_with_a_fence_command(tmp_path: Path) -> None:
    text = "".join(line for line in SPEC.splitlines(True) if "fenc" not in line)
    without = load_text(tmp_path, text).plan
    files = TARGET.render(without, material_for(without))
    assert not [f for f in files if "fenc" in str(f.path)]
    assert any("TTL" in step for step in TARGET.next_steps(without, "/out"))


def test_the_watcher_runs_under_systemd_on_the_services_host(tree: Path) -> None:
    """Enabled with the host's target; its config says systemd runs the programs, and
    names only the units of the node on its own host (pg1 on db1): the nodes on other hosts
    are fenced with the command, and every other restart is systemd's."""
    unit = (tree / "db1/units/hastack-demo-fencer.service").read_text()
    assert "WantedBy=hastack-demo.target" in unit
    assert "hastack-demo-fencer.service" in (tree / "db1/units/hastack-demo.target").read_text()
    text = (tree / "db1/files/var/lib/hastack/demo/fencing/watcher.json").read_text()
    config = WatcherConfig.from_json(text)
    assert config.manager == "systemd" and config.own_host == "db1"
    assert {p["process_name"]: p["unit"] for p in config.programs} == {
        "pg1:pg1-etcd": "hastack-demo-pg1-etcd.service",
        "pg1:pg1-patroni": "hastack-demo-pg1-patroni.service",
    }
    assert config.fence_command and not config.fenced_by_command(config.nodes[0])
    assert all(config.fenced_by_command(n) for n in config.nodes[1:])
    assert not list(tree.glob("*/files/**/supervisord.conf"))
    assert config.applied_spec == ""  # no `hastack up` ran there: HASTACK_CONFIG is empty
    # What it needs to ask Patroni to rebuild a replica, there only.
    rest = "files/var/lib/hastack/demo/secrets/patroni_rest_password"
    assert (tree / "db1" / rest).read_text().strip()
    assert not (tree / "db2" / rest).exists() and not (tree / "db3" / rest).exists()


def test_the_local_watcher_config_keeps_supervisord(plan: StackPlan) -> None:
    config = WatcherConfig.from_json(render_watcher_config(plan))
    assert config.manager == "supervisord" and all("unit" not in p for p in config.programs)


def test_next_steps_name_each_host(plan: StackPlan) -> None:
    steps = TARGET.next_steps(plan, "/tmp/out")
    assert any("/tmp/out/web1/" in s and "10.0.0.21" in s for s in steps)


def test_paths_stay_inside_each_hosts_directory(files: list[TargetFile]) -> None:
    for f in files:
        assert not f.path.is_absolute() and ".." not in f.path.parts
        assert f.path.parts[0] in ADDRESSES
        assert isinstance(f.path, PurePosixPath)


def test_postgresql_admits_the_peers_of_every_host(
    plan: StackPlan, files: list[TargetFile], tmp_path: Path
) -> None:
    """On separate hosts replication, pg_rewind, HAProxy's checks and the repository's
    connections come from the hosts' addresses: pg_hba must admit each one (it admitted only
    127.0.0.1 and the loopback /24 before, which no peer on another host comes from)."""
    lines = pg_hba(plan)
    for address in ADDRESSES.values():
        assert f"hostssl replication replicator {address}/32 scram-sha-256" in lines
        assert f"hostssl all all {address}/32 scram-sha-256" in lines
    rendered = [f for f in files if str(f.path).endswith("pg2/patroni.yml")]
    assert rendered and all("10.0.0.11/32" in f.content for f in rendered)
    single = load_text(tmp_path, "name: one\n").plan
    assert not [line for line in pg_hba(single) if "/32" in line and "127.0.0.1" not in line]


def test_a_repository_beside_a_node_listens_on_its_own_port(plan: StackPlan) -> None:
    """db3 runs pg3 and the repository: pg3's pgBackRest server keeps backup.port, the
    repository's takes the next one, and each side names the other's port (both took the
    repository's port before, and the second to start could not bind it)."""
    node = render_node_pgbackrest(plan, plan.node("pg3"))
    repo = render_repo_pgbackrest(plan, fixed_secrets())
    assert "tls-server-port=8432" in node and "repo1-host-port=8433" in node
    assert "tls-server-port=8433" in repo and "pg3-host-port=8432" in repo

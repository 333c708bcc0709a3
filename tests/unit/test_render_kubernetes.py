"""`hastack render kubernetes`: golden files (update with `pytest --update-golden`), every
manifest validated offline against Kubernetes 1.28-1.37's own schemas (strict: unknown
fields fail), and the promises: the reference's HPA, no secret outside the secret files,
PostgreSQL pods apart and drained one at a time, resources from the plan's formulas, and the
Patroni and HAProxy configs accepted by Patroni and HAProxy themselves."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hastack.errors import HastackError
from hastack.render.image import image_tag
from hastack.render.kubernetes import TARGET, certificates
from hastack.render.kubernetes_backup import cron_schedule
from hastack.render.kubernetes_edge import STATS_PASSWORD_ENV
from hastack.render.kubernetes_names import PATRONI_OVERHEAD_MB, K8sNames
from hastack.render.targets import SECRET_MODE, IssuedCert, StackMaterial, TargetFile, targets
from hastack.spec import StackSpec, derive_plan
from hastack.spec.model import S3RepoSpec
from hastack.spec.plan import StackPlan
from hastack.spec.secrets import INITIAL_VALUES
from tests.unit.factories import fixed_secrets

GOLDEN = Path(__file__).parent.parent / "golden" / "kubernetes"
VERSIONS = ("1.28.0", "1.31.0", "1.34.0", "1.37.0")
IMAGE = "IMAGE"
"""The image's tag in the golden files: it is the Dockerfile's digest (render/image.py),
which changes with the image, not with this target."""
FAKE_CA = "-----BEGIN CERTIFICATE-----\nFAKE CA\n-----END CERTIFICATE-----\n"
S3 = S3RepoSpec(
    endpoint="s3.example.internal",
    bucket="hastack-backups",
    credentials_file=Path("/etc/hastack/s3.cred"),
)
VARIANTS = {
    "default": StackSpec(),
    "s3-sticky-traced": StackSpec.model_validate(
        {
            "backup": {"s3": S3.model_dump()},
            "http": {"sticky_sessions": True},
            "app": {"tracing": {"otlp_endpoint": "http://otel.example:4318/v1/traces"}},
        }
    ),
    "no-app-no-backup": StackSpec.model_validate(
        {"app": {"instances": 0}, "backup": {"enabled": False}, "postgres": {"nodes": 5}}
    ),
}


def fake_material(plan: StackPlan) -> StackMaterial:
    """Fixed secrets and a deterministic fake PEM for every certificate asked for."""
    issued = {
        name: IssuedCert(
            f"-----BEGIN CERTIFICATE-----\nFAKE {name}\n-----END CERTIFICATE-----\n",
            f"-----BEGIN PRIVATE KEY-----\nFAKE KEY {name}\n-----END PRIVATE KEY-----\n",
        )
        for name in certificates(plan)
    }
    return StackMaterial(fixed_secrets(), FAKE_CA, issued)


@functools.cache
def render(variant: str = "default") -> dict[str, TargetFile]:
    plan = derive_plan(VARIANTS[variant])
    files = TARGET.render(plan, fake_material(plan))
    by_path = {str(f.path): f for f in files}
    assert len(by_path) == len(files), "two files at one path"
    return by_path


def documents(variant: str = "default") -> list[tuple[str, dict[str, Any]]]:
    """Every manifest as kubectl reads it (YAML 1.1, as PyYAML), with its file."""
    found = []
    for path, f in render(variant).items():
        if path.endswith(".yaml"):
            found += [(path, d) for d in yaml.safe_load_all(f.content) if d is not None]
    return found


def of_kind(kind: str, variant: str = "default") -> list[dict[str, Any]]:
    return [d for _, d in documents(variant) if d["kind"] == kind]


def named(kind: str, name: str, variant: str = "default") -> dict[str, Any]:
    return next(d for d in of_kind(kind, variant) if d["metadata"]["name"] == name)


def golden_name(path: str) -> str:
    return path.replace("/", "__")


def golden_text(f: TargetFile) -> str:
    return f.content.replace(image_tag(derive_plan(StackSpec())), IMAGE)


@pytest.mark.parametrize("path", sorted(render()))
def test_matches_golden(path: str, request: pytest.FixtureRequest) -> None:
    golden = GOLDEN / golden_name(path)
    content = golden_text(render()[path])
    if request.config.getoption("--update-golden"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        golden.write_text(content)
    assert golden.exists(), f"no golden file {golden}; run pytest --update-golden"
    assert content == golden.read_text()


def test_no_stale_golden_files() -> None:
    assert sorted(p.name for p in GOLDEN.iterdir()) == sorted(map(golden_name, render()))


def test_the_target_is_registered_and_pure() -> None:
    assert targets()["kubernetes"] is TARGET
    plan = derive_plan(StackSpec())
    again = TARGET.render(plan, fake_material(plan))
    assert {str(f.path): f for f in again} == render()


def test_the_image_is_the_one_the_container_targets_build() -> None:
    images = {
        c["image"]
        for _, d in documents()
        for c in _pod_spec(d).get("containers", [])
        if _pod_spec(d)
    }
    assert images == {image_tag(derive_plan(StackSpec()))}


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template = spec.get("template", {}) if isinstance(spec, dict) else {}
    return template.get("spec", {}) if doc["kind"] != "Pod" else spec


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_strictly(variant: str, version: str) -> None:
    """Kubernetes' own OpenAPI schemas, strict (an unknown field is an error). A kind the
    schemas do not know (a typo, a removed API, a CRD) is an error too: the CLI would only
    warn."""
    errors = []
    for path, doc in documents(variant):
        name = f"{path}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{name}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{name}: {exc.message}")
    assert errors == []


def test_the_validation_can_fail() -> None:
    """An unknown field, a wrong type and an unknown kind are each refused."""
    stateful = named("StatefulSet", "demo-pg")
    bad_field = {**stateful, "spec": {**stateful["spec"], "replica": 3}}
    bad_type = {**stateful, "spec": {**stateful["spec"], "replicas": "three"}}
    for doc in (bad_field, bad_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)
    budget = {**named("PodDisruptionBudget", "demo-pg"), "apiVersion": "policy/v1beta1"}
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(budget, VERSIONS[-1], strict=True)


def test_the_hpa_behaves_as_the_reference_says() -> None:
    """REFERENCE.md: CPU 70% / memory 80%; up at once (+100% or +5 pods per 15 s), down
    after 300 s (at most -50% per 60 s). Floor: the spec's instances; ceiling: what one
    PgBouncer admits (the reference's 25 for the defaults)."""
    hpa = named("HorizontalPodAutoscaler", "demo-app")
    spec = hpa["spec"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "demo-app",
    }
    assert spec["minReplicas"] == len(derive_plan(StackSpec()).app_instances) == 2
    assert spec["maxReplicas"] == 25
    targets_ = {m["resource"]["name"]: m["resource"]["target"] for m in spec["metrics"]}
    assert targets_ == {
        "cpu": {"type": "Utilization", "averageUtilization": 70},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }
    up, down = spec["behavior"]["scaleUp"], spec["behavior"]["scaleDown"]
    assert up["stabilizationWindowSeconds"] == 0
    assert up["selectPolicy"] == "Max"
    assert sorted((p["type"], p["value"], p["periodSeconds"]) for p in up["policies"]) == [
        ("Percent", 100, 15),
        ("Pods", 5, 15),
    ]
    assert down["stabilizationWindowSeconds"] == 300
    assert [(p["type"], p["value"], p["periodSeconds"]) for p in down["policies"]] == [
        ("Percent", 50, 60)
    ]
    # The HPA owns the count: an apply must not reset what it scaled to.
    assert "replicas" not in named("Deployment", "demo-app")["spec"]


def secret_values() -> list[str]:
    secrets = fixed_secrets()
    skip = {*INITIAL_VALUES, "app_login"}  # names and flags, not secrets
    return [getattr(secrets, n) for n in secrets.names() if n not in skip]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_no_secret_outside_the_secret_files(variant: str) -> None:
    secrets = fixed_secrets()
    scram = [secrets.scram(r, secrets.password_of(r)) for r in ("app_a", "app_b")]
    keys = [f"FAKE KEY {name}" for name in certificates(derive_plan(VARIANTS[variant]))]
    for path, f in render(variant).items():
        if f.mode == SECRET_MODE:
            continue
        leaked = [v for v in [*secret_values(), *scram, *keys] if v in f.content]
        assert leaked == [], f"{path} holds {leaked}"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_secret_is_in_a_secret_file_and_nothing_else_is(variant: str) -> None:
    for path, doc in documents(variant):
        secret_file = render(variant)[path].mode == SECRET_MODE
        assert (doc["kind"] == "Secret") == secret_file, f"{path}: {doc['kind']}"
        if secret_file:
            assert path.startswith("secrets/")
            assert render(variant)[path].secret


def test_every_secret_value_reaches_a_secret() -> None:
    """What the pods need is in the Secrets (a scan finding nothing must not mean that the
    render forgot them)."""
    text = "".join(f.content for f in render("s3-sticky-traced").values() if f.secret)
    for value in secret_values():
        if value.startswith(("pgbouncer_admin", "monitor", "readonly", "app_b", "monitoring")):
            continue  # in userlist.txt as SCRAM verifiers, or not used in Kubernetes
        if value.startswith(("load_test_token", "scram_salt_seed")):
            continue
        assert value in text, value


def test_secrets_are_referenced_by_the_names_the_pods_use() -> None:
    secrets = {d["metadata"]["name"]: d for d in of_kind("Secret", "s3-sticky-traced")}
    for _, doc in documents("s3-sticky-traced"):
        pod = _pod_spec(doc)
        for container in pod.get("containers", []):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] != "demo-backup-s3":  # yours: its key is not ours
                    assert ref["key"] in secrets[ref["name"]]["stringData"], ref
            for source in container.get("envFrom", []):
                assert source["secretRef"]["name"] in secrets
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets


def test_postgresql_pods_are_kept_apart_and_drained_one_at_a_time() -> None:
    pg = named("StatefulSet", "demo-pg")
    template = pg["spec"]["template"]
    anti = template["spec"]["affinity"]["podAntiAffinity"]
    (term,) = anti["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    budgets = {d["metadata"]["name"]: d["spec"] for d in of_kind("PodDisruptionBudget")}
    assert set(budgets) == {"demo-pg", "demo-pgbouncer", "demo-app", "demo-edge"}
    assert all(b["maxUnavailable"] == 1 for b in budgets.values())
    assert budgets["demo-pg"]["selector"] == pg["spec"]["selector"]
    for name in ("demo-app", "demo-pgbouncer", "demo-edge"):
        affinity = named("Deployment", name)["spec"]["template"]["spec"]["affinity"]
        assert "preferredDuringSchedulingIgnoredDuringExecution" in affinity["podAntiAffinity"]


def _container(kind: str, name: str, container: str) -> dict[str, Any]:
    pod = named(kind, name)["spec"]["template"]["spec"]
    found: dict[str, Any] = next(c for c in pod["containers"] if c["name"] == container)
    return found


def test_resources_follow_the_plan() -> None:
    plan = derive_plan(StackSpec())
    spec = plan.spec
    pg = _container("StatefulSet", "demo-pg", "patroni")["resources"]
    memory = f"{spec.postgres.memory_mb + PATRONI_OVERHEAD_MB}Mi"
    assert pg["requests"]["memory"] == pg["limits"]["memory"] == memory == "320Mi"
    redis = _container("StatefulSet", "demo-redis", "redis")["resources"]
    maxmemory = spec.redis.maxmemory_mb
    assert redis["limits"]["memory"] == f"{maxmemory + maxmemory // 2 + 32}Mi" == "128Mi"
    pgb = _container("Deployment", "demo-pgbouncer", "pgbouncer")["resources"]
    kb = (spec.pgbouncer.max_client_conn + plan.pool.server_connections_max // 2) * 8
    assert pgb["limits"]["memory"] == f"{16 + -(-kb // 1024)}Mi" == "21Mi"
    app = _container("Deployment", "demo-app", "app")["resources"]
    assert app["requests"]["cpu"]  # what the HPA's CPU utilisation is measured against
    for _, doc in documents():
        for c in _pod_spec(doc).get("containers", []):
            assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["memory"]


def test_two_pgbouncers_share_the_plan_s_server_connections() -> None:
    """max_connections and work_mem derive from one PgBouncer's pools: two replicas must
    not open more than it would."""
    plan = derive_plan(StackSpec())
    ini = named("ConfigMap", "demo-pgbouncer")["data"]["pgbouncer.ini"]
    values = dict(
        line.split(" = ", 1) for line in ini.splitlines() if " = " in line and "host=" not in line
    )
    replicas = named("Deployment", "demo-pgbouncer")["spec"]["replicas"]
    per_replica = 2 * (int(values["default_pool_size"]) + int(values["reserve_pool_size"]))
    assert replicas * per_replica <= plan.pool.server_connections_max
    assert "host=demo.hastack-demo.svc port=5432" in ini
    assert "host=demo-ro.hastack-demo.svc port=5432" in ini


def test_services_follow_patroni() -> None:
    """Read-write: no selector (Patroni writes the leader into its Endpoints, with the lock,
    named after its scope and port name); read-only: the replicas' role label."""
    patroni = yaml.safe_load(named("ConfigMap", "demo-patroni")["data"]["patroni.yml"])
    k8s = patroni["kubernetes"]
    rw = named("Service", "demo")
    assert patroni["scope"] == "demo" and k8s["use_endpoints"] is True
    assert "selector" not in rw["spec"]
    assert [p["name"] for p in rw["spec"]["ports"]] == [p["name"] for p in k8s["ports"]]
    ro = named("Service", "demo-ro")["spec"]["selector"]
    assert ro[k8s["role_label"]] == k8s["follower_label_value"] == "replica"
    pod_labels = named("StatefulSet", "demo-pg")["spec"]["template"]["metadata"]["labels"]
    assert {**k8s["labels"], k8s["scope_label"]: "demo"}.items() <= pod_labels.items()
    assert "selector" not in named("Service", "demo-config")["spec"]
    # No password in Patroni's file: they come from the pod's environment (the Secret).
    assert "password" not in str(patroni["postgresql"]["authentication"])


def test_certificates_carry_every_name_clients_verify() -> None:
    names = K8sNames("demo")
    certs = certificates(derive_plan(StackSpec()))
    pg = set(certs["postgres"].hostnames)
    assert {names.pg_pod_dns(i) for i in range(3)} <= pg
    assert {"demo.hastack-demo.svc", "demo-ro.hastack-demo.svc"} <= pg
    assert certs["postgres"].client  # pgBackRest shows it to the repository
    assert "demo-pgbouncer.hastack-demo.svc" in certs["pgbouncer"].hostnames
    assert {"localhost", "demo-edge.hastack-demo.svc"} <= set(certs["edge"].hostnames)
    assert certs["backup"].client
    env = {
        e["name"]: e.get("value") for e in _container("StatefulSet", "demo-pg", "patroni")["env"]
    }
    address = env["PATRONI_POSTGRESQL_CONNECT_ADDRESS"].replace("$(PATRONI_NAME)", "demo-pg-1")
    assert address.rsplit(":", 1)[0] in pg


def test_network_policies_deny_by_default_and_cover_every_component() -> None:
    policies = of_kind("NetworkPolicy")
    deny = named("NetworkPolicy", "demo-default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    selected = {
        p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        for p in policies
    }
    for _, doc in documents():
        labels = doc.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
        if labels:
            assert labels["app.kubernetes.io/name"] in selected


@pytest.mark.parametrize(
    ("every_h", "kind", "cron"),
    [
        (168, "full", "0 1 * * 0"),
        (24, "diff", "0 2 * * *"),
        (48, "diff", "0 2 */2 * *"),
        (1, "incr", "30 * * * *"),
        (6, "incr", "30 */6 * * *"),
        (5, "incr", "30 */4 * * *"),
        (0.25, "incr", "*/15 * * * *"),
    ],
)
def test_backup_schedules_become_cron(every_h: float, kind: str, cron: str) -> None:
    assert cron_schedule(every_h, kind) == cron


def test_backups_go_to_every_repository() -> None:
    jobs = {d["metadata"]["name"]: d for d in of_kind("CronJob", "s3-sticky-traced")}
    assert set(jobs) == {"demo-backup-full", "demo-backup-diff", "demo-backup-incr"}
    script = _pod_spec(jobs["demo-backup-full"])["containers"][0]["command"][-1]
    assert "--repo=1 --type=full backup" in script and "--repo=2 --type=full backup" in script


def test_a_standby_cluster_is_refused() -> None:
    spec = StackSpec.model_validate({"standby_cluster": {"primary": "/etc/hastack/p.yaml"}})
    plan = derive_plan(spec)
    with pytest.raises(HastackError, match="cannot be rendered for kubernetes"):
        TARGET.render(plan, fake_material(plan))


PATRONI = Path("/opt/hastack/venv/bin/patroni")


@pytest.mark.skipif(not PATRONI.exists(), reason="Patroni is installed by `make test`")
def test_patroni_accepts_its_config(tmp_path: Path) -> None:
    """`patroni --validate-config` (as tests/integration/test_10_config_checks.py does for
    the local config), with the pod's environment. The files the pods mount are not here:
    only those findings are expected."""
    config = tmp_path / "patroni.yml"
    config.write_text(named("ConfigMap", "demo-patroni")["data"]["patroni.yml"])
    env = {
        **os.environ,
        "PATRONI_NAME": "demo-pg-0",
        "PATRONI_KUBERNETES_POD_IP": "10.1.2.3",
        "PATRONI_POSTGRESQL_CONNECT_ADDRESS": "demo-pg-0.demo-pg.hastack-demo.svc:5432",
        "PATRONI_RESTAPI_CONNECT_ADDRESS": "demo-pg-0.demo-pg.hastack-demo.svc:8008",
        **{
            f"PATRONI_{who}_PASSWORD": "x"
            for who in ("SUPERUSER", "REPLICATION", "REWIND", "RESTAPI")
        },
    }
    result = subprocess.run(
        [str(PATRONI), "--validate-config", "--ignore-listen-port", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    findings = [ln.strip() for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
    mounted = ("/etc/hastack/", "/data/")
    unexpected = [f for f in findings if not any(m in f for m in mounted)]
    assert unexpected == [], findings
    broken = config.read_text().replace("use_endpoints: true", "use_endpoints: yes-please")
    config.write_text(broken)
    result = subprocess.run(
        [str(PATRONI), "--validate-config", "--ignore-listen-port", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert "use_endpoints" in result.stdout + result.stderr


HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


@pytest.mark.skipif(not Path(HAPROXY).exists(), reason="HAProxy is installed by `make test`")
@pytest.mark.parametrize("variant", ["default", "s3-sticky-traced"])
def test_haproxy_accepts_the_edge_config(variant: str, tmp_path: Path) -> None:
    """`haproxy -c` with the pod's certificate path pointed at a real one (it opens it)."""
    from cryptography.hazmat.primitives import serialization

    from hastack.runtime.tls import make_ca, make_server_cert

    ca_key, ca = make_ca("demo")
    key, cert = make_server_cert(ca_key, ca, ["demo-edge.hastack-demo.svc"], [])
    pem = tmp_path / "edge.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "edge.pem.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    text = named("ConfigMap", "demo-edge", variant)["data"]["haproxy.cfg"]
    config = tmp_path / "haproxy.cfg"
    config.write_text(text.replace("/etc/hastack/tls/edge.pem", str(pem)))
    env = {**os.environ, STATS_PASSWORD_ENV: "x"}
    result = subprocess.run(
        [HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config.write_text(config.read_text().replace("balance leastconn", "balance sideways"))
    result = subprocess.run(
        [HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True, env=env, timeout=30
    )
    assert result.returncode != 0

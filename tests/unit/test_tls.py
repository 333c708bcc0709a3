from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hastack.runtime.tls import TlsFiles, ensure_node_tls, ensure_tls, needs_renewal
from hastack.spec import StackPlan, StackSpec, derive_plan


def files(tmp: Path) -> TlsFiles:
    return TlsFiles(tmp / "ca.pem", tmp / "ca.key", tmp / "site.pem")


def test_generated_certificate_covers_names_and_chains_to_the_ca(tmp_path: Path) -> None:
    f = files(tmp_path)
    assert ensure_tls(f, "demo", ["localhost"], ["127.0.10.100", "127.0.0.1"], "root")
    pem = f.haproxy_pem.read_bytes()
    assert b"PRIVATE KEY" in pem and pem.count(b"BEGIN CERTIFICATE") == 2
    cert = x509.load_pem_x509_certificate(pem)
    ca = x509.load_pem_x509_certificate(f.ca_cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {
        "127.0.10.100",
        "127.0.0.1",
    }
    assert cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=390)
    assert (f.ca_key.stat().st_mode & 0o777) == 0o600
    assert (f.haproxy_pem.stat().st_mode & 0o777) == 0o600


def test_second_run_keeps_the_certificate_and_a_new_name_renews_it(tmp_path: Path) -> None:
    f = files(tmp_path)
    ensure_tls(f, "demo", ["localhost"], ["127.0.10.100"], "root")
    first = f.haproxy_pem.read_bytes()
    assert not ensure_tls(f, "demo", ["localhost"], ["127.0.10.100"], "root")
    assert f.haproxy_pem.read_bytes() == first
    assert needs_renewal(first, ["localhost", "shop.example"], ["127.0.10.100"])
    assert ensure_tls(f, "demo", ["localhost", "shop.example"], ["127.0.10.100"], "root")
    assert f.ca_cert.exists()


def test_operator_certificate_is_used_as_given(tmp_path: Path) -> None:
    f = files(tmp_path)
    (tmp_path / "my.crt").write_text("CERT\n")
    (tmp_path / "my.key").write_text("KEY\n")
    ensure_tls(f, "demo", [], [], "root", own_cert=(tmp_path / "my.crt", tmp_path / "my.key"))
    assert f.haproxy_pem.read_text() == "CERT\nKEY\n"
    assert not f.ca_key.exists()


def _tiny_plan(tmp: Path) -> StackPlan:
    """A plan under `tmp` whose node users are root (the test does not create users)."""
    plan = derive_plan(StackSpec(state_dir=tmp / "stack"))
    services_dirs = [
        plan.paths.service(name) for name in ("pgbouncer", "haproxy", "backup", "monitor")
    ]
    for path in (plan.paths.state_dir, plan.paths.tls_dir, *services_dirs):
        path.mkdir(parents=True, exist_ok=True)
    nodes = tuple(replace(n, user="root") for n in plan.nodes)
    for node in nodes:
        node.paths.root.mkdir(parents=True)
    services = dict.fromkeys(plan.service_users, "root")
    return replace(plan, nodes=nodes, service_users=services)


def test_each_node_gets_a_server_and_client_certificate_for_etcd(tmp_path: Path) -> None:
    plan = _tiny_plan(tmp_path)
    written = ensure_node_tls(plan)
    # and HAProxy stats', PgBouncer's, the backup repository host's, monitoring's, hastack's
    assert len(written) == len(plan.nodes) + 5
    ca = x509.load_pem_x509_certificate(plan.paths.ca_cert.read_bytes())
    for node in plan.nodes:
        cert = x509.load_pem_x509_certificate(node.paths.tls_cert.read_bytes())
        cert.verify_directly_issued_by(ca)
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {
            node.address,
            "127.0.0.1",
            plan.services_address,  # PostgreSQL is reached through HAProxy too
        }
        assert node.paths.tls_key.stat().st_mode & 0o777 == 0o600
    client = x509.load_pem_x509_certificate(plan.paths.client_cert.read_bytes())
    usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert plan.paths.client_key.stat().st_mode & 0o777 == 0o600
    stats = x509.load_pem_x509_certificate(plan.paths.haproxy_stats_pem.read_bytes())
    stats.verify_directly_issued_by(ca)
    san = stats.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == [plan.services_address]
    assert b"PRIVATE KEY" in plan.paths.haproxy_stats_pem.read_bytes()  # HAProxy: one file
    assert plan.paths.haproxy_stats_pem.stat().st_mode & 0o777 == 0o600
    backup = x509.load_pem_x509_certificate(plan.paths.backup_tls_cert.read_bytes())
    backup.verify_directly_issued_by(ca)
    # The nodes' pgBackRest servers admit the repository host by this common name.
    assert backup.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "backup"
    san = backup.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert plan.backup_address in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert plan.paths.backup_tls_key.stat().st_mode & 0o777 == 0o600
    assert ensure_node_tls(plan) == []  # valid and covering: kept


def test_a_node_certificate_that_is_not_one_is_replaced(tmp_path: Path) -> None:
    plan = _tiny_plan(tmp_path)
    ensure_node_tls(plan)
    plan.nodes[1].paths.tls_cert.write_text("garbage")
    assert ensure_node_tls(plan) == [plan.nodes[1].paths.tls_cert]

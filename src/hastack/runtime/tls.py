"""The stack's own CA and what it signs: HAProxy's server certificate (or the operator's own),
one certificate per node (etcd serves and joins its peers with it, Patroni authenticates to
etcd with it) and hastack's client certificate (the CLI and the watcher, to etcd)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hastack.render.pgbackrest import BACKUP_CERT_NAME, STANDBY_CERT_NAME
from hastack.runtime.files import read_regular, write_atomic
from hastack.spec.plan import StackPlan

CA_DAYS = 3650
CERT_DAYS = 397
RENEW_BEFORE_DAYS = 30


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    """Public: clients trust the stack through it (`curl --cacert`)."""
    ca_key: Path
    haproxy_pem: Path
    """Server certificate, chain and key in one file, as HAProxy wants it."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hastack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(stack: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"hastack {stack} CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_server_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    hostnames: list[str],
    addresses: list[str],
    *,
    common_name: str | None = None,
    usages: tuple[x509.ObjectIdentifier, ...] = (ExtendedKeyUsageOID.SERVER_AUTH,),
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """ECDSA P-256 (measured here: >= 1.85k new handshakes/s) for every name and address."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cn = common_name or (hostnames[0] if hostnames else addresses[0])
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def needs_renewal(pem: bytes, hostnames: list[str], addresses: list[str]) -> bool:
    """Expiring within RENEW_BEFORE_DAYS, or not covering every name and address."""
    cert = x509.load_pem_x509_certificate(pem)
    if cert.not_valid_after_utc - _now() < dt.timedelta(days=RENEW_BEFORE_DAYS):
        return True
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return True
    names = set(san.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return not (set(hostnames) <= names and set(addresses) <= ips)


def ensure_tls(
    files: TlsFiles,
    stack: str,
    hostnames: list[str],
    addresses: list[str],
    haproxy_user: str,
    own_cert: tuple[Path, Path] | None = None,
) -> bool:
    """Make the CA once, the server certificate when missing, expiring or not covering the
    names; or combine the operator's certificate and key. True if anything was written."""
    if own_cert is not None:
        cert_path, key_path = own_cert
        pem = cert_path.read_text() + key_path.read_text()
        return write_atomic(files.haproxy_pem, pem, haproxy_user, 0o600)
    ca_key, ca_cert = load_or_make_ca(files.ca_cert, files.ca_key, stack)
    if files.haproxy_pem.exists() and not needs_renewal(
        files.haproxy_pem.read_bytes(), hostnames, addresses
    ):
        return False
    key, cert = make_server_cert(ca_key, ca_cert, hostnames, addresses)
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
        serialization.Encoding.PEM
    )
    return write_atomic(files.haproxy_pem, (chain + key_pem(key)).decode(), haproxy_user, 0o600)


def load_or_make_ca(
    cert_path: Path, key_path: Path, stack: str
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The stack's CA, made on first use (its key root-only, its certificate public)."""
    if key_path.exists():
        ca_key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        return ca_key, x509.load_pem_x509_certificate(cert_path.read_bytes())
    ca_key, ca_cert = make_ca(stack)
    write_atomic(key_path, key_pem(ca_key).decode(), "root", 0o600)
    write_atomic(cert_path, cert_pem(ca_cert), "root", 0o644)
    return ca_key, ca_cert


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _current(path: Path) -> bytes | None:
    """A certificate root wrote into a directory its node user owns, read without following
    a symlink that user may have put there."""
    return read_regular(path)


def _stale(pem: bytes | None, addresses: list[str], hostnames: list[str] | None = None) -> bool:
    try:
        return pem is None or needs_renewal(pem, hostnames or [], addresses)
    except ValueError:
        return True  # not a certificate: make a new one


def ensure_node_tls(plan: StackPlan) -> list[Path]:
    """A certificate for each node (server and client), for PgBouncer and HAProxy's stats page
    (server) and for hastack itself (client),
    made when missing, expiring or not covering the node's address. The written paths."""
    paths = plan.paths
    ca_key, ca_cert = load_or_make_ca(paths.ca_cert, paths.ca_key, plan.name)
    both = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
    written = []
    for node in plan.nodes:
        np = node.paths
        # etcd checks a peer's certificate against the address it connects from, and on
        # loopback the kernel picks 127.0.0.1 as the source: it must be in the certificate.
        # PostgreSQL serves with it too, also reached through HAProxy's address (a client
        # verifying the name sees the services address then).
        addresses = [node.address, "127.0.0.1", plan.services_address]
        # pgBackRest (2.45) matches the address it connects to against the certificate's
        # DNS names only, never its IP addresses: the address is a DNS name too.
        hostnames = [node.address]
        if not _stale(_current(np.tls_cert), addresses, hostnames):
            continue
        key, cert = make_server_cert(
            ca_key, ca_cert, hostnames, addresses, common_name=node.name, usages=both
        )
        write_atomic(np.tls_key, key_pem(key).decode(), node.user, 0o600)
        write_atomic(np.tls_cert, cert_pem(cert), node.user, 0o644)
        written.append(np.tls_cert)
    haproxy = plan.service_users["haproxy"]
    if _stale(_current(paths.haproxy_stats_pem), [plan.services_address]):
        key, cert = make_server_cert(ca_key, ca_cert, [], [plan.services_address])
        pem = cert_pem(cert) + key_pem(key).decode()  # HAProxy wants both in one file
        write_atomic(paths.haproxy_stats_pem, pem, haproxy, 0o600)
        written.append(paths.haproxy_stats_pem)
    pgbouncer = plan.service_users["pgbouncer"]
    if _stale(_current(paths.pgbouncer_tls_cert), [plan.services_address]):
        key, cert = make_server_cert(ca_key, ca_cert, [], [plan.services_address])
        write_atomic(paths.pgbouncer_tls_key, key_pem(key).decode(), pgbouncer, 0o600)
        write_atomic(paths.pgbouncer_tls_cert, cert_pem(cert), pgbouncer, 0o644)
        written.append(paths.pgbouncer_tls_cert)
    backup_names = [plan.backup_address]
    if plan.backup_enabled and _stale(_current(paths.backup_tls_cert), backup_names, backup_names):
        # The repository host's: it serves the nodes (archive-push, restore) and is their
        # client (backups); the nodes admit it by its common name.
        key, cert = make_server_cert(
            ca_key,
            ca_cert,
            backup_names,
            [plan.backup_address, "127.0.0.1"],
            common_name=BACKUP_CERT_NAME,
            usages=both,
        )
        backup = plan.service_users["backup"]
        write_atomic(paths.backup_tls_key, key_pem(key).decode(), backup, 0o600)
        write_atomic(paths.backup_tls_cert, cert_pem(cert), backup, 0o644)
        written.append(paths.backup_tls_cert)
    if plan.monitoring_enabled and _stale(_current(paths.monitor_tls_cert), [plan.monitor_address]):
        # Prometheus' and Alertmanager's HTTPS (their clients check it against the CA).
        key, cert = make_server_cert(ca_key, ca_cert, [], [plan.monitor_address])
        monitor = plan.service_users["monitor"]
        write_atomic(paths.monitor_tls_key, key_pem(key).decode(), monitor, 0o600)
        write_atomic(paths.monitor_tls_cert, cert_pem(cert), monitor, 0o644)
        written.append(paths.monitor_tls_cert)
    if _stale(_current(paths.client_cert), ["127.0.0.1"]):
        key, cert = make_server_cert(
            ca_key,
            ca_cert,
            [],
            ["127.0.0.1"],
            common_name="hastack",
            usages=(ExtendedKeyUsageOID.CLIENT_AUTH,),
        )
        write_atomic(paths.client_key, key_pem(key).decode(), "root", 0o600)
        write_atomic(paths.client_cert, cert_pem(cert), "root", 0o600)
        written.append(paths.client_cert)
    return written


def _issued_by(pem: bytes | None, ca_cert: x509.Certificate) -> bool:
    """A current certificate (not expiring) that this CA signed."""
    if pem is None:
        return False
    try:
        cert = x509.load_pem_x509_certificate(pem)
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return cert.not_valid_after_utc - _now() >= dt.timedelta(days=RENEW_BEFORE_DAYS)


def ensure_primary_repo_certs(plan: StackPlan) -> list[Path]:
    """A standby cluster's nodes: a client certificate from the primary stack's CA, which
    the primary's repository host admits (STANDBY_CERT_NAME) for fetching WAL. Made while the
    primary's CA key can be read (the caller checked that only root could have put it
    there); kept as they are when it cannot (the primary's region is gone). The written
    paths."""
    standby = plan.standby
    if standby is None or standby.primary_backup_host is None:
        return []
    primary = standby.primary_paths
    ca_pem, ca_key_pem = read_regular(primary.ca_cert), read_regular(primary.ca_key)
    if ca_pem is None or ca_key_pem is None:
        return []
    ca_cert = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    written = []
    for node in plan.postgres_nodes:
        np = node.paths
        if _issued_by(_current(np.primary_repo_cert), ca_cert):
            continue
        key, cert = make_server_cert(
            ca_key,
            ca_cert,
            [],
            [node.address],
            common_name=STANDBY_CERT_NAME,
            usages=(ExtendedKeyUsageOID.CLIENT_AUTH,),
        )
        write_atomic(np.primary_repo_key, key_pem(key).decode(), node.user, 0o600)
        write_atomic(np.primary_repo_cert, cert_pem(cert), node.user, 0o644)
        written.append(np.primary_repo_cert)
    return written

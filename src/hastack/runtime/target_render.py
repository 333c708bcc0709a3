"""`hastack render TARGET`: the stack's material from its state directory, the target's files
written into a directory as one step.

The secrets and the CA live in the stack's state directory, as for a local stack (the same
ones when that stack also runs here), so a second render keeps every password and a stack
moved to another engine keeps its clients' trust. Certificates a target needs for its own
names are issued once and kept under `<state>/targets/<target>/tls/`, renewed like the local
ones (expiring, or not covering the names).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from hastack.errors import HastackError
from hastack.render.targets import (
    CertRequest,
    IssuedCert,
    StackMaterial,
    Target,
    TargetFile,
    targets,
)
from hastack.runtime import secret_store
from hastack.runtime.files import ensure_dir, write_atomic
from hastack.runtime.ownership import claim_state_dir
from hastack.runtime.tls import (
    cert_pem,
    key_pem,
    load_or_make_ca,
    make_server_cert,
    needs_renewal,
)
from hastack.spec.placement import target_issues
from hastack.spec.plan import StackPlan

RENDER_MARK = ".hastack-render"
"""A file in every render's directory naming its stack and target: a later render replaces
only a directory that has it."""


@dataclass(frozen=True)
class RenderResult:
    target: str
    out: Path
    files: list[str]
    secret_files: list[str]
    next_steps: list[str]


def target_names() -> list[str]:
    return sorted(targets())


def known_target(name: str) -> Target:
    known = targets()
    if name not in known:
        raise HastackError(
            f"unknown target {name!r}",
            f"render one of: {', '.join(sorted(known))} (`local` is `hastack up`)",
        )
    return known[name]


def render_target(plan: StackPlan, name: str, out: Path) -> RenderResult:
    """Render `plan` for target `name` into `out` (replaced whole, or left as it was)."""
    target = known_target(name)
    problems = [i for i in target_issues(plan.spec, name) if i.severity == "error"]
    if problems:
        raise HastackError(
            f"cannot render {name}: {problems[0].message}; nothing was written", problems[0].fix
        )
    _refuse_foreign_directory(out)
    material = _material(plan, name, target.certificates(plan))
    files = target.render(plan, material)
    mark = TargetFile(
        PurePosixPath(RENDER_MARK), json.dumps({"stack": plan.name, "target": name}) + "\n"
    )
    _write_tree(out, [*files, mark])
    return RenderResult(
        target=name,
        out=out,
        files=[str(f.path) for f in files],
        secret_files=[str(f.path) for f in files if f.secret],
        next_steps=target.next_steps(plan, str(out)),
    )


def _refuse_foreign_directory(out: Path) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise HastackError(f"{out} is not a directory", "choose a new directory for --out")
    if out.is_dir() and any(out.iterdir()) and not (out / RENDER_MARK).is_file():
        raise HastackError(
            f"{out} is not empty and holds no earlier render (no {RENDER_MARK}); nothing was "
            "written",
            "choose a new or empty directory for --out",
        )


def _material(plan: StackPlan, name: str, wanted: dict[str, CertRequest]) -> StackMaterial:
    claim_state_dir(plan)
    secrets = secret_store.load_or_create(plan.paths.secrets_dir)
    ensure_dir(plan.paths.tls_dir, "root", 0o755)  # as `hastack up` makes it: the CA is public
    ca_key, ca_cert = load_or_make_ca(plan.paths.ca_cert, plan.paths.ca_key, plan.name)
    tls_dir = plan.paths.state_dir / "targets" / name / "tls"
    for directory in (tls_dir.parent.parent, tls_dir.parent, tls_dir):
        ensure_dir(directory, "root", 0o700)
    issued = {}
    for cert_name, request in wanted.items():
        cert_path, key_path = tls_dir / f"{cert_name}.crt", tls_dir / f"{cert_name}.key"
        if not _current(cert_path, key_path, request, ca_cert):
            usages: tuple[x509.ObjectIdentifier, ...] = (ExtendedKeyUsageOID.SERVER_AUTH,)
            if request.client:
                usages += (ExtendedKeyUsageOID.CLIENT_AUTH,)
            key, cert = make_server_cert(
                ca_key,
                ca_cert,
                list(request.hostnames),
                list(request.addresses),
                common_name=request.common_name,
                usages=usages,
            )
            write_atomic(key_path, key_pem(key).decode(), "root", 0o600)
            write_atomic(cert_path, cert_pem(cert), "root", 0o600)
        issued[cert_name] = IssuedCert(cert_path.read_text(), key_path.read_text())
    return StackMaterial(secrets=secrets, ca_cert_pem=cert_pem(ca_cert), issued=issued)


def _current(cert: Path, key: Path, request: CertRequest, ca: x509.Certificate) -> bool:
    if not (cert.is_file() and key.is_file()):
        return False
    try:
        pem = cert.read_bytes()
        parsed = x509.load_pem_x509_certificate(pem)
        names = list(request.hostnames)
        return parsed.issuer == ca.subject and not needs_renewal(
            pem, names, list(request.addresses)
        )
    except ValueError:
        return False


def _write_tree(out: Path, files: list[TargetFile]) -> None:
    """Write every file into a new directory beside `out`, then swap it in: a reader (or a
    failure half way) sees the old render or the new one, never a mix."""
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for file in files:
            if file.path.is_absolute() or ".." in file.path.parts:
                raise HastackError(f"a rendered path leaves the output directory: {file.path}")
            path = fresh / file.path
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, file.mode)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(file.content)
            os.chmod(path, file.mode)
        os.chmod(fresh, 0o700)
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.rename(out, old / "render")
        try:
            os.rename(fresh, out)
        except OSError:
            if old is not None:
                os.rename(old / "render", out)
            raise
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def install_client_cert(plan: StackPlan, client_dir: Path) -> None:
    """Put the render's client certificate where the stack's own clients look (the state
    directory), so this CLI reaches the deployed etcd and Patroni as a local stack's."""
    for source, target in (
        (client_dir / "hastack-client.pem", plan.paths.client_cert),
        (client_dir / "hastack-client.key", plan.paths.client_key),
    ):
        write_atomic(target, source.read_text(), "root", 0o600)

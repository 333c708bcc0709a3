"""The image every service of the container targets runs: its build context. Pure.

One image for the whole stack, built FROM a Debian 12 base made locally (debootstrap +
`docker import`: no registry), with the Debian packages at the versions the local stack is
tested with (README "Tested versions"), Patroni and hastack in /opt/hastack/venv as
`make up` installs them (requirements/runtime.txt, constraints), PgBouncer's exporter in its
own venv, the plan's system users with fixed uids, and the state directory skeleton with
each directory's owner and mode (a named volume starts as a copy of it).

The render writes the Dockerfile and a README; the builder (`hastack image build`, or the
README's commands by hand) adds what only the machine has: the apt sources, extra CA
certificates, the requirement files and a wheel of hastack.
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import PurePosixPath

from hastack.render.container_files import state_dirs, system_users
from hastack.render.targets import TargetFile
from hastack.spec.plan import StackPlan

BASE_IMAGE = "localbase/debian:bookworm"
"""Made by `debootstrap --variant=minbase bookworm` + `docker import` (image/README)."""

DEBIAN_PACKAGES = {
    "postgresql-15": "15.20-0+deb12u1",
    "etcd-server": "3.4.23-4+b4",
    "etcd-client": "3.4.23-4+b4",
    "haproxy": "2.6.12-1+deb12u4",
    "pgbouncer": "1.18.0-1+deb12u1",
    "redis-server": "5:7.0.15-1~deb12u10",
    "pgbackrest": "2.45-1",
    "prometheus": "2.42.0+ds-5+deb12u1",
    "prometheus-alertmanager": "0.25.0-1+b4",
    "prometheus-node-exporter": "1.5.0-1+b6",
    "prometheus-postgres-exporter": "0.11.1-3+b5",
    "prometheus-redis-exporter": "1.45.0-2+b4",
    "python3": "3.11.2-1+b1",
    "python3-venv": "3.11.2-1+b1",
}
"""The versions the local stack is tested with (README "Tested versions"; redis-server's
epoch included, as apt wants it). A Debian point release that replaces one means moving
the pin here and in the README together."""

UNPINNED_PACKAGES = ("ca-certificates", "curl")
"""Trust roots and the health checks' HTTP client: the current ones."""

PGBOUNCER_EXPORTER = "prometheus-pgbouncer-exporter==2.1.2"
"""As scripts/install-deps installs it (--no-deps over requirements/pgbouncer-exporter.txt)."""

BUILD_DIR = "/opt/hastack/build"
"""Where the context's Python files go during the build (removed at its end)."""

CONTEXT_FILES = {
    "debian.sources": "this machine's /etc/apt/sources.list.d/debian.sources (the minbase "
    "root file system lists only `bookworm main`; security updates carry the pinned versions)",
    "certs/": "this machine's extra CA certificates (*.crt) when its HTTPS goes through a proxy "
    "that re-signs it (apt and pip inside the build trust them); may stay empty",
    "requirements/": "runtime.txt, runtime-constraints.txt, constraints.txt and "
    "pgbouncer-exporter.txt from the checkout",
    "dist/": "a wheel of hastack: `pip wheel --no-deps --wheel-dir image/dist .` in the checkout",
}
"""What the builder adds to the context, and from where."""


def _run(commands: list[str]) -> str:
    return "RUN " + " \\\n && ".join(commands) + "\n"


def _users_and_dirs(plan: StackPlan) -> str:
    commands = []
    for user in system_users(plan):
        name = shlex.quote(user.name)
        commands += [
            # Not --system: useradd warns about a uid outside the system range.
            f"groupadd --gid {user.uid} {name}",
            f"useradd --uid {user.uid} --gid {user.uid} --no-create-home "
            f"--home-dir {shlex.quote(str(user.home))} --shell /usr/sbin/nologin {name}",
        ]
    for path, owner, mode in state_dirs(plan):
        own = f"-o {shlex.quote(owner)} -g {shlex.quote(owner)} " if owner != "root" else ""
        commands.append(f"install -d {own}-m {mode:04o} {shlex.quote(str(path))}")
    # HAProxy loads its server states from this file at each start (runtime/apptier.py
    # makes it locally before the first).
    haproxy = shlex.quote(plan.service_users["haproxy"])
    state = shlex.quote(str(plan.paths.haproxy_server_state))
    commands.append(f"install -o {haproxy} -g {haproxy} -m 0600 /dev/null {state}")
    return _run(commands)


def _python(plan: StackPlan) -> str:
    binaries = plan.spec.binaries
    venv = binaries.patroni.parent.parent
    exporter_venv = binaries.pgbouncer_exporter.parent.parent
    req = f"{BUILD_DIR}/requirements"
    pip = f"{venv}/bin/pip install --no-cache-dir"
    return f"COPY requirements/ {req}/\nCOPY dist/ {BUILD_DIR}/dist/\n" + _run(
        [
            # As scripts/install-deps: Patroni, then hastack itself (not editable),
            # then its app tier, each against the pinned versions.
            f"python3 -m venv {venv}",
            f"{pip} -c {req}/runtime-constraints.txt -r {req}/runtime.txt",
            f"wheel=$(ls {BUILD_DIR}/dist/hastack-*.whl)",
            f'{pip} -c {req}/constraints.txt --no-deps "$wheel"',
            f'{pip} -c {req}/constraints.txt "$wheel[app]"',
            f"python3 -m venv {exporter_venv}",
            f"{exporter_venv}/bin/pip install --no-cache-dir -r {req}/pgbouncer-exporter.txt",
            f"{exporter_venv}/bin/pip install --no-cache-dir --no-deps {PGBOUNCER_EXPORTER}",
            f"rm -rf {BUILD_DIR}",
            f"{binaries.patroni} --version",
            f"{binaries.hastack_python} -c 'import hastack.app, hastack.runtime'",
        ]
    )


def render_dockerfile(plan: StackPlan) -> str:
    pinned = " ".join(f"{name}={version}" for name, version in DEBIAN_PACKAGES.items())
    unpinned = " ".join(UNPINNED_PACKAGES)
    apt = _run(
        [
            # No package starts its service while it installs (as scripts/install-deps).
            "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d",
            "chmod 755 /usr/sbin/policy-rc.d",
            "rm -f /etc/apt/sources.list",
            "apt-get update",
            "apt-get install -y --no-install-recommends postgresql-common",
            # Patroni makes the clusters: Debian's own main cluster would only be in the way.
            "sed -ri 's/^#?\\s*create_main_cluster.*/create_main_cluster = false/' "
            "/etc/postgresql-common/createcluster.conf",
            f"apt-get install -y --no-install-recommends {pinned} {unpinned}",
            "update-ca-certificates",
            "apt-get clean",
            "rm -rf /var/lib/apt/lists/*",
        ]
    )
    return (
        f"# Generated by hastack for stack {plan.name!r}. Do not edit: `hastack render`\n"
        "# rewrites it. Build context: this directory, completed as README says.\n"
        f"FROM {BASE_IMAGE}\n"
        "ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8\n"
        "COPY debian.sources /etc/apt/sources.list.d/debian.sources\n"
        "COPY certs/ /usr/local/share/ca-certificates/\n"
        + apt
        # pip trusts the system bundle (with certs/ in it), not only its own.
        + "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1\n"
        # The Python layers (the slow ones) before the stack's own users and directories:
        # every stack built from the same wheel shares them from the engine's build cache.
        + _python(plan)
        + _users_and_dirs(plan)
    )


def image_tag(plan: StackPlan) -> str:
    """Named after the Dockerfile it is built from: a changed Dockerfile is a new image
    (and a saved image can be reused while it is the same)."""
    digest = hashlib.sha256(render_dockerfile(plan).encode()).hexdigest()[:12]
    return f"hastack/{plan.name}:{digest}"


def render_image_readme(plan: StackPlan) -> str:
    tag = image_tag(plan)
    adds = "\n".join(f"  {name:16} {what}" for name, what in CONTEXT_FILES.items())
    return f"""\
The build context of {tag}: the image every service of stack {plan.name!r} runs.
Generated by hastack; `hastack render swarm|compose` rewrites it.

Before `docker build`, add to this directory (the render cannot: they are this
machine's or the checkout's files):
{adds}

By hand, as root, from the checkout (about 30 s + 65 s the first time):
  debootstrap --variant=minbase bookworm /tmp/rootfs <the Debian mirror in debian.sources>
  tar -C /tmp/rootfs --exclude='./var/cache/apt/archives/*.deb' \\
      --exclude='./var/lib/apt/lists/*' -c . | docker import - {BASE_IMAGE}
  cp /etc/apt/sources.list.d/debian.sources IMAGE_DIR/
  cp requirements/*.txt IMAGE_DIR/requirements/
  .venv/bin/pip wheel --no-deps --wheel-dir IMAGE_DIR/dist .
  docker build --network host -t {tag} IMAGE_DIR

`--network host`: apt and pip reach their mirrors from the build without a bridge
network (the daemon may run with --bridge none). No registry is used: every service
names this tag, and `docker stack deploy --resolve-image never` runs it as built.
"""


def image_files(plan: StackPlan) -> list[TargetFile]:
    return [
        TargetFile(PurePosixPath("image/Dockerfile"), render_dockerfile(plan)),
        TargetFile(PurePosixPath("image/README"), render_image_readme(plan)),
        # COPY certs/ needs the directory, even when this machine adds no certificate.
        TargetFile(
            PurePosixPath("image/certs/README"),
            "Extra CA certificates (*.crt) the build trusts; see ../README.\n",
        ),
        TargetFile(
            PurePosixPath("image/requirements/README"),
            "requirements/*.txt from the checkout go here; see ../README.\n",
        ),
        TargetFile(
            PurePosixPath("image/dist/README"),
            "A wheel of hastack goes here; see ../README.\n",
        ),
    ]

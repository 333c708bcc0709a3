"""A Docker engine of the tests' own: its own socket, data root and exec root, no default
bridge and no iptables rules (every service runs on the host network), so it neither meets nor
changes a Docker the machine may run. Its data root is kept between runs: the image layers
built once (about 2 min) are reused, the stack itself is removed after each run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker"
DATA_ROOT = Path("/var/cache/hastack-test/docker")
RUN_DIR = Path("/run/hastack-test-docker")
SOCKET = RUN_DIR / "docker.sock"
HOST = f"unix://{SOCKET}"


def docker(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKER, *args],
        env={**os.environ, "DOCKER_HOST": HOST},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


class EngineDidNotStart(RuntimeError):
    pass


@contextlib.contextmanager
def engine(start_timeout_s: float = 60) -> Iterator[str]:
    """Start the engine, yield its DOCKER_HOST, stop it (and leave any swarm) afterwards."""
    if not Path(DOCKERD).exists():
        raise EngineDidNotStart(f"{DOCKERD} is missing (scripts/install-deps --test installs it)")
    DATA_ROOT.mkdir(parents=True, exist_ok=True, mode=0o700)
    RUN_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = open(RUN_DIR / "dockerd.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            DOCKERD,
            f"--host={HOST}",
            f"--data-root={DATA_ROOT}",
            f"--exec-root={RUN_DIR / 'exec'}",
            f"--pidfile={RUN_DIR / 'dockerd.pid'}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--storage-driver=overlay2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + start_timeout_s
        while docker("version", timeout_s=10).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (RUN_DIR / "dockerd.log").read_text()[-2000:]
                raise EngineDidNotStart(f"dockerd did not start:\n{tail}")
            time.sleep(0.5)
        # A swarm an interrupted run left: its stack is gone with its tasks, start afresh.
        docker("swarm", "leave", "--force", timeout_s=60)
        yield HOST
    finally:
        docker("swarm", "leave", "--force", timeout_s=60)
        docker("network", "rm", "docker_gwbridge", timeout_s=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        # dockerd leaves its default network namespace mounted under the exec root.
        netns = RUN_DIR / "exec" / "netns" / "default"
        if os.path.ismount(netns):
            subprocess.run(["umount", str(netns)], check=False, capture_output=True)

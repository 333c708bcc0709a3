"""`hastack image build`: the container image of a stack, built here without a registry.

The base is this Debian release made by debootstrap and imported (no registry is reachable
from where hastack runs, and none is needed). The build context is the render's `image/`
directory completed with what only this machine has: its apt sources, the extra CA
certificates its HTTPS may need, and the hastack wheel and pinned requirements that
`scripts/install-deps` keeps beside the runtime venv (the installed CLI has no checkout).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hastack.errors import HastackError
from hastack.render.image import BASE_IMAGE, image_tag
from hastack.runtime.progress import NullProgress, Progress
from hastack.spec.plan import StackPlan
from hastack.tools.base import ToolError, run
from hastack.tools.docker import Docker

APT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
ROOTFS_EXCLUDES = ("./var/cache/apt/archives/*.deb", "./var/lib/apt/lists/*")
"""Left out of the base image: apt's download cache and lists (the build fetches its own)."""


def image_sources(plan: StackPlan) -> Path:
    """Where install-deps keeps the wheel and requirements: beside the runtime venv."""
    return plan.spec.binaries.hastack_python.parent.parent.parent / "image-src"


def debian_mirror(sources: Path = APT_SOURCES) -> str:
    """The first Debian archive this machine's apt uses (debootstrap fetches from it)."""
    try:
        text = sources.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HastackError(
            f"{sources} is missing: the image is built from this machine's Debian mirror",
            "run hastack on Debian 12, where that file lists the mirror",
        ) from None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "URIs" and "security" not in value:
            return value.split()[0]
    raise HastackError(f"{sources} names no Debian archive (no URIs: line)")


def ensure_base(docker: Docker, ref: str, progress: Progress | None = None) -> bool:
    """Make the base image once (about 30 s). True if it was made now."""
    progress = progress or NullProgress()
    if docker.image_exists(ref):
        return False
    progress.step(f"making the base image {ref} with debootstrap (about 30 s)")
    with tempfile.TemporaryDirectory(prefix="hastack-rootfs-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "rootfs"
        made = run(
            ["debootstrap", "--variant=minbase", "bookworm", str(root), debian_mirror()],
            timeout_s=1200,
        )
        if not made.ok:
            raise ToolError(
                "debootstrap could not make the image's base",
                made,
                "apt-get install debootstrap; the Debian mirror must be reachable",
            )
        docker.import_tree(root, ref, ROOTFS_EXCLUDES)
    return True


def complete_context(plan: StackPlan, image_dir: Path) -> None:
    """Add this machine's files to the render's build context (see its README)."""
    sources = image_sources(plan)
    wheels = sorted((sources / "dist").glob("hastack-*.whl"))
    if not wheels:
        raise HastackError(
            f"no hastack wheel in {sources / 'dist'}",
            "run `make deps` (scripts/install-deps) from the checkout: it builds one",
        )
    shutil.copy2(APT_SOURCES, image_dir / "debian.sources")
    certs = image_dir / "certs"
    certs.mkdir(exist_ok=True)
    for cert in sorted(EXTRA_CA_DIR.glob("*.crt")):
        shutil.copy2(cert, certs / cert.name)
    for name in ("requirements", "dist"):
        shutil.rmtree(image_dir / name, ignore_errors=True)
    shutil.copytree(sources / "requirements", image_dir / "requirements")
    (image_dir / "dist").mkdir()
    shutil.copy2(wheels[-1], image_dir / "dist" / wheels[-1].name)


def build_image(
    plan: StackPlan, docker: Docker, image_dir: Path, progress: Progress | None = None
) -> tuple[str, float]:
    """Build the stack's image from the render's `image/` directory: its tag, and the
    seconds the build took (seconds when nothing changed: Docker's layer cache)."""
    progress = progress or NullProgress()
    ensure_base(docker, BASE_IMAGE, progress)
    complete_context(plan, image_dir)
    tag = image_tag(plan)
    progress.step(f"building {tag} (about 2 min the first time)")
    return tag, docker.build(image_dir, tag).duration_s

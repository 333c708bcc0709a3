"""Every config file of a stack, rendered, checked by the program that reads it, then written
atomically: a bad spec never leaves a half-applied stack."""

from __future__ import annotations

from hastack.errors import HastackError
from hastack.render.files import RenderedFile, render_stack
from hastack.runtime.files import read_regular, write_atomic
from hastack.runtime.hostlab import lab_namespaces, lab_seat
from hastack.runtime.preflight import PreflightError, check_s3_files_trusted
from hastack.runtime.validate import validate_rendered
from hastack.spec.plan import StackPlan
from hastack.spec.secrets import S3Credentials, Secrets

__all__ = ["RenderedFile", "write_configs"]


def write_configs(plan: StackPlan, secrets: Secrets) -> tuple[list[RenderedFile], int]:
    """(the files that changed, how many files there are). Nothing is written unless every
    file passed its check (`haproxy -c`, `patroni --validate-config`, a PgBouncer dry
    start)."""
    files = render_stack(
        plan, secrets, load_s3_credentials(plan), lab_namespaces(plan), lab_seat(plan)
    )
    validate_rendered(plan, files, dcs_running=False)
    changed = [f for f in files if write_atomic(f.path, f.content, f.owner, f.mode)]
    return changed, len(files)


S3_CREDENTIAL_KEYS = ("key", "secret")


def parse_s3_credentials(text: str, where: str) -> S3Credentials:
    """`key=...` and `secret=...`, one per line (blank lines and # comments allowed)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or name not in S3_CREDENTIAL_KEYS or not value:
            raise HastackError(
                f"{where}:{number}: expected `key=ACCESS_KEY` or `secret=SECRET_KEY`",
                "two lines, key=... and secret=... (docs/backups.md#a-second-repository-in-s3)",
            )
        if any(c.isspace() for c in value):
            raise HastackError(f"{where}:{number}: {name} has whitespace in it", "check the file")
        values[name] = value
    missing = [k for k in S3_CREDENTIAL_KEYS if k not in values]
    if missing:
        raise HastackError(
            f"{where}: no `{missing[0]}=` line",
            "two lines, key=... and secret=... (docs/backups.md#a-second-repository-in-s3)",
        )
    return S3Credentials(key=values["key"], secret=values["secret"])


def load_s3_credentials(plan: StackPlan) -> S3Credentials | None:
    """The S3 repository's access key from the operator's file (None without backup.s3)."""
    s3 = plan.spec.backup.s3
    if s3 is None or not plan.backup_enabled:
        return None
    path = s3.credentials_file
    problems = check_s3_files_trusted(plan)  # again here, at the moment root reads them
    if problems:
        raise PreflightError(problems)
    if path.is_file() and path.stat().st_mode & 0o077:
        raise HastackError(
            f"backup.s3.credentials_file = {path}: other users can read it "
            f"(mode {path.stat().st_mode & 0o777:o})",
            f"`chmod 600 {path}`, and rotate the key if others may have read it",
        )
    raw = read_regular(path, 65536)
    if raw is None:
        raise HastackError(
            f"backup.s3.credentials_file = {path}: no such file",
            "create it (docs/backups.md#a-second-repository-in-s3)",
        )
    return parse_s3_credentials(raw.decode("utf-8", errors="replace"), str(path))

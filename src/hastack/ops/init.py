"""`hastack init`: write a commented example spec."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from hastack.errors import HastackError
from hastack.runtime.files import write_atomic
from hastack.spec import example_spec, load_spec


def write_example(path: Path, name: str, force: bool) -> None:
    """Write the example spec for stack `name` (refusing to overwrite unless `force`), owned
    by whoever runs the command."""
    if path.exists() and not force:
        raise HastackError(
            f"{path} exists; not overwriting it", "use --force, or -c to write another file"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = pwd.getpwuid(os.geteuid()).pw_name
    write_atomic(path, example_spec(name), owner=owner, mode=0o644)
    load_spec(path)  # the example must always be valid

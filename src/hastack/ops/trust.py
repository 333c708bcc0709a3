"""What root checks before it acts on a spec it did not write itself."""

from __future__ import annotations

import os
from pathlib import Path

from hastack.errors import HastackError
from hastack.runtime.preflight import spec_file_problem


def refuse_untrusted_spec(path: Path) -> None:
    """As root, act only on a spec that only root can change: it names the programs root
    starts, the users they run as and the directories root writes."""
    if os.geteuid() != 0:
        return
    problem = spec_file_problem(path)
    if problem is not None:
        raise HastackError(problem.what, problem.fix)

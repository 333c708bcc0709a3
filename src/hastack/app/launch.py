"""Start an app instance: load its environment file (secrets stay out of argv and of
supervisord's config), then exec the server.

    python -m hastack.app.launch ENV_FILE INSTANCE ADDRESS PORT -- COMMAND...
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        env[key.strip()] = value.strip()
    return env


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") != 5:
        print("usage: launch ENV_FILE INSTANCE ADDRESS PORT -- COMMAND...", file=sys.stderr)
        return 2
    env_file, instance, address, port = argv[1:5]
    command = argv[6:]
    env = {**os.environ, **read_env_file(Path(env_file))}
    env.update({"HASTACK_INSTANCE": instance, "HOST": address, "PORT": port})
    command = [c.replace("{address}", address).replace("{port}", port) for c in command]
    os.execvpe(command[0], command, env)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))

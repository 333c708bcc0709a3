"""Run hastack's web dashboard: `python -m hastack.web.server CONFIG.json` (supervisord,
as the monitoring user). HTTPS only, on the monitoring address (web/dashboard.py)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import uvicorn

from hastack.web.dashboard import create_dashboard
from hastack.web.sources import DashboardConfig


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m hastack.web.server CONFIG.json", file=sys.stderr)
        return 2
    config = DashboardConfig.load(Path(argv[1]))
    # Lines with their time, so `hastack logs --all` places them.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_dashboard(config),
        host=config.host,
        port=config.port,
        ssl_certfile=config.cert,
        ssl_keyfile=config.key,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

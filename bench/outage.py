"""Database outage under load: PostgreSQL stopped, then started again.

    python bench/outage.py [--down 10] [--writers 8]

**Stops the machine's PostgreSQL cluster** (``pg_ctlcluster``; run it where that is yours
to stop). Entry writers run against the demo service; after a few seconds the cluster is
stopped for ``--down`` seconds and started again. It must hold that:

- while the database is down every answer is a 503 problem (no 500, no hang past the
  client's timeout), and nothing is half-written (``harness.consistency``);
- after the start the service answers 201 again without being restarted;
- the audit chain verifies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness import Writers, consistency, demo_service

CLUSTER = next(Path("/etc/postgresql").iterdir()).name if Path("/etc/postgresql").is_dir() else ""


def _cluster(command: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", CLUSTER, "main", command, "-m", "fast"]
        if command == "stop"
        else ["pg_ctlcluster", "--skip-systemctl-redirect", CLUSTER, "main", command],
        check=True,
    )


async def run(down: float, writers: int) -> dict[str, Any]:
    async with demo_service("outage") as service:
        load = Writers(service, writers)
        await load.start()
        await asyncio.sleep(3)
        _cluster("stop")  # returns once the server is down
        stopped = time.monotonic()
        await asyncio.sleep(1)  # answers to writes committed just before the stop arrive
        before = dict(load.statuses)
        try:
            await asyncio.sleep(down)
            during = {k: load.statuses[k] - before.get(k, 0) for k in load.statuses}
        finally:
            _cluster("start")
        started = time.monotonic()
        answered_before = len(load.answered)
        recovered_after = None
        while time.monotonic() - started < 60:
            await asyncio.sleep(0.2)
            if len(load.answered) > answered_before:
                recovered_after = round(time.monotonic() - started, 1)
                break
        await asyncio.sleep(3)
        await load.stop()
        result: dict[str, Any] = {
            "down_seconds": round(started - stopped, 1),
            "statuses_before": before,
            "statuses_while_down": {k: v for k, v in during.items() if v},
            "recovered_after_seconds": recovered_after,
            "statuses_total": dict(load.statuses),
        }
        result |= await consistency(service, load.answered)
    unexpected = set(result["statuses_while_down"]) - {"503"}
    result["ok"] = (
        result["consistent"]
        and recovered_after is not None
        and not unexpected
        and result["statuses_while_down"].get("503", 0) > 0
        and "500" not in result["statuses_total"]
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--down", type=float, default=10)
    parser.add_argument("--writers", type=int, default=8)
    args = parser.parse_args()
    result = asyncio.run(run(args.down, args.writers))
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()

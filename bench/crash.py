"""Crash consistency: kill -9 a worker mid-write, again and again, under load.

    python bench/crash.py [--kills 100] [--writers 16]

On a throwaway PostgreSQL database with the demo data, two uvicorn workers take entry
writes from ``--writers`` concurrent clients while this process kills a random worker
with SIGKILL ``--kills`` times (uvicorn starts a new one). Afterwards the checks of
:func:`harness.consistency` must hold: every entry has its audit record and the other way
round, every answered write exists, the chain verifies. Exits non-zero otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from typing import Any

from harness import Writers, consistency, demo_service


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


async def run(kills: int, writers: int) -> dict[str, Any]:
    async with demo_service("crash") as service:
        load = Writers(service, writers)
        await load.start()
        rng = random.Random(1)
        killed = 0
        while killed < kills:
            await asyncio.sleep(rng.uniform(0.2, 0.6))
            workers = _children(service.pid)
            if len(workers) < 2:
                continue  # a new worker is still starting
            os.kill(rng.choice(workers), signal.SIGKILL)
            killed += 1
        await asyncio.sleep(2)
        await load.stop()
        result = {"kills": kills, "statuses": dict(load.statuses)}
        result |= await consistency(service, load.answered)
    result["ok"] = result["consistent"] and result["answered_201"] > 0
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--writers", type=int, default=16)
    args = parser.parse_args()
    result = asyncio.run(run(args.kills, args.writers))
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()

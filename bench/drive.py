"""Drive a running Samverkan with wrk and pgbench; write the results. Called by bench/run.

    python bench/drive.py BASE_URL DATABASE_URL SEED_JSON RESULTS_DIR

Scenarios (each with wrk, ``$BENCH_CONNECTIONS`` connections for ``$BENCH_DURATION``, in
``$BENCH_ROUNDS`` rounds; the median round is reported):
(a) GET /healthz, the framework ceiling; (b) a consent-gated, audited single-entry read by
the police of what social services recorded; (c) a case's entry list; (d) an entry write;
(e) an auditor's search of the audit log by individual; with bench/run, (p) and (q) the
plain CRUD baseline's read and create (bench/baseline). Then (e) again at a fixed rate,
half of its saturated one, from an open-loop driver (T4); the audit chain is verified
in-process (records/s), and pgbench runs the audit append statement alone (the database
ceiling for appends).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy.engine import make_url

from app.audit.chain import BODY_FIELDS, verify_chain
from app.audit.writer import _PG_APPEND
from app.config import Settings
from app.db import Database

BENCH = Path(__file__).resolve().parent
API = "/api/v1"
DURATION = os.environ.get("BENCH_DURATION", "15s")
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "50"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
TARGETS = {
    "read_vs_healthz": 0.5,
    "read_p99_ms": 50.0,
    "audit_search_p95_ms": 50.0,
    # issue 21: against the template's plain CRUD program (bench/baseline), in the same run
    "read_vs_plain_crud": 1.0,  # T1
    "page_vs_plain_read": 0.5,  # T2
    "write_vs_plain_create": 0.8,  # T3
    "verify_records_per_s": 400_000,  # T5
    "audit_search_p95_at_half_ms": 50.0,  # T4: at half its saturated rate, open loop
}
AT_MOST = {
    "read_p99_ms",
    "audit_search_p95_ms",
    "audit_search_p95_at_half_ms",
}  # the others are "at least"
# The baseline, when bench/run serves it: its base URL and its seed (token, item ids).
BASELINE = os.environ.get("BENCH_BASELINE")
BASELINE_SEED = os.environ.get("BENCH_BASELINE_SEED")


def login(base: str, username: str, password: str) -> str:
    data = urllib.parse.urlencode(
        {"grant_type": "password", "username": username, "password": password}
    ).encode()
    with urllib.request.urlopen(f"{base}{API}/auth/token", data=data, timeout=30) as response:
        return str(json.load(response)["access_token"])


def wrk(
    base: str, name: str, paths: list[str], token: str = "", body: str | None = None
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".paths", delete=False) as listing:
        listing.write("\n".join(paths) + "\n")
    env = os.environ | {"BENCH_PATHS": listing.name, "BENCH_TOKEN": token}
    if body is not None:
        env |= {"BENCH_METHOD": "POST", "BENCH_BODY": body}
    command = [
        "wrk",
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{DURATION}",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "wrk" / "paths.lua"),
        base,
    ]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    os.unlink(listing.name)
    found = re.search(r"^BENCH_JSON (.*)$", out, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"wrk printed no result for {name}:\n{out}")
    raw = json.loads(found.group(1))
    seconds = raw["duration_us"] / 1e6
    result = {
        "scenario": name,
        "requests": raw["requests"],
        "requests_per_s": round(raw["requests"] / seconds, 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "errors": raw["status_errors"] + raw["socket_errors"],
    }
    print(json.dumps(result), flush=True)
    return result


def group_commits(base: str) -> tuple[float, float]:
    """The server's group commits of reads' audit records so far: (commits, records), from
    its metrics (every worker's)."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = {
        name: float(value)
        for name, value in re.findall(
            r"^samverkan_audit_group_commit_records_(count|sum) ([0-9.e+]+)$", text, re.MULTILINE
        )
    }
    return found.get("count", 0.0), found.get("sum", 0.0)


def wrk_grouped(base: str, name: str, paths: list[str], token: str) -> dict[str, Any]:
    """:func:`wrk` of reads, with the group commits the run made (records per commit)."""
    before = group_commits(base)
    result = wrk(base, name, paths, token)
    commits, records = (a - b for a, b in zip(group_commits(base), before, strict=True))
    result["audit_group_commits"] = int(commits)
    result["audit_records_per_group_commit"] = round(records / commits, 1) if commits else None
    return result


def probe(
    base: str, name: str, paths: list[str], token: str = "", body: str | None = None, n: int = 100
) -> dict[str, Any]:
    """Latency of ``n`` requests one at a time: the service time, without queueing."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    times = []
    for i in range(n):
        request = urllib.request.Request(
            base + paths[i % len(paths)],
            data=body.encode() if body is not None else None,
            headers=headers,
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    result = {
        "scenario": name,
        "p50_ms": round(times[len(times) // 2], 2),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
    }
    print(json.dumps({"one_at_a_time": result}), flush=True)
    return result


async def _open_loop(
    base: str, paths: list[str], token: str, rate: float, seconds: float
) -> dict[str, Any]:
    """Requests sent at a fixed rate whatever the answers (an open loop, as wrk2 drives):
    request i leaves at start + i / rate, and its latency counts from then, so a slow
    answer cannot hold the next request back and hide its own queueing (coordinated
    omission)."""
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    count = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.1

        async def one(i: int) -> None:
            nonlocal errors
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            try:
                response = await client.get(paths[i % len(paths)], headers=headers)
                errors += response.status_code >= 400
            except httpx.HTTPError:
                errors += 1
            latencies.append((loop.time() - due) * 1000)

        await asyncio.gather(*(one(i) for i in range(count)))
        elapsed = loop.time() - start
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))], 2)

    return {
        "rate_per_s": round(rate, 1),
        "achieved_per_s": round(count / elapsed, 1),
        "requests": count,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "errors": errors,
    }


def open_loop(
    base: str, name: str, paths: list[str], token: str, rate: float, seconds: float
) -> dict[str, Any]:
    result = {"scenario": name} | asyncio.run(_open_loop(base, paths, token, rate, seconds))
    print(json.dumps({"open_loop": result}), flush=True)
    return result


async def verify_rate(url: str) -> dict[str, Any]:
    database = Database.from_settings(Settings(database_url=url))
    try:
        async with database.engine.connect() as connection:
            started = time.perf_counter()
            result = await verify_chain(connection, jobs=2)
            seconds = time.perf_counter() - started
    finally:
        await database.dispose()
    out = {
        "ok": result.ok,
        "checked": result.checked,
        "seconds": round(seconds, 2),
        "records_per_s": round(result.checked / seconds),
    }
    print(json.dumps({"verify": out}), flush=True)
    return out


def pgbench_appends(url: str) -> dict[str, Any]:
    """The append statement of app/audit/writer.py alone (its own text), with constant
    values: one user reading ever new individuals."""
    values = dict.fromkeys(BODY_FIELDS, "NULL")
    values |= {
        "at": "now()",
        "actor_user_id": "'00000000-0000-4000-8000-000000000001'",
        "actor_roles": "'caseworker'",
        "action": "'bench.append'",
        "individual_id": "gen_random_uuid()",
        "decision": "'permit'",
        "flags": "''",
        "body": "'{}'",
    }
    # Longest names first: ``:actor_user_id`` before a shorter name it starts with.
    text = re.sub(r"--[^\n]*", "", str(_PG_APPEND))
    statement = " ".join(text.split())
    for name in sorted(values, key=len, reverse=True):
        statement = re.sub(rf":{name}\b", values[name], statement)
    statement += ";\n"
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(statement)
    parsed = make_url(url)
    command = [
        "pgbench",
        "-n",
        f"-c{CONNECTIONS}",
        f"-j{THREADS}",
        f"-T{int(DURATION.rstrip('s'))}",
        "-f",
        script.name,
        "-h",
        parsed.host or "127.0.0.1",
        "-p",
        str(parsed.port or 5432),
        "-U",
        parsed.username or "postgres",
        parsed.database or "postgres",
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    result = {
        "appends_per_s": round(tps, 1),
        "latency_ms": float(latency.group(1)) if latency else None,
    }
    print(json.dumps({"pgbench": result}), flush=True)
    return result


def _median(results: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The result whose ``key`` is the median (the lower one of an even count)."""
    ordered = sorted(results, key=lambda r: r[key])
    return dict(ordered[(len(ordered) - 1) // 2])


def main() -> None:
    base, url, seed_file, results_dir = sys.argv[1:5]
    seed = json.loads(Path(seed_file).read_text())
    passwords = seed["passwords"]
    police = login(base, "demo.polis", passwords["demo.polis"])
    social = login(base, "demo.socialsekreterare", passwords["demo.socialsekreterare"])
    auditor = login(base, "demo.granskare", passwords["demo.granskare"])
    entry_paths = [f"{API}/entries/{e}" for e in seed["readable_entries"]]
    case_paths = [f"{API}/cases/{c}/entries?limit=20" for c in seed["shared_cases"]]
    write_paths = [f"{API}/cases/{c}/entries" for c in seed["shared_cases"]]
    search_paths = [f"{API}/audit/events?individual_id={i}&limit=50" for i in seed["individuals"]]
    body = json.dumps(
        {"category": "social_services", "title": "Samtal", "body": "Uppföljande samtal."}
    )
    alone = [
        probe(base, "a_healthz", ["/healthz"]),
        probe(base, "b_entry_read", entry_paths, police),
        probe(base, "c_entry_list", case_paths, police, n=30),
        probe(base, "d_entry_write", write_paths, social, body=body, n=30),
        probe(base, "e_audit_search", search_paths, auditor),
    ]
    # Rounds, each scenario in turn, so that a noisy minute of a shared machine hits every
    # scenario alike; each figure is the median round's (with the range of req/s).
    runs: dict[str, list[dict[str, Any]]] = {}
    verifies = []
    plain: list[tuple[str, list[str], str, str | None]] = []
    if BASELINE and BASELINE_SEED:
        baseline = json.loads(Path(BASELINE_SEED).read_text())
        plain = [
            ("p_plain_read", [f"{API}/items/{i}" for i in baseline["items"]], "", None),
            (
                "q_plain_create",
                [f"{API}/items/"],
                "",
                json.dumps({"title": "Samtal", "description": "Uppföljande samtal."}),
            ),
        ]
        token = baseline["token"]
        plain = [(name, paths, token, body) for name, paths, _, body in plain]
        alone += [
            probe(BASELINE, name, paths, token, body=payload, n=100 if payload is None else 30)
            for name, paths, token, payload in plain
        ]
    for _ in range(ROUNDS):
        for result in (
            wrk(base, "a_healthz", ["/healthz"]),
            wrk_grouped(base, "b_entry_read", entry_paths, police),
            wrk_grouped(base, "c_entry_list", case_paths, police),
            wrk(base, "d_entry_write", write_paths, social, body=body),
            wrk(base, "e_audit_search", search_paths, auditor),
            *(
                wrk(BASELINE or "", name, paths, token, body=payload)
                for name, paths, token, payload in plain
            ),
        ):
            runs.setdefault(result["scenario"], []).append(result)
        verifies.append(asyncio.run(verify_rate(url)))
    # T4: the audit search at half of its own saturated rate, driven at that fixed rate.
    saturated = _median(runs["e_audit_search"], "requests_per_s")["requests_per_s"]
    seconds = float(DURATION.rstrip("s"))
    at_half = _median(
        [
            open_loop(base, "e_audit_search", search_paths, auditor, saturated / 2, seconds)
            for _ in range(ROUNDS)
        ],
        "p95_ms",
    )
    # Last: pgbench's records do not hash as the application's do (a constant body).
    ceilings = [pgbench_appends(url) for _ in range(ROUNDS)]
    scenarios = [
        _median(results, "requests_per_s")
        | {
            "requests_per_s_range": [
                min(r["requests_per_s"] for r in results),
                max(r["requests_per_s"] for r in results),
            ]
        }
        for results in runs.values()
    ]
    verify = _median(verifies, "records_per_s") | {
        "records_per_s_range": [
            min(v["records_per_s"] for v in verifies),
            max(v["records_per_s"] for v in verifies),
        ]
    }
    ceiling = _median(ceilings, "appends_per_s")
    by_name = {s["scenario"]: s for s in scenarios}
    healthz = by_name["a_healthz"]["requests_per_s"]
    ratios = {
        "read_vs_healthz": round(by_name["b_entry_read"]["requests_per_s"] / healthz, 3),
        "write_vs_healthz": round(by_name["d_entry_write"]["requests_per_s"] / healthz, 3),
        "read_appends_vs_pgbench": round(
            by_name["b_entry_read"]["requests_per_s"] / ceiling["appends_per_s"], 3
        ),
        "write_appends_vs_pgbench": round(
            by_name["d_entry_write"]["requests_per_s"] / ceiling["appends_per_s"], 3
        ),
    }
    if "p_plain_read" in by_name:
        plain_read = by_name["p_plain_read"]["requests_per_s"]
        plain_create = by_name["q_plain_create"]["requests_per_s"]
        ratios |= {
            "read_vs_plain_crud": round(by_name["b_entry_read"]["requests_per_s"] / plain_read, 3),
            "page_vs_plain_read": round(by_name["c_entry_list"]["requests_per_s"] / plain_read, 3),
            "write_vs_plain_create": round(
                by_name["d_entry_write"]["requests_per_s"] / plain_create, 3
            ),
        }
    measured = {
        "read_vs_healthz": ratios["read_vs_healthz"],
        "read_p99_ms": by_name["b_entry_read"]["p99_ms"],
        "audit_search_p95_ms": by_name["e_audit_search"]["p95_ms"],
        "audit_search_p95_at_half_ms": at_half["p95_ms"],
        "verify_records_per_s": verify["records_per_s"],
        **{
            name: ratios[name]
            for name in ("read_vs_plain_crud", "page_vs_plain_read", "write_vs_plain_create")
            if name in ratios
        },
    }
    met = {
        name: measured[name] < target if name in AT_MOST else measured[name] >= target
        for name, target in TARGETS.items()
        if name in measured
    }
    results = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "uname": " ".join(os.uname())},
        "settings": {
            "duration": DURATION,
            "connections": CONNECTIONS,
            "workers": 2,
            "rounds": ROUNDS,
        },
        "population": seed["counts"],
        "scenarios": scenarios,
        "one_at_a_time": alone,
        "verify": verify,
        "audit_search_at_half_rate": at_half,
        "pgbench_audit_append": ceiling,
        "ratios": ratios,
        "targets": {n: {"target": TARGETS[n], "measured": measured[n], "met": met[n]} for n in met},
    }
    out = Path(results_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "latest.md").write_text(markdown(results))
    print((out / "latest.md").read_text())


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# Benchmark {results['at']}",
        "",
        f"{results['machine']['cpus']} CPUs; 2 uvicorn workers; "
        f"{results['settings']['connections']} connections for {results['settings']['duration']}, "
        f"median of {results['settings']['rounds']} rounds; "
        "population " + ", ".join(f"{k} {v:,}" for k, v in results["population"].items()),
        "",
        "| scenario | req/s | req/s range | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in results["scenarios"]:
        low, high = s["requests_per_s_range"]
        lines.append(
            f"| {s['scenario']} | {s['requests_per_s']:,.0f} | {low:,.0f}-{high:,.0f} | "
            f"{s['p50_ms']:.1f} | {s['p95_ms']:.1f} | {s['p99_ms']:.1f} | {s['errors']} |"
        )
    lines += [
        "",
        "One request at a time (service time without queueing):",
        "",
        "| scenario | p50 ms | p95 ms |",
        "|---|---:|---:|",
        *[f"| {a['scenario']} | {a['p50_ms']} | {a['p95_ms']} |" for a in results["one_at_a_time"]],
    ]
    pg = results["pgbench_audit_append"]
    verify = results["verify"]
    half = results["audit_search_at_half_rate"]
    lines += [
        "",
        f"Audit search driven at a fixed {half['rate_per_s']}/s (half its saturated rate; "
        f"achieved {half['achieved_per_s']}/s, open loop): p50 {half['p50_ms']} ms, "
        f"p95 {half['p95_ms']} ms, p99 {half['p99_ms']} ms, {half['errors']} errors.",
        "",
        f"pgbench, audit append statement alone: {pg['appends_per_s']:,.0f} appends/s.  ",
        f"Chain verify: {verify['records_per_s']:,} records/s "
        f"(range {verify['records_per_s_range'][0]:,}-{verify['records_per_s_range'][1]:,}; "
        f"{verify['checked']:,} records, ok={verify['ok']}).",
        "",
        "| ratio | value |",
        "|---|---:|",
        *[f"| {k} | {v} |" for k, v in results["ratios"].items()],
        "",
        "| target | goal | measured | met |",
        "|---|---:|---:|---|",
        *[
            f"| {k} | {'<' if k in AT_MOST else '>='} {v['target']} | {v['measured']} | "
            f"{'yes' if v['met'] else '**no**'} |"
            for k, v in results["targets"].items()
        ],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

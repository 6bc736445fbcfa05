"""The README's walkthrough, pasted as a newcomer would: `samverkan demo` on a fresh
directory, then the "role by role" block with the ids and passwords the demo printed.
Each role must see what the README says it sees."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.oidc_provider import _install
from tests.test_cli import SAMVERKAN, _env, _free_port

README = Path(__file__).resolve().parent.parent / "README.md"


def _walkthrough() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("### The demo, role by role", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def _demo(directory: Path, *args: str, **env: str) -> tuple[subprocess.Popen[str], str, int]:
    """`samverkan demo` serving from ``directory``: the process, what it printed, its port."""
    port = _free_port()
    process = subprocess.Popen(
        [*SAMVERKAN, "demo", "--port", str(port), *args],
        cwd=directory,
        env=_env(PYTHONPATH=str(README.parent), SAMVERKAN_LOG_LEVEL="WARNING", **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    printed = ""
    for line in process.stdout:
        printed += line
        if "auth/token" in line:
            break
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return process, printed, port
        except httpx.TransportError:
            assert process.poll() is None, printed
            assert time.monotonic() < deadline
            time.sleep(0.2)


def _paste(script: str) -> subprocess.CompletedProcess[str]:
    """``script`` run as a newcomer pasting it into bash would, stopping at the first error."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's commands use curl")
def test_the_readme_walkthrough_works_when_pasted(tmp_path: Path) -> None:
    process, printed, port = _demo(tmp_path)
    try:
        script = _walkthrough().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        script = script.replace("<demo case id>", re.findall(r"Demo case:\s+(\S+)", printed)[0])
        script = script.replace(
            "<demo individual id>", re.findall(r"Demo individual:\s+(\S+)", printed)[0]
        )
        for user, password in re.findall(r"^\s+(demo\.\w+)\s+(\S+)\s", printed, re.MULTILINE):
            script = script.replace(f"<password of {user}>", password)
        assert "<password of" not in script
        assert "<demo " not in script
        result = _paste(script)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    (
        case,
        search,
        police_entries,
        police_meetings,
        social_entries,
        frivard_plan,
        school_plan,
        work,
        withdrawn,
        police_after,
        extract,
        queue,
        users,
        admin_cases,
    ) = answers
    assert case["individual"]["given_name"] == "Tolvan"
    assert [i["id"] for i in search["items"]] == [case["individual"]["id"]]
    assert {e["category"] for e in police_entries["items"]} == {
        "police",
        "probation",
        "school",
        "social_services",
    }
    [intake] = police_meetings["items"]
    assert intake["kind"] == "intake"
    assert len(intake["action_ids"]) == 4
    assert "police" not in {e["category"] for e in social_entries["items"]}
    assert len(frivard_plan["items"]) == len(school_plan["items"]) == 4
    assert set(work) >= {"overdue_actions", "follow_ups_due", "consents_expiring", "reviews_due"}
    assert withdrawn["status"] == "withdrawn"
    assert {e["category"] for e in police_after["items"]} == {"police"}
    assert any(e["basis"] == "consent" for e in extract["entries"])
    assert "items" in queue
    assert {u["username"] for u in users["items"]} >= {"demo.polis", "demo.admin"}
    assert admin_cases["items"] == []

    # "Then samverkan demo --reset and the story is there again."
    process, printed, port = _demo(tmp_path, "--reset", "--yes")
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        passwords = dict(re.findall(r"^\s+(demo\.\w+)\s+(\S+)\s", printed, re.MULTILINE))
        token = httpx.post(
            f"{base}/auth/token",
            data={
                "grant_type": "password",
                "username": "demo.polis",
                "password": passwords["demo.polis"],
            },
            timeout=30,
        ).json()["access_token"]
        new_case = re.findall(r"Demo case:\s+(\S+)", printed)[0]
        entries = httpx.get(
            f"{base}/cases/{new_case}/entries",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).json()
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert new_case != case["id"]
    assert "social_services" in {e["category"] for e in entries["items"]}  # consent active again


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's commands use curl")
def test_the_readme_provider_example_works_when_pasted(tmp_path: Path) -> None:
    """ "Try it against the test provider": the provider started as the README says, the
    providers file as printed there, the demo with it, and the block pasted."""
    _install()
    section = README.read_text(encoding="utf-8").split("### Try it against the test provider")[1]
    (start, _), (providers_yaml, _), (walkthrough, _) = [
        (body, lang) for lang, body in re.findall(r"```(sh|yaml)\n(.*?)```", section, re.S)
    ][:3]
    provider_port = str(_free_port())
    node_line = next(line for line in start.splitlines() if line.startswith("node "))
    provider = subprocess.Popen(
        [
            "bash",
            "-c",
            node_line.split("#")[0].replace("8444", provider_port).replace("/tmp/", f"{tmp_path}/"),
        ],
        cwd=README.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert provider.stdout is not None
        assert provider.stdout.readline().startswith("ready http://127.0.0.1:")
        providers_file = tmp_path / "identity_providers.yaml"
        providers_file.write_text(providers_yaml.replace("8444", provider_port))
        process, printed, port = _demo(
            tmp_path, SAMVERKAN_IDENTITY_PROVIDERS_FILE=str(providers_file)
        )
        try:
            script = walkthrough.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            script = script.replace("8444", provider_port)
            script = script.replace("<demo case id>", re.findall(r"Demo case:\s+(\S+)", printed)[0])
            for user, password in re.findall(r"^\s+(demo\.\w+)\s+(\S+)\s", printed, re.M):
                script = script.replace(f"<password of {user}>", password)
            assert "<" not in script.replace("<<", "")
            result = _paste(script)
        finally:
            process.terminate()
            process.wait(timeout=30)
    finally:
        provider.terminate()
        provider.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    linked, me, entries = [json.loads(line) for line in result.stdout.splitlines() if line]
    assert linked["identity"]["subject"] == "pia"
    assert (me["username"], me["roles"], me["auth_method"]) == (
        "demo.polis",
        ["caseworker"],
        "oidc:polisen-test",
    )
    assert "police" in {e["category"] for e in entries["items"]}

"""Every enum value the API returns has a Swedish and an English label, from one source
(policies/labels.yaml, with the categories' and legal bases' own), served by GET /labels."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.lagesbild.models import Level
from app.main import create_app
from app.policy.engine import PolicyEngine, PolicyError, policies_dir
from app.statistics.service import AGE_BANDS
from tests.conftest import make_settings
from tests.scenarios import World, call

ENGINE = PolicyEngine()


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _enums() -> dict[str, list[str]]:
    """Every enum of the API's OpenAPI document, by its name in snake_case."""
    spec = create_app(make_settings("sqlite+aiosqlite://")).openapi()
    return {
        _snake(name): [str(v) for v in schema["enum"]]
        for name, schema in spec["components"]["schemas"].items()
        if "enum" in schema
    }


ENUMS = _enums()
# the lägesbild's level is an integer in the API, labelled all the same
ENUMS["lagesbild_level"] = [str(level.value) for level in Level]
# the statistics' age bands are group names in its rows
ENUMS["age_band"] = list(AGE_BANDS)


def test_the_api_has_enums_to_label() -> None:
    assert {"case_status", "closure_reason", "goal_area", "threat_level", "role"} <= set(ENUMS)


@pytest.mark.parametrize("lang", ["sv", "en"])
def test_every_enum_value_has_a_label_in_both_languages(lang: str) -> None:
    labels = ENGINE.reference.labels_in(lang)  # type: ignore[arg-type]
    missing = [
        f"{name}.{value}"
        for name, values in ENUMS.items()
        for value in values
        if not labels.get(name, {}).get(value, "").strip()
    ]
    assert missing == [], f"no {lang} label"
    stale = [
        f"{name}.{value}"
        for name, values in ENGINE.reference.labels.items()
        for value in values
        if value not in ENUMS.get(name, [])
    ]
    assert stale == [], "labels of values the API does not have"
    assert set(labels["category"]) == set(ENGINE.reference.categories)


def test_swedish_labels_are_swedish() -> None:
    """Not a copy of the English, but where the word is the same in both (CSV, Trefas)."""
    same = {
        f"{name}.{value}"
        for name, values in ENGINE.reference.labels.items()
        for value, label in values.items()
        if label.sv == label.en
    }
    assert same <= {
        "export_format.csv",
        "export_format.jsonl",
        "extract_format.json",
        "extract_format.csv",
        "extract_format.html",
        "table_format.json",
        "table_format.csv",
        "programme.trefas",
        "scope.webhooks",
    }


async def test_get_labels_by_lang_and_by_accept_language(
    client: httpx.AsyncClient, app: FastAPI, world: World
) -> None:
    user = world.soc_caseworker
    sv = (await call(client, app, user, "GET", "/labels?lang=sv")).json()
    en = (await call(client, app, user, "GET", "/labels?lang=en")).json()
    assert sv["case_status"]["closed"] == "Avslutat"
    assert en["case_status"]["closed"] == "Closed"
    assert sv["category"]["threat_assessment"] == "Hotbedömning"
    preferred = await call(
        client, app, user, "GET", "/labels", headers={"Accept-Language": "sv-SE,sv;q=0.9,en;q=0.5"}
    )
    assert preferred.json() == sv
    english = await call(
        client, app, user, "GET", "/labels", headers={"Accept-Language": "en,sv;q=0.5"}
    )
    assert english.json() == en
    assert (await call(client, app, user, "GET", "/labels?lang=de")).status_code == 422
    assert (await call(client, app, None, "GET", "/labels")).status_code == 401


def test_a_label_without_its_english_stops_the_app(tmp_path: Path) -> None:
    directory = tmp_path / "policies"
    shutil.copytree(policies_dir(), directory)
    labels = directory / "labels.yaml"
    labels.write_text(
        labels.read_text(encoding="utf-8").replace(
            "planned: {sv: Planerad, en: Planned}", "planned: {sv: Planerad}"
        ),
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match="reference data"):
        PolicyEngine(directory)

"""Reference data from ``policies/``: categories, legal bases and local settings.

Loaded and validated once at start-up; a file that does not validate stops the app.
"""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.agencies.models import AgencyKind
from app.retention import rules as retention_rules
from app.retention.rules import RetentionRules

REQUIRED_CATEGORIES = frozenset(
    {
        "identity",
        "contact",
        "social_services",
        "school",
        "police",
        "probation",
        "health",
        "threat_assessment",
        "plan",
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Category(_Strict):
    code: str = Field(pattern=r"^[a-z][a-z_]{1,39}$")
    label_sv: str
    label_en: str
    recorded_by: list[AgencyKind]
    sensitive: bool

    def recorded_by_kind(self, kind: str) -> bool:
        """Whether an agency of ``kind`` may record information in this category."""
        return kind in {k.value for k in self.recorded_by}


class LegalBasis(_Strict):
    code: str = Field(pattern=r"^[a-z0-9_]{2,40}$")
    label_sv: str
    label_en: str
    used_by: list[AgencyKind]
    towards: list[AgencyKind]
    categories: list[str]
    max_duration_hours: int = Field(ge=1, le=72)
    example: bool = False


class ConsentSettings(_Strict):
    age_of_consent: int = Field(ge=15, le=18)
    minor_signatories: Literal["all_custodial_guardians", "any_custodial_guardian"]
    max_validity_days: int = Field(ge=1, le=3 * 366)


class DocumentSettings(_Strict):
    max_bytes: int = Field(ge=1024, le=64 * 1_048_576)
    media_types: list[Literal["application/pdf", "image/png", "image/jpeg"]]


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class WorkingHours(_Strict):
    start: time
    end: time
    days: list[Weekday]
    timezone: str

    @model_validator(mode="after")
    def _valid(self) -> WorkingHours:
        if self.start >= self.end:
            raise ValueError("working_hours: start must be before end")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"working_hours: unknown timezone {self.timezone!r}") from exc
        return self

    def outside(self, moment: datetime) -> bool:
        """Whether ``moment`` (aware) falls outside these hours, in local time."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        if WEEKDAYS[local.weekday()] not in self.days:
            return True
        return not self.start <= local.time() < self.end


class AuditSettings(_Strict):
    working_hours: WorkingHours
    volume_individuals_per_hour: int = Field(ge=1, le=100_000)


class RetentionSettings(_Strict):
    # The access log is kept at least this long, whatever policies/retention.yaml says.
    audit_minimum_days: int = Field(ge=1, le=100 * 366)


class LocalSettings(_Strict):
    consent: ConsentSettings
    documents: DocumentSettings
    audit: AuditSettings
    retention: RetentionSettings


class Label(_Strict):
    sv: str = Field(min_length=1, max_length=120)
    en: str = Field(min_length=1, max_length=120)


Labels = dict[str, dict[str, Label]]


class Messages(_Strict):
    """Problem texts in Swedish: English as the code writes it -> Swedish."""

    titles: dict[str, str] = Field(default_factory=dict)
    details: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _same_blanks(self) -> Messages:
        for english, swedish in self.details.items():
            if english.count("{}") != swedish.count("{}"):
                raise ValueError(f"messages.sv.yaml: the blanks of {english!r} do not match")
        return self


class _CategoryFile(_Strict):
    categories: list[Category]


class _LegalBasisFile(_Strict):
    legal_bases: list[LegalBasis]


class ReferenceData(_Strict):
    categories: dict[str, Category]
    legal_bases: dict[str, LegalBasis]
    settings: LocalSettings
    # enum name (snake_case) -> value -> its Swedish and English label (labels.yaml)
    labels: Labels = Field(default_factory=dict)
    messages_sv: Messages = Field(default_factory=Messages)
    retention: RetentionRules | None = None

    def labels_in(self, lang: Literal["sv", "en"]) -> dict[str, dict[str, str]]:
        """Every enum's labels in one language, with the categories' and legal bases'."""
        shown = {
            name: {value: getattr(label, lang) for value, label in values.items()}
            for name, values in self.labels.items()
        }
        shown["category"] = {c.code: getattr(c, f"label_{lang}") for c in self.categories.values()}
        shown["legal_basis"] = {
            b.code: getattr(b, f"label_{lang}") for b in self.legal_bases.values()
        }
        return dict(sorted(shown.items()))

    @model_validator(mode="after")
    def _consistent(self) -> ReferenceData:
        missing = REQUIRED_CATEGORIES - self.categories.keys()
        if missing:
            raise ValueError(f"categories.yaml lacks required categories: {sorted(missing)}")
        for basis in self.legal_bases.values():
            unknown = set(basis.categories) - self.categories.keys()
            if unknown:
                raise ValueError(f"legal basis {basis.code} names unknown categories {unknown}")
        return self


def _load_yaml(path: Path) -> object:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_reference(directory: Path) -> ReferenceData:
    categories = _CategoryFile.model_validate(_load_yaml(directory / "categories.yaml"))
    bases = _LegalBasisFile.model_validate(_load_yaml(directory / "legal_bases.yaml"))
    codes = [c.code for c in categories.categories]
    if len(codes) != len(set(codes)):
        raise ValueError("categories.yaml repeats a code")
    settings = LocalSettings.model_validate(_load_yaml(directory / "settings.yaml"))
    return ReferenceData(
        categories={c.code: c for c in categories.categories},
        legal_bases={b.code: b for b in bases.legal_bases},
        settings=settings,
        labels=_load_yaml(directory / "labels.yaml"),
        messages_sv=Messages.model_validate(_load_yaml(directory / "messages.sv.yaml")),
        retention=retention_rules.load(
            directory, audit_minimum_days=settings.retention.audit_minimum_days
        ),
    )

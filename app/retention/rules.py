"""The retention rules (gallringsregler): ``policies/retention.yaml``, validated at start-up.

Each rule says how long one kind of record is kept after its trigger: a case's closing, a
consent's end, an individual's last activity, or the record's creation. Records with an
owning agency (entries, actions, goals, meetings, emergency grants) may have a rule per
agency kind; the rule without ``agency_kind`` is the default. A file that does not hold
exactly one default rule for every kind, names an unknown kind or trigger, has a missing
or negative period, keeps a case's contents longer than the case, or would cull the audit
log sooner than ``retention.audit_minimum_days`` in settings.yaml stops the app, naming
the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.agencies.models import AgencyKind

FILE_NAME = "retention.yaml"


class RecordKind(StrEnum):
    INDIVIDUAL = "individual"
    CASE = "case"
    CONSENT = "consent"
    CONSENT_DOCUMENT = "consent_document"
    ENTRY = "entry"
    ACTION = "action"
    GOAL = "goal"
    MEETING = "meeting"
    EMERGENCY_GRANT = "emergency_grant"
    AUDIT_RECORD = "audit_record"
    IDEMPOTENCY = "idempotency"
    OUTBOX = "outbox"


class Trigger(StrEnum):
    CASE_CLOSED = "case_closed"
    CONSENT_ENDED = "consent_ended"
    LAST_ACTIVITY = "last_activity"
    RECORD_CREATED = "record_created"


# What starts each kind's period. A case's contents start from its closing: the case's
# culling takes whatever is still in it, so they cannot be kept longer than the case.
TRIGGERS: dict[RecordKind, frozenset[Trigger]] = {
    RecordKind.INDIVIDUAL: frozenset({Trigger.LAST_ACTIVITY}),
    RecordKind.CASE: frozenset({Trigger.CASE_CLOSED}),
    RecordKind.CONSENT: frozenset({Trigger.CONSENT_ENDED, Trigger.CASE_CLOSED}),
    RecordKind.CONSENT_DOCUMENT: frozenset({Trigger.CONSENT_ENDED, Trigger.CASE_CLOSED}),
    RecordKind.ENTRY: frozenset({Trigger.CASE_CLOSED}),
    RecordKind.ACTION: frozenset({Trigger.CASE_CLOSED}),
    RecordKind.GOAL: frozenset({Trigger.CASE_CLOSED}),
    RecordKind.MEETING: frozenset({Trigger.CASE_CLOSED}),
    RecordKind.EMERGENCY_GRANT: frozenset({Trigger.CASE_CLOSED}),
    RecordKind.AUDIT_RECORD: frozenset({Trigger.RECORD_CREATED}),
    RecordKind.IDEMPOTENCY: frozenset({Trigger.RECORD_CREATED}),
    RecordKind.OUTBOX: frozenset({Trigger.RECORD_CREATED}),
}
# Kinds recorded by one agency, whose rules may differ by that agency's kind.
BY_AGENCY = frozenset(
    {
        RecordKind.ENTRY,
        RecordKind.ACTION,
        RecordKind.GOAL,
        RecordKind.MEETING,
        RecordKind.EMERGENCY_GRANT,
    }
)
# Kinds that live inside a case and go with it at the latest.
IN_CASE = frozenset(
    {RecordKind.CONSENT, RecordKind.CONSENT_DOCUMENT, *BY_AGENCY},
)


class RetentionFileError(ValueError):
    """The retention file is wrong; the message names the file and the line."""


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{1,59}$")
    kind: RecordKind
    trigger: Trigger
    period_days: int = Field(ge=1, le=100 * 366)
    agency_kind: AgencyKind | None = None
    # Why: the gallringsbeslut or the law the period comes from (for the archivist).
    why: str = Field(min_length=1, max_length=500)

    @property
    def period(self) -> timedelta:
        return timedelta(days=self.period_days)

    def cutoff(self, now: datetime) -> datetime:
        """Records whose trigger came before this are past their period."""
        return now - self.period


@dataclass(frozen=True, slots=True)
class RetentionRules:
    rules: tuple[Rule, ...]
    path: str = FILE_NAME

    def for_kind(self, kind: RecordKind, agency_kind: str | None = None) -> Rule:
        """The rule for ``kind`` recorded by an agency of ``agency_kind``: its own, or the
        default."""
        default = None
        for rule in self.rules:
            if rule.kind is not kind:
                continue
            if rule.agency_kind is None:
                default = rule
            elif agency_kind is not None and rule.agency_kind.value == agency_kind:
                return rule
        assert default is not None
        return default

    def of_kind(self, kind: RecordKind) -> list[Rule]:
        """Every rule of ``kind``, the agency kinds' own first and the default last."""
        own = [r for r in self.rules if r.kind is kind and r.agency_kind is not None]
        return [*own, self.for_kind(kind)]

    def by_id(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _key_lines(node: yaml.Node) -> dict[str, int]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(key.value): _line(key) for key, _ in node.value}


def _rule(raw: object, node: yaml.Node, path: str) -> Rule:
    try:
        return Rule.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        line = _key_lines(node).get(field, _line(node))
        message = error["msg"] if error["type"] != "missing" else "required"
        raise RetentionFileError(f"{path} line {line}: {field or 'rule'}: {message}") from exc


def _check(
    rule: Rule,
    before: list[Rule],
    lines: dict[str, int],
    keys: dict[str, int],
    line: int,
    path: str,
    audit_minimum_days: int,
) -> None:
    def refuse(problem: str, field: str) -> RetentionFileError:
        return RetentionFileError(f"{path} line {keys.get(field, line)}: rule {rule.id}: {problem}")

    if rule.id in lines:
        raise refuse(f"repeats the id of the rule on line {lines[rule.id]}", "id")
    if rule.trigger not in TRIGGERS[rule.kind]:
        allowed = ", ".join(sorted(TRIGGERS[rule.kind]))
        raise refuse(f"a {rule.kind} is not kept from {rule.trigger} (only {allowed})", "trigger")
    if rule.agency_kind is not None and rule.kind not in BY_AGENCY:
        raise refuse(
            f"a {rule.kind} has no recording agency: agency_kind does not apply", "agency_kind"
        )
    if any((r.kind, r.agency_kind) == (rule.kind, rule.agency_kind) for r in before):
        raise refuse(f"a second rule for {rule.kind} of the same agency kind", "kind")
    if rule.kind is RecordKind.AUDIT_RECORD and rule.period_days < audit_minimum_days:
        raise refuse(
            f"the audit log must be kept at least {audit_minimum_days} days "
            "(retention.audit_minimum_days in settings.yaml)",
            "period_days",
        )


def parse(text: str, *, audit_minimum_days: int, path: str = FILE_NAME) -> RetentionRules:
    """The rules in ``text``; :class:`RetentionFileError` naming the line otherwise."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            data: Any = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise RetentionFileError(f"{path}{where}: not valid YAML") from exc
    if not isinstance(data, dict) or set(data) != {"rules"} or not isinstance(data["rules"], list):
        raise RetentionFileError(f"{path} line 1: the file holds one key, rules: a list")
    assert isinstance(root, yaml.MappingNode)
    items = next(value for key, value in root.value if key.value == "rules")
    assert isinstance(items, yaml.SequenceNode)
    rules: list[Rule] = []
    lines: dict[str, int] = {}
    for raw, node in zip(data["rules"], items.value, strict=True):
        rule = _rule(raw, node, path)
        _check(rule, rules, lines, _key_lines(node), _line(node), path, audit_minimum_days)
        lines[rule.id] = _line(node)
        rules.append(rule)
    found = RetentionRules(tuple(rules), path)
    for kind in RecordKind:
        if not any(r.kind is kind and r.agency_kind is None for r in rules):
            end = _line(items) if not items.value else items.end_mark.line + 1
            raise RetentionFileError(
                f"{path} line {end}: no rule for {kind} (one without agency_kind is needed)"
            )
    case_days = found.for_kind(RecordKind.CASE).period_days
    for rule in rules:
        if rule.kind in IN_CASE and rule.period_days > case_days:
            raise RetentionFileError(
                f"{path} line {lines[rule.id]}: rule {rule.id}: keeps a {rule.kind} "
                f"{rule.period_days} days, longer than its case ({case_days}): a case's "
                "culling takes everything still in it"
            )
    return found


def load(directory: Path, *, audit_minimum_days: int) -> RetentionRules:
    path = directory / FILE_NAME
    return parse(
        path.read_text(encoding="utf-8"), audit_minimum_days=audit_minimum_days, path=str(path)
    )

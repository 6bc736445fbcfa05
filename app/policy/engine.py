"""The decision point: Cedar policies from ``policies/``, parsed and validated once.

Every decision names the policy that decided it (its ``@id``), which the audit record
keeps: a permit names the permit, a denial names the forbid that blocked it, or
``default-deny`` when no permit applied.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import cedarpy

from app.auth.actor import Actor
from app.policy.entities import (
    ActionFacts,
    EntryFacts,
    Grounds,
    Resource,
    consent_context,
    grant_context,
    ground_entity,
    merged,
    principal_entity,
    resource_entities,
)
from app.policy.reference import ReferenceData, load_reference

DEFAULT_DENY = "default-deny"
# Parsed surroundings kept (PolicyEngine._entities): about 30 kB each in Cedar, 30 MB in all.
_SURROUNDINGS_KEPT = 1024
# Cedar's answers kept by the structure of what was asked (PolicyEngine._answers): a
# 32-byte digest and a verdict per request, under 1 kB each.
_ANSWERS_KEPT = 8192


class Action(StrEnum):
    INDIVIDUAL_CREATE = "individual.create"
    INDIVIDUAL_READ = "individual.read"
    INDIVIDUAL_IDENTITY = "individual.identity"
    CASE_CREATE = "case.create"
    CASE_READ = "case.read"
    CASE_UPDATE = "case.update"
    PARTICIPANT_MANAGE = "participant.manage"
    CONSENT_READ = "consent.read"
    CONSENT_REGISTER = "consent.register"
    CONSENT_WITHDRAW = "consent.withdraw"
    ENTRY_CREATE = "entry.create"
    ENTRY_READ = "entry.read"
    ENTRY_CORRECT = "entry.correct"
    ACTION_CREATE = "action.create"
    ACTION_READ = "action.read"
    ACTION_UPDATE = "action.update"
    EMERGENCY_REQUEST = "emergency.request"
    EMERGENCY_READ = "emergency.read"
    EMERGENCY_END = "emergency.end"
    INDIVIDUAL_UPDATE = "individual.update"
    GOAL_CREATE = "goal.create"
    GOAL_UPDATE = "goal.update"
    MEETING_RECORD = "meeting.record"
    CASE_LINK = "case.link"
    THREAT_RECORD = "threat.record"
    WORK_LIST = "work.list"
    AREA_CREATE = "area.create"
    LAGESBILD_READ = "lagesbild.read"
    LAGESBILD_WRITE = "lagesbild.write"
    STATISTICS_READ = "statistics.read"
    EVENT_LIST = "event.list"
    WEBHOOK_MANAGE = "webhook.manage"
    ACCOUNT_MANAGE = "account.manage"
    AGENCY_MANAGE = "agency.manage"
    CLIENT_MANAGE = "client.manage"
    AUDIT_USE = "audit.use"
    AUDIT_REVIEW = "audit.review"
    HOLD_REQUEST = "hold.request"
    HOLD_DECIDE = "hold.decide"
    HOLD_READ = "hold.read"


class PolicyError(RuntimeError):
    """A policy file does not parse or validate: the app must not start."""


class Basis(StrEnum):
    """What a permitted read rested on, as the audit record names it."""

    POLICY = "policy"
    CONSENT = "consent"
    EMERGENCY_ACCESS = "emergency_access"


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    allowed: bool
    policy_id: str
    basis: Basis | None = None
    consent_id: uuid.UUID | None = None
    legal_basis: str | None = None


def policies_dir() -> Path:
    configured = os.environ.get("SAMVERKAN_POLICY_DIR")
    if configured:
        return Path(configured)
    packaged = Path(__file__).resolve().parent.parent / "_policies"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "policies"


class PolicyEngine:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or policies_dir()
        schema_text = _read(self.directory / "schema.cedarschema")
        files = sorted(self.directory.glob("*.cedar"))
        if not files:
            raise PolicyError(f"no *.cedar policy files in {self.directory}")
        policy_text = "\n".join(_read(f) for f in files)
        try:
            self._schema = cedarpy.Schema.from_str(schema_text)
            self._policies = cedarpy.PolicySet.from_str(policy_text)
        except ValueError as exc:
            raise PolicyError(f"policies in {self.directory} do not parse: {exc}") from exc
        result = cedarpy.validate_policies(policy_text, schema_text)
        if not result.validation_passed:
            details = "; ".join(str(e) for e in result.errors)
            raise PolicyError(f"policies in {self.directory} do not validate: {details}")
        _require_ids(policy_text, files)
        self._by_action = _policies_by_action(policy_text)
        # Whether Cedar's answer about a resource rests only on its attributes and parents,
        # never on which one it is: true while no policy names an entity (but an action).
        # Then the resources of a page that differ only in their id are asked once
        # (:meth:`decide_each`); tests/test_policy.py holds a policy that names one.
        self._id_blind = set(_NAMED_ENTITY.findall(policy_text)) <= {"Action"}
        # Cedar's answers by the structure of the question (:meth:`_answers`): sound while
        # no policy can tell one entity from another but by its attributes and relations,
        # i.e. names none (but an action) and no template links one; else each is asked.
        self._answered: OrderedDict[bytes, tuple[_Verdict, ...]] | None = (
            OrderedDict() if self._id_blind and not _has_templates(policy_text) else None
        )
        # The schema checked the policies above. At decision time it would check the
        # entities and contexts this code builds, at a third of a decision's cost (0.2 ms,
        # docs/performance.md); tests/test_policy.py decides every case of the policy table
        # with it and without it, alike. A malformed entity fails closed either way: an
        # evaluation error is never a permit (``_conclude``).
        self._decision_schema: cedarpy.Schema | None = None
        self._surroundings: OrderedDict[str, cedarpy.Entities] = OrderedDict()
        try:
            self.reference: ReferenceData = load_reference(self.directory)
        except (OSError, ValueError) as exc:
            raise PolicyError(f"reference data in {self.directory} is invalid: {exc}") from exc

    def decide(
        self,
        actor: Actor,
        action: Action,
        resource: Resource,
        grounds: Grounds | None = None,
        context: dict[str, Any] | None = None,
    ) -> PolicyDecision:
        """Permit if the request alone, or with one active consent, or with one emergency
        grant, is permitted; each of those is a Cedar request of its own (one batch call).
        A forbid that applies denies whatever the grounds. ``context`` is what the action
        itself carries (an emergency request's basis and categories)."""
        return self.decide_each(actor, action, [resource], grounds, context)[0]

    def _entities(
        self,
        surroundings: list[dict[str, Any]],
        base: list[dict[str, Any]],
        key: str,
        own: list[dict[str, Any]],
        own_text: str,
    ) -> list[dict[str, Any]] | cedarpy.Entities:
        """The decision's entities: the resources' own (``own``: an entry, an action) added
        to their surroundings (``base``: the principal, the case, the individual, the
        agencies, merged; ``key``: its JSON), which are parsed once and kept by their exact
        text: Cedar takes 0.4 ms to parse a case's surroundings and 0.05 ms to add an entry
        to them (docs/performance.md). What is decided is what parsing all of it anew
        decides: the key is the text."""
        uids = {(e["uid"]["type"], e["uid"]["id"]) for e in base}
        if self._decision_schema is not None or any(
            (e["uid"]["type"], e["uid"]["id"]) in uids for e in own
        ):
            return merged([*surroundings, *own])  # checked against the schema (tests)
        parsed = self._surroundings.get(key)
        if parsed is None:
            parsed = cedarpy.Entities.from_json_str(key)
            self._surroundings[key] = parsed
            if len(self._surroundings) > _SURROUNDINGS_KEPT:
                self._surroundings.popitem(last=False)
        else:
            self._surroundings.move_to_end(key)
        return parsed.with_added_json_str(own_text) if own else parsed

    def _answers(
        self,
        actions: frozenset[str],
        requests: list[dict[str, Any]],
        surroundings: list[dict[str, Any]],
        own: list[dict[str, Any]],
    ) -> tuple[_Verdict, ...]:
        """Cedar's verdict on each of ``requests`` (each context as its JSON text), in one
        batch call, about the entities ``surroundings`` and ``own``, by the policies of
        ``actions``.

        A question asked before up to the names of its entities is answered as before
        without asking Cedar: what Cedar sees of an entity is its type, its attributes and
        its relations, never its id, while no policy names one (``_answered`` is None
        otherwise). So two questions alike but for a consistent renaming of ids are
        decided alike, and the memo is keyed by the question with every id but an
        action's replaced by the order of its first appearance (:func:`_structure`):
        two cases of the same shape, agencies and categories ask one question. Measured
        and tested: docs/performance.md, tests/test_policy.py."""
        base = merged(surroundings)
        base_text, own_text = json.dumps(base), json.dumps(own)
        key = None
        if self._answered is not None:
            parts = [",".join(sorted(actions)), str(self._decision_schema is not None)]
            parts += [base_text, own_text]
            for request in requests:  # each context is its JSON text (as Cedar reads it)
                asked = [request["principal"], request["action"], request["resource"]]
                parts += [json.dumps(asked), request["context"]]
            key = _structure("\n".join(parts))
            known = self._answered.get(key) if key is not None else None
            if key is not None and known is not None:
                self._answered.move_to_end(key)
                return known
        results = cedarpy.is_authorized_batch(
            requests,
            # the actions' own policies (any other set: the whole, each one's part in it)
            self._by_action.get(actions, self._policies),
            self._entities(surroundings, base, base_text, own, own_text),
            self._decision_schema,
        )
        verdicts = tuple(_verdict(result) for result in results)
        if key is not None and self._answered is not None:
            self._answered[key] = verdicts
            if len(self._answered) > _ANSWERS_KEPT:
                self._answered.popitem(last=False)
        return verdicts

    def decide_actions(
        self, actor: Actor, actions: Sequence[Action], resource: Resource
    ) -> list[PolicyDecision]:
        """:meth:`decide` of each of ``actions`` on one resource, without grounds, in one
        Cedar call (a call parses the entities once: most of its cost)."""
        principal_uid, principal = principal_entity(actor)
        resource_uid, needed = resource_entities(resource)
        verdicts = self._answers(
            frozenset(map(str, actions)),
            [
                {
                    "principal": principal_uid,
                    "action": {"type": "Action", "id": str(action)},
                    "resource": resource_uid,
                    "context": "{}",
                }
                for action in actions
            ],
            [principal, *(e for e in needed if e["uid"] != resource_uid)],
            [e for e in needed if e["uid"] == resource_uid],
        )
        alone: list[tuple[dict[str, Any], Basis, Any]] = [({}, Basis.POLICY, None)]
        return [_conclude([verdict], alone) for verdict in verdicts]

    def decide_each(
        self,
        actor: Actor,
        action: Action,
        resources: Sequence[Resource],
        grounds: Grounds | None = None,
        context: dict[str, Any] | None = None,
    ) -> list[PolicyDecision]:
        """:meth:`decide` for each of ``resources`` (a page of a list), in one Cedar call:
        a call costs about 2 ms whatever it holds, a request within it far less. Resources
        that differ only in their id are one question while no policy names an entity (a
        page of 20 entries holds four or five kinds of entry: docs/performance.md)."""
        if not resources:
            return []
        if self._id_blind and len(resources) > 1:
            first: dict[object, int] = {}
            which = [first.setdefault(_without_id(r), i) for i, r in enumerate(resources)]
            if len(first) < len(resources):
                asked = sorted(set(which))
                decided = dict(
                    zip(
                        asked,
                        self._decide_each(
                            actor, action, [resources[i] for i in asked], grounds, context
                        ),
                        strict=True,
                    )
                )
                return [decided[i] for i in which]
        return self._decide_each(actor, action, resources, grounds, context)

    def _decide_each(
        self,
        actor: Actor,
        action: Action,
        resources: Sequence[Resource],
        grounds: Grounds | None,
        context: dict[str, Any] | None,
    ) -> list[PolicyDecision]:
        principal_uid, principal = principal_entity(actor)
        grounds = grounds or Grounds()
        asked = context or {}
        contexts: list[tuple[dict[str, Any], Basis, Any]] = [(asked, Basis.POLICY, None)]
        contexts += [(asked | consent_context(c), Basis.CONSENT, c) for c in grounds.consents]
        contexts += [(asked | grant_context(g), Basis.EMERGENCY_ACCESS, g) for g in grounds.grants]
        surroundings = [principal]
        surroundings += [ground_entity(c) for c in grounds.consents]
        surroundings += [ground_entity(g) for g in grounds.grants]
        own: list[dict[str, Any]] = []
        requests = []
        # each context as Cedar reads it, once (cedarpy would serialise it per request)
        texts = [json.dumps(context) for context, _, _ in contexts]
        action_uid = {"type": "Action", "id": str(action)}
        for resource in resources:
            resource_uid, needed = resource_entities(resource)
            own += [e for e in needed if e["uid"] == resource_uid]
            surroundings += [e for e in needed if e["uid"] != resource_uid]
            requests += [
                {
                    "principal": principal_uid,
                    "action": action_uid,
                    "resource": resource_uid,
                    "context": text,
                }
                for text in texts
            ]
        verdicts = self._answers(frozenset({str(action)}), requests, surroundings, own)
        size = len(contexts)
        return [
            _conclude(verdicts[i * size : (i + 1) * size], contexts) for i in range(len(resources))
        ]


# An entity named in a policy's text (``Agency::"..."``), comments included.
_NAMED_ENTITY = re.compile(r'(\w+)::"')
_ANY_ID = uuid.UUID(int=0)


def _without_id(resource: Resource) -> object:
    """The resource as Cedar sees it but for which one it is: an entry's or a planned
    action's facts with a fixed id. Nothing else a decision holds refers to an entry or an
    action (app.policy.entities builds no entity or context that does), so only a policy
    naming one could tell two apart. Any other resource is itself: an agency, say, is
    what the principal's own ``agency`` refers to."""
    if isinstance(resource, EntryFacts | ActionFacts):
        return dataclasses.replace(resource, id=_ANY_ID)
    return resource


# An entity's uid as json.dumps writes those built in app.policy.entities: a reference, a
# parent, a request's principal or resource. A type or an id with a quote or a backslash
# in it (an escape) is not matched, so a call holding one is not kept (:func:`_structure`).
_ENTITY_UID = re.compile(r'\{"type": "([^"\\]*)", "id": "([^"\\]*)"\}')


def _structure(text: str) -> bytes | None:
    """A digest of ``text`` (the JSON of a Cedar call) with each entity's id but an
    action's replaced by the order of its first appearance: the same for two calls that
    differ only by a consistent renaming of entities, different for any two that differ
    otherwise (an id equal to another in one and not in the other included). ``None``
    when an id may appear in a form not renamed: every ``"id"`` in the text must be a
    matched uid's (and no ``__expr`` escape is allowed), else the call is not kept."""
    # [text, type, id, text, type, id, ..., text]; a split, not a substitution: 19 µs
    # against 30 µs for a call about a case (docs/performance.md)
    parts = _ENTITY_UID.split(text)
    names: dict[str, str] = {}
    for at in range(2, len(parts), 3):
        if parts[at - 1] != "Action":
            parts[at] = names.setdefault(parts[at], str(len(names)))
    if text.count('"id"') != len(parts) // 3 or "__expr" in text:
        return None
    # NUL never occurs in JSON text (it is escaped) nor in a matched type or id
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=32).digest()


def _has_templates(policy_text: str) -> bool:
    parsed = json.loads(cedarpy.policies_to_json_str(policy_text))
    return bool(parsed.get("templates") or parsed.get("templateLinks"))


@dataclass(frozen=True, slots=True)
class _Verdict:
    """What a decision takes from Cedar's answer to one request."""

    allowed: bool
    reasons: tuple[str, ...]  # the @id of each policy that applied, sorted
    errored: bool


def _verdict(result: Any) -> _Verdict:
    names = result.diagnostics.id_annotations_by_reason
    return _Verdict(
        allowed=bool(result.allowed),
        reasons=tuple(sorted(names.get(r, r) for r in result.diagnostics.reasons)),
        errored=bool(result.diagnostics.errors),
    )


def _conclude(
    verdicts: Sequence[_Verdict], contexts: list[tuple[dict[str, Any], Basis, Any]]
) -> PolicyDecision:
    """One resource's decision from its requests' verdicts (alone, each consent, each grant)."""
    for verdict, (_, basis, ground) in zip(verdicts, contexts, strict=True):
        if verdict.errored:
            # An evaluation error is never a permit.
            return PolicyDecision(False, "evaluation-error")
        reasons = verdict.reasons
        if not verdict.allowed:
            if reasons:  # a forbid applied: it applies to every request alike
                return PolicyDecision(False, reasons[0])
            continue
        return PolicyDecision(
            True,
            reasons[0] if reasons else DEFAULT_DENY,
            basis=basis,
            consent_id=ground.id if basis is Basis.CONSENT else None,
            legal_basis=ground.legal_basis if basis is Basis.EMERGENCY_ACCESS else None,
        )
    return PolicyDecision(False, DEFAULT_DENY)


def _policies_by_action(policy_text: str) -> dict[frozenset[str], cedarpy.PolicySet]:
    """For each action, and for each pair of ``case.read`` and another action (what
    :meth:`PolicyEngine.decide_actions` asks), the policies whose action scope can match
    one of them: the same decisions as the whole set (a policy whose scope excludes the
    action never applies to it), at a fraction of the evaluation (measured: 47 policies
    0.2 ms a request, docs/performance.md).

    A scope is read from Cedar's own JSON form of the policies. A scope naming an action
    this code does not know (an action group, say) puts the policy in every action's set;
    so does ``action`` alone: the split can only include too much, never too little."""
    parsed = json.loads(cedarpy.policies_to_json_str(policy_text))
    if parsed.get("templates") or parsed.get("templateLinks"):
        return {}  # templates: not split, the whole set decides
    known = {str(a) for a in Action}
    scoped: dict[str, dict[str, Any]] = {action: {} for action in known}
    for name, policy in parsed["staticPolicies"].items():
        scope = policy["action"]
        named = [e["id"] for e in scope.get("entities", [scope.get("entity")]) if e]
        applies = (
            known
            if scope["op"] == "All" or any(action not in known for action in named)
            else set(named)
        )
        for action in applies:
            scoped[action][name] = policy
    sets = {frozenset({action}): policies for action, policies in scoped.items()}
    seen = str(Action.CASE_READ)
    sets |= {frozenset({seen, action}): scoped[seen] | scoped[action] for action in known}
    return {
        actions: cedarpy.PolicySet.from_str(
            cedarpy.policies_from_json_str(
                json.dumps({"staticPolicies": policies, "templates": {}, "templateLinks": []})
            )
        )
        for actions, policies in sets.items()
    }


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read {path}: {exc}") from exc


def _require_ids(policy_text: str, files: list[Path]) -> None:
    """Every policy carries a unique ``@id``: audit records and reviews refer to it."""
    parsed = json.loads(cedarpy.policies_to_json_str(policy_text))
    ids = [
        (policy.get("annotations") or {}).get("id")
        for policy in parsed.get("staticPolicies", {}).values()
    ]
    if None in ids or len(ids) != len(set(ids)):
        names = ", ".join(f.name for f in files)
        raise PolicyError(f"every policy in {names} needs its own @id annotation")

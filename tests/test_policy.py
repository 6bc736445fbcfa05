"""The policy files: they load, they validate, and every case in policies/tests/ holds."""

from __future__ import annotations

import dataclasses
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import cedarpy
import pytest
import yaml

from app.audit.records import Origin
from app.auth.actor import Actor, ActorKind
from app.policy.engine import Action, PolicyEngine, PolicyError, _structure, policies_dir
from app.policy.entities import (
    AccountFacts,
    ActionFacts,
    AgencyFacts,
    AreaFacts,
    AuditRecordFacts,
    CaseFacts,
    ConsentGrant,
    EmergencyGrant,
    EntryFacts,
    GrantFacts,
    Grounds,
    HoldFacts,
    IndividualFacts,
    Resource,
)
from app.users.models import Role

ENGINE = PolicyEngine()
CASES: list[dict[str, Any]] = []
for path in sorted((policies_dir() / "tests").glob("*.yaml")):
    CASES += yaml.safe_load(path.read_text(encoding="utf-8"))


def _agency(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"agency:{name}")


KINDS = {"SOC": "socialtjanst", "POL": "polis", "SKOLA": "skola"}


def _individual(spec: dict[str, Any]) -> IndividualFacts:
    return IndividualFacts(
        id=uuid.uuid5(uuid.NAMESPACE_URL, "individual"),
        registering_agency_id=_agency(spec["registering_agency"]),
        protected_identity=spec.get("protected_identity", False),
        case_agency_ids=frozenset(_agency(a) for a in spec.get("case_agencies", [])),
        registering_agency_kind=KINDS[spec["registering_agency"]],
        open_case_agency_ids=frozenset(
            _agency(a) for a in spec.get("open_case_agencies", spec.get("case_agencies", []))
        ),
    )


def _user(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"user:{name}")


def _resource(spec: dict[str, Any]) -> Resource:
    if "account" in spec:
        return AccountFacts(
            id=uuid.uuid5(uuid.NAMESPACE_URL, "account"),
            agency_id=_agency(spec["account"]["agency"]),
            roles=frozenset(spec["account"]["roles"]),
        )
    if "audit_record" in spec:
        record = spec["audit_record"]
        return AuditRecordFacts(
            seq=1,
            actor_user_id=_user(record["actor"]) if "actor" in record else None,
            about_user_id=_user(record["about"]) if "about" in record else None,
        )
    if "legal_hold" in spec:
        hold = spec["legal_hold"]
        return HoldFacts(
            id=uuid.uuid5(uuid.NAMESPACE_URL, "legal_hold"),
            agency_id=_agency(hold["agency"]),
            requested_by=_user(hold["requested_by"]),
        )
    if "grant" in spec:
        grant = spec["grant"]
        case = _resource({"case": grant["case"]})
        assert isinstance(case, CaseFacts)
        return GrantFacts(
            id=uuid.uuid5(uuid.NAMESPACE_URL, "grant"),
            agency_id=_agency(grant["agency"]),
            grantee_id=_user(grant["grantee"]),
            case=case,
        )
    if "area" in spec:  # the lägesbild: the area's municipality, and the acting agency's
        acting = spec["area"]["acting_agency"]
        return AreaFacts(
            municipality=spec["area"]["municipality"],
            actor_agency_id=_agency(acting["name"]),
            actor_agency_kind=KINDS[acting["name"]],
            actor_agency_municipality=acting.get("municipality"),
        )
    if "agency" in spec:
        return AgencyFacts(id=_agency(spec["agency"]))
    if "entry" in spec:
        entry = spec["entry"]
        case = _resource({"case": entry["case"]})
        assert isinstance(case, CaseFacts)
        return EntryFacts(
            id=uuid.uuid5(uuid.NAMESPACE_URL, "entry"),
            source_agency_id=_agency(entry["source"]),
            category=entry["category"],
            case=case,
            source_agency_kind=KINDS[entry["source"]],
        )
    if "action" in spec:
        action = spec["action"]
        case = _resource({"case": action["case"]})
        assert isinstance(case, CaseFacts)
        return ActionFacts(
            id=uuid.uuid5(uuid.NAMESPACE_URL, "action"),
            source_agency_id=_agency(action["source"]),
            responsible_agency_id=_agency(action["responsible"]),
            case=case,
            source_agency_kind=KINDS[action["source"]],
            responsible_agency_kind=KINDS[action["responsible"]],
        )
    if "individual" in spec and "case" not in spec:
        return _individual(spec["individual"])
    case = spec["case"]
    individual = _individual(case["individual"])
    participants = frozenset(_agency(a) for a in case["participants"])
    if not individual.case_agency_ids:
        individual = IndividualFacts(
            individual.id,
            individual.registering_agency_id,
            individual.protected_identity,
            participants,
            open_case_agency_ids=participants if case.get("status") != "closed" else frozenset(),
        )
    return CaseFacts(
        id=uuid.uuid5(uuid.NAMESPACE_URL, "case"),
        lead_agency_id=_agency(case["lead_agency"]),
        participant_agency_ids=participants,
        individual=individual,
        status=case.get("status", "open"),
    )


def _actor(spec: dict[str, Any]) -> Actor:
    return Actor(
        kind=ActorKind.CLIENT if spec.get("client") else ActorKind.USER,
        id=_user(spec["name"]) if "name" in spec else uuid.uuid4(),
        agency_id=_agency(spec["agency"]),
        roles=frozenset(Role(r) for r in spec.get("roles", [])),
        scopes=frozenset(spec.get("scopes", ())),
        username="policy-test",
        name="Policy Test",
        origin=Origin(),
    )


def _grounds(spec: dict[str, Any] | None) -> Grounds:
    spec = spec or {}
    return Grounds(
        consents=tuple(
            ConsentGrant(
                id=uuid.uuid4(),
                agency_ids=frozenset(_agency(a) for a in c["agencies"]),
                categories=frozenset(c["categories"]),
            )
            for c in spec.get("consents", [])
        ),
        grants=tuple(
            EmergencyGrant(
                id=uuid.uuid4(),
                legal_basis=g["legal_basis"],
                categories=frozenset(g["categories"]),
                towards=frozenset(ENGINE.reference.legal_bases[g["legal_basis"]].towards),
            )
            for g in spec.get("grants", [])
        ),
    )


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_policy_case(case: dict[str, Any]) -> None:
    grounds = _grounds(case.get("grounds"))
    decision = ENGINE.decide(
        _actor(case["principal"]),
        Action(case["action"]),
        _resource(case["resource"]),
        grounds,
        case.get("context"),
    )
    assert decision.allowed is (case["expect"] == "allow")
    assert decision.policy_id == case["policy"]
    if "basis" in case:
        assert decision.basis == case["basis"]
        if case["basis"] == "consent":
            assert decision.consent_id in {c.id for c in grounds.consents}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_each_action_decides_with_its_policies_as_with_all(
    case: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine asks only the policies whose action scope can match, and without the
    schema (both are faster): every case of the table is decided alike by the whole set
    with the schema checking the entities and context the code builds."""
    ask = (
        _actor(case["principal"]),
        Action(case["action"]),
        _resource(case["resource"]),
        _grounds(case.get("grounds")),
        case.get("context"),
    )
    split = ENGINE.decide(*ask)
    monkeypatch.setattr(ENGINE, "_by_action", {})
    monkeypatch.setattr(ENGINE, "_decision_schema", ENGINE._schema)
    assert ENGINE.decide(*ask) == split


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if not c.get("grounds") and not c.get("context")],
    ids=[c["name"] for c in CASES if not c.get("grounds") and not c.get("context")],
)
def test_actions_decided_together_are_decided_as_one_by_one(case: dict[str, Any]) -> None:
    """``decide_actions`` (one Cedar call for a case read and the change asked for) says
    for every action on the table's principal and resource what ``decide`` says."""
    actor, resource = _actor(case["principal"]), _resource(case["resource"])
    together = ENGINE.decide_actions(actor, list(Action), resource)
    assert together == [ENGINE.decide(actor, action, resource) for action in Action]
    for action in Action:  # a case read and a change: that pair's own policies
        pair = ENGINE.decide_actions(actor, [Action.CASE_READ, action], resource)
        assert pair == [ENGINE.decide(actor, a, resource) for a in (Action.CASE_READ, action)]


def _others_alike(resource: Resource, n: int) -> list[Resource]:
    """``resource`` and ``n`` more that differ from it only in their id (where it has one)."""
    if "id" not in getattr(resource, "__dataclass_fields__", ()):
        return [resource] * (n + 1)
    facts: Any = resource
    return [resource, *(dataclasses.replace(facts, id=uuid.uuid4()) for _ in range(n))]


def _page_of(resource: Resource) -> list[Resource]:
    """A page around ``resource``: others alike but for their id and, for an entry or an
    action, others of the same case by each agency and (an entry) in each category. (An
    agency has one kind on a page, as in the database.)"""
    page = _others_alike(resource, 3)
    if isinstance(resource, EntryFacts):
        page += [
            dataclasses.replace(
                resource,
                id=uuid.uuid4(),
                category=category,
                source_agency_id=_agency(name),
                source_agency_kind=KINDS[name],
            )
            for category in sorted(ENGINE.reference.categories)
            for name in KINDS
        ]
    if isinstance(resource, ActionFacts):
        page += [
            dataclasses.replace(
                resource,
                id=uuid.uuid4(),
                source_agency_id=_agency(source),
                source_agency_kind=KINDS[source],
                responsible_agency_id=_agency(responsible),
                responsible_agency_kind=KINDS[responsible],
            )
            for source in KINDS
            for responsible in KINDS
        ]
    return [*page, *_others_alike(resource, 1)]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_a_page_is_decided_as_one_by_one(case: dict[str, Any]) -> None:
    """``decide_each`` asks once for the entries or actions of a page that differ only in
    their id (docs/performance.md): for every case of the table, on a page around its
    resource, each is decided as ``decide`` decides it alone."""
    actor, action = _actor(case["principal"]), Action(case["action"])
    grounds, context = _grounds(case.get("grounds")), case.get("context")
    page = _page_of(_resource(case["resource"]))
    assert ENGINE.decide_each(actor, action, page, grounds, context) == [
        ENGINE.decide(actor, action, r, grounds, context) for r in page
    ]


def _ids_of(value: Any) -> set[uuid.UUID]:
    """Every id in a decision's facts (an actor, a resource, grounds, a context)."""
    if isinstance(value, uuid.UUID):
        return {value}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return set().union(*(_ids_of(getattr(value, f.name)) for f in dataclasses.fields(value)))
    if isinstance(value, dict):
        return set().union(set(), *(_ids_of(v) for v in value.values()))
    if isinstance(value, list | tuple | frozenset | set):
        return set().union(set(), *(_ids_of(v) for v in value))
    return set()


def _renamed(value: Any, names: dict[uuid.UUID, uuid.UUID]) -> Any:
    """``value`` with each id in ``names`` replaced by its new name, everywhere."""
    if isinstance(value, uuid.UUID):
        return names.get(value, value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _renamed(getattr(value, f.name), names) for f in dataclasses.fields(value)
        }
        return dataclasses.replace(value, **changes)
    if isinstance(value, dict):
        return {k: _renamed(v, names) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        return type(value)(_renamed(v, names) for v in value)
    return value


def _question(case: dict[str, Any]) -> tuple[Any, ...]:
    return (
        _actor(case["principal"]),
        Action(case["action"]),
        _resource(case["resource"]),
        _grounds(case.get("grounds")),
        case.get("context"),
    )


def _unremembering() -> PolicyEngine:
    engine = PolicyEngine()
    engine._answered = None  # every question asked of Cedar
    return engine


UNREMEMBERING = _unremembering()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_a_remembered_answer_is_cedars_answer(case: dict[str, Any]) -> None:
    """The engine keeps Cedar's answers by the question's structure, its ids renamed in
    order of appearance (docs/performance.md). For every case of the table: the question
    with its ids renamed anew is answered from the memo as Cedar answers it; and each
    question with two of its ids made one (an agency that is also the lead, a grantee who
    is the principal, ...), which changes what is equal to what, is answered as Cedar
    answers that one, never as the remembered original. Each is asked of an engine that
    remembers all of them, after the original."""
    actor, action, resource, grounds, context = question = _question(case)
    engine = PolicyEngine()
    original = engine.decide(*question)
    assert original == UNREMEMBERING.decide(*question)
    assert engine._answered is not None
    assert len(engine._answered) == 1
    ids = sorted(_ids_of(question), key=str)
    # new names in the same order (sets of ids are written sorted: another order is
    # another question to the memo, answered by Cedar)
    renaming = zip(ids, sorted((uuid.uuid4() for _ in ids), key=str), strict=True)
    fresh = _renamed(question, dict(renaming))
    assert engine.decide(*fresh) == UNREMEMBERING.decide(*fresh)
    assert len(engine._answered) == 1, "a renamed question is the same question"
    for keep, drop in ((a, b) for a in ids for b in ids if a != b):
        merged = _renamed(question, {drop: keep})
        assert engine.decide(*merged) == UNREMEMBERING.decide(*merged), (keep, drop)
    # and a page, whose resources are asked together
    page = _page_of(resource)
    assert engine.decide_each(actor, action, page, grounds, context) == (
        UNREMEMBERING.decide_each(actor, action, page, grounds, context)
    )


def test_a_question_with_an_id_not_renamed_is_not_remembered() -> None:
    """A uid whose id or type holds an escape, or an ``"id"`` outside a uid, is not
    renamed: such a question is asked of Cedar each time and never kept."""
    plain = '{"uid": {"type": "Agency", "id": "a"}, "attrs": {}, "parents": []}'
    assert _structure(plain) is not None
    assert _structure(plain) == _structure(plain.replace('"a"', '"b"'))
    assert _structure(plain.replace('"a"', '"a\\"b"')) is None
    assert _structure(plain.replace('"attrs": {}', '"attrs": {"id": "a"}')) is None
    assert _structure(plain.replace('"attrs": {}', '"attrs": {"x": {"__expr": "1"}}')) is None
    two = '[{"type": "Agency", "id": "a"}, {"type": "Agency", "id": "b"}]'
    assert _structure(two) != _structure(two.replace('"b"', '"a"'))
    assert _structure(two.replace("Agency", "Action")) != _structure(
        two.replace("Agency", "Action").replace('"b"', '"c"')
    ), "an action's id is never renamed"


def test_a_policy_that_names_a_resource_turns_the_shortcut_off(tmp_path: Path) -> None:
    """Once a policy names an entity, resources alike but for their id are each asked:
    a forbid of one entry denies that entry and no other of the page."""
    case = next(
        c
        for c in CASES
        if c["action"] == "entry.read" and c["expect"] == "allow" and not c.get("grounds")
    )
    actor, resource = _actor(case["principal"]), _resource(case["resource"])
    page = _others_alike(resource, 2)
    named = page[1]
    assert isinstance(named, EntryFacts)
    engine = PolicyEngine(
        _broken_copy(
            tmp_path,
            "extra.cedar",
            '@id("forbid-one-entry")\nforbid (principal, action == Action::"entry.read", '
            f'resource == Entry::"{named.id}");',
        )
    )
    decisions = engine.decide_each(actor, Action.ENTRY_READ, page)
    assert [d.allowed for d in decisions] == [True, False, True]
    assert decisions[1].policy_id == "forbid-one-entry"
    # nor are answers remembered by their structure: each entry is asked as itself
    assert engine._answered is None
    alone = [engine.decide(actor, Action.ENTRY_READ, r) for r in page * 2]
    assert [d.allowed for d in alone] == [True, False, True] * 2


def test_every_policy_is_asked_for_each_action_it_can_apply_to() -> None:
    """Read back from each action's set: a policy is in it when its scope is ``action``
    alone or names the action (directly or in a list)."""
    text = "\n".join(f.read_text() for f in sorted(policies_dir().glob("*.cedar")))
    policies = json.loads(cedarpy.policies_to_json_str(text))["staticPolicies"].values()

    def expected(action: Action) -> set[str]:
        return {
            p["annotations"]["id"]
            for p in policies
            if p["action"]["op"] == "All"
            or str(action)
            in {e["id"] for e in p["action"].get("entities", [p["action"].get("entity")]) if e}
        }

    def asked(*actions: Action) -> set[str]:
        split = ENGINE._by_action[frozenset(map(str, actions))]
        found = json.loads(cedarpy.policies_to_json_str(str(split)))["staticPolicies"]
        return {p["annotations"]["id"] for p in found.values()}

    for action in Action:
        assert asked(action) == expected(action), action
        # the pairs decide_actions asks: a case read and a change
        assert asked(Action.CASE_READ, action) == expected(Action.CASE_READ) | expected(action)


def test_there_are_cases_for_every_action() -> None:
    assert {Action(c["action"]) for c in CASES} == set(Action)


def _broken_copy(tmp_path: Path, filename: str, text: str) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(policies_dir(), target)
    (target / filename).write_text(text, encoding="utf-8")
    return target


@pytest.mark.parametrize(
    ("filename", "text", "message"),
    [
        ("cases.cedar", "permit (principal, action, resource) when { nonsense", "do not parse"),
        (
            "extra.cedar",
            '@id("x")\npermit (principal is User, action == Action::"case.read", resource is Case)'
            " when { resource.no_such_attribute };",
            "do not validate",
        ),
        ("extra.cedar", "permit (principal, action, resource);", "@id"),
        ("categories.yaml", "categories: []\n", "required categories"),
        ("settings.yaml", "consent: {}\n", "reference data"),
    ],
)
def test_a_broken_policy_directory_stops_the_app(
    tmp_path: Path, filename: str, text: str, message: str
) -> None:
    with pytest.raises(PolicyError, match=message):
        PolicyEngine(_broken_copy(tmp_path, filename, text))


def test_legal_bases_say_they_are_examples() -> None:
    text = (policies_dir() / "legal_bases.yaml").read_text(encoding="utf-8")
    assert "EXAMPLES" in text
    assert all(b.example for b in ENGINE.reference.legal_bases.values())

"""Route-level audit declaration: ``dependencies=[audited("entry.create")]``.

Every route that reads, changes or searches personal data declares the action it records.
The request then leaves its audit record whatever the outcome: the service's records on
success (a commit without any is refused, see :func:`app.audit.writer.expect_records`),
the denial on 403/404, and on a 422, 409 or 5xx the records the rollback lost, or one
record of the attempt if nothing had been recorded yet.

The attempt names only identifiers taken from the path that parse as UUIDs: nothing a
client sent is copied into the log unvalidated.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Depends, Request

from app.audit import writer as audit
from app.auth.deps import CurrentActor
from app.db import SessionDep
from app.inputs import require_body_media_type


def _uuid(raw: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        return None


def path_identifiers(path_params: dict[str, Any]) -> dict[str, Any]:
    """``case_id`` and ``individual_id`` in their own columns; the last id is the resource."""
    fields: dict[str, Any] = {}
    for name, raw in path_params.items():
        value = _uuid(raw)
        if value is None or not name.endswith("_id"):
            continue
        if name in {"case_id", "individual_id"}:
            fields[name] = value
        fields["resource_type"] = name.removesuffix("_id")
        fields["resource_id"] = str(value)
    return fields


def audited(action: str) -> Any:
    """The dependency declaring that a route is audited as ``action``."""

    async def declare(request: Request, actor: CurrentActor, session: SessionDep) -> None:
        audit.expect_records(session, actor.record(action, **path_identifiers(request.path_params)))
        # checked here, once the attempt is declared, so that a 415 is on record like a 422
        await require_body_media_type(request)

    declare.audit_action = action  # type: ignore[attr-defined]  # read by app.audit.refusals
    return Depends(declare)


def declared_action(route: Any) -> str | None:
    """The audit action a route declares with :func:`audited`, if any."""
    dependant = getattr(route, "dependant", None)
    for dependency in getattr(dependant, "dependencies", ()):
        action = getattr(dependency.call, "audit_action", None)
        if isinstance(action, str):
            return action
    return None

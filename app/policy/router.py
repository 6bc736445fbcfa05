"""GET /categories and GET /legal-bases: the reference data in policies/, for any actor."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from app.auth.deps import CurrentActor
from app.errors import preferred_language
from app.policy.engine import PolicyEngine
from app.policy.reference import Category, LegalBasis

router = APIRouter(tags=["reference"])


async def policy_engine(request: Request) -> PolicyEngine:
    engine: PolicyEngine = request.app.state.policy
    return engine


PolicyDep = Annotated[PolicyEngine, Depends(policy_engine)]


@router.get("/categories", responses={401: {"description": "No or invalid token"}})
async def list_categories(actor: CurrentActor, policy: PolicyDep) -> list[Category]:
    """Information categories with Swedish and English labels and who may record them."""
    return list(policy.reference.categories.values())


@router.get("/legal-bases", responses={401: {"description": "No or invalid token"}})
async def list_legal_bases(actor: CurrentActor, policy: PolicyDep) -> list[LegalBasis]:
    """Provisions that allow a read without consent. The entries are examples that each
    organisation's legal counsel must confirm (`example: true`)."""
    return list(policy.reference.legal_bases.values())


@router.get("/labels", responses={401: {"description": "No or invalid token"}})
async def list_labels(
    request: Request,
    actor: CurrentActor,
    policy: PolicyDep,
    lang: Annotated[
        Literal["sv", "en"] | None,
        Query(description="Without it, the language Accept-Language prefers (sv or en)."),
    ] = None,
) -> dict[str, dict[str, str]]:
    """Every enum the API returns, `{<enum name>: {<value>: label}}`, in Swedish or English:
    statuses, programmes, closure reasons, agency kinds, roles, categories, goal areas,
    meeting kinds, threat levels, event types … (policies/labels.yaml)."""
    chosen = lang or preferred_language(request.headers.get("accept-language"))
    return policy.reference.labels_in(chosen)

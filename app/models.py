"""Imports every domain's models so that ``Base.metadata`` is complete.

Alembic's environment and the migration test call :func:`load_all_models`; each
domain package adds its ``models`` module to the list as it arrives.
"""

from __future__ import annotations

import importlib

MODEL_MODULES: tuple[str, ...] = (
    "app.agencies.models",
    "app.users.models",
    "app.clients.models",
    "app.auth.models",
    "app.audit.models",
    "app.individuals.models",
    "app.cases.models",
    "app.consents.models",
    "app.entries.models",
    "app.emergency.models",
    "app.meetings.models",
    "app.actions.models",
    "app.goals.models",
    "app.lagesbild.models",
    "app.events.models",
    "app.idempotency.models",
    "app.external_refs.models",
    "app.webhooks.models",
    "app.holds.models",
    "app.retention.models",
)


def load_all_models() -> None:
    for name in MODEL_MODULES:
        importlib.import_module(name)

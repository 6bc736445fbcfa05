"""The policy decision point. Services ask it; nothing else decides who sees what."""

from __future__ import annotations

from functools import lru_cache

from app.policy.engine import PolicyEngine


@lru_cache(maxsize=1)
def get_engine() -> PolicyEngine:
    """The process's engine, parsed and validated once (create_app calls this at start-up)."""
    return PolicyEngine()

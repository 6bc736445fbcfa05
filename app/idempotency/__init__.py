"""Idempotent creation: a client's retry with the same ``Idempotency-Key`` gets the first answer."""

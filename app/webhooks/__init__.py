"""Webhooks: each agency's subscriptions to the event log, delivered by `samverkan worker`."""

"""The event log (transactional outbox): what happened, as thin events, for integrations."""

"""The REST API: authenticates callers, validates batches, publishes events, answers from the
projected tables."""

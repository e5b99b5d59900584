"""The projector: folds the event log into the jobs, items and results tables."""

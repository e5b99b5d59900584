"""Alembic migrations. ``batchctl db upgrade`` (or :func:`migrations.runner.upgrade`) applies
them; ``storage.base.Base.metadata`` is the target."""

"""The PostgreSQL schema (one DeclarativeBase, Alembic's target) and engine creation."""

"""Dropping a throw-away database waits out a backend of another role (autovacuum) instead
of failing the run that is cleaning up."""

import psycopg2.errors
import pytest
from sqlalchemy.exc import DBAPIError

from migrations import scratch


class FakeAdmin:
    def __init__(self, failures: list[Exception]):
        self.failures = failures
        self.statements: list[str] = []

    def execution_options(self, **_: object) -> "FakeAdmin":
        return self

    def connect(self) -> "FakeAdmin":
        return self

    def __enter__(self) -> "FakeAdmin":
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def execute(self, statement: object) -> None:
        self.statements.append(str(statement))
        if self.failures:
            raise self.failures.pop(0)

    def dispose(self) -> None:
        pass


def busy() -> DBAPIError:
    orig = psycopg2.errors.InsufficientPrivilege("must be a member of the role ...")
    return DBAPIError("DROP DATABASE", None, orig)


def test_a_busy_database_is_dropped_once_the_other_backend_is_gone(monkeypatch):
    admin = FakeAdmin([busy(), busy()])
    monkeypatch.setattr(scratch, "make_engine", lambda *a, **k: admin)
    monkeypatch.setattr(scratch.time, "sleep", lambda s: None)
    scratch.drop_database("postgresql://h/postgres", "postgresql://h/bench_x")
    assert admin.statements == ['DROP DATABASE IF EXISTS "bench_x" WITH (FORCE)'] * 3


def test_other_errors_and_lasting_ones_are_raised(monkeypatch):
    other = DBAPIError("DROP DATABASE", None, psycopg2.errors.SyntaxError("nope"))
    monkeypatch.setattr(scratch, "make_engine", lambda *a, **k: FakeAdmin([other]))
    with pytest.raises(DBAPIError, match="nope"):
        scratch.drop_database("postgresql://h/postgres", "postgresql://h/bench_x")
    monkeypatch.setattr(scratch, "make_engine", lambda *a, **k: FakeAdmin([busy()] * 5))
    with pytest.raises(DBAPIError, match="member of the role"):
        scratch.drop_database("postgresql://h/postgres", "postgresql://h/bench_x", patience_s=0)

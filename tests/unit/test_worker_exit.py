"""``batchctl worker`` stops with exit status 70 on a bug the worker could not settle, so that
its supervisor starts it again (``consumers.failures``, policy 3)."""

from typer.testing import CliRunner

import consumers.app
from batchctl.cli import app
from consumers.failures import EXIT_STATUS_BROKEN, WorkerBroken


def test_a_broken_worker_exits_with_status_70(monkeypatch):
    async def broken(settings, job_type, stop=None):  # type: ignore[no-untyped-def]
        raise WorkerBroken("ValueError('publishing is broken')")

    monkeypatch.setattr(consumers.app, "run_worker", broken)
    result = CliRunner().invoke(app, ["worker", "--job-type", "query"])
    assert result.exit_code == EXIT_STATUS_BROKEN == 70
    assert "could not settle" in result.output

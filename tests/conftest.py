import os

from tests.support.handlers import EXTRA_HANDLERS

# The scripted test job type, for this process and the worker processes tests start.
os.environ["BATCH_EXTRA_HANDLERS"] = f"{EXTRA_HANDLERS},archive_jobs.noop:NoopHandler"

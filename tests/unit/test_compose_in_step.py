"""docker-compose.yml cannot run here (no Docker engine); keep it in step with the code."""

from importlib.metadata import entry_points
from pathlib import Path

import yaml

from consumers.settings import WorkerSettings
from ingest_api.settings import ApiSettings
from jobtypes.registry import ENTRY_POINT_GROUP
from notifications.settings import NotifierSettings
from projections.settings import ProjectorSettings

COMPOSE = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def known_variables() -> set[str]:
    names = set()
    for cls in (ApiSettings, WorkerSettings, ProjectorSettings, NotifierSettings):
        for name, field in cls.model_fields.items():
            names.add(str(field.validation_alias or name).upper())
    return names | {"LOG_LEVEL"}


def test_one_worker_per_registered_job_type():
    workers = {tuple(s["command"]) for n, s in SERVICES.items() if n.startswith("worker-")}
    installed = {entry.name for entry in entry_points(group=ENTRY_POINT_GROUP)}
    assert workers == {("worker", "--job-type", t) for t in installed}


def test_every_part_runs_with_known_settings():
    parts = ("api", "projector", "notifier", "setup")
    for name in (*parts, *(n for n in SERVICES if n.startswith("worker-"))):
        env = SERVICES[name]["environment"]
        assert set(env) <= known_variables(), name
        assert {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"} <= set(env)


def test_kafka_is_the_pinned_version_and_the_setup_step_gates_the_parts():
    assert SERVICES["kafka"]["image"] == "apache/kafka:3.9.1"
    assert SERVICES["postgres"]["image"].startswith("postgres:16")
    assert "batchctl db upgrade" in " ".join(SERVICES["setup"]["entrypoint"])
    for name in ("api", "projector", "notifier"):
        assert SERVICES[name]["depends_on"]["setup"]["condition"] == (
            "service_completed_successfully"
        )

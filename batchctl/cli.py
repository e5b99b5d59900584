"""batchctl: run the parts, manage the local services, the schema, topics and API keys."""

import asyncio
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from batchctl import logs, user_cli, webhooks_cli

if TYPE_CHECKING:
    from batchctl.dev.settings import DevSettings

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Archive Origin batch operations.",
)
dev_app = typer.Typer(no_args_is_help=True, help="Local Kafka and PostgreSQL, without Docker.")
db_app = typer.Typer(no_args_is_help=True, help="The database schema.")
topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys.")
schema_app = typer.Typer(no_args_is_help=True, help="Event contracts for direct publishers.")
dlq_app = typer.Typer(no_args_is_help=True, help="The dead-letter topic (Kafka, directly).")
app.add_typer(dev_app, name="dev")
app.add_typer(db_app, name="db")
app.add_typer(topics_app, name="topics")
app.add_typer(keys_app, name="keys")
app.add_typer(schema_app, name="schema")
app.add_typer(dlq_app, name="dlq")
app.add_typer(webhooks_cli.webhooks_app, name="webhooks")
app.command()(webhooks_cli.deliveries)

console = Console()
err = Console(stderr=True, soft_wrap=True)  # one line per error, however narrow

for command in (
    user_cli.submit,
    user_cli.jobs,
    user_cli.status,
    user_cli.items,
    user_cli.cancel,
    user_cli.retry,
):
    app.command(rich_help_panel="Jobs (through the REST API)")(command)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/] {message}")
    return typer.Exit(1)


# --- the parts -----------------------------------------------------------------------------


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run a part's event loop on uvloop (a faster loop for the same asyncio code) when it is
    installed, else on asyncio's own."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="default: API_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default: API_PORT")] = None,
    processes: Annotated[
        int,
        typer.Option(
            "--processes",
            min=1,
            help="API processes on the one port (each its own app; the rate limit is shared)",
        ),
    ] = 1,
) -> None:
    """Run the REST API (and the web console)."""
    import uvicorn

    from ingest_api.settings import ApiSettings

    logs.configure("api")
    settings = ApiSettings()
    options: dict[str, Any] = {
        "host": host or settings.api_host,
        "port": port or settings.api_port,
        "log_level": "warning",
        "access_log": False,
    }
    if processes > 1:
        uvicorn.run("batchctl.api_process:app", factory=True, workers=processes, **options)
        return
    from ingest_api.app import create_app

    uvicorn.run(create_app(settings), **options)


@app.command()
def worker(
    job_type: Annotated[str, typer.Option("--job-type", help="the job type to process")],
    concurrency: Annotated[
        int | None, typer.Option(help="items in flight (default: WORKER_CONCURRENCY)")
    ] = None,
) -> None:
    """Run one worker process of a job type's consumer group."""
    from consumers.app import run_worker
    from consumers.failures import EXIT_STATUS_BROKEN, WorkerBroken
    from consumers.settings import WorkerSettings
    from jobtypes.registry import UnknownJobType, handler_class

    logs.configure(f"worker:{job_type}")
    try:
        handler_class(job_type)
    except UnknownJobType as exc:
        raise _fail(str(exc)) from None
    settings = WorkerSettings()
    if concurrency:
        settings = settings.model_copy(update={"worker_concurrency": concurrency})
    try:
        _run(run_worker(settings, job_type))
    except WorkerBroken as exc:  # (logged as it happened, with its traceback)
        err.print(f"[red]error:[/] the worker stopped on a bug it could not settle: {exc}")
        raise typer.Exit(EXIT_STATUS_BROKEN) from None


@app.command()
def projector() -> None:
    """Run the projector (folds the topics into the tables)."""
    from projections.app import run_projector
    from projections.settings import ProjectorSettings

    logs.configure("projector")
    _run(run_projector(ProjectorSettings()))


@app.command()
def notifier() -> None:
    """Run the notifier (delivers finished jobs' webhooks)."""
    from notifications.app import run_notifier
    from notifications.settings import NotifierSettings

    logs.configure("notifier")
    _run(run_notifier(NotifierSettings()))


@app.command()
def run(
    port: Annotated[int | None, typer.Option(help="API port")] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Prometheus metrics: the projector on this port, the workers on the next "
            "ones (the API serves /metrics on its own port)"
        ),
    ] = 9400,
) -> None:
    """Run the API, one worker per job type, the projector and the notifier, supervised. Creates the
    topics that are missing first (a job type installed since the last run has none yet)."""
    from aiokafka.errors import KafkaError

    from batchctl.supervisor import Supervisor, stack_parts
    from jobtypes.registry import job_types
    from streaming.settings import KafkaSettings
    from streaming.topics_admin import create_topics

    try:
        created = asyncio.run(create_topics(KafkaSettings(), job_types()))
    except KafkaError as exc:
        raise _fail(f"Kafka is not reachable to create the topics: {exc!r}") from None
    if created:
        console.print(f"created topics: {', '.join(created)}")
    parts = stack_parts(job_types(), port, metrics_port)
    console.print(f"running {', '.join(p.name for p in parts)} (Ctrl-C stops all)")
    if metrics_port:
        console.print(
            "metrics: "
            + ", ".join(f"{p.name} :{p.env['METRICS_PORT']}" for p in parts if p.env)
            + ", api /metrics"
        )
    Supervisor(parts).run_forever()


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="API port")] = 8000,
    items: Annotated[int, typer.Option(help="items per job type")] = 100,
    serve: Annotated[
        bool, typer.Option("--serve", help="then keep the stack running for the web console")
    ] = False,
) -> None:
    """Bring up the services, run the stack, submit a sample batch of each job type and show
    them completed, with the web console's address and a key to sign in with."""
    from batchctl.demo import DemoFailed, run_demo
    from batchctl.dev.errors import DevServiceError

    try:
        # wide enough for the summary table also when the output is not a terminal
        run_demo(
            port=port,
            items_per_job=items,
            console=Console(width=max(console.width, 110)),
            serve=serve,
        )
    except (DevServiceError, DemoFailed) as exc:
        raise _fail(str(exc)) from None


@app.command()
def replay(
    in_place: Annotated[
        bool,
        typer.Option(
            "--in-place",
            help="clear the tables and fold them again (the projector must be stopped); "
            "by default new tables are built beside the live ones and swapped in",
        ),
    ] = False,
) -> None:
    """Rebuild the projected tables from the start of the topics."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from projections.app import DATABASE_ERRORS
    from projections.replay import (
        ProjectorRunning,
        ReplayInterrupted,
        ReplayRunning,
        replay_in_place,
        replay_shadow,
    )
    from projections.settings import ProjectorSettings

    logs.configure("replay")
    mode = replay_in_place if in_place else replay_shadow
    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} events"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=err,
    ) as bar:
        task = bar.add_task("replay", total=0, rate="")

        def show(progress):
            bar.update(
                task,
                completed=progress.folded,
                total=progress.total,
                rate=f"{progress.events_per_s:,.0f} events/s",
            )

        try:
            done = asyncio.run(mode(ProjectorSettings(), show))
        except (ProjectorRunning, ReplayRunning) as exc:
            raise _fail(str(exc)) from None
        except ReplayInterrupted as exc:
            raise _fail(f"the replay was interrupted: {exc}; run it again") from None
        except DATABASE_ERRORS as exc:
            raise _fail(f"the database is not reachable: {type(exc).__name__}: {exc}") from None
    how = "in place" if in_place else "into new tables, swapped in"
    console.print(
        f"replayed {done.total:,} events {how} in {done.elapsed_s:.1f}s "
        f"({done.events_per_s:,.0f} events/s)"
    )


# --- local services ------------------------------------------------------------------------


@dev_app.command("up")
def dev_up(
    brokers: Annotated[
        int | None,
        typer.Option(
            "--brokers",
            min=1,
            max=5,
            help="Kafka nodes: 3 runs a replicated cluster (default: BATCH_DEV_KAFKA_BROKERS, 1)",
        ),
    ] = None,
) -> None:
    """Start Kafka 3.9.1 (fetched once from Maven Central; one node, or a replicated cluster)
    and PostgreSQL, create topics and apply migrations."""
    from batchctl.dev.errors import DevServiceError
    from batchctl.dev.services import up
    from batchctl.dev.settings import DevSettings

    settings = DevSettings() if brokers is None else DevSettings(kafka_brokers=brokers)
    try:
        for line in up(settings):
            console.print(line)
    except DevServiceError as exc:
        raise _fail(str(exc)) from None


@dev_app.command("down")
def dev_down() -> None:
    """Stop the local Kafka broker (and PostgreSQL if batchctl started it)."""
    from batchctl.dev import kafka_broker, postgres
    from batchctl.dev.settings import DevSettings

    settings = DevSettings()
    console.print(kafka_broker.stop(settings))
    console.print(postgres.stop(settings))


@dev_app.command("status")
def dev_status(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show whether the local services are up (each Kafka node: id, port, pid, state)."""
    import orjson

    from batchctl.dev import kafka_broker, postgres

    settings = _dev_settings_in_use()
    if as_json:
        shown = {"kafka": kafka_broker.node_states(settings), "postgres": postgres.status(settings)}
        typer.echo(orjson.dumps(shown).decode())
        return
    console.print(kafka_broker.status(settings))
    console.print(postgres.status(settings))


def _dev_settings_in_use() -> "DevSettings":
    """The local services' settings, with as many Kafka nodes as the last ``dev up`` started
    (``.dev/env`` names them), unless BATCH_DEV_KAFKA_BROKERS says otherwise."""
    import os

    from batchctl.dev.settings import DevSettings

    settings = DevSettings()
    if "BATCH_DEV_KAFKA_BROKERS" in os.environ:
        return settings
    env_file = settings.dir / "env"
    servers = ""
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.startswith("KAFKA_BOOTSTRAP_SERVERS="):
                servers = line.split("=", 1)[1]
    count = len([s for s in servers.split(",") if s.strip()])
    return DevSettings(kafka_brokers=count) if count > 1 else settings


# --- schema, topics, keys ------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the Alembic migrations to DATABASE_URL."""
    from migrations.runner import upgrade
    from storage.settings import DatabaseSettings

    upgrade(DatabaseSettings().database_url, revision)
    console.print(f"database upgraded to {revision}")


@topics_app.command("create")
def topics_create() -> None:
    """Create the topics that are missing (event logs keep events forever)."""
    from jobtypes.registry import job_types
    from streaming.settings import KafkaSettings
    from streaming.topics_admin import create_topics

    created = asyncio.run(create_topics(KafkaSettings(), job_types()))
    console.print(f"created: {', '.join(created)}" if created else "all topics exist")


def _sessions():
    from sqlalchemy.orm import sessionmaker

    from storage.engine import make_engine
    from storage.settings import DatabaseSettings

    return sessionmaker(make_engine(DatabaseSettings().database_url, pool_size=1))


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option("--user", help="the user the key acts as")],
    interactive_max: Annotated[
        int | None,
        typer.Option(
            "--interactive-max",
            min=0,
            help="the largest job it may send to the interactive lane (0: none; "
            "default: API_INTERACTIVE_MAX_ITEMS)",
        ),
    ] = None,
    operator: Annotated[
        bool,
        typer.Option(
            "--operator", help="it may open the console's operator page (lag, dead letters)"
        ),
    ] = False,
) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    from ingest_api.api_keys import InvalidUserId, create_key

    with _sessions()() as session:
        try:
            key = create_key(
                session,
                user_id=user,
                interactive_max_items=interactive_max,
                operator=operator,
            )
        except InvalidUserId as exc:
            raise _fail(str(exc)) from None
    err.print(f"key {key.key_id} for user {user!r} (shown once):")
    console.print(key.secret)


@keys_app.command("list")
def keys_list(user: Annotated[str | None, typer.Option("--user")] = None) -> None:
    """List API keys (their prefixes, never the keys)."""
    from ingest_api.api_keys import list_keys

    table = Table("id", "user", "prefix", "interactive", "operator", "created", "revoked")
    for column in table.columns:
        column.overflow = "fold"  # (a narrow terminal folds a value, never hides it)
    table.columns[2].no_wrap = True
    with _sessions()() as session:
        for key in list_keys(session, user_id=user):
            table.add_row(
                str(key.id),
                key.user_id,
                key.prefix + "...",
                "default" if key.interactive_max_items is None else str(key.interactive_max_items),
                "yes" if key.operator else "",
                f"{key.created_at:%Y-%m-%d %H:%M}",
                f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "",
            )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: uuid.UUID) -> None:
    """Revoke an API key by id."""
    from ingest_api.api_keys import revoke_key

    with _sessions()() as session:
        if not revoke_key(session, key_id=key_id):
            raise _fail(f"no active key {key_id}")
    console.print(f"revoked {key_id}")


# --- contracts -----------------------------------------------------------------------------


@schema_app.command("export")
def schema_export(
    directory: Annotated[Path, typer.Argument(help="where to write the files")] = Path("schemas"),
) -> None:
    """Write JSON Schema files: events/<EventType>.json for every event, and
    inputs/<job_type>.json for the ``input`` of each job type's ItemSubmitted."""
    import orjson

    from events.schemas import event_schemas, input_schemas
    from jobtypes.registry import handler_classes

    inputs = {name: cls.input_model for name, cls in handler_classes().items()}
    written = []
    for folder, documents in (("events", event_schemas()), ("inputs", input_schemas(inputs))):
        (directory / folder).mkdir(parents=True, exist_ok=True)
        for name, document in documents.items():
            path = directory / folder / f"{name}.json"
            path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
            written.append(path)
    console.print(f"wrote {len(written)} JSON Schema files under {directory}/")


# --- dead letters --------------------------------------------------------------------------


def _letters():
    from aiokafka.errors import KafkaError

    from streaming.letters import read_letters
    from streaming.settings import KafkaSettings

    try:
        return asyncio.run(read_letters(KafkaSettings()))
    except KafkaError as exc:
        raise _fail(f"Kafka is not reachable: {exc!r}") from None


@dlq_app.command("list")
def dlq_list(
    reason: Annotated[str | None, typer.Option(help="only letters with this reason")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The letters in the dead-letter topic: id (partition:offset), reason, source."""
    import orjson

    letters = [letter for letter in _letters() if reason is None or letter.reason == reason]
    if as_json:
        typer.echo(orjson.dumps([letter.summary() for letter in letters]).decode())
        return
    table = Table("id", "reason", "source", "message", title=f"{len(letters)} dead letters")
    for letter in letters:
        table.add_row(letter.id, letter.reason, letter.source, letter.summary()["message"][:80])
    console.print(table)


@dlq_app.command("show")
def dlq_show(letter_id: Annotated[str, typer.Argument(help="partition:offset")]) -> None:
    """One letter: why it was rejected, where it came from, and its bytes."""
    import orjson

    from streaming.letters import LetterNotFound, find

    try:
        letter = find(_letters(), letter_id)
    except LetterNotFound as exc:
        raise _fail(str(exc)) from None
    shown: dict[str, Any] = letter.summary()
    shown["headers"] = {k: v.decode(errors="replace") for k, v in letter.headers.items()}
    try:
        shown["value"] = orjson.loads(letter.value or b"")
    except orjson.JSONDecodeError:
        shown["value"] = (letter.value or b"").decode(errors="replace")
    typer.echo(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())


@dlq_app.command("redrive")
def dlq_redrive(
    letter_ids: Annotated[list[str] | None, typer.Argument(help="partition:offset ...")] = None,
    all_letters: Annotated[bool, typer.Option("--all", help="every letter")] = False,
    reason: Annotated[str | None, typer.Option(help="with --all: only this reason")] = None,
) -> None:
    """Publish letters again to the topics they came from, unchanged (after fixing their
    cause); they are decoded and validated again there. A letter goes back only to the
    topic where its event type belongs under this deployment's prefix."""
    from streaming.letters import CannotRedrive, LetterNotFound, find, redrive, target_topic
    from streaming.settings import KafkaSettings

    settings = KafkaSettings()
    letters = _letters()
    try:
        if all_letters:
            chosen = []
            for letter in letters:
                if reason is not None and letter.reason != reason:
                    continue
                try:
                    target_topic(settings, letter)
                except CannotRedrive as exc:
                    console.print(f"skipped: {exc}")
                    continue
                chosen.append(letter)
        elif letter_ids:
            chosen = [find(letters, letter_id) for letter_id in letter_ids]
        else:
            raise _fail("name letters (partition:offset), or --all")
        done = asyncio.run(redrive(settings, chosen))
    except (LetterNotFound, CannotRedrive) as exc:
        raise _fail(str(exc)) from None
    for letter, topic in done:
        console.print(f"redrove {letter.id} ({letter.reason}) to {topic}")
    console.print(f"{len(done)} letters redriven")

"""``batchctl webhooks`` (users' default callback URLs and signing secrets) and ``batchctl
deliveries`` (a job's webhook deliveries): operator commands, on the database directly."""

import sys
import uuid
from datetime import timedelta
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

console = Console()
err = Console(stderr=True, soft_wrap=True)

webhooks_app = typer.Typer(
    no_args_is_help=True, help="Users' default callback URLs and webhook signing secrets."
)
UserOption = Annotated[str, typer.Option("--user", help="the user (as their API keys name them)")]


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/] {message}", highlight=False)
    return typer.Exit(1)


def _session() -> Any:
    from sqlalchemy.orm import Session

    from storage.engine import make_engine
    from storage.settings import DatabaseSettings

    return Session(make_engine(DatabaseSettings().database_url, pool_size=1))


@webhooks_app.command("set")
def webhooks_set(
    user: UserOption,
    url: Annotated[str, typer.Argument(help="the URL, or '' to remove it")],
) -> None:
    """Set a user's default callback URL: jobs submitted without a callback_url notify it."""
    from pydantic import TypeAdapter, ValidationError

    from events.callback_urls import CallbackUrl, CallbackUrlRefused
    from ingest_api.settings import ApiSettings
    from storage.webhooks import set_endpoint

    if url:
        try:
            TypeAdapter(CallbackUrl).validate_python(url)
            ApiSettings().callback_policy.check(url)
        except ValidationError as exc:
            raise _fail(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
        except CallbackUrlRefused as exc:
            raise _fail(str(exc)) from None
    with _session() as session:
        set_endpoint(session, user, url or None)
    console.print(f"{user}: {url}" if url else f"{user}: no default callback URL")


@webhooks_app.command("list")
def webhooks_list(
    user: Annotated[str | None, typer.Option("--user")] = None,
) -> None:
    """The users' default callback URLs."""
    from storage.webhooks import list_endpoints

    table = Table("user", "url", "updated")
    with _session() as session:
        for endpoint in list_endpoints(session, user):
            table.add_row(endpoint.user_id, endpoint.url, f"{endpoint.updated_at:%Y-%m-%d %H:%M}")
    console.print(table)


@webhooks_app.command("secret")
def webhooks_secret(
    user: UserOption,
    rotate: Annotated[
        bool, typer.Option("--rotate", help="make a new secret (the old one signs 24 h more)")
    ] = False,
    keep_hours: Annotated[
        float, typer.Option("--keep-hours", min=0, help="with --rotate: how long the old one signs")
    ] = 24.0,
) -> None:
    """Show a user's signing secret (made now if they have none), or rotate it: while the
    previous one is kept, every webhook carries both signatures."""
    from storage.webhooks import rotate_secret, secrets_of

    with _session() as session:
        if rotate:
            secrets = rotate_secret(session, user, timedelta(hours=keep_hours))
        else:
            secrets = secrets_of(session, user)
    console.print(secrets.current)
    if secrets.previous and secrets.previous_until:
        err.print(
            f"the previous secret also signs until {secrets.previous_until:%Y-%m-%d %H:%M %Z}"
        )


def deliveries(
    words: Annotated[
        list[str],
        typer.Argument(help="JOB (its deliveries), or: redeliver JOB (send them again now)"),
    ],
    json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """A job's webhook deliveries and their attempts (time, status code, latency, error,
    next attempt): ``batchctl deliveries JOB``; ``batchctl deliveries redeliver JOB`` sends
    them again now, with the same webhook-id."""
    from notifications.settings import NotifierSettings
    from storage.webhooks import deliveries_of, redeliver

    if words and words[0] == "redeliver":
        if len(words) != 2:
            raise _fail("usage: batchctl deliveries redeliver JOB")
        job_id = _job_id(words[1])
        with _session() as session:
            window = timedelta(seconds=NotifierSettings().webhook_retry_window_s)
            count = redeliver(session, job_id, window)
        if not count:
            raise _fail(f"job {job_id} has no webhook delivery")
        console.print(f"job {job_id}: {count} delivery sent again now")
        return
    if len(words) != 1:
        raise _fail("usage: batchctl deliveries JOB | batchctl deliveries redeliver JOB")
    job_id = _job_id(words[0])
    with _session() as session:
        found = deliveries_of(session, job_id)
    if json:
        sys.stdout.write(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if not found:
        console.print(f"job {job_id}: no webhook delivery")
        return
    for delivery in found:
        console.print(
            f"[bold]{delivery['webhook_id']}[/] → {delivery['url']}: {delivery['status']}"
            + (
                f", next attempt {delivery['next_attempt_at']:%H:%M:%S}"
                if delivery["next_attempt_at"]
                else ""
            ),
            highlight=False,
        )
        table = Table("time", "status", "latency ms", "outcome", "next attempt", "error")
        for a in delivery["attempt_log"]:
            table.add_row(
                f"{a['attempted_at']:%Y-%m-%d %H:%M:%S}",
                str(a["status_code"] or "-"),
                f"{a['latency_ms']:.0f}",
                a["outcome"],
                f"{a['next_attempt_at']:%H:%M:%S}" if a["next_attempt_at"] else "",
                a["error"] or "",
            )
        console.print(table)


def _job_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise _fail(f"not a job id: {text!r}") from None

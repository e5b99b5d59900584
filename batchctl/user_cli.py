"""``batchctl``'s commands for users of the REST API: submit, jobs, status, items, cancel,
retry. Human output by default (tables, colour on a terminal), ``--json`` for scripts."""

import csv
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from batchctl.api_client import ApiClient, ClientError
from batchctl.item_files import UnreadableFile, read_items

console = Console()
err = Console(stderr=True, soft_wrap=True)  # one line per error, however narrow

JsonOption = Annotated[bool, typer.Option("--json", help="print JSON (for scripts)")]


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/] {message}", highlight=False)
    return typer.Exit(1)


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


@contextmanager
def _api() -> Iterator[ApiClient]:
    """A client of the API; any ClientError inside becomes the one-line failure."""
    try:
        with ApiClient() as client:
            yield client
    except ClientError as exc:
        raise _fail(str(exc)) from None


def _job_table(jobs: list[dict[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title)
    table.add_column("job id", no_wrap=True, min_width=36)
    for column in ("type", "status", "total", "done", "success", "failed", "created"):
        table.add_column(column, no_wrap=column == "created")
    colours = {"completed": "green", "failed": "red", "cancelled": "yellow"}
    for job in jobs:
        status = job["status"]
        table.add_row(
            job["batch_job_id"],
            job["job_type"] or "",
            f"[{colours.get(status, 'cyan')}]{status}[/]",
            str(job["total_items"] or ""),
            f"{job['progress_percent']:.0f}%",
            str(job["success_items"]),
            str(job["failed_items"]),
            (job["created_at"] or "")[5:16].replace("T", " "),
        )
    return table


def _summary(job: dict[str, Any]) -> Table:
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column(no_wrap=True)
    result = job.get("result") or {}
    rows = [
        ("job", job["batch_job_id"]),
        ("type", job["job_type"]),
        ("status", job["status"]),
        ("items", job["total_items"]),
        ("succeeded", job["success_items"]),
        ("failed", job["failed_items"]),
        ("cancelled", job["cancelled_items"]),
        ("success rate", f"{result['success_rate']:.1%}" if result else ""),
        ("total time", f"{result['total_time_ms'] / 1000:.1f}s" if result else ""),
        ("avg item", f"{result['avg_item_time_ms']:.2f} ms" if result else ""),
    ]
    if job.get("retry_of"):
        rows.append(("retry of", job["retry_of"]))
    for error in (result.get("result_summary") or {}).get("top_errors", []):
        rows.append(("error", f"{error.get('code')}: {error.get('count')} items"))
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def _watch(client: ApiClient, job_id: str) -> dict[str, Any]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.fields[of]}"),
        TextColumn("{task.fields[rate]:>9} items/s"),
        TextColumn("[green]{task.fields[ok]:,} ok[/] [red]{task.fields[bad]:,} failed[/]"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task("processing", total=None, rate="", ok=0, bad=0, of="?")
        for _, state in client.progress(job_id):
            bar.update(
                task,
                total=state["total_items"],
                of=f"{state['total_items'] or 0:,}",
                completed=state["processed_items"],
                rate=f"{state['items_per_s']:,.0f}",
                ok=state["success_items"],
                bad=state["failed_items"],
            )
    return client.job(job_id)


def _write_results(client: ApiClient, job_id: str, output: Path) -> int:
    count = 0
    if output.suffix.lower() == ".csv":
        with output.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["item_index", "status", "error_code", "error_message", "output"])
            for item in client.items(job_id):
                writer.writerow(
                    [
                        item["item_index"],
                        item["status"],
                        item["error_code"] or "",
                        item["error_message"] or "",
                        orjson.dumps(item["output_data"]).decode() if item["output_data"] else "",
                    ]
                )
                count += 1
    else:
        with output.open("wb") as out:
            for item in client.items(job_id):
                fields = ("item_index", "status", "output_data", "error_code", "error_message")
                out.write(orjson.dumps({k: item[k] for k in fields}) + b"\n")
                count += 1
    return count


def submit(
    file: Annotated[Path, typer.Argument(help=".jsonl, .ndjson, .csv or .json")],
    job_type: Annotated[str, typer.Option("--type", "-t", help="the job type")],
    watch: Annotated[bool, typer.Option(help="show progress until the job finishes")] = False,
    output: Annotated[
        Path | None,
        typer.Option(help="write each item's result here once finished (.jsonl or .csv)"),
    ] = None,
    metadata: Annotated[str | None, typer.Option(help="a JSON object kept with the job")] = None,
    callback_url: Annotated[
        str | None,
        typer.Option("--callback-url", help="where its JobFinished webhook goes when it finishes"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Submit a file of items as one job (streamed: any size), and optionally watch it."""
    meta: dict[str, Any] | None = None
    if metadata is not None:
        try:
            meta = orjson.loads(metadata)
        except orjson.JSONDecodeError:
            raise _fail("--metadata must be a JSON object") from None
        if not isinstance(meta, dict):
            raise _fail("--metadata must be a JSON object")
    meta = {"source": f"batchctl submit {file.name}", **(meta or {})}
    with _api() as client:
        try:
            size = file.stat().st_size if file.is_file() else None
            with Progress(
                TextColumn("uploading"),
                BarColumn(),
                DownloadColumn(),
                console=err,
                transient=True,
                disable=as_json,
            ) as bar:
                task = bar.add_task("upload", total=size)
                lines = read_items(file, lambda n: bar.advance(task, n))
                accepted = client.submit_stream(job_type, lines, meta, callback_url)
            job_id = accepted["batch_job_id"]
            if not as_json:
                console.print(
                    f"submitted [bold]{accepted['total_items']:,}[/] {job_type} items "
                    f"as job [bold]{job_id}[/]"
                )
            job = _watch(client, job_id) if watch or output else None
            if output is not None:
                written = _write_results(client, job_id, output)
                if not as_json:
                    console.print(f"wrote {written:,} results to {output}")
        except UnreadableFile as exc:
            raise _fail(str(exc)) from None
    if as_json:
        _print_json(job or accepted)
    elif job is not None:
        console.print(_summary(job))


def jobs(
    status: Annotated[str | None, typer.Option(help="only jobs with this status")] = None,
    limit: Annotated[int, typer.Option(help="how many, newest first")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Your jobs, newest first."""
    with _api() as client:
        page = client.jobs(status=status, limit=limit)
    if as_json:
        _print_json(page["jobs"])
    else:
        console.print(_job_table(page["jobs"]))


def status(job_id: str, as_json: JsonOption = False) -> None:
    """One job: counts, timings and, once finished, its result."""
    with _api() as client:
        job = client.job(job_id)
    if as_json:
        _print_json(job)
    else:
        console.print(_summary(job))


def items(
    job_id: str,
    status: Annotated[str | None, typer.Option(help="pending, success, failed, cancelled")] = None,
    limit: Annotated[int, typer.Option(help="at most this many (0: all)")] = 50,
    as_json: JsonOption = False,
) -> None:
    """A job's items with their outcomes (``--json``: one JSON object per line)."""
    found = []
    with _api() as client:
        for item in client.items(job_id, status=status):
            found.append(item)
            if as_json:
                sys.stdout.write(orjson.dumps(item).decode() + "\n")
            if limit and len(found) >= limit:
                break
    if as_json:
        return
    table = Table()
    for column in ("#", "status", "error", "output"):
        table.add_column(column, overflow="fold")
    for item in found:
        error = f"{item['error_code']}: {item['error_message']}" if item["error_code"] else ""
        output = orjson.dumps(item["output_data"]).decode() if item["output_data"] else ""
        table.add_row(str(item["item_index"]), item["status"], error, output[:120])
    console.print(table)


def cancel(job_id: str, as_json: JsonOption = False) -> None:
    """Cancel a job: items not yet processed end as cancelled."""
    with _api() as client:
        answer = client.cancel(job_id)
    if as_json:
        _print_json(answer)
    else:
        console.print(f"cancellation of job {job_id} requested")


def retry(job_id: str, as_json: JsonOption = False) -> None:
    """Submit a job's failed items again, as a new job that names the original."""
    with _api() as client:
        answer = client.retry(job_id)
    if as_json:
        _print_json(answer)
    else:
        console.print(
            f"retrying {answer['total_items']:,} failed items of {job_id} "
            f"as job [bold]{answer['batch_job_id']}[/]"
        )

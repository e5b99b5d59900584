"""The web console in a real browser (Debian's Chromium, driven by Playwright) against the
real stack, every request to anywhere but the API refused (as offline): sign in, submit a
20,000-item file and watch its progress reach 100 % without a reload, read a failed item's
error, retry the failed items, cancel a running job, user B cannot open user A's job, a form
without its CSRF token is refused, invalid items are named by line, the operator page, sign
out. Screenshots of each page go to ``test-artifacts/console`` (or ``BATCH_TEST_ARTIFACTS``)."""

import json
import os
import re
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from ingest_api.api_keys import create_key
from tests.e2e.test_batchctl_run import _ready, free_port
from tests.integration.conftest import wait_for

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("BATCH_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "console"
JOB_URL = re.compile(r".*/ui/jobs/[0-9a-f-]{36}(\?.*)?$")

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Chromium is not installed (scripts/bootstrap installs it as root)",
)


def _keys(engine) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with sessionmaker(engine)() as session:
        return {
            "alice": create_key(session, user_id="browser-alice").secret,
            "bob": create_key(session, user_id="browser-bob").secret,
            "ops": create_key(session, user_id="browser-ops", operator=True).secret,
        }


def test_the_console_in_a_real_browser(processes, engine, tmp_path):
    playwright_api = pytest.importorskip("playwright.sync_api")
    SHOTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    processes.start("api", "--port", str(port))
    processes.start("projector")
    processes.start("worker", "--job-type", "scripted")
    wait_for(lambda: _ready(port), 60, "the API")
    base = f"http://127.0.0.1:{port}"
    keys = _keys(engine)
    outside: list[str] = []

    def only_the_api(route):  # type: ignore[no-untyped-def]
        if route.request.url.startswith(base):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    queries = tmp_path / "hashes.jsonl"
    queries.write_text(
        "".join(json.dumps({"content_hash": f"{i:064x}"}) + "\n" for i in range(20_000))
    )
    failing = tmp_path / "failing.csv"
    failing.write_text(
        "token,permanent_code\n"
        + "".join(f"t{i},{'bad_thing' if i % 3 == 0 else ''}\n" for i in range(30))
    )
    slow = tmp_path / "slow.json"
    slow.write_text(json.dumps([{"token": f"s{i}", "sleep_ms": 500} for i in range(3000)]))
    invalid = tmp_path / "invalid.jsonl"
    invalid.write_text('{"token": "ok"}\n{"token": 5}\n\n{"nope": 1}\n')

    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:

            def signed_in(user: str):  # type: ignore[no-untyped-def]
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.route("**/*", only_the_api)
                page.goto(f"{base}/ui/jobs")
                assert "/ui/sign-in" in page.url  # not signed in yet
                if user == "alice":
                    page.screenshot(path=str(SHOTS / "sign-in.png"))
                page.fill("#api_key", keys[user])
                page.click("form[action='/ui/sign-in'] button[type=submit]")
                page.wait_for_url(f"{base}/ui/jobs")
                return page

            def submit(page, job_type: str, path: Path) -> str:  # type: ignore[no-untyped-def]
                page.goto(f"{base}/ui/submit")
                page.select_option("#job_type", job_type)
                page.set_input_files("#file", str(path))
                page.click("#submit-button")
                page.wait_for_url(JOB_URL, timeout=120_000)
                return page.url.split("/ui/jobs/")[1].split("?")[0]

            def completed(page, job_id: str) -> None:  # type: ignore[no-untyped-def]
                """The page shows the job completed: live if it finished after the page
                loaded, else as rendered."""
                status = page.locator(f"[data-job-status='{job_id}']")
                status.filter(has_text="completed").wait_for(timeout=60_000)

            def progress(page) -> float:  # type: ignore[no-untyped-def]
                return float(page.eval_on_selector("[data-job-page] progress", "p => p.value"))

            alice = signed_in("alice")

            # 1. a 20,000-item file; its progress bar reaches 100 % without a reload
            big = submit(alice, "query", queries)
            assert progress(alice) < 100
            alice.evaluate("window.sameDocument = true")
            processes.start("worker", "--job-type", "query")  # only now are items served
            # (polled from here: the page's CSP refuses the string evaluation of
            # Playwright's wait_for_function, as it should)
            wait_for(lambda: progress(alice) >= 100, 180, "the progress bar to reach 100 %")
            assert alice.evaluate("window.sameDocument") is True  # no reload happened
            alice.locator(f"[data-job-status='{big}']").filter(has_text="completed").wait_for()
            alice.locator(".finished-note").wait_for()
            alice.screenshot(path=str(SHOTS / "job-live-finished.png"), full_page=True)
            alice.goto(f"{base}/ui/jobs/{big}")
            assert "20,000" in alice.inner_text("[data-job-page]")
            alice.screenshot(path=str(SHOTS / "job.png"))

            # 2. a job with failed items: the error code and message of a failed item
            failed_job = submit(alice, "scripted", failing)
            completed(alice, failed_job)
            alice.goto(f"{base}/ui/jobs/{failed_job}?items_status=failed")
            assert "bad_thing" in alice.inner_text("section:has(h2:text('Result'))")
            first_error = alice.locator(".items .error-message").first.inner_text()
            assert first_error == "told to fail with bad_thing"
            assert alice.locator(".items tbody tr").count() == 10
            alice.screenshot(path=str(SHOTS / "job-failed-items.png"), full_page=True)

            # 3. retry the failed items: a new job of those 10, naming the first
            alice.click("button:text('Retry 10 failed items')")
            alice.wait_for_url(JOB_URL)
            retry = alice.url.split("/ui/jobs/")[1].split("?")[0]
            assert retry != failed_job
            completed(alice, retry)
            alice.goto(f"{base}/ui/jobs/{retry}")  # folded now: it names the job it retries
            assert f"Retries the failed items of {failed_job}" in alice.inner_text("main")
            assert alice.locator(".items tbody tr").count() == 10

            # 4. the jobs list follows a running job live; cancel it on its page
            running = submit(alice, "scripted", slow)
            alice.goto(f"{base}/ui/jobs")
            listed = f"[data-job='{running}'] progress"
            start = float(alice.eval_on_selector(listed, "p => p.value"))
            wait_for(
                lambda: float(alice.eval_on_selector(listed, "p => p.value")) > start,
                60,
                "the listed job's bar to move",
            )
            alice.screenshot(path=str(SHOTS / "jobs.png"))
            alice.goto(f"{base}/ui/jobs/{running}")
            alice.click("button:text('Cancel job')")
            alice.wait_for_url(re.compile(r".*notice=cancelling$"))
            alice.locator(f"[data-job-status='{running}']").filter(has_text="cancelled").wait_for(
                timeout=60_000
            )
            assert alice.locator("button:text('Cancel job')").is_hidden()
            alice.screenshot(path=str(SHOTS / "job-cancelled.png"), full_page=True)

            # 5. a form without its CSRF token (or with a forged one) is refused
            for form in ({}, {"csrf_token": "forged"}):
                answer = alice.request.post(f"{base}/ui/jobs/{running}/retry", form=form)
                assert answer.status == 403 and "csrf_refused" in answer.text()

            # 6. invalid items come back named by line
            alice.goto(f"{base}/ui/submit")
            alice.select_option("#job_type", "scripted")
            alice.set_input_files("#file", str(invalid))
            alice.click("#submit-button")
            errors = alice.locator("#submit-errors")
            errors.wait_for()
            assert "line 2:" in errors.inner_text() and "line 4:" in errors.inner_text()
            alice.screenshot(path=str(SHOTS / "submit-invalid.png"))

            # 7. user B cannot open user A's job (the same 404 as a missing one)
            bob = signed_in("bob")
            answer = bob.goto(f"{base}/ui/jobs/{big}")
            assert answer is not None and answer.status == 404
            assert "Not found" in bob.inner_text("h1")
            assert bob.locator("[data-job-page]").count() == 0 and "20,000" not in bob.content()
            bob.screenshot(path=str(SHOTS / "other-users-job.png"))
            assert bob.goto(f"{base}/ui/operator").status == 403  # type: ignore[union-attr]

            # 8. the operator page: groups, their lag, the dead letters
            ops = signed_in("ops")
            ops.goto(f"{base}/ui/operator")
            assert "workers.query" in ops.inner_text("main")
            assert "running" in ops.inner_text("main")  # the running workers' groups
            ops.screenshot(path=str(SHOTS / "operator.png"), full_page=True)

            # 9. sign out: the session is over
            alice.goto(f"{base}/ui/jobs")
            alice.click("button:text('Sign out')")
            alice.wait_for_url(re.compile(r".*/ui/sign-in$"))
            alice.goto(f"{base}/ui/jobs/{big}")
            assert "/ui/sign-in" in alice.url
        finally:
            browser.close()
    assert outside == []

"""/docs and /redoc in a real browser (Debian's Chromium, driven by Playwright) with every
request to anywhere but the API refused, as on a machine without internet: both pages
render the API's operations, and neither asks for anything from outside."""

from pathlib import Path

import pytest

from tests.e2e.test_batchctl_run import _ready, free_port
from tests.integration.conftest import wait_for

CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Chromium is not installed (scripts/bootstrap installs it as root)",
)


def test_the_documentation_pages_render_offline(processes, tmp_path):
    playwright_api = pytest.importorskip("playwright.sync_api")
    port = free_port()
    processes.start("api", "--port", str(port))
    wait_for(lambda: _ready(port), 60, "the API")
    base = f"http://127.0.0.1:{port}"
    outside: list[str] = []

    def only_the_api(route):  # type: ignore[no-untyped-def]
        if route.request.url.startswith(base):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", only_the_api)
            page.goto(f"{base}/docs")
            page.wait_for_selector(".opblock", timeout=30_000)
            assert "Archive Origin batch operations" in page.inner_text(".swagger-ui .info")
            assert page.locator(".opblock").count() >= 8  # the jobs' and health operations
            page.screenshot(path=str(tmp_path / "docs.png"))
            page.goto(f"{base}/redoc")
            page.wait_for_selector("h1", timeout=30_000)
            assert "Archive Origin batch operations" in page.inner_text("h1")
            page.locator("h2:has-text('Submit Job')").first.wait_for(timeout=30_000)
            page.screenshot(path=str(tmp_path / "redoc.png"))
        finally:
            browser.close()
    assert outside == []

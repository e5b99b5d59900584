"""/docs and /redoc load nothing from outside the API: every script, style, font and icon
they name is served by the API itself."""

import re

import pytest
from fastapi.testclient import TestClient

from ingest_api.app import create_app
from tests.unit.test_api_validation import SETTINGS, FakePublisher


@pytest.fixture
def client():
    with TestClient(create_app(SETTINGS, publisher=FakePublisher())) as client:
        yield client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_documentation_pages_load_only_local_assets(client, page):
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "http://" not in html and "https://" not in html, html
    policy = response.headers["Content-Security-Policy"]  # and what the scripts might fetch
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
    assets = re.findall(r'(?:src|href)=["\\\']?(/[^"\\\' >]+)', html)
    assets += re.findall(r"url: '(/[^']+)'", html)  # Swagger UI's OpenAPI document
    assert any(a.endswith(".js") for a in assets), assets
    if page == "/docs":
        assert '"validatorUrl": null' in html  # (its default is an online validator)
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200 and served.content, asset


def test_the_assets_are_served_with_their_types(client):
    types = {
        "swagger-ui-bundle.js": "javascript",
        "swagger-ui.css": "text/css",
        "redoc.standalone.js": "javascript",
    }
    for name, kind in types.items():
        response = client.get(f"/static/docs/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]

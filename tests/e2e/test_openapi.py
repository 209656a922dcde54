"""The OpenAPI document: served as shipped, valid OpenAPI 3.1, and covering every route."""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Any

import requests
import schemathesis

from ..conftest import LiveIssuer

SHIPPED = files("keyswap.issuer").joinpath("openapi.yaml")
#: Methods Flask answers by itself on every route; the document lists the real ones.
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}


def test_openapi_document_is_served_as_shipped(live_issuer: LiveIssuer) -> None:
    response = requests.get(live_issuer.url + "/openapi.yaml", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/yaml"
    assert response.headers["Cache-Control"] == "public, max-age=3600"
    assert response.content == SHIPPED.read_bytes()


def test_openapi_document_is_conditional_on_its_etag(live_issuer: LiveIssuer) -> None:
    first = requests.get(live_issuer.url + "/openapi.yaml", timeout=10)
    again = requests.get(
        live_issuer.url + "/openapi.yaml",
        headers={"If-None-Match": first.headers["ETag"]},
        timeout=10,
    )
    assert again.status_code == 304
    assert again.content == b""


def _document() -> dict[str, Any]:
    """Parse the shipped document (YAML) and check it against the OpenAPI 3.1 meta-schema."""
    schema = schemathesis.openapi.from_path(str(SHIPPED))
    schema.validate()  # raises on the first violation
    return schema.raw_schema


def test_openapi_document_is_valid_openapi_3_1() -> None:
    assert _document()["openapi"].startswith("3.1.")


def test_openapi_document_lists_every_route_and_only_those(live_issuer: LiveIssuer) -> None:
    document = _document()
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    served = {
        # Flask's "<int:id>" is OpenAPI's "{id}".
        (method, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule))
        for rule in live_issuer.app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in (rule.methods or set()) - IMPLICIT_METHODS
    }
    assert documented == served


def test_openapi_error_codes_are_the_taxonomy(live_issuer: LiveIssuer) -> None:
    from keyswap.issuer import errors

    document = _document()
    documented = set(document["components"]["schemas"]["OAuthErrorCode"]["enum"])
    taxonomy = {
        cls.error
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.OAuthError)
    }
    assert documented == taxonomy


def test_metrics_content_type_names_its_charset_once(live_issuer: LiveIssuer) -> None:
    response = requests.get(live_issuer.url + "/metrics", timeout=10)
    assert response.status_code == 200
    content_type = response.headers["Content-Type"]
    assert content_type.startswith("text/plain")
    assert content_type.count("charset=") == 1

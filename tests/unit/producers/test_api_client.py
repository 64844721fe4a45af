"""The simulators' API client, without a server: error lines from the one error body, and the pacing rule."""

from __future__ import annotations

import httpx

from producers.api_client import PacedClient, error_line


def _response(status: int, body: bytes, content_type: str = "application/json") -> httpx.Response:
    return httpx.Response(status, content=body, headers={"Content-Type": content_type})


def test_an_error_body_becomes_one_line() -> None:
    body = (
        b'{"status":"error","error":{"code":"CANARY_NOT_FOUND","message":"no canary \'x\'","field":"canary_id"},'
        b'"timestamp":"2025-11-16T12:00:00Z","request_id":"req_1"}'
    )
    assert error_line("GET", "/v1/ml/deploy/canary/x/status", _response(404, body)) == (
        "GET /v1/ml/deploy/canary/x/status answered 404 CANARY_NOT_FOUND: no canary 'x' (field canary_id)"
    )
    rate = (
        b'{"status":"error","error":{"code":"RATE_LIMIT_EXCEEDED","message":"slow down","field":null,'
        b'"retry_after_seconds":12}}'
    )
    assert error_line("POST", "/v1/ml/predict", _response(429, rate)) == (
        "POST /v1/ml/predict answered 429 RATE_LIMIT_EXCEEDED: slow down"
    )


def test_a_body_that_is_not_the_error_body_is_quoted_on_one_line() -> None:
    html = b"<html>\n<body>502 Bad Gateway</body>\n</html>"
    assert error_line("GET", "/x", _response(502, html, "text/html")) == (
        "GET /x answered 502: <html> <body>502 Bad Gateway</body> </html>"
    )
    assert error_line("GET", "/x", _response(500, b"")) == "GET /x answered 500"


def test_requests_are_spread_over_what_is_left_of_the_window() -> None:
    paced = PacedClient(httpx.AsyncClient(), deadline=0.0, out=lambda _: None)
    assert paced.spacing(1000.0) == 0.0  # nothing known yet
    paced.remaining, paced.reset_epoch = 100, 1060.0
    assert paced.spacing(1000.0) == 0.6  # a premium key at the start of its minute: 100 a minute
    paced.remaining = 10
    assert paced.spacing(1050.0) == 1.0
    paced.remaining = 0
    assert paced.spacing(1050.0) == 10.0  # none left: wait for the next window
    assert paced.spacing(1061.0) == 0.0  # the window has reset

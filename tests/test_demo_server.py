"""The demo's server as a hostile page or a broken client sees it: every answer is JSON
with an ``error``, other sites and other host names are refused, the queue is bounded."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from robustdigits.web import server as server_module
from robustdigits.web.demo import BadInputError, Demo
from robustdigits.web.server import MAX_BODY, MAX_PENDING, DemoServer, make_server

DRAWN = np.zeros((28, 28), dtype=np.float32)
DRAWN[4:24, 12:16] = 1.0  # a 1
IMAGE = json.dumps({"image": DRAWN.ravel().tolist()}).encode()


@pytest.fixture(scope="module")
def server(trained) -> Iterator[DemoServer]:
    s = make_server(Demo({"tiny": trained.model.eval()}, torch.device("cpu")), 0)
    thread = threading.Thread(target=s.serve_forever, daemon=True)
    thread.start()
    yield s
    s.shutdown()
    s.server_close()


def request(server: DemoServer, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
    sent = {"Content-Type": "application/json"} if body is not None else {}
    sent.update(headers or {})
    conn.request(method, path, body=body, headers=sent)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), data


def error(answer: tuple[int, dict[str, str], bytes]) -> tuple[int, str]:
    status, headers, body = answer
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(body)["error"]


def test_the_page_and_a_prediction_answer_the_demos_own_origin(server):
    port = server.server_port
    status, headers, body = request(server, "GET", "/?from=bookmark")
    assert status == 200 and b"<canvas" in body and headers["X-Frame-Options"] == "DENY"
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        status, _, body = request(server, "POST", "/api/predict?x=1", IMAGE,
                                  {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"})
        assert status == 200 and set(json.loads(body)) == {"pixels", "probs", "predicted"}


@pytest.mark.parametrize(("method", "path"), [("GET", "/"), ("GET", "/api/models"), ("POST", "/api/attack")])
def test_another_host_name_is_refused_against_dns_rebinding(server, method, path):
    answer = request(server, method, path, IMAGE if method == "POST" else None, {"Host": "evil.example"})
    assert error(answer) == (421, f"this demo answers only requests to http://127.0.0.1:{server.server_port}/ "
                                  "(Host evil.example)")


@pytest.mark.parametrize(("headers", "expected"), [
    ({"Origin": "http://evil.example"},
     (403, "requests from http://evil.example are refused: use the demo's own page")),
    ({"Sec-Fetch-Site": "cross-site"}, (403, "cross-site requests are refused: use the demo's own page")),
    ({"Content-Type": "text/plain"}, (415, "send the request as application/json from the demo page")),
    ({"Content-Type": "application/x-www-form-urlencoded"}, (415, "send the request as application/json from the "
                                                                  "demo page")),
])
def test_a_cross_site_request_is_refused_before_any_work(server, headers, expected):
    assert error(request(server, "POST", "/api/attack", IMAGE, headers)) == expected


@pytest.mark.parametrize(("body", "expected"), [
    (json.dumps({"image": DRAWN.ravel().tolist(), "model": ["x"]}).encode(),
     (400, "unknown model ['x']; choose one of: tiny")),
    (json.dumps({"image": DRAWN.ravel().tolist(), "model": "tin"}).encode(),
     (400, "unknown model 'tin' (did you mean 'tiny'?); choose one of: tiny")),
    (b"[" * 100_000, (400, "the request is not JSON: send it from the demo page")),
    (b"\x89PNG not json", (400, "the request is not JSON: send it from the demo page")),
    (b"[1, 2]", (400, "the request must be a JSON object with an image")),
    (json.dumps({"image": DRAWN.ravel().tolist(), "target": "next"}).encode(),
     (400, "unknown target 'next' (did you mean 'next-digit'?); choose one of: next-digit, previous-digit, random, "
           "least-likely, or a digit 0-9 (or a digit as a number)")),
])
def test_a_malformed_body_gets_a_message(server, body, expected):
    assert error(request(server, "POST", "/api/attack", body)) == expected


@pytest.mark.parametrize("target", ["next-digit", "3", 3, "least-likely"])
def test_the_attack_takes_the_command_lines_target_names(server, target):
    body = json.dumps({"image": DRAWN.ravel().tolist(), "target": target, "steps": 3}).encode()
    status, _, answer = request(server, "POST", "/api/attack", body)
    assert status == 200
    result = json.loads(answer)
    if target in ("3", 3):
        assert result["target"] == 3
    elif target == "next-digit":
        assert result["target"] == (result["start_prediction"] + 1) % 10


@pytest.mark.parametrize("method", ["PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_get_405_in_json(server, method):
    status, headers, body = request(server, method, "/api/attack", b"{}")
    assert status == 405 and headers["Allow"] == "GET, POST" and "is not served" in json.loads(body)["error"]


def test_head_gets_405_without_a_body(server):
    status, headers, body = request(server, "HEAD", "/")
    assert status == 405 and body == b"" and headers["Content-Type"] == "application/json"


def raw(server: DemoServer, data: bytes, timeout: float = 30) -> tuple[int, str]:
    """Send bytes as they are (headers no client library would send); the status and error."""
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=timeout) as s:
        s.sendall(data)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]


@pytest.mark.parametrize(("length", "expected"), [
    ("abc", (400, "Content-Length must be a whole number of bytes, got 'abc'")),
    ("-5", (400, "Content-Length must be a whole number of bytes, got '-5'")),
])
def test_a_bad_content_length_gets_400(server, length, expected):
    host = f"127.0.0.1:{server.server_port}"
    assert raw(server, f"POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {length}\r\n\r\n{{}}".encode()) == expected


def test_a_missing_content_length_gets_411(server):
    host = f"127.0.0.1:{server.server_port}"
    assert raw(server, f"POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                       "Connection: close\r\n\r\n".encode()) == (411, "the request needs a Content-Length")


def test_a_body_shorter_than_its_length_times_out_with_408(server, monkeypatch):
    monkeypatch.setattr(server_module.DemoHandler, "timeout", 0.5)
    host = f"127.0.0.1:{server.server_port}"
    status, message = raw(server, f"POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                                  "Content-Length: 1000\r\n\r\n{\"image\": [".encode())
    assert (status, message) == (408, "the request was not complete within 0.5 s")


def test_an_over_long_url_gets_414_in_json(server):
    host = f"127.0.0.1:{server.server_port}"
    status, message = raw(server, f"GET /{'a' * 70_000} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    assert status == 414 and message


def test_an_oversized_upload_always_reads_its_413_never_a_reset(server):
    """The server reads the body it refuses, so the client is never reset before it reads
    the answer (10 tries: the reset was a race)."""
    for _ in range(10):
        assert error(request(server, "POST", "/api/predict", b"x" * (MAX_BODY + 1))) == (
            413, "the upload is too large (2.0 MB; at most 2 MB): use a smaller image")


def test_the_queue_is_bounded_with_503(server):
    for _ in range(MAX_PENDING):
        assert server.pending.acquire(blocking=False)  # as if MAX_PENDING requests were running or waiting
    try:
        status, headers, body = request(server, "POST", "/api/predict", IMAGE)
    finally:
        for _ in range(MAX_PENDING):
            server.pending.release()
    assert status == 503 and headers["Retry-After"] == "2"
    assert json.loads(body)["error"] == f"the demo is busy with {MAX_PENDING} requests; try again in a moment"
    assert request(server, "POST", "/api/predict", IMAGE)[0] == 200  # free again


def test_the_demo_refuses_a_model_name_that_is_not_a_string():
    demo = Demo({}, torch.device("cpu"))
    with pytest.raises(BadInputError, match="unknown model"):
        demo.classifier({"model": {"a": 1}})

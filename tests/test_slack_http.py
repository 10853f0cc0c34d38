"""The HTTP front of the responder: bursts, floods and malformed requests, on loopback."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fake_slack_web import FakeSlackWeb, event_body, signed_headers
from slack_bolt import App

from casematch.slack.app import web_client
from casematch.slack.http import HttpLimits, HttpServer, SlackGate
from casematch.slack.settings import SlackSettings

SECRET = "http-test-secret"


@pytest.fixture
def bolt() -> Iterator[tuple[App, list[dict[str, Any]]]]:
    fake = FakeSlackWeb()
    slack = SlackSettings(index_path=fake_path(), api_base_url=fake.url, bot_token="xoxb-t")
    app = App(client=web_client(slack), signing_secret=SECRET, process_before_response=False,
              token_verification_enabled=False)
    seen: list[dict[str, Any]] = []

    @app.event("message")
    def message(body: dict[str, Any]) -> None:
        seen.append(body)

    @app.command("/casematch")
    def command(ack: Any) -> None:
        ack()

    yield app, seen
    fake.close()


def fake_path() -> Any:
    from pathlib import Path

    return Path("/nonexistent")


def serve(app: App, **limits: Any) -> HttpServer:
    ready = {"ok": limits.pop("ready", True)}
    gate = SlackGate(app, SECRET, ready=lambda: ready["ok"], limits=HttpLimits(**limits))
    return HttpServer(gate).start()


def raw(server: HttpServer, request: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes as they are and read the whole answer (the server closes or answers)."""
    with socket.create_connection(server.server_address, timeout=timeout) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered (413) and closed before taking the whole body
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


def request(body: bytes, headers: dict[str, str], path: str = "/slack/events") -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n{head}\r\n").encode("latin-1") + body


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_probes(bolt: tuple[App, list[dict[str, Any]]]) -> None:
    app, _ = bolt
    server = serve(app, ready=False)
    try:
        health = raw(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        ready = raw(server, b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(health) == 200 and status_of(ready) == 503
    finally:
        server.shutdown()


def test_malformed_requests_get_400_never_a_traceback(
    bolt: tuple[App, list[dict[str, Any]]], caplog: pytest.LogCaptureFixture
) -> None:
    app, seen = bolt
    server = serve(app)

    def signed(body: str, **over: str) -> bytes:
        headers = signed_headers(SECRET, body)
        headers.update(over)
        return request(body.encode(), headers)

    cases = {
        "malformed JSON": signed('{"type": "event_callback", '),
        "JSON array": signed("[1, 2, 3]"),
        "non-UTF-8 body": request(b"\xff\xfe{}", signed_headers(SECRET, "{}")),
        "non-integer timestamp": signed("{}", **{"X-Slack-Request-Timestamp": "12.5abc"}),
        "non-ASCII signature": request(b"{}", {**signed_headers(SECRET, "{}"),
                                               "X-Slack-Signature": "v0=\u00e9\u00e9"}),
        "negative Content-Length": (b"POST /slack/events HTTP/1.1\r\nHost: x\r\n"
                                    b"Content-Length: -1\r\nConnection: close\r\n\r\n"),
    }
    try:
        with caplog.at_level(logging.DEBUG):
            for name, data in cases.items():
                answer = raw(server, data)
                assert answer, f"{name}: connection closed without an answer"
                assert status_of(answer) == 400, (name, answer[:80])
                assert b"Traceback" not in answer, name
        assert "Traceback" not in caplog.text
        assert seen == []
    finally:
        server.shutdown()


def test_oversized_unsigned_body_is_413_and_never_logged(
    bolt: tuple[App, list[dict[str, Any]]], caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = bolt
    server = serve(app, max_body_bytes=64 * 1024)
    secret_text = "TOPSECRET-" * 10
    try:
        with caplog.at_level(logging.DEBUG):
            big = json.dumps({"type": "event_callback", "pad": "x" * 200_000})
            answer = raw(server, request(big.encode(), signed_headers("wrong", big)))
            assert status_of(answer) == 413
            small = json.dumps({"type": "event_callback", "text": secret_text})
            answer = raw(server, request(small.encode(), signed_headers("wrong", small)))
            assert status_of(answer) == 401
        assert "TOPSECRET" not in caplog.text and "xxxxxxxx" not in caplog.text
    finally:
        server.shutdown()


def test_half_sent_requests_are_dropped_and_hold_no_threads(
    bolt: tuple[App, list[dict[str, Any]]]
) -> None:
    app, _ = bolt
    server = serve(app, read_timeout_s=1)
    threads_before = threading.active_count()
    socks = []
    try:
        for _ in range(100):
            sock = socket.create_connection(server.server_address, timeout=10)
            sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n"
                         b"\r\n{\"half\": ")
            socks.append(sock)
        time.sleep(0.5)
        assert threading.active_count() <= threads_before + 2
        # The server closes every one of them after the read timeout (EOF on our side).
        closed = 0
        deadline = time.monotonic() + 10
        for sock in socks:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                closed += sock.recv(100) == b""
            except ConnectionResetError:
                closed += 1
            except TimeoutError:
                pass
        assert closed == len(socks)
        # And it still answers.
        health = raw(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(health) == 200
    finally:
        for sock in socks:
            sock.close()
        server.shutdown()


def test_burst_of_200_simultaneous_connections_all_answered(
    bolt: tuple[App, list[dict[str, Any]]]
) -> None:
    app, seen = bolt
    server = serve(app)
    count = 200
    bodies = [event_body({"type": "message", "channel": "C1", "user": "U1", "ts": f"1.{n}",
                          "text": "burst"}, f"EvBurst{n}") for n in range(count)]
    answers: list[Any] = [None] * count
    start = threading.Barrier(count)

    def fire(n: int) -> None:
        data = request(bodies[n].encode(), signed_headers(SECRET, bodies[n]))
        try:
            with socket.create_connection(server.server_address, timeout=20) as sock:
                start.wait()
                sock.sendall(data)
                answers[n] = sock.recv(100)
        except OSError as exc:
            answers[n] = exc

    threads = [threading.Thread(target=fire, args=(n,)) for n in range(count)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        errors = [a for a in answers if not isinstance(a, bytes) or not a]
        assert errors == []
        assert {status_of(a) for a in answers} == {200}
        deadline = time.monotonic() + 10
        while len(seen) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(seen) == count
    finally:
        server.shutdown()


def test_serve_command_takes_host_port_and_log_json() -> None:
    from click.testing import CliRunner

    from casematch.cli import cli

    result = CliRunner().invoke(cli, ["slack", "serve", "--help"])
    assert result.exit_code == 0
    for option in ("--http", "--host", "--port", "--log-json", "--socket-mode"):
        assert option in result.output
    assert "127.0.0.1" in result.output  # not every interface unless asked

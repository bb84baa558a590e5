"""Bad ClickHouse stores: unreachable server, wrong credentials, missing database or
table, a table of another layout, malformed URLs. Each gives one line naming the URL
with its password masked, exit 1 in the CLI, no traceback, and nothing written."""

from __future__ import annotations

import http.server
import logging
import socket
import threading

import pytest

from instrumentors.cli import main
from instrumentors.store import StoreCorrupt, StoreError, StoreNotFound, TraceStore
from instrumentors.store.url import parse

SECRET = "s3cr3t-pw"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli_error(capsys, url: str, *argv: str) -> str:
    code = main(["--store", url, *(argv or ("list",))])
    captured = capsys.readouterr()
    assert code == 1, captured
    err = captured.err.strip()
    assert captured.out == "" and "\n" not in err and "Traceback" not in err, err
    assert SECRET not in err
    return err


class _AuthFailing(http.server.BaseHTTPRequestHandler):
    """Answers like a ClickHouse server's HTTP interface to a wrong password."""

    def _refuse(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = (b"Code: 516. DB::Exception: analyst: Authentication failed: password is incorrect, or there is no"
                b" user with such name. (AUTHENTICATION_FAILED) (version 24.8.4.13 (official build))\n")
        self.send_response(403)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("X-ClickHouse-Exception-Code", "516")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _refuse

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def auth_failing_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AuthFailing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_unreachable_server(capsys):
    pytest.importorskip("clickhouse_connect")
    url = f"clickhouse://analyst:{SECRET}@127.0.0.1:{_free_port()}/otel"
    with pytest.raises(StoreError) as exc:
        TraceStore(url, timeout=2)
    assert SECRET not in str(exc.value) and "analyst:***@127.0.0.1" in str(exc.value)
    err = _cli_error(capsys, url, "--timeout", "2", "blame")
    assert err.startswith("instrumentors: cannot reach ClickHouse at clickhouse://analyst:***@127.0.0.1:")


def test_wrong_credentials(capsys, auth_failing_server):
    pytest.importorskip("clickhouse_connect")
    url = f"clickhouse://analyst:{SECRET}@127.0.0.1:{auth_failing_server}/otel"
    err = _cli_error(capsys, url, "explain", "ab" * 16)
    assert "refused the credentials" in err and "analyst:***@127.0.0.1" in err and "AUTHENTICATION_FAILED" in err


def _state(chdb_dir: str) -> list:
    from instrumentors.store.clickhouse_engine import connect

    engine = connect(parse(f"chdb://{chdb_dir}"))
    try:
        return engine.rows("SELECT database, name FROM system.tables WHERE database NOT IN"
                           " ('system', 'INFORMATION_SCHEMA', 'information_schema') ORDER BY database, name")
    finally:
        engine.close()


def test_missing_database_table_and_other_layout_on_chdb(chdb_dir, capsys):
    pytest.importorskip("chdb")
    from instrumentors.store.clickhouse_engine import connect

    engine = connect(parse(f"chdb://{chdb_dir}"))
    try:
        engine.execute("CREATE DATABASE IF NOT EXISTS errs")
        engine.execute("CREATE TABLE IF NOT EXISTS errs.otel_traces (TraceId String, Timestamp DateTime)"
                       " ENGINE = MergeTree ORDER BY TraceId")
    finally:
        engine.close()
    before = _state(chdb_dir)
    with pytest.raises(StoreNotFound, match="no database 'nowhere'"):
        TraceStore(f"chdb://{chdb_dir}?database=nowhere")
    err = _cli_error(capsys, f"chdb://{chdb_dir}?database=errs&table=spans", "query", "-w", "name=x")
    assert err == (f"instrumentors: no table errs.spans at chdb://{chdb_dir}?database=errs&table=spans (point the"
                   " Collector's clickhouseexporter (traces_table_name) or instrumentors' exporter at it, or give"
                   " ?table=NAME)")
    with pytest.raises(StoreCorrupt, match="not in the OpenTelemetry Collector traces layout .missing columns SpanId"):
        TraceStore(f"chdb://{chdb_dir}?database=errs")
    _cli_error(capsys, f"chdb://{chdb_dir}?database=errs", "prompts")
    assert _state(chdb_dir) == before  # read commands created nothing


@pytest.mark.parametrize("url, message", [
    (f"clickhouse://u:{SECRET}@:8123/db", "no host"),
    (f"clickhouse://u:{SECRET}@h:99999/db", "bad port"),
    (f"clickhouse://u:{SECRET}@h/db?table=x;drop", "is not a plain identifier"),
    (f"mysql://u:{SECRET}@h/db", "unknown scheme 'mysql'"),
    ("chdb://", "no data directory"),
])
def test_malformed_urls(capsys, url, message):
    err = _cli_error(capsys, url, "info")
    assert message in err and (SECRET not in url or "u:***@" in err)


def test_exporter_to_an_unreachable_server_fails_open_and_says_so(caplog):
    pytest.importorskip("clickhouse_connect")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from instrumentors.store.clickhouse_exporter import ClickHouseSpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("work"):
        pass
    exporter = ClickHouseSpanExporter(f"clickhouse://u:{SECRET}@127.0.0.1:{_free_port()}/otel", timeout=1)
    with caplog.at_level(logging.WARNING, logger="instrumentors"):
        assert exporter.export(memory.get_finished_spans()) is SpanExportResult.FAILURE
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("instrumentors")]
    assert messages and all(SECRET not in m for m in messages)
    assert any("clickhouse://u:***@127.0.0.1" in m for m in messages)
    exporter.shutdown()

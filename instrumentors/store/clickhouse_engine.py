"""Talking to ClickHouse: a server over HTTP (``clickhouse-connect``) or the in-process
engine (``chdb``), behind one small interface (``rows`` for reads, ``execute`` and
``insert_json_rows`` for the exporter), with every failure turned into a one-line
:class:`StoreError` naming the store URL with its password masked.

chDB holds one data directory per process (its embedded server cannot be opened on a
second path while the first is open), so sessions are shared per directory and counted:
a second ``TraceStore`` or exporter on the same directory reuses the open one, another
directory is refused with a clear message until the first is closed.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Optional, Sequence

from .errors import StoreCorrupt, StoreError, StoreNotFound
from .url import StoreURL


def quote(value: Any) -> str:
    """A ClickHouse SQL literal (strings escaped; numbers as they are)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _one_line(exc: BaseException, location: StoreURL) -> str:
    text = " ".join(str(exc).split())
    if location.password:
        text = text.replace(location.password, "***")
    for marker in (" Stack trace:", " (version "):
        if marker in text:
            text = text.split(marker)[0]
    return text[:300]


_CODES = {"UNKNOWN_TABLE": StoreNotFound, "UNKNOWN_DATABASE": StoreNotFound}


def _classified(exc: BaseException, location: StoreURL, doing: str) -> StoreError:
    message = _one_line(exc, location)
    if "AUTHENTICATION_FAILED" in message or "Authentication failed" in message or "Code: 516" in message:
        return StoreError(f"ClickHouse at {location.masked} refused the credentials: {message}")
    if "READONLY" in message or "Code: 164" in message:
        return StoreError(f"ClickHouse at {location.masked} is read-only for this user: {message}")
    for code, cls in _CODES.items():
        if code in message:
            return cls(f"{doing} {location.masked}: {message}")
    return StoreError(f"{doing} {location.masked}: {message}")


class Engine:
    """One ClickHouse connection (a server client or a chDB session)."""

    location: StoreURL

    def rows(self, sql: str) -> list:
        raise NotImplementedError

    def execute(self, sql: str) -> None:
        raise NotImplementedError

    def insert_json_rows(self, table: str, lines: Sequence[str]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def columns(self, database: str, table: str) -> dict:
        """name -> type of the table's columns ({} when there is no such table)."""
        return dict(self.rows(f"SELECT name, type FROM system.columns WHERE database = {quote(database)}"
                              f" AND table = {quote(table)} ORDER BY position"))

    def has_database(self, database: str) -> bool:
        return bool(self.rows(f"SELECT 1 FROM system.databases WHERE name = {quote(database)}"))


class ServerEngine(Engine):
    def __init__(self, location: StoreURL, timeout: float) -> None:
        self.location = location
        try:
            import clickhouse_connect
        except ImportError:
            raise StoreError(f"{location.masked}: a ClickHouse server store needs clickhouse-connect: "
                             "pip install 'instrumentors[clickhouse]'") from None
        quiet = logging.getLogger("clickhouse_connect")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # its own log line would repeat the error we raise
        try:
            self._client = clickhouse_connect.get_client(
                host=location.host, port=location.port, username=location.username or "default",
                password=location.password, database=location.database if location.database else None,
                secure=location.secure, connect_timeout=timeout, send_receive_timeout=max(30.0, timeout),
                autogenerate_session_id=False)
        except Exception as exc:  # noqa: BLE001 - every driver failure becomes one line
            text = _one_line(exc, location)
            if "Connection refused" in text or "Max retries" in text or "timed out" in text \
                    or "Name or service not known" in text:
                raise StoreError(f"cannot reach ClickHouse at {location.masked}: {text}") from None
            raise _classified(exc, location, "cannot open ClickHouse store") from None
        finally:
            quiet.setLevel(level)
        self._lock = threading.Lock()

    def rows(self, sql: str) -> list:
        try:
            with self._lock:
                return list(self._client.query(sql).result_rows)
        except Exception as exc:  # noqa: BLE001
            raise _classified(exc, self.location, "cannot read ClickHouse store") from None

    def execute(self, sql: str) -> None:
        try:
            with self._lock:
                self._client.command(sql)
        except Exception as exc:  # noqa: BLE001
            raise _classified(exc, self.location, "cannot write ClickHouse store") from None

    def insert_json_rows(self, table: str, lines: Sequence[str]) -> None:
        try:
            with self._lock:
                self._client.raw_insert(table, insert_block="\n".join(lines).encode("utf-8"), fmt="JSONEachRow",
                                        settings={"date_time_input_format": "best_effort"})
        except Exception as exc:  # noqa: BLE001
            raise _classified(exc, self.location, "cannot write ClickHouse store") from None

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # noqa: BLE001 - closing a dead connection
            pass


class _ChdbSessions:
    """The process's one chDB session, shared by every user of the same directory."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.path: Optional[str] = None
        self.session: Any = None
        self.users = 0

    def acquire(self, location: StoreURL) -> Any:
        import os

        path = os.path.abspath(location.path)
        with self.lock:
            if self.session is not None and self.path != path:
                if self.users:
                    raise StoreError(
                        f"{location.masked}: chDB holds one data directory per process and {self.path} is open"
                        " (close that store first)")
                self._close()
            if self.session is None:
                try:
                    from chdb import session as chdb_session
                except ImportError:
                    raise StoreError(f"{location.masked}: a chdb:// store needs chDB: "
                                     "pip install 'instrumentors[chdb]'") from None
                os.makedirs(path, exist_ok=True)
                try:
                    self.session = chdb_session.Session(path)
                    self.session.query("SET output_format_json_quote_64bit_integers = 0")
                    self.session.query("SET output_format_json_quote_denormals = 1")
                except Exception as exc:  # noqa: BLE001
                    self.session = None
                    raise StoreError(f"cannot open chDB at {location.masked}: {_one_line(exc, location)}") from None
                self.path = path
            self.users += 1
            return self.session

    def release(self) -> None:
        with self.lock:
            self.users = max(0, self.users - 1)
            # the session stays open for the next user of this directory (opening costs
            # ~0.1 s); another directory closes it first

    def _close(self) -> None:
        try:
            self.session.close()
        except Exception:  # noqa: BLE001
            pass
        self.session = None
        self.path = None


_CHDB = _ChdbSessions()


class ChdbEngine(Engine):
    def __init__(self, location: StoreURL) -> None:
        self.location = location
        self._session = _CHDB.acquire(location)
        self._closed = False

    def _query(self, sql: str, fmt: str = "CSV") -> Any:
        if self._closed:
            raise StoreError("this TraceStore is closed")
        with _CHDB.lock:
            return self._session.query(sql, fmt)

    def rows(self, sql: str) -> list:
        try:
            result = self._query(sql, "JSONCompact")
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _classified(exc, self.location, "cannot read chDB store") from None
        text = result.bytes() if hasattr(result, "bytes") else str(result)
        if not text:
            return []
        return [tuple(row) for row in json.loads(text)["data"]]

    def execute(self, sql: str) -> None:
        try:
            self._query(sql)
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _classified(exc, self.location, "cannot write chDB store") from None

    def insert_json_rows(self, table: str, lines: Sequence[str]) -> None:
        self.execute(f"INSERT INTO {table} SETTINGS date_time_input_format = 'best_effort' FORMAT JSONEachRow\n"
                     + "\n".join(lines))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _CHDB.release()


def connect(location: StoreURL, timeout: float = 5.0) -> Engine:
    if location.scheme == "chdb":
        return ChdbEngine(location)
    if location.scheme == "clickhouse":
        return ServerEngine(location, timeout)
    raise StoreError(f"{location.masked} is not a ClickHouse store")


def check_layout(engine: Engine, create_hint: str) -> dict:
    """The traces table's columns; raises StoreNotFound / StoreCorrupt when it is missing
    or of another layout (read commands never create it)."""
    location = engine.location
    columns = engine.columns(location.database, location.table)
    if not columns:
        where = f"{location.database}.{location.table}"
        if not engine.has_database(location.database):
            raise StoreNotFound(f"no database {location.database!r} at {location.masked} ({create_hint})")
        raise StoreNotFound(f"no table {where} at {location.masked} ({create_hint})")
    from .clickhouse_layout import layout_problem

    problem = layout_problem(columns)
    if problem:
        raise StoreCorrupt(f"table {location.database}.{location.table} at {location.masked} is not in the"
                           f" OpenTelemetry Collector traces layout ({problem})")
    return columns

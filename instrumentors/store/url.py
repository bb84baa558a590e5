"""Where the traces are: one setting (``INSTRUMENTORS_STORE_URL``, the CLI's ``--store``,
``TraceStore(url)``) names the engine and its place.

* a plain path or ``sqlite:///path/to/traces.db``: the embedded SQLite file (default
  ``INSTRUMENTORS_STORE_PATH``, ``.instrumentors/traces.db``);
* ``clickhouse://user:password@host:8123/database?table=otel_traces``: a ClickHouse
  server over HTTP (``clickhouses://`` for TLS; ``pip install instrumentors[clickhouse]``);
* ``chdb:///path/to/dir?database=otel&table=otel_traces``: the in-process ClickHouse
  engine (chDB) over a data directory.

ClickHouse stores read the OpenTelemetry Collector ClickHouse exporter's ``otel_traces``
layout, so traces a Collector pipeline already writes are answered where they are.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import parse_qsl, unquote, urlsplit

from .errors import StoreError

DEFAULT_TABLE = "otel_traces"
DEFAULT_DATABASE = "default"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class StoreURL:
    """A parsed store location. ``masked`` is the form for messages (password hidden)."""

    scheme: str  # "sqlite", "clickhouse", "chdb"
    path: str = ""  # SQLite file or chDB directory
    host: str = ""
    port: Optional[int] = None
    secure: bool = False
    username: str = ""
    password: str = field(default="", repr=False)
    database: str = DEFAULT_DATABASE
    table: str = DEFAULT_TABLE
    raw: str = field(default="", repr=False)

    @property
    def masked(self) -> str:
        if self.scheme == "sqlite":
            return self.path
        if self.scheme == "chdb":
            return f"chdb://{self.path}?database={self.database}&table={self.table}"
        auth = ""
        if self.username or self.password:
            auth = self.username + (":***" if self.password else "") + "@"
        port = f":{self.port}" if self.port else ""
        scheme = "clickhouses" if self.secure else "clickhouse"
        return f"{scheme}://{auth}{self.host}{port}/{self.database}?table={self.table}"

    @property
    def is_sqlite(self) -> bool:
        return self.scheme == "sqlite"


def mask(text: str) -> str:
    """A URL-like string with any ``user:password@`` password replaced (for messages about
    a URL that did not even parse)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", str(text))


def _identifier(what: str, value: str, url: str) -> str:
    if not _IDENTIFIER.match(value):
        raise StoreError(f"store URL {mask(url)}: {what} {value!r} is not a plain identifier (letters, digits, _)")
    return value


def parse(url: Optional[str]) -> StoreURL:
    """Parse a store setting; raises :class:`StoreError` naming it (password masked)."""
    if url is None:
        from .._config import get_config

        cfg = get_config()
        url = getattr(cfg, "store_url", None) or cfg.store_path
    text = os.fspath(url).strip() if not isinstance(url, str) else url.strip()
    if not text:
        raise StoreError("empty store URL (give a path, sqlite:///PATH, clickhouse://HOST/DB or chdb:///DIR)")
    if "://" not in text:
        return StoreURL("sqlite", path=text, raw=text)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    query = dict(parse_qsl(parts.query))
    if scheme == "sqlite":
        path = unquote(parts.path)
        if parts.netloc:  # sqlite://relative/path
            path = parts.netloc + path
        if not path:
            raise StoreError(f"store URL {mask(text)}: no file path (sqlite:///path/to/traces.db)")
        return StoreURL("sqlite", path=path, raw=text)
    table = _identifier("table", query.get("table", DEFAULT_TABLE), text)
    if scheme == "chdb":
        path = unquote(parts.netloc + parts.path)
        if not path:
            raise StoreError(f"store URL {mask(text)}: no data directory (chdb:///path/to/dir)")
        database = _identifier("database", query.get("database", DEFAULT_DATABASE), text)
        return StoreURL("chdb", path=path, database=database, table=table, raw=text)
    if scheme in ("clickhouse", "clickhouses", "clickhouse+http", "clickhouse+https"):
        secure = scheme in ("clickhouses", "clickhouse+https") or query.get("secure", "").lower() in ("1", "true")
        try:
            port = parts.port
        except ValueError as exc:
            raise StoreError(f"store URL {mask(text)}: bad port ({exc})") from None
        if not parts.hostname:
            raise StoreError(f"store URL {mask(text)}: no host (clickhouse://user:password@host:8123/database)")
        database = parts.path.strip("/") or query.get("database", DEFAULT_DATABASE)
        database = _identifier("database", unquote(database), text)
        return StoreURL("clickhouse", host=parts.hostname, port=port or (8443 if secure else 8123), secure=secure,
                        username=unquote(parts.username or ""), password=unquote(parts.password or ""),
                        database=database, table=table, raw=text)
    raise StoreError(f"store URL {mask(text)}: unknown scheme {scheme!r} (use a path, sqlite:///, clickhouse://"
                     " or chdb:///)")

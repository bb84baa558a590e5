"""The secret that keys every digest of content we write on spans with capture off.

Why: causal fingerprints (``instrumentors.causal.produced`` / ``consumed``) and content
hashes (``instrumentors.prompt.template_hash`` / ``system_hash``) are written whether or
not content capture is on. Unkeyed, anyone who can read the spans can hash candidate
texts and recover a short output ("yes", a name, a one-line rewritten query) or a short
system prompt by dictionary. Keyed with a secret they only reveal *equality*: which steps
saw the same text, which is what linking and prompt grouping need.

Where the secret comes from (``INSTRUMENTORS_DIGEST_KEY`` / ``digest_key``):

* unset (default): a key file, 32 random bytes as hex, mode 0600, created once
  atomically (``O_CREAT | O_EXCL``: when two processes race, the loser reads the
  winner's). Where: ``digest.key`` next to the embedded store when this process writes
  spans to it (a ``SQLiteSpanExporter`` was created: zero-config ``instrument_all()``,
  ``OTEL_TRACES_EXPORTER=instrumentors``), so every process sharing the store shares the
  key and ``rebuild_links`` works across them; also next to the store when
  ``INSTRUMENTORS_STORE_PATH`` / ``store_path=`` names one; otherwise (the app's own
  provider, OTLP only, default store path) the per-user state directory (:func:`user_key_path`), never the working
  directory of an app that did not ask for the store -- processes of one user on one
  host still share it, and prompt hashes stay stable across restarts. Loaded lazily on
  first use, never at import. If the file can be neither created nor read, a
  per-process random key is used and one warning says that cross-process link
  rebuilding needs ``INSTRUMENTORS_DIGEST_KEY``.
* any other value: that secret (the key is its SHA-256), for fleets of processes or hosts
  that must rebuild links between one another.
* ``off``: unkeyed, the historical format (dictionary-guessable; for compatibility).

The key never leaves the process: spans carry only ``key_id()``, an 8-hex HMAC of a fixed
label, so a reader can tell which digests are comparable without learning the key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import sys
import threading
import time
from typing import Optional, Tuple

from . import _config

_log = logging.getLogger("instrumentors")

KEY_FILE_NAME = "digest.key"
OFF = "off"
KEY_BYTES = 32
_KEY_ID_LABEL = b"instrumentors digest key id v1"
_CONTENT_LABEL = b"instrumentors content hash v1"
#: how long a reader waits for a key file another process has just created to be written.
_READ_WAIT_SECONDS = 1.0

# (config the state was resolved for, the setting it came from, key, key id, content key).
# Replaced as a whole (one atomic assignment), read without a lock.
_State = Tuple[object, tuple, Optional[bytes], Optional[str], Optional[bytes]]
_state: _State = (None, (), None, None, None)
_lock = threading.Lock()
_process_key: Optional[bytes] = None
_warned = False


_noted_store: Optional[str] = None
_DEFAULT_STORE_PATH = _config.Config().store_path


def key_file_path(store_path: str) -> str:
    return os.path.join(os.path.dirname(store_path) or ".", KEY_FILE_NAME)


def user_key_path() -> str:
    """The per-user key file used when this process writes no embedded store:
    ``$XDG_STATE_HOME/instrumentors/digest.key`` (default ``~/.local/state``) on Linux and
    other POSIX systems, ``~/Library/Application Support/instrumentors/digest.key`` on
    macOS, ``%LOCALAPPDATA%\\instrumentors\\digest.key`` on Windows."""
    home = os.path.expanduser("~")
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
    elif sys.platform == "darwin":
        base = os.path.join(home, "Library", "Application Support")
    else:
        base = os.environ.get("XDG_STATE_HOME", "")
        if not os.path.isabs(base):  # the XDG spec: a relative value is ignored
            base = os.path.join(home, ".local", "state")
    return os.path.join(base, "instrumentors", KEY_FILE_NAME)


def note_store(store_path: str) -> None:
    """This process writes spans to the store at ``store_path`` (the first one noted
    wins): the default key file lives beside it."""
    global _noted_store
    if _noted_store is None:
        _noted_store = os.path.abspath(store_path)


def key() -> Optional[bytes]:
    """The 32-byte digest key in force, or None when digests are unkeyed (``off``).

    Cheap on the hot path: one identity check against the current Config.
    """
    state = _state
    if state[0] is _config.get_config():
        return state[2]
    return _resolve()[2]


def key_id() -> Optional[str]:
    """8 hex digits naming the key (written in digest headers), or None when unkeyed."""
    state = _state
    if state[0] is _config.get_config():
        return state[3]
    return _resolve()[3]


def content_key() -> Optional[bytes]:
    """Key for content hashes, derived from :func:`key` (never the key itself, so no
    hash written on a span can be related to the key id)."""
    state = _state
    if state[0] is _config.get_config():
        return state[4]
    return _resolve()[4]


def reset() -> None:
    """Forget the resolved key (and the one-warning flag): the next use resolves again.

    Config changes are noticed without it; tests use it to re-read a key file.
    """
    global _state, _warned, _noted_store
    with _lock:
        _state = (None, (), None, None, None)
        _warned = False
        _noted_store = None


def _resolve() -> _State:
    global _state
    with _lock:
        cfg = _config.get_config()
        state = _state
        if state[0] is cfg:
            return state
        setting = _setting(cfg)
        if state[1] == setting:  # a new Config with the same key setting: keep the key
            state = (cfg,) + state[1:]
        else:
            secret = _load(setting)
            state = (cfg, setting, secret, *_derived(secret))
        _state = state
        return state


def _setting(cfg: _config.Config) -> tuple:
    raw = getattr(cfg, "digest_key", None)
    if raw is None:
        store = _noted_store
        if store is None and cfg.store_path != _DEFAULT_STORE_PATH:
            store = cfg.store_path  # INSTRUMENTORS_STORE_PATH / store_path= named a store: beside it
        return ("file", key_file_path(store) if store is not None else user_key_path())
    if raw.strip().lower() == OFF:
        return ("off",)
    return ("secret", raw)


def _derived(secret: Optional[bytes]) -> Tuple[Optional[str], Optional[bytes]]:
    if secret is None:
        return None, None
    kid = hmac.new(secret, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:8]
    return kid, hmac.new(secret, _CONTENT_LABEL, hashlib.sha256).digest()


def _load(setting: tuple) -> Optional[bytes]:
    if setting[0] == "off":
        return None
    if setting[0] == "secret":
        return hashlib.sha256(setting[1].encode("utf-8", "surrogatepass")).digest()
    path = setting[1]
    try:
        return _key_file(path)
    except Exception as exc:  # noqa: BLE001 - instrumenting must never fail over a key file
        return _fallback(path, exc)


def _key_file(path: str) -> bytes:
    """Read the key file, creating it first if there is none (atomically: O_EXCL)."""
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    fresh = secrets.token_bytes(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    except FileExistsError:  # another process won the race: use its key
        return _read(path)
    try:
        os.write(fd, (fresh.hex() + "\n").encode("ascii"))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(path)  # never leave an empty key file that every process rejects
        except OSError:
            pass
        raise
    os.close(fd)
    return fresh


def _read(path: str) -> bytes:
    """The key in ``path``; waits briefly for a file another process is still writing."""
    deadline = time.monotonic() + _READ_WAIT_SECONDS
    while True:
        with open(path, "rb") as fh:
            raw = fh.read(4 * KEY_BYTES).strip()
        if len(raw) >= 2 * KEY_BYTES:
            value = bytes.fromhex(raw[: 2 * KEY_BYTES].decode("ascii"))  # ValueError if corrupt
            return value
        if time.monotonic() >= deadline:
            raise ValueError(f"key file holds {len(raw)} characters, expected {2 * KEY_BYTES} hex digits")
        time.sleep(0.01)


def _fallback(path: str, exc: BaseException) -> bytes:
    global _process_key, _warned
    if _process_key is None:
        _process_key = secrets.token_bytes(KEY_BYTES)
    if not _warned:
        _warned = True
        _log.warning(
            "instrumentors: cannot create or read the digest key file %s (%s: %s); digests on "
            "spans use a per-process random key, so links cannot be rebuilt across processes. "
            "Set INSTRUMENTORS_DIGEST_KEY (the same secret in every process) to rebuild them.",
            path, type(exc).__name__, exc)
    return _process_key

"""Where the default digest key file lives: beside the embedded store when this process
writes one, else in the per-user state directory -- never in the working directory of
an app that gave its own tracer provider and never asked for the store."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

APP = textwrap.dedent(
    """
    import json, sys
    from opentelemetry.sdk.trace import TracerProvider
    import instrumentors
    from instrumentors import _digest_key
    if sys.argv[1] == "own-provider":
        instrumentors.instrument_all(tracer_provider=TracerProvider())
    else:
        instrumentors.instrument_all()
    with instrumentors.step("context assembler") as s:
        s.produce("Refunds are issued within fourteen days of the return being received at our warehouse.")
    print(json.dumps({"kid": _digest_key.key_id()}))
    """
)


def _run(tmp_path: Path, mode: str, **env_extra: str) -> dict:
    app_dir = tmp_path / "app"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "app.py").write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "INSTRUMENTORS_", "XDG_"))}
    env.update({"PYTHONPATH": str(ROOT), "HOME": str(tmp_path / "home")})
    env.update(env_extra)
    proc = subprocess.run([sys.executable, "app.py", mode], cwd=app_dir, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "digest key file" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def _kid_of(path: Path) -> str:
    import hashlib
    import hmac

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = bytes.fromhex(path.read_text().strip())
    return hmac.new(secret, b"instrumentors digest key id v1", hashlib.sha256).hexdigest()[:8]


def test_own_provider_keeps_the_key_in_the_per_user_state_dir(tmp_path):
    first = _run(tmp_path, "own-provider")
    second = _run(tmp_path, "own-provider")
    assert not (tmp_path / "app" / ".instrumentors").exists(), "nothing written into the app's working directory"
    assert sorted(os.listdir(tmp_path / "app")) == ["app.py"]
    key_file = tmp_path / "home" / ".local" / "state" / "instrumentors" / "digest.key"
    # one key per user: two processes (or restarts) share it, so their digests still compare
    assert first["kid"] == second["kid"] == _kid_of(key_file)


def test_xdg_state_home_is_honoured(tmp_path):
    out = _run(tmp_path, "own-provider", XDG_STATE_HOME=str(tmp_path / "state"))
    assert out["kid"] == _kid_of(tmp_path / "state" / "instrumentors" / "digest.key")
    assert not (tmp_path / "home").exists() and not (tmp_path / "app" / ".instrumentors").exists()


def test_zero_config_keeps_the_key_beside_the_store(tmp_path):
    out = _run(tmp_path, "zero-config")
    store_dir = tmp_path / "app" / ".instrumentors"
    assert out["kid"] == _kid_of(store_dir / "digest.key")
    assert not (tmp_path / "home").exists(), "the store is in use: the key goes with it, not to the home directory"

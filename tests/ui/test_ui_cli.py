"""``instrumentors ui``: its arguments and failures (the browser test starts it for real)."""

from __future__ import annotations

import pytest

from instrumentors.cli import main


def test_a_missing_store_is_a_clear_store_error(tmp_path, capsys):
    assert main(["ui", "--store", str(tmp_path / "none.db"), "--port", "0"]) == 1
    assert "no trace store at" in capsys.readouterr().err


@pytest.mark.parametrize("port", ["-1", "70000"])
def test_a_port_out_of_range_is_a_usage_error(port, seed_store, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["ui", "--store", seed_store, "--port", port])
    assert exc.value.code == 2 and "--port" in capsys.readouterr().err


def test_an_occupied_port_is_reported(seed_store, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["ui", "--store", seed_store, "--port", str(port)]) == 1
    assert f"127.0.0.1:{port}" in capsys.readouterr().err


def test_the_banner_never_prints_a_store_password(monkeypatch, capsys):
    from instrumentors import ui

    seen = {}

    def fake_serve(store, *, port, timeout, ready):
        seen["store"] = store
        ready("http://127.0.0.1:1234/")

    monkeypatch.setattr(ui, "serve", fake_serve)
    assert main(["ui", "--store", "clickhouse://reader:s3cret@db.internal:8123/otel", "--port", "0"]) == 0
    out = capsys.readouterr().out
    assert seen["store"] == "clickhouse://reader:s3cret@db.internal:8123/otel"  # the server gets the real URL
    assert "s3cret" not in out and "on http://127.0.0.1:1234/" in out

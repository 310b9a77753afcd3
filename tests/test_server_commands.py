"""The server's commands as `tollmeter` will have them (`register(subparsers)`), and the
settings they make: flags, TOLLMETER_* variables, sizes."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from tollmeter import heap
from tollmeter.server.commands import main, register, serve_settings
from tollmeter.server.settings import MiB, ServerSettings, parse_size


def tollmeter_parser() -> argparse.ArgumentParser:
    """A parser like cli.py's, with the server's commands registered beside another one."""
    parser = argparse.ArgumentParser(prog="tollmeter")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("report")
    register(commands)
    return parser


def test_register_adds_the_commands():
    parser = tollmeter_parser()
    for argv in (["serve"], ["keys", "create", "--project", "p"], ["keys", "list"], ["keys", "revoke", "k"],
                 ["db", "upgrade"], ["db", "current"], ["reprice"]):
        args = parser.parse_args(argv)
        assert callable(args.run) and args.command == argv[0]
    with pytest.raises(SystemExit):
        parser.parse_args(["keys", "create"])  # --project is required


def test_serve_flags_make_the_settings(monkeypatch):
    for name in ("TOLLMETER_DATABASE_URL", "TOLLMETER_PRICES", "TOLLMETER_MAX_BODY_BYTES", "TOLLMETER_MIGRATE",
                 "TOLLMETER_FREEZE_HEAP", "TOLLMETER_WARM_REPORTS"):
        monkeypatch.delenv(name, raising=False)
    args = tollmeter_parser().parse_args([
        "serve", "--database-url", "postgresql://u:secret@db/tm", "--host", "0.0.0.0", "--port", "9000",
        "--prices", "rates.yaml", "--max-body", "1M", "--max-decompressed", "10MiB", "--max-batch", "500",
        "--max-lease-ttl", "60", "--lease-concurrency", "3", "--no-migrate", "--workers", "4"])
    assert (args.host, args.port, args.workers) == ("0.0.0.0", 9000, 4)
    assert serve_settings(args) == ServerSettings(
        database_url="postgresql://u:secret@db/tm", prices="rates.yaml", max_body_bytes=MiB,
        max_decompressed_bytes=10 * MiB, max_batch_events=500, max_lease_ttl=60.0, lease_concurrency=3,
        migrate=False, freeze_heap=True, warm_reports=True)
    defaults = serve_settings(tollmeter_parser().parse_args(["serve"]))
    assert defaults == ServerSettings(freeze_heap=True, warm_reports=True)  # a process that only serves
    assert (defaults.max_body_bytes, defaults.max_decompressed_bytes) == (5 * MiB, 50 * MiB)
    monkeypatch.setenv("TOLLMETER_FREEZE_HEAP", "0")
    assert serve_settings(tollmeter_parser().parse_args(["serve"])).freeze_heap is False
    assert ServerSettings().freeze_heap is False  # an app made in another program: never
    monkeypatch.setenv("TOLLMETER_WARM_REPORTS", "off")
    assert serve_settings(tollmeter_parser().parse_args(["serve"])).warm_reports is False
    assert ServerSettings().warm_reports is False


def test_a_served_app_freezes_its_start_up_heap_once_started(tmp_path):
    """In a process of its own (freezing is for a process that only serves): the app's start-up
    moves the objects alive then out of the collector's walks, and collects at the serving
    thresholds, when its settings say so."""
    script = (
        "import gc, sys\n"
        "from fastapi.testclient import TestClient\n"
        "from tollmeter.server.app import create_app\n"
        "from tollmeter.server.settings import ServerSettings\n"
        "app = create_app(ServerSettings(database_url=sys.argv[1], freeze_heap=sys.argv[2] == '1'))\n"
        "before = gc.get_freeze_count()\n"
        "default = gc.get_threshold()\n"
        "with TestClient(app) as client:\n"
        "    assert client.get('/healthz').status_code == 200\n"
        "    print(before, gc.get_freeze_count(), gc.get_threshold() == default, *gc.get_threshold())\n"
    )
    for flag in ("1", "0"):
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path / f"s{flag}.db"), flag],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        before, after, unchanged, *thresholds = done.stdout.split()
        assert int(before) == 0
        assert (int(after) > 50_000) if flag == "1" else (int(after) == 0)
        if flag == "1":
            assert tuple(map(int, thresholds)) == heap.SERVING_THRESHOLDS
        else:
            assert unchanged == "True"


def test_settings_from_the_environment_round_trip():
    settings = ServerSettings(database_url="sqlite:////tmp/x.db", prices="r.json", max_body_bytes=123,
                              max_decompressed_bytes=4567, max_batch_events=9, max_lease_ttl=12.5,
                              lease_concurrency=5, migrate=False)
    env = settings.to_env()
    assert env["TOLLMETER_MIGRATE"] == "0" and env["TOLLMETER_MAX_BODY_BYTES"] == "123"
    assert ServerSettings.from_env(env) == settings
    assert ServerSettings.from_env({"TOLLMETER_MAX_BODY_BYTES": "2M", "TOLLMETER_MIGRATE": "yes"}) == ServerSettings(
        max_body_bytes=2 * MiB)
    with pytest.raises(ValueError, match="max_batch_events must be > 0"):
        ServerSettings(max_batch_events=0)
    with pytest.raises(ValueError, match="lease_concurrency must be > 0"):
        ServerSettings.from_env({"TOLLMETER_LEASE_CONCURRENCY": "0"})


@pytest.mark.parametrize("text, size", [("100", 100), ("5M", 5 * MiB), ("5MB", 5 * MiB), ("5mib", 5 * MiB),
                                        ("512K", 512 * 1024), ("1G", 1024 * MiB)])
def test_sizes(text, size):
    assert parse_size(text) == size


def test_a_bad_size_or_rate_card_stops_serve_before_it_starts(tmp_path, capsys):
    with pytest.raises(SystemExit):
        tollmeter_parser().parse_args(["serve", "--max-body", "huge"])
    bad = tmp_path / "rates.json"
    bad.write_text('{"models": [{"model": "x", "input_mtk": 1}]}')
    assert main(["serve", "--prices", str(bad), "--db", str(tmp_path / "x.db")]) == 2
    assert "input_mtk" in capsys.readouterr().err

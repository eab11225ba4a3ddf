"""The acceptance path with exactly the issue's commands, each a real process, over TLS on loopback."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "tests" / "golden" / "demo"


def utm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "firmware.cli.main", *args], env=env, capture_output=True,
                       text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"utm {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def test_capture_to_cloud_with_the_cli(tmp_path):
    cloud, agent = tmp_path / "cloud", tmp_path / "agent"
    code = utm("cloud", "enroll-code", "--state", str(cloud)).stdout.strip()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    serve = subprocess.Popen([sys.executable, "-m", "firmware.cli.main", "cloud", "serve", "--state", str(cloud),
                              "--listen", "127.0.0.1:0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        line = serve.stdout.readline()
        assert line.startswith("listening on https://127.0.0.1:"), line + serve.stderr.read()
        url = line.split()[-1]
        # alerts of an offline run go into the queue before the device is even enrolled
        r = utm("inspect", "-r", str(DEMO / "input.pcap"), "-S", str(DEMO / "demo.rules"), "-l", str(tmp_path),
                "--export-to", str(agent))
        assert "11 alerts, 11 queued" in r.stdout
        out = utm("cloudlink", "enroll", "--server", url, "--code", code, "--state", str(agent)).stdout
        assert out.startswith("enrolled as dev-")
        again = utm("cloudlink", "enroll", "--server", url, "--code", code, "--state", str(tmp_path / "b"),
                    check=False)
        assert again.returncode == 2 and "already used" in again.stderr and "Traceback" not in again.stderr
        utm("cloudlink", "run", "--state", str(agent), "--drain")
        status = utm("cloudlink", "status", "--state", str(agent)).stdout
        assert "0 waiting" in status and "11 delivered" in status
        rows = [json.loads(x) for x in utm("cloud", "events", "--state", str(cloud), "--json").stdout.splitlines()]
        assert len(rows) == 11 and len({r["key"] for r in rows}) == 11
        assert all("packet" not in r and "payload" not in r for r in rows)
        assert {r["rule_id"] for r in rows} >= {9000002} and all(r["device_id"].startswith("dev-") for r in rows)
        # the same capture exported again is the same alerts: nothing new at the cloud
        utm("inspect", "-r", str(DEMO / "input.pcap"), "-S", str(DEMO / "demo.rules"), "-l", str(tmp_path),
            "--export-to", str(agent), "-q")
        utm("cloudlink", "run", "--state", str(agent), "--drain")
        assert len(utm("cloud", "events", "--state", str(cloud), "--json").stdout.splitlines()) == 11
        devices = [json.loads(x) for x in utm("cloud", "devices", "--state", str(cloud), "--json").stdout.splitlines()]
        # delivered keys leave the queue, so the repeat is queued and sent again; the cloud's index absorbs it
        assert devices[0]["heartbeats"] == 2 and devices[0]["heartbeat"]["counters"]["queue.enqueued"] == 22
        st_out = utm("cloudlink", "status", "--state", str(agent)).stdout
        assert "last run uploaded 0, 11 were already at the cloud" in st_out and "last upload: never" not in st_out
        cid = utm("cloud", "command", "--state", str(cloud), devices[0]["id"], "diagnostics").stdout.strip()
        utm("cloudlink", "run", "--state", str(agent), "--drain")
        cmds = [json.loads(x) for x in utm("cloud", "commands", "--state", str(cloud), "--json").stdout.splitlines()]
        assert cmds[0]["command_id"] == cid and cmds[0]["result"]["status"] == "done"
        assert json.loads(cmds[0]["result"]["detail"])["queue"]["depth"] == 0
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            assert serve.wait(15) == 0
        finally:
            if serve.poll() is None:
                serve.kill()
                serve.wait(10)
            serve.stdout.close()
            serve.stderr.close()


@pytest.mark.parametrize("argv,message", [
    (["cloud", "serve", "--state", "{tmp}/c", "--listen", "127.0.0.1:0", "--smtp", "127.0.0.1:25"], "--mail-to"),
    (["cloud", "serve", "--state", "{tmp}/c", "--listen", "127.0.0.1:0", "--smtp", "127.0.0.1:25"]
     + ["--mail-to", "a@example.com"] * 4, "recipients"),
    (["cloud", "serve", "--state", "{tmp}/c", "--listen", "127.0.0.1:0", "--smtp", "x", "--mail-to", "a@example.com"],
     "--smtp wants HOST:PORT"),
    (["cloud", "serve", "--state", "{tmp}/none", "--listen", "127.0.0.1:0"], "not a cloud state folder"),
    (["cloud", "serve", "--state", "{tmp}/c", "--listen", "nonsense"], "HOST:PORT"),
    (["cloud", "events", "--state", "{tmp}/none"], "not a cloud state folder"),
    (["cloudlink", "enroll", "--server", "http://x", "--code", "AAAAAAAAAAAAAAAA-AAAAAAAAAAAAAAAAAAAAAAAAAA",
      "--state", "{tmp}/a"], "https://"),
    (["cloudlink", "enroll", "--server", "https://127.0.0.1:1", "--code", "bad", "--state", "{tmp}/a"], "base32"),
    (["cloudlink", "run", "--state", "{tmp}/a"], "not enrolled"),
    (["cloudlink", "run", "--state", "{tmp}/a", "--batch-size", "0"], "batch size"),
    (["cloudlink", "run", "--state", "{tmp}/a", "--eve-dir", "{tmp}/c/ca.pem"], "not a folder"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "ca.pem").write_text("")   # only checked for existence by serve before --smtp/--listen
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_status_before_anything(tmp_path, capsys):
    assert main(["cloudlink", "status", "--state", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "not enrolled" in out and "queue: none yet" in out

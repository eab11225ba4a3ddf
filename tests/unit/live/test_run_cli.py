"""`utm run` / `utm reload` argument handling: bad input is one line and exit 2."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from firmware.cli.main import main
from firmware.cli.run import PIDFILE


@pytest.mark.parametrize("args,msg", [
    (["--queues", "5:2"], "--queues"),
    (["--queue", "70000"], "queue numbers"),
    (["--bypass-mark", "zz"], "--bypass-mark"),
    (["--bypass-mark", "0x3", "--block-mark", "0x2"], "share bits"),
    (["--depth", "lots"], "--depth"),
    (["--set", "no.such.key=1"], "unknown setting"),
    (["-S", "/nonexistent/x.rules"], "no such rule file"),
])
def test_bad_arguments_exit_2_with_one_line(args, msg, capsys, tmp_path):
    assert main(["run", "-l", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_a_refused_bundle_exits_2_before_any_worker(capsys, tmp_path):
    bad = tmp_path / "bad.bundle"
    bad.write_bytes(b"not a bundle")
    if os.geteuid() != 0:
        pytest.skip("the bundle is checked after the root check")
    assert main(["run", "--bundle", str(bad), "-l", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "definitions:" in err and err.count("\n") == 1


def test_reload_without_a_running_utm_exits_2(capsys, tmp_path):
    assert main(["reload", "-l", str(tmp_path)]) == 2
    (tmp_path / PIDFILE).write_text("999999999\n")
    assert main(["reload", "-l", str(tmp_path)]) == 2
    assert "not running" in capsys.readouterr().err


def test_reload_sends_sighup_to_the_recorded_process(tmp_path):
    flag = tmp_path / "hup"
    child = subprocess.Popen([sys.executable, "-c",
                              "import signal, sys, time, pathlib\n"
                              f"signal.signal(signal.SIGHUP, lambda *a: (pathlib.Path({str(flag)!r}).touch(), sys.exit(0)))\n"
                              "print('ready', flush=True)\n"
                              "time.sleep(10)\n"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        (tmp_path / PIDFILE).write_text(f"{child.pid}\n")
        assert main(["reload", "-l", str(tmp_path)]) == 0
        child.wait(5)
        assert flag.exists()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

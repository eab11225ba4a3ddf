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
    (["--dns-block-answer", "blockpage.example"], "--dns-block-answer"),
    (["--dns-block-answer", "192.0.2.1", "--dns-block-answer", "192.0.2.2"], "one IPv4 address"),
    (["--memory-max", "lots"], "--memory-max"),
    (["--memory-max", "64k"], "less than 1 MB"),
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


def _net_config(tmp_path, extra=""):
    f = tmp_path / "net.toml"
    f.write_text('[ports]\nwan = "eth0"\nlan = "eth1"\n\n[inspection]\nqueue = 4\nworkers = 2\n'
                 'fail_mode = "closed"\ndepth = 65536\n' + extra)
    return f


def test_run_takes_queues_fail_mode_depth_and_modes_from_the_network_config(tmp_path):
    from firmware.cli.main import build_parser
    from firmware.cli.run import _queues, build_spec, from_net_config
    f = _net_config(tmp_path, '\n[modes]\nintrusion = "detect"\nphishing = "detect"\ncategory = "detect"\n')
    args = build_parser().parse_args(["run", "-l", str(tmp_path), "--net-config", str(f)])
    from_net_config(args)
    spec = build_spec(args)
    assert _queues(args) == [4, 5] and spec.policy.fail.value == "closed"
    assert spec.policy.inspect_depth == 65536 and set(spec.policy.detect_only) == {"rules", "category", "category:phishing"}


def test_run_refuses_options_that_disagree_with_the_network_config(tmp_path):
    from firmware.cli.main import build_parser
    from firmware.cli.run import from_net_config
    from inspection.errors import ConfigError
    f = _net_config(tmp_path)
    for extra in (["--fail", "open"], ["--queue", "0"]):
        args = build_parser().parse_args(["run", "-l", str(tmp_path), "--net-config", str(f), *extra])
        with pytest.raises(ConfigError):
            from_net_config(args)
    half = _net_config(tmp_path, '\n[modes]\nphishing = "detect"\n')   # only the phishing category
    args = build_parser().parse_args(["run", "-l", str(tmp_path), "--net-config", str(half)])
    from_net_config(args)
    assert args.detect_only == ["category:phishing"]


def test_the_dns_block_address_comes_from_the_network_config_and_a_reload_rereads_it(tmp_path):
    from dataclasses import replace

    from firmware.cli.main import build_parser
    from firmware.cli.run import build_spec, from_net_config
    from firmware.live.sources import reload_policy
    from inspection.errors import ConfigError
    f = _net_config(tmp_path, 'dns_block_answer = ["198.51.100.7"]\n')
    args = build_parser().parse_args(["run", "-l", str(tmp_path), "--net-config", str(f)])
    from_net_config(args)
    spec = replace(build_spec(args), queue=4)   # the worker of queue 4
    assert (spec.policy.dns_block.v4, spec.policy.dns_block.v6) == ("198.51.100.7", None)
    f.write_text(f.read_text().replace("198.51.100.7", "198.51.100.8"))
    assert reload_policy(spec)[0].dns_block.v4 == "198.51.100.8"
    f.write_text(f.read_text().replace('dns_block_answer = ["198.51.100.8"]\n', ""))
    assert reload_policy(replace(spec, policy=replace(spec.policy, dns_block=None)))[0].dns_block is None
    args = build_parser().parse_args(["run", "-l", str(tmp_path), "--net-config",
                                      str(_net_config(tmp_path, 'dns_block_answer = ["198.51.100.7"]\n')),
                                      "--dns-block-answer", "198.51.100.9"])
    with pytest.raises(ConfigError):
        from_net_config(args)


def test_worker_memory_limit_auto_off_and_sizes(tmp_path):
    from firmware.cli.run import worker_memory_max
    from inspection.errors import ConfigError
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        2048000 kB\nMemFree:          100000 kB\n")
    assert worker_memory_max("auto", 2, str(meminfo)) == 2048000 * 1024 * 3 // 4 // 2
    assert worker_memory_max("off", 2, str(meminfo)) is None
    assert worker_memory_max("512mb", 2, str(meminfo)) == 512 << 20
    with pytest.raises(ConfigError, match="MemTotal"):
        worker_memory_max("auto", 1, str(tmp_path / "missing"))

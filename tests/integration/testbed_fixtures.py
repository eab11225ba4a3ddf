"""The testbed with `utm run` in the box, shared by the end-to-end modules (root, dnsmasq, curl).

`bed` brings the testbed up once per module that uses it and takes it down afterwards; when one
is already up (it belongs to someone) the module is skipped. `box` runs `utm run` in it with the
judges of `tests.sim.livebox.make_judges`.
"""
from __future__ import annotations

import shutil

import pytest

from tests.integration.netns import need_root_netns
from tests.sim import livebox as lb
from tests.sim import testbed

RESET_OR_SHORT = (18, 35, 52, 56)   # curl: partial file, TLS connect failed, empty reply, reset while receiving


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    need_root_netns()
    if shutil.which("dnsmasq") is None or shutil.which("curl") is None:
        pytest.skip("dnsmasq and curl are needed (./build.sh setup installs them)")
    if testbed.namespaces() & set(testbed.NAMESPACES):
        pytest.skip("a testbed is already up; not touching it")
    folder = tmp_path_factory.mktemp("judges")
    try:
        assert testbed.up() == 0
        yield folder, lb.make_judges(folder)
    finally:
        testbed.down()


@pytest.fixture(scope="module")
def box(bed):
    folder, args = bed
    b = lb.LiveBox(folder / "eve", args).start()
    try:
        yield b
    finally:
        b.stop()

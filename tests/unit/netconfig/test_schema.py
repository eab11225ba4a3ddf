"""Config validation: every error names the key, defaults are the documented ones."""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings, strategies as st

from netconfig import schema
from netconfig.errors import ConfigError

BASE = '[ports]\nwan = "eth0"\nlan = "eth1"\n'


def err(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        schema.loads(text)
    return e.value


def test_minimal_config_gets_documented_defaults():
    c = schema.loads(BASE)
    assert c.ports == schema.Ports(bridge="br0", wan="eth0", lan="eth1")
    assert c.management.ipv4 is schema.Ipv4Mode.DHCP and c.management.ipv6 is schema.Ipv6Mode.SLAAC
    assert c.inspection.fail_mode is schema.FailMode.OPEN
    assert (c.inspection.depth, c.inspection.ceiling) == (65536, 32 * 1024 * 1024)
    assert c.inspection.queues == (0, 0)
    assert all(c.mode(k) is schema.Action.BLOCK for k in schema.THREAT_CLASSES)


def test_full_config():
    c = schema.loads(BASE + 'ssid1 = "wlan0"\nssid2 = "wlan1"\nbridge = "utmbr"\n'
                     '[management]\nipv4 = "static"\naddress = "192.0.2.2/24"\ngateway = "192.0.2.1"\n'
                     'dns = ["192.0.2.1", "2001:db8::1"]\nipv6 = "off"\n'
                     '[inspection]\ndepth = 131072\nceiling = 1048576\nfail_mode = "closed"\nqueue = 10\nworkers = 4\n'
                     '[modes]\nphishing = "detect"\n'
                     '[isolation]\ndevices = ["02:00:00:00:00:0A", "02-00-00-00-00-0b"]\n'
                     '[exclusions]\ndevices = ["02:00:00:00:00:0c"]\nrules = [2100498]\n'
                     f'hashes = ["{"a" * 64}"]\ndomains = ["intranet.example.test"]\n')
    assert c.ports.by_role() == (("wan", "eth0"), ("lan", "eth1"), ("ssid1", "wlan0"), ("ssid2", "wlan1"))
    assert c.management.address == ipaddress.IPv4Interface("192.0.2.2/24")
    assert c.inspection.queues == (10, 13) and c.inspection.fail_mode is schema.FailMode.CLOSED
    assert c.mode("phishing") is schema.Action.DETECT and c.mode("malware") is schema.Action.BLOCK
    assert c.isolated == ("02:00:00:00:00:0a", "02:00:00:00:00:0b")
    assert c.exclusions.rules == (2100498,)


@pytest.mark.parametrize("text,key", [
    ("", "ports"),
    ('[ports]\nwan = "eth0"\n', "ports.lan"),
    (BASE + 'ssid1 = "eth0"\n', "ports.ssid1"),
    (BASE + 'bridge = "eth1"\n', "ports.lan"),
    (BASE + 'ssid2 = "a/b"\n', "ports.ssid2"),
    (BASE + 'ssid2 = "waytoolonginterfacename"\n', "ports.ssid2"),
    (BASE + 'wlan = "x"\n', "ports.wlan"),
    (BASE + "[management]\nipv4 = \"static\"\n", "management.address"),
    (BASE + "[management]\nipv4 = \"static\"\naddress = \"192.0.2.2\"\n", "management.address"),
    (BASE + "[management]\nipv4 = \"static\"\naddress = \"192.0.2.2/24\"\ngateway = \"198.51.100.1\"\n",
     "management.gateway"),
    (BASE + "[management]\naddress = \"192.0.2.2/24\"\n", "management.address"),
    (BASE + "[management]\nipv4 = \"ppp\"\n", "management.ipv4"),
    (BASE + "[management]\nipv4 = \"static\"\naddress = \"192.0.2.2/24\"\ndns = [\"x\"]\n", "management.dns[0]"),
    (BASE + "[inspection]\ndepth = \"big\"\n", "inspection.depth"),
    (BASE + "[inspection]\ndepth = 10\n", "inspection.depth"),
    (BASE + "[inspection]\ndepth = 2000000\nceiling = 1000000\n", "inspection.ceiling"),
    (BASE + "[inspection]\nworkers = 0\n", "inspection.workers"),
    (BASE + "[inspection]\nqueue = 65535\nworkers = 2\n", "inspection.workers"),
    (BASE + "[inspection]\nfail_mode = \"maybe\"\n", "inspection.fail_mode"),
    (BASE + "[inspection]\nworkers = true\n", "inspection.workers"),
    (BASE + "[inspection]\ndns_block_answer = [\"blockpage\"]\n", "inspection.dns_block_answer[0]"),
    (BASE + "[inspection]\ndns_block_answer = [\"192.0.2.1\", \"192.0.2.2\"]\n", "inspection.dns_block_answer[1]"),
    (BASE + "[inspection]\ndns_block_answer = \"192.0.2.1\"\n", "inspection.dns_block_answer"),
    (BASE + "[inspection]\ndns_block_answer = [\"224.0.0.1\"]\n", "inspection.dns_block_answer[0]"),
    (BASE + "[inspection]\ndns_block_answer = [\"198.51.100.7\", \"fe80::7\"]\n", "inspection.dns_block_answer[1]"),
    (BASE + "[management]\nipv4 = \"static\"\naddress = \"192.0.2.2/24\"\n"
     "[inspection]\ndns_block_answer = [\"192.0.2.77\"]\n", "inspection.dns_block_answer[0]"),   # on-link
    (BASE + "[management]\nipv4 = \"static\"\naddress = \"192.0.2.2/24\"\n"
     "[inspection]\ndns_block_answer = [\"192.0.2.2\"]\n", "inspection.dns_block_answer[0]"),    # the box
    (BASE + "[modes]\nspam = \"block\"\n", "modes.spam"),
    (BASE + "[modes]\nmalware = \"allow\"\n", "modes.malware"),
    (BASE + "[isolation]\ndevices = [\"02:00:00:00:00\"]\n", "isolation.devices[0]"),
    (BASE + "[isolation]\ndevices = \"02:00:00:00:00:01\"\n", "isolation.devices"),
    (BASE + "[isolation]\ndevices = [\"02:00:00:00:00:01\"]\n[exclusions]\ndevices = [\"02:00:00:00:00:01\"]\n",
     "exclusions.devices"),
    (BASE + "[exclusions]\nhashes = [\"abc\"]\n", "exclusions.hashes[0]"),
    (BASE + "[exclusions]\nrules = [0]\n", "exclusions.rules[0]"),
    (BASE + "[exclusions]\nurls = [\"\"]\n", "exclusions.urls[0]"),
    (BASE + "[extra]\n", "extra"),
    ("ports = 3\n", "ports"),
])
def test_errors_name_the_key(text, key):
    assert err(text).key == key
    assert str(err(text)).startswith(key)


def test_not_toml_and_unreadable(tmp_path):
    assert "not valid TOML" in str(err("[ports\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        schema.load(tmp_path / "absent.toml")
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (schema.MAX_CONFIG_BYTES + 10))
    with pytest.raises(ConfigError, match="larger than"):
        schema.load(big)


def test_lists_are_bounded():
    macs = ", ".join(f'"02:00:00:00:{i // 256:02x}:{i % 256:02x}"' for i in range(schema.MAX_LIST_ITEMS + 1))
    assert err(BASE + f"[isolation]\ndevices = [{macs}]\n").key == "isolation.devices"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_config_or_typed_error(text):
    try:
        schema.loads(text)
    except ConfigError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["ports", "management", "inspection", "modes", "isolation", "exclusions"]),
                       st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=20),
                                                                     st.lists(st.text(max_size=20), max_size=3),
                                                                     st.booleans()), max_size=4)))
def test_any_structure_gives_config_or_typed_error(doc):
    try:
        schema.from_dict(doc)
    except ConfigError:
        pass


def test_dns_block_answer_is_off_by_default_and_takes_one_address_per_family():
    assert schema.loads(BASE).inspection.dns_block_answer == ()
    c = schema.loads(BASE + '[inspection]\ndns_block_answer = ["198.51.100.7", "2001:DB8::7"]\n')
    assert c.inspection.dns_block_answer == ("198.51.100.7", "2001:db8::7")
    # beyond a static management subnet it is fine
    c = schema.loads(BASE + '[management]\nipv4 = "static"\naddress = "192.0.2.2/24"\n'
                     '[inspection]\ndns_block_answer = ["198.51.100.7"]\n')
    assert c.inspection.dns_block_answer == ("198.51.100.7",)


def test_block_quic_is_on_by_default_and_must_be_a_boolean():
    base = '[ports]\nwan = "wan0"\nlan = "lan0"\n'
    assert schema.loads(base).inspection.block_quic is True
    assert schema.loads(base + "[inspection]\nblock_quic = false\n").inspection.block_quic is False
    with pytest.raises(ConfigError, match="inspection.block_quic"):
        schema.loads(base + '[inspection]\nblock_quic = "no"\n')

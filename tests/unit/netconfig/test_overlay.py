"""The desired-state overlay on the base config: unions, mode overrides, conflicts, and a TOML that reads back."""
from __future__ import annotations

import tomllib

import pytest
from hypothesis import given, settings, strategies as st

from netconfig import schema
from netconfig.errors import ConfigError
from netconfig.overlay import Overlay, merge, render

BASE = ('[ports]\nwan = "eth0"\nlan = "eth1"\n[inspection]\nfail_mode = "closed"\nqueue = 3\n'
        '[modes]\nmalware = "detect"\n'
        '[isolation]\ndevices = ["02:00:00:00:00:0A"]\n'
        '[exclusions]\ndevices = ["02:00:00:00:00:0c"]\nrules = [7]\nhashes = ["' + "a" * 64 + '"]\n')


def doc(text: str = BASE) -> dict:
    return tomllib.loads(text)


def test_no_overlay_keeps_the_base_config():
    m = merge(doc(), Overlay())
    assert m.config == schema.loads(BASE) and m.not_applied == ()
    assert schema.loads(m.text) == m.config


def test_isolation_and_exclusions_are_added_and_never_remove_the_base():
    m = merge(doc(), Overlay(isolated=("02:00:00:00:00:0b",),
                             exclusions=(("mac", "02:00:00:00:00:0d"), ("rule", "9"), ("domain", "intra.example.test"))))
    c = m.config
    assert c.isolated == ("02:00:00:00:00:0a", "02:00:00:00:00:0b")
    assert c.exclusions.devices == ("02:00:00:00:00:0c", "02:00:00:00:00:0d")
    assert c.exclusions.rules == (7, 9) and c.exclusions.domains == ("intra.example.test",)
    assert c.exclusions.hashes == ("a" * 64,) and c.inspection.queues == (3, 3)
    assert m.not_applied == ()           # rule and domain exclusions are the live engine's now
    # a release (the MAC is no longer in the overlay) cannot release what the base isolates
    assert merge(doc(), Overlay()).config.isolated == ("02:00:00:00:00:0a",)


def test_modes_override_the_base_star_first_then_each_class():
    c = merge(doc(), Overlay(modes=(("*", "detect"), ("intrusion", "block")))).config
    assert dict(c.modes) == {"intrusion": schema.Action.BLOCK, "malware": schema.Action.DETECT,
                             "phishing": schema.Action.DETECT, "category": schema.Action.DETECT}
    c = merge(doc(), Overlay(modes=(("malware", "block"),))).config
    assert c.mode("malware") is schema.Action.BLOCK


def test_classtype_modes_and_ip_exclusions_are_merged():
    m = merge(doc(), Overlay(modes=(("trojan-activity", "detect"),), exclusions=(("ip", "192.0.2.0/24"),)))
    assert m.not_applied == ()
    assert m.config.classtypes == (("trojan-activity", schema.Action.DETECT),)
    assert m.config.exclusions.addresses == ("192.0.2.0/24",)
    assert schema.loads(m.text) == m.config
    # '*' reaches the classtypes too, then each class's own command
    c = merge(doc(), Overlay(modes=(("*", "block"), ("trojan-activity", "detect"), ("web-attack", "block")))).config
    assert dict(c.classtypes) == {"trojan-activity": schema.Action.DETECT, "web-attack": schema.Action.BLOCK}


def test_what_this_build_cannot_apply_is_named_not_dropped():
    m = merge(doc(), Overlay(modes=(("rules", "detect"),), exclusions=(("url", "example.test/x"),)))
    assert m.config == schema.loads(BASE)
    assert any("class rules" in n and "not a threat class" in n for n in m.not_applied)
    assert any("url example.test/x" in n and "not supported yet" in n for n in m.not_applied)


@pytest.mark.parametrize("text,key", [
    ('[classtypes]\nintrusion = "detect"\n', "classtypes.intrusion"),        # belongs in [modes]
    ('[classtypes]\nrules = "detect"\n', "classtypes.rules"),                # the live policy's own name
    ('[classtypes]\n"Bad Name" = "detect"\n', "classtypes.Bad Name"),
    ('[classtypes]\nweb-attack = "maybe"\n', "classtypes.web-attack"),
    ('[exclusions]\naddresses = ["192.0.2.300"]\n', "exclusions.addresses[0]"),
])
def test_bad_classtype_modes_and_addresses_are_refused_with_their_key(text, key):
    with pytest.raises(ConfigError) as e:
        schema.loads('[ports]\nwan = "eth0"\nlan = "eth1"\n' + text)
    assert e.value.key == key


@pytest.mark.parametrize("overlay,key", [
    (Overlay(isolated=("02:00:00:00:00:0c",)), "isolation.devices"),                 # the base excludes it
    (Overlay(exclusions=(("mac", "02:00:00:00:00:0a"),)), "exclusions.devices"),     # the base isolates it
    (Overlay(isolated=("02:00:00:00:00:0e",), exclusions=(("mac", "02:00:00:00:00:0e"),)), "exclusions.devices"),
])
def test_a_device_both_isolated_and_excluded_is_refused(overlay, key):
    with pytest.raises(ConfigError) as e:
        merge(doc(), overlay)
    assert e.value.key == key


def test_an_invalid_base_is_refused_with_its_key():
    with pytest.raises(ConfigError) as e:
        merge(doc('[ports]\nwan = "eth0"\n'), Overlay())
    assert e.value.key == "ports.lan"


_mac = st.integers(0, 2**40 - 1).map(lambda n: "02:" + ":".join(f"{(n >> s) & 0xff:02x}" for s in (32, 24, 16, 8, 0)))
_overlays = st.builds(
    Overlay,
    isolated=st.lists(_mac, max_size=6).map(tuple),
    modes=st.dictionaries(st.sampled_from(["*", "intrusion", "malware", "phishing", "category", "policy-violation"]),
                          st.sampled_from(["block", "detect"]), max_size=4).map(lambda d: tuple(sorted(d.items()))),
    exclusions=st.lists(st.one_of(st.tuples(st.just("mac"), _mac),
                                  st.tuples(st.just("rule"), st.integers(1, 2**32 - 1).map(str)),
                                  st.tuples(st.just("domain"), st.from_regex(r"[a-z]{1,10}\.example\.test", fullmatch=True)),
                                  st.tuples(st.just("ip"), st.just("198.51.100.0/24"))), max_size=6).map(tuple),
    revision=st.integers(0, 10**6))


@settings(max_examples=200, deadline=None)
@given(_overlays)
def test_merge_keeps_the_base_adds_the_overlay_and_reads_back(ov):
    base = schema.loads(BASE)
    try:
        m = merge(doc(), ov)
    except ConfigError as e:       # only ever a device both isolated and excluded
        assert e.key in ("isolation.devices", "exclusions.devices")
        macs = set(ov.isolated) | set(base.isolated)
        excluded = {v for k, v in ov.exclusions if k == "mac"} | set(base.exclusions.devices)
        assert macs & excluded
        return
    c = m.config
    assert schema.loads(m.text) == c
    assert set(base.isolated) <= set(c.isolated) and set(ov.isolated) <= set(c.isolated)
    assert set(base.exclusions.devices) <= set(c.exclusions.devices)
    assert {v for k, v in ov.exclusions if k == "mac"} <= set(c.exclusions.devices)
    assert set(base.exclusions.rules) | {int(v) for k, v in ov.exclusions if k == "rule"} == set(c.exclusions.rules)
    assert c.ports == base.ports and c.inspection == base.inspection and c.management == base.management
    wanted = dict(ov.modes)
    for cls in schema.THREAT_CLASSES:
        expect = wanted.get(cls, wanted.get("*", dict((k, a.value) for k, a in base.modes)[cls]))
        assert c.mode(cls).value == expect


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True),
                       st.dictionaries(st.one_of(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), _text.filter(bool)),
                                       st.one_of(_text, st.integers(-2**63, 2**63 - 1), st.booleans(),
                                                 st.lists(_text, max_size=3), st.lists(st.integers(0, 9), max_size=3)),
                                       max_size=4), max_size=4))
def test_render_reads_back_as_the_same_document(d):
    assert tomllib.loads(render(d)) == d


def test_the_dns_block_address_survives_the_merge():
    text = BASE.replace('queue = 3\n', 'queue = 3\ndns_block_answer = ["198.51.100.7", "2001:db8::7"]\n')
    m = merge(doc(text), Overlay(isolated=("02:00:00:00:00:0b",)))
    assert schema.loads(m.text).inspection.dns_block_answer == ("198.51.100.7", "2001:db8::7")

"""Address/port specs, variables, and classification.config."""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings, strategies as st

from signatures.classification import (
    Classification, ClassificationTable, default_classifications, load_classification_file,
    parse_classification_config,
)
from signatures.errors import ClassificationError, VariableError
from signatures.netspec import AddressSpec, PortSpec, SpecError, Variables

V = Variables.default()


def test_suricata_default_variables():
    home = V.address("$HOME_NET")
    for inside in ("192.168.1.1", "10.255.0.1", "172.16.0.1", "172.31.255.255"):
        assert home.contains(inside)
    for outside in ("172.32.0.1", "8.8.8.8", "::1"):
        assert not home.contains(outside)
    ext = V.address("$EXTERNAL_NET")
    assert ext.contains("8.8.8.8") and ext.contains("2001:db8::1") and not ext.contains("10.0.0.1")
    assert V.address("$HTTP_SERVERS") == V.address("$HOME_NET").__class__("$HTTP_SERVERS", home.ipv4, home.ipv6)
    assert V.port("$HTTP_PORTS").ranges == ((80, 80),)
    assert V.port("$FILE_DATA_PORTS").ranges == ((80, 80), (110, 110), (143, 143))
    assert not V.port("$SHELLCODE_PORTS").contains(80)


def test_address_forms():
    assert V.address("any").is_any
    assert V.address("1.2.3.4").ipv4 == ((0x01020304, 0x01020304),)
    assert V.address("1.2.3.0/24").contains("1.2.3.200")
    assert V.address("1.2.3.4/24").contains("1.2.3.1")  # host bits allowed, as in Suricata
    assert V.address("1.2.3.4-1.2.3.6").ipv4 == ((0x01020304, 0x01020306),)
    assert V.address("2001:db8::/32").contains("2001:db8::5")
    assert V.address("[1.1.1.1,2.2.2.2]").networks() == (ipaddress.ip_network("1.1.1.1/32"),
                                                         ipaddress.ip_network("2.2.2.2/32"))


def test_list_semantics_plain_minus_negated_and_nesting():
    s = V.address("[10.0.0.0/8,![10.1.0.0/16,10.2.0.0/16],10.2.3.4]")
    assert s.contains("10.3.0.1") and not s.contains("10.1.5.5") and not s.contains("10.2.0.9")
    assert not s.contains("10.2.3.4")  # negated items win, as in Suricata
    only_neg = V.address("[!1.2.3.4]")
    assert only_neg.contains("1.2.3.5") and not only_neg.contains("1.2.3.4") and only_neg.contains("::1")
    assert V.address("!!1.2.3.4") == AddressSpec("!!1.2.3.4", ((0x01020304, 0x01020304),), ())


def test_port_forms():
    assert V.port("any").is_any
    assert V.port("1024:").ranges == ((1024, 65535),)
    assert V.port(":1023").ranges == ((0, 1023),)
    assert V.port("[80,443,8000:8080]").ranges == ((80, 80), (443, 443), (8000, 8080))
    assert V.port("[1,[2,3]]").ranges == ((1, 3),)
    assert V.port("![1:1023]").ranges == ((0, 0), (1024, 65535))


@pytest.mark.parametrize("bad", ["!any", "[", "[1.2.3.4", "1.2.3.4]", "[]", "[1.2.3.4,]", "300.1.1.1",
                                 "$NOPE", "$HTTP_PORTS", "a b", "1.2.3.6-1.2.3.4", "[1.2.3.4,!1.2.3.4]"])
def test_bad_addresses(bad):
    with pytest.raises(SpecError):
        V.address(bad)


@pytest.mark.parametrize("bad", ["!any", "65536", "-1", "5:4", "x", ":", "$HOME_NET", "[80,!80]"])
def test_bad_ports(bad):
    with pytest.raises(SpecError):
        V.port(bad)


def test_variables_validated_at_construction():
    with pytest.raises(VariableError) as e:
        V.with_overrides({"HOME_NET": "garbage"})
    assert e.value.name == "HOME_NET"
    with pytest.raises(VariableError):
        V.with_overrides({"LOOP_NET": "$LOOP_NET"})
    with pytest.raises(VariableError):
        Variables((("9BAD", "any"),), ())


def test_override_changes_dependants_and_new_port_var():
    v = V.with_overrides({"HOME_NET": "[10.0.0.0/8]", "$MY_PORTS": "[1,2]"})
    assert v.address("$EXTERNAL_NET").contains("192.168.0.1")
    assert v.port("$MY_PORTS").ranges == ((1, 2),)


def test_specs_validate_intervals():
    with pytest.raises(ValueError):
        PortSpec("x", ((5, 4),))
    with pytest.raises(ValueError):
        PortSpec("x", ())
    with pytest.raises(ValueError):
        AddressSpec("x", ((3, 4), (1, 2)), ())


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="[]!,$:. 0123456789abcdefHOME_NETany/-", max_size=40))
def test_spec_garbage_only_raises_spec_error(text):
    for resolve in (V.address, V.port):
        try:
            resolve(text)
        except SpecError:
            pass


# --- classification ----------------------------------------------------------------------

def test_default_table_has_et_classtypes():
    t = default_classifications()
    assert t.get("trojan-activity") == Classification("trojan-activity", "A Network Trojan was detected", 1)
    assert t.get("bad-unknown").priority == 2 and t.get("Bad-Unknown") is not None
    assert "inappropriate-content" in t and "nope" not in t and len(t) >= 40


def test_parse_classification_config_and_errors(tmp_path):
    t = parse_classification_config("# c\n\nconfig classification: a-b,Desc, with comma,2\n")
    assert t.get("a-b") == Classification("a-b", "Desc, with comma", 2)
    for bad in ("classification: x,y,1", "config classification: x,y", "config classification: x,y,z",
                "config classification: x y,d,1", "config classification: x,d,0"):
        with pytest.raises(ClassificationError) as e:
            parse_classification_config("\n" + bad, source="f")
        assert e.value.line == 2
    p = tmp_path / "c.config"
    p.write_text("config classification: z,Zed,4\n")
    assert load_classification_file(p).get("z").priority == 4
    with pytest.raises(ClassificationError):
        load_classification_file(tmp_path / "missing")


def test_classification_table_later_entry_wins():
    t = ClassificationTable((Classification("a", "one", 1), Classification("a", "two", 2)))
    assert t.get("a").priority == 2

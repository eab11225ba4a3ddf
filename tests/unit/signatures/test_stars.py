"""Every detection gets the customer-facing level (0-3 stars) from the documented order of decisions."""
from __future__ import annotations

import pytest

from signatures.parser import parse_rule
from signatures.stars import CLASSTYPE_STARS, stars_for


def rule(options: str):
    return parse_rule(f'alert tcp any any -> any any (msg:"t"; {options} sid:1;)')


@pytest.mark.parametrize("options,stars", [
    ("classtype:trojan-activity;", 3),                      # an infected device talking to its controller
    ("classtype:command-and-control;", 3),
    ("classtype:web-application-attack;", 2),               # an attack that may have worked
    ("classtype:policy-violation;", 1),
    ("classtype:not-suspicious;", 0),
    ("priority:1;", 2),                                     # no classtype: from the priority
    ("priority:3;", 1),
    ("priority:5;", 0),
    ("classtype:trojan-activity; metadata:signature_severity Informational;", 1),
    ("classtype:policy-violation; metadata:signature_severity Critical;", 2),
    ("classtype:trojan-activity; metadata:stars 0;", 0),    # the rule's own word wins
    ("metadata:stars 3;", 3),
])
def test_levels(options, stars):
    assert stars_for(rule(options)) == stars


def test_every_level_is_reachable_from_classtypes():
    assert set(CLASSTYPE_STARS.values()) == {0, 1, 2, 3}

"""Garbage where metadata should be, and garbage command arguments: a typed error, never a crash."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudlink.command_args import normalise
from cloudlink.desired import DesiredState
from cloudlink.errors import ProtocolError, StateError
from cloudlink.protocol import CommandKind
from tests.unit.updater.helpers import Rig
from updater.errors import UpdaterError


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    r = Rig(tmp_path_factory.mktemp("garbage"))
    r.publish("1.0")
    return r


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["timestamp.json", "2.snapshot.json", "2.targets.json", "2.root.json"]),
       data=st.one_of(st.binary(max_size=600), st.builds(lambda o: json.dumps(o).encode(),
                                                         st.dictionaries(st.text(max_size=8), st.integers()))))
def test_garbled_metadata_is_a_typed_refusal(rig, name, data):
    rig.fetcher.override = {f"/tuf/metadata/{name}": data}
    try:
        rig.check()
    except UpdaterError:
        pass
    finally:
        rig.fetcher.override = {}


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(list(CommandKind)), args=st.lists(st.text(max_size=40), max_size=3))
def test_command_arguments_normalise_or_refuse(kind, args):
    try:
        out = normalise(kind, tuple(args))
    except ProtocolError:
        return
    assert normalise(kind, out) == out          # normalising twice changes nothing


@settings(max_examples=300, deadline=None)
@given(obj=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=5),
                        max_leaves=20))
def test_desired_state_file_contents_load_or_refuse(obj):
    if isinstance(obj, dict) and obj:
        obj = {"format": 1, **obj}
    try:
        DesiredState.from_json(obj)
    except StateError:
        pass

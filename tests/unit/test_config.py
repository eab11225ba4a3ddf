"""`--set KEY=VALUE`: Suricata's keys, validated; unknown keys returned, not fatal."""
from __future__ import annotations

import pytest

from inspection.config import ChecksumMode, EngineConfig
from inspection.errors import ConfigError


def test_known_keys_are_applied():
    cfg, unknown = EngineConfig.from_sets([
        "stream.midstream=false", "stream.reassembly.depth=64kb", "flow.memcap=1gb",
        "flow-timeouts.tcp.established=3600", "app-layer.protocols.dns.udp.detection-ports.dp=53,5300-5301",
        "defrag.policy=linux", "vlan.use-for-tracking=no"])
    assert unknown == []
    assert cfg.midstream is False and cfg.stream_depth == 64 << 10 and cfg.flow_memcap == 1 << 30
    assert cfg.tcp_timeouts == (60.0, 3600.0, 60.0)
    assert cfg.dns_udp_ports == frozenset({53, 5300, 5301})
    assert cfg.defrag_policy == "linux" and cfg.vlan_tracking is False


def test_unknown_keys_come_back_and_defaults_stay():
    cfg, unknown = EngineConfig.from_sets(["detect.guess-applayer-tx=true"],
                                          EngineConfig(checksum=ChecksumMode.NONE))
    assert unknown == ["detect.guess-applayer-tx"]
    assert cfg.checksum is ChecksumMode.NONE and cfg.midstream is True


@pytest.mark.parametrize("item, key", [
    ("stream.midstream=maybe", "stream.midstream"),
    ("stream.reassembly.depth=lots", "stream.reassembly.depth"),
    ("flow-timeouts.udp.new=-1", "flow-timeouts.udp.new"),
    ("app-layer.protocols.dns.detection-ports.dp=70000", "app-layer.protocols.dns.detection-ports.dp"),
    ("defrag.policy=random", "defrag.policy"),
    ("no-equals-sign", "no-equals-sign"),
])
def test_bad_values_name_their_key(item, key):
    with pytest.raises(ConfigError) as e:
        EngineConfig.from_sets([item])
    assert e.value.key == key


def test_file_hashes_are_chosen_and_sha256_is_always_among_them():
    cfg, _ = EngineConfig.from_sets(["files.hashes=md5"])
    assert cfg.file_hashes == ("md5", "sha256")
    cfg, _ = EngineConfig.from_sets(["outputs.eve.files.force-hash=[sha1, md5]"])
    assert cfg.file_hashes == ("md5", "sha1", "sha256")
    with pytest.raises(ConfigError, match="files.hashes.*crc32"):
        EngineConfig.from_sets(["files.hashes=md5,crc32"])

"""Each attack from python-tuf's list that applies to definitions updates, against the real repository.

The repository is refcloud's; what the agent sees passes through a fetcher
(the narrow interface) that serves the repository's files, or tampered bytes
in their place. Every refusal must leave the package in use untouched.
"""
from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata
from tuf.ngclient import Updater

from tests.unit.updater.helpers import Rig, package
from updater.definitions import METADATA_URL, TARGET_NAME, TARGETS_URL, TUF_LIMITS, Outcome
from updater.errors import RefusedError

DAY = 86400.0


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    r.publish("1.0")
    assert r.check().outcome is Outcome.UPDATED and r.current() == "1.0"
    return r


def refused(rig, reason):
    before = rig.current()
    with pytest.raises(RefusedError) as e:
        rig.check()
    assert e.value.reason == reason, str(e.value)
    assert rig.current() == before
    return e.value


def test_update_then_nothing_new_fetches_only_the_timestamp(rig):
    rig.publish("1.1")
    assert rig.check().outcome is Outcome.UPDATED and rig.current() == "1.1"
    rig.fetcher.fetched.clear()
    r = rig.check()
    assert r.outcome is Outcome.UP_TO_DATE and r.version == "1.1"
    # the next root version (404) and the timestamp; snapshot and targets come from the verified cache
    assert rig.fetcher.fetched == ["/tuf/metadata/2.root.json", "/tuf/metadata/timestamp.json"]


def test_rollback_of_the_timestamp_is_refused(rig):
    old_ts = rig.meta("timestamp.json")
    rig.publish("1.1")
    rig.check()
    rig.fetcher.override["/tuf/metadata/timestamp.json"] = old_ts     # validly signed, older version
    refused(rig, "rollback")
    assert rig.current() == "1.1"


def test_freeze_expired_timestamp_is_refused_until_the_cloud_resigns(tmp_path):
    now = time.time()
    r = Rig(tmp_path, now=now - 2 * DAY)
    r.publish("1.0", now=now - 2 * DAY)               # the repository stopped two days ago
    refused(r, "expired")
    assert r.current() is None
    assert "timestamp" in r.repo.refresh_expiring(now)  # what the serve loop does every minute
    assert r.check().outcome is Outcome.UPDATED


def test_freeze_by_replaying_an_old_but_unexpired_timestamp_after_a_newer_one(rig):
    frozen = rig.meta("timestamp.json")
    rig.repo.refresh_expiring(time.time() + 0.6 * DAY)     # a newer timestamp the agent has seen
    rig.check()
    rig.fetcher.override["/tuf/metadata/timestamp.json"] = frozen
    refused(rig, "rollback")


def test_mix_and_match_snapshot_from_another_publish_is_refused(rig):
    first_snapshot = rig.meta("2.snapshot.json")
    rig.publish("1.1")
    rig.fetcher.override["/tuf/metadata/3.snapshot.json"] = first_snapshot   # validly signed, other release
    refused(rig, "hash_mismatch")


def test_mix_and_match_targets_from_another_publish_is_refused(rig):
    rig.publish("1.1")
    rig.fetcher.override["/tuf/metadata/3.targets.json"] = rig.meta("2.targets.json")
    e = refused(rig, "rollback")                      # snapshot names targets v3, this is v2
    assert "BadVersionNumber" in str(e)


def test_endless_metadata_stops_at_the_limit(rig):
    rig.fetcher.endless.add("/tuf/metadata/timestamp.json")
    refused(rig, "too_large")
    assert rig.fetcher.bytes_received < TUF_LIMITS.timestamp_max_length + 3 * 65536


def test_endless_target_stops_at_its_signed_length(rig):
    info = rig.repo.publish(package("1.1"), "1.1", time.time())
    rig.fetcher.endless.add(f"/tuf/targets/{info.sha256}.{TARGET_NAME}")
    refused(rig, "too_large")


def test_tampered_timestamp_signature_is_refused(rig):
    rig.publish("1.1")
    ts = json.loads(rig.meta("timestamp.json"))
    ts["signed"]["expires"] = "2099-01-01T00:00:00Z"               # signature no longer covers it
    rig.fetcher.override["/tuf/metadata/timestamp.json"] = json.dumps(ts).encode()
    refused(rig, "bad_signature")


@pytest.mark.parametrize("signer", ["attacker", "snapshot"])
def test_timestamp_signed_by_a_key_not_trusted_for_the_role_is_refused(rig, signer):
    """An outside key, or a real repository key of another role: the threshold (1 timestamp key) is not met."""
    rig.publish("1.1")
    md = Metadata.from_bytes(rig.meta("timestamp.json"))
    md.signed.version += 1
    md.signatures.clear()
    md.sign(CryptoSigner(Ed25519PrivateKey.generate()) if signer == "attacker" else rig.repo._signer("snapshot"))
    rig.fetcher.override["/tuf/metadata/timestamp.json"] = md.to_bytes()
    refused(rig, "bad_signature")


def test_target_whose_hash_does_not_match_is_refused(rig):
    info = rig.repo.publish(package("1.1"), "1.1", time.time())
    evil = package("1.1", extra=b"x")[:info.length]          # same length, other bytes
    rig.fetcher.override[f"/tuf/targets/{info.sha256}.{TARGET_NAME}"] = evil
    refused(rig, "hash_mismatch")
    assert rig.current() == "1.0"


def test_arbitrary_target_not_in_the_metadata_is_never_fetched(rig):
    (rig.repo.targets_dir / "evil.pkg").write_bytes(package("9.9"))
    upd = Updater(str(rig.store_dir / "tuf"), METADATA_URL, str(rig.store_dir / "download"), TARGETS_URL,
                  rig.fetcher, TUF_LIMITS, bootstrap=rig.root)
    assert upd.get_targetinfo("evil.pkg") is None
    rig.fetcher.fetched.clear()
    assert rig.check().outcome is Outcome.UP_TO_DATE
    assert not any("evil" in p for p in rig.fetcher.fetched)


def test_root_rotation_is_followed_from_the_pinned_root(tmp_path):
    now = time.time()
    r = Rig(tmp_path, now=now - 200 * DAY)           # root lives a year: past half, it is re-signed as v2
    assert r.repo.refresh_expiring(now)[0] == "root"
    r.publish("1.0")
    assert r.check().outcome is Outcome.UPDATED
    assert (r.store_dir / "tuf" / "root_history" / "2.root.json").is_file()


def test_root_signed_by_an_attacker_is_refused(rig):
    md = Metadata.from_bytes(rig.root)
    md.signed.version = 2
    evil = CryptoSigner(Ed25519PrivateKey.generate())
    for role in ("root", "timestamp"):
        for kid in list(md.signed.roles[role].keyids):
            md.signed.revoke_key(kid, role)
        md.signed.add_key(evil.public_key, role)
    md.signatures.clear()
    md.sign(evil)
    rig.fetcher.override["/tuf/metadata/2.root.json"] = md.to_bytes()
    refused(rig, "bad_signature")


# --- beyond TUF: the vendor signature and the package's own version ---------------------------------

def test_package_signed_with_another_vendor_key_is_refused_though_tuf_accepts_it(rig):
    rig.publish("1.1", package("1.1", key=Ed25519PrivateKey.generate()))
    refused(rig, "vendor_signature")
    assert not (rig.store_dir / "packages" / "1.1.pkg").exists()


def test_older_package_refused_even_if_the_repository_signs_it(rig):
    """A broken-into cloud holds the TUF keys; it still cannot push the box back to an older package."""
    rig.publish("1.1")
    rig.check()
    md = rig.repo._current_targets()
    t = md.signed.targets[TARGET_NAME]
    old = package("1.0")
    import hashlib
    digest = hashlib.sha256(old).hexdigest()
    (rig.repo.targets_dir / f"{digest}.{TARGET_NAME}").write_bytes(old)
    t.length, t.hashes, t.unrecognized_fields = len(old), {"sha256": digest}, {"custom": {"version": "1.0"}}
    md.signed.version += 1
    rig.repo._sign_chain(md, time.time())
    refused(rig, "rollback")
    assert rig.current() == "1.1"


def test_package_version_must_match_the_signed_target_version(rig):
    rig.publish("1.2", package("1.1"))
    refused(rig, "version_mismatch")

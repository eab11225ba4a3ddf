"""Signature detection: Suricata-compatible payload matching over inspection buffers.

Pure library code (no sockets, no clock); the engine hands it the buffers of
a packet or transaction. Modules, in import order:

- `errors`: `DetectError` and its subclasses (under `inspection.errors`).
- `pcre`: PCRE -> Python `re` on bytes, or `UnsupportedPattern` by name.
- `transforms`: dotprefix, to_lowercase, url_decode, ... as Suricata applies them.
- `byteops`: byte_test, byte_jump, byte_extract, base64_decode.
- `verify`: `compile_block`, `match_block`/`inspect_block` (one buffer, with
  Suricata's backtracking and a work budget), `MatchContext`.
- `prefilter`: fast-pattern choice and per-buffer Hyperscan databases,
  `Prefilter.candidates`, `to_image`/`from_image` (dumpb/loadb).
- `engine`: `Detector(rules).inspect(buffers, direction=, header_check=)`;
  `Detector.prepared(...)` starts from a bundle and plans rules on first use.
- `bundle`: `compile_bundle`/`encode_bundle`/`decode_bundle`: rules, skips and
  the prefilter in one versioned, hash-checked file (`utm rules compile`).
- `thresholds`: `ThresholdTable.check` decides whether a match of a rule with
  ``threshold``/``detection_filter`` alerts (Suricata's counting, bounded table).
- `inspector`: binds the detector to flows, packets and transactions.
"""

"""Signatures: the Suricata-flavoured rule language, parsed into a typed model.

This is the foundation the matcher compiler (Hyperscan, verifier) builds on:
the compiler reads `signatures.model.Rule` objects only, never rule text.

Modules, in import order (each imports only those before it):

- `errors`: the package's error tree (`RuleError` -> `MalformedRule`,
  `UnsupportedRule`, `DuplicateRule`; `VariableError`, `ClassificationError`,
  `RuleFileError`).
- `netspec`: header address/port specs resolved into intervals; `Variables`
  with Suricata's default address and port groups.
- `buffers`: the `Buffer` and `TransformKind` enums and the keyword tables
  (sticky buffers, legacy content modifiers, pcre buffer letters).
- `matches`: payload items (`ContentMatch`, `PcreMatch`, `IsDataAt`,
  `ByteTest`, `ByteJump`, `ByteExtract`, `Base64Decode`) grouped in
  `BufferBlock`s; `SizeCheck` for dsize/bsize/urilen-style comparisons.
- `model`: `Rule` and its rule-level parts; re-exports everything above.
- `classification`: classification.config (classtype -> description, priority),
  with the standard table shipped in `_classification_data`.
- `lexer`, `options`, `builder`: rule text -> options -> typed parts.
- `parser`: `parse_rule(text, *, variables)` and `load_rules(paths)` ->
  `LoadResult(rules, skipped)`; `RuleLoader` is its sans-IO core.
"""

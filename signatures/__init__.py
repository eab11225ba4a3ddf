"""Rule model, parser and compiled bundles (issue: signature engine). Not built yet."""

"""Composition root: CLI, web UI, app wiring."""

"""Shared pytest options.

Hypothesis runs derandomized by default, so CI and a newcomer's run explore
the same examples and a red build always reproduces; `HYPOTHESIS_PROFILE=explore`
draws fresh examples each run (what a developer hunting bugs wants).
"""
from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    parser.addoption("--regen-golden", action="store_true", default=False,
                     help="rewrite tests/golden/*/expect.yaml from the engine's current output")

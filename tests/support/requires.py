"""One rule for a test whose prerequisite is missing: it skips on a developer's machine, and fails where the
environment says the prerequisite must be there (``.ci/run`` sets the flags: LIVEMATCH_REQUIRE_BROWSER when it
installed chromium, LIVEMATCH_REQUIRE_SCALE for requirements-scale.txt, LIVEMATCH_REQUIRE_GIT for a clone), so CI
cannot pass with a test skipped silently. A flag counts when it is "1"."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def required(flag: str) -> bool:
    return os.environ.get(flag) == "1"


def missing(what: str, flag: str, fix: str = "") -> NoReturn:
    """Fail (``flag`` is "1") or skip, saying what is missing and how to get it."""
    hint = f" ({fix})" if fix else ""
    if required(flag):
        pytest.fail(f"{what} is required here ({flag}=1) but missing{hint}")
    pytest.skip(f"{what} is missing{hint}")

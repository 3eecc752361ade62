"""Shared fixtures: the real engine, loaded once per test session."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def engine():
    from diffusion.engine import Engine

    # UNMASK_TEST_MODEL points at another model folder during development; CI uses the built-in model.
    return Engine.load(os.environ.get("UNMASK_TEST_MODEL"), "cpu")

"""Fixtures for the causal-link tests: a clean registry per test and a tracer."""

from __future__ import annotations

import pytest

from instrumentors.causal._api import PENDING
from instrumentors.causal.registry import REGISTRY


@pytest.fixture(autouse=True)
def _clean_registry():
    REGISTRY.clear()
    PENDING.clear()
    yield
    REGISTRY.clear()
    PENDING.clear()


@pytest.fixture
def tracer(tracer_provider):
    return tracer_provider.get_tracer("tests.causal")

"""Shared helpers for the engine test suites (no database needed)."""
from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def recorded_plans(name: str) -> dict:
    """{template: {"query": text, "plan": EXPLAIN (FORMAT JSON, VERBOSE) of its generic plan}}
    recorded from the bench databases."""
    return json.loads((FIXTURES / name).read_text())

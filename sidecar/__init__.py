"""OptiSchema sidecar: runs what the database cannot (top-level DDL, LLM calls, schedules)."""

__version__ = "0.2.0"

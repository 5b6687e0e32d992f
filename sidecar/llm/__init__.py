"""LLM analyses: a catalog-grounded context goes to an OpenAI-compatible model, and the
structured answer is validated by OptiSchema (catalog, HypoPG what-if, read-only
equivalence runs, pg_settings) before anything becomes a recommendation."""

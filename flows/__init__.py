"""Prefect flows: order the stages, pass results, guarantee teardown, publish artifacts."""

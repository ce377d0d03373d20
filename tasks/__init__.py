"""Prefect tasks: one idempotent step each; retries and timeouts are set here and nowhere else."""

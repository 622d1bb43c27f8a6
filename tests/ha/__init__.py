"""High availability of the store: replicated stores made by the tests (replicas.py),
the failover drill on them (drill.py) and its bounded runs (test_*.py)."""

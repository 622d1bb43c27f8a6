"""The fault suite: load, faults and the accounting of what they may cost
(scripts/faults.py for long runs, test_faults.py in CI)."""

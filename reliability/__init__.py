"""Reliability campaigns: fuzzing, faults and soak (see RELIABILITY.md).

Runnable from the repository root, e.g. ``python -m reliability.soak --seconds 600``.
The test suites in tests/fuzz, tests/faults and tests/soak run bounded versions.
"""

"""The chaos harness: randomised rotations under injected faults, then recovery, then the promises.

``python -m tests.chaos --runs N`` (``scripts/chaos``) for long runs; ``test_chaos.py`` for CI.
"""

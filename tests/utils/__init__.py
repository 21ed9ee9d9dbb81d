"""Builders and helpers the test packages share, in one place: a test module imports them from
here, never from another package's tests (helpers.py: accounts in the simulator, storage wiped,
the CLI in process; batches.py: batches built by hand; feed.py: following page tokens;
faults.py: child processes, the oracle and the figures of the fault tests)."""

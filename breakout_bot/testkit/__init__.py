"""Test support, shipped apart from the product: nothing outside tests/, benchmarks/ and this package
imports it (tests/test_architecture.py holds the rule).

    faultcheck.py  the fault suite's invariants, judged from the simulator's own records
    fakes.py       an in-memory broker and a stepped clock, for the runner's unit tests
    crash.py       stop a runner at a chosen moment, as a crash would
"""

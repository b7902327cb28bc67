"""The launch-day rehearsal: seed 001's study on the production stack, a crowd of simulated
MTurk workers over HTTP, faults on a schedule, and the invariants checked at the end.

``stack`` starts and supervises the processes, ``faults`` injects the scheduled faults,
``stages`` holds the steps that run inside the platform (set-up, publish, finish and check),
and ``manage.py rehearse`` ties them together.
"""

"""The rehearsal report's arithmetic: percentiles per endpoint, and 5xx counted against the
database's fault windows (connection failures apart)."""

from __future__ import annotations

import pytest

from studyplatform.rehearsal.report import report_text, traffic_summary


def _drive(failures):
    return {
        "seconds": 60.0,
        "records": [{"submitted_to_mturk": True}, {"submitted_to_mturk": False}],
        "traffic": {
            "counts": {"POST event 200": 98, "POST event 500": 1, "GET state 0": 1},
            "latencies": {"POST event": [0.01 * i for i in range(1, 100)], "GET state": [0.5]},
            "failures": failures,
            "retries": 2,
            "gave_up": 0,
        },
    }


def test_a_5xx_inside_a_database_window_is_excused_and_one_outside_is_not():
    drive = _drive([(105.0, "POST event 500"), (300.0, "POST event 503"), (301.0, "GET state 0")])

    summary = traffic_summary(drive, [(100.0, 110.0)])

    assert summary["responses_5xx"] == 2
    assert summary["responses_5xx_outside_database_faults"] == 1
    assert summary["connection_failures"] == 1
    assert summary["hits_submitted"] == 1
    assert summary["requests"] == 100
    assert summary["requests_per_s"] == pytest.approx(100 / 60)
    event = summary["endpoints"]["POST event"]
    assert event["n"] == 99
    assert event["p50_ms"] == pytest.approx(500.0)
    assert event["p99_ms"] == pytest.approx(980.2, abs=0.1)


def test_the_text_report_says_failed_when_one_invariant_fails():
    summary = traffic_summary(_drive([]), [])
    report = {
        "setup": {"study": "seed001"}, "phases": {"crowd": 60.0}, "faults": [],
        "crowd": {"workers_started": 2, "refused": 0, "errors": 0, "unfinished": 0},
        "traffic": summary, "folder": "/tmp/x",
        "checks": {"a": {"ok": True, "detail": "fine"}, "b": {"ok": False, "detail": "lost 1"}},
    }  # fmt: skip

    text = report_text(report)

    assert "[FAIL] b: lost 1" in text
    assert "[PASS] a: fine" in text
    assert text.rstrip().endswith("Rehearsal FAILED.")

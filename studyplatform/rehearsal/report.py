"""The rehearsal's report: the phases, the faults with their times, the crowd's traffic
(requests/s, p50/p95/p99 per endpoint, 5xx inside and outside the database's fault windows)
and every invariant, as text and as a dict (``report.json``)."""

from __future__ import annotations

import numpy as np


def traffic_summary(drive: dict, database_windows: list[tuple[float, float]]) -> dict:
    """Per-endpoint latency percentiles (milliseconds) and counts; failures split by whether
    they fall in a database fault window."""
    traffic = drive["traffic"]
    endpoints = {}
    for key, values in sorted(traffic["latencies"].items()):
        ms = np.asarray(values) * 1000.0
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        endpoints[key] = {"n": len(values), "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}
    requests = sum(traffic["counts"].values())
    fivexx = [(t, k) for t, k in traffic["failures"] if not k.endswith(" 0")]
    refused = [(t, k) for t, k in traffic["failures"] if k.endswith(" 0")]

    def outside(items):
        return [k for t, k in items if not any(a <= t <= b for a, b in database_windows)]

    submitted = sum(1 for r in drive["records"] if r.get("submitted_to_mturk"))
    minutes = max(drive["seconds"], 1e-9) / 60.0
    return {
        "requests": requests,
        "seconds": drive["seconds"],
        "requests_per_s": requests / max(drive["seconds"], 1e-9),
        "hits_submitted": submitted,
        "hits_per_minute": submitted / minutes,
        "responses_5xx": len(fivexx),
        "responses_5xx_outside_database_faults": len(outside(fivexx)),
        "connection_failures": len(refused),
        "retries": traffic["retries"],
        "gave_up": traffic["gave_up"],
        "endpoints": endpoints,
    }


def report_text(report: dict) -> str:
    lines = ["", "Rehearsal report", "================"]
    lines += [f"  {k}: {v}" for k, v in report["setup"].items()]
    lines.append("")
    lines.append("Phases (seconds):")
    lines += [f"  {name:<12} {seconds:8.1f}" for name, seconds in report["phases"].items()]
    lines.append("")
    lines.append("Faults (seconds after the crowd started; precompute faults after it started):")
    for entry in report["faults"]:
        lines.append(f"  {entry['offset']:7.1f}  {entry['fault']:<30} {entry['detail']}")
    if not report["faults"]:
        lines.append("  none")
    t = report["traffic"]
    lines += [
        "",
        f"Crowd: {report['crowd']['workers_started']} workers started, "
        f"{t['hits_submitted']} HITs submitted to MTurk, {report['crowd']['refused']} refused, "
        f"{report['crowd']['errors']} errors, {report['crowd']['unfinished']} unfinished",
        f"  {t['requests']} requests in {t['seconds']:.1f} s: {t['requests_per_s']:.1f} req/s, "
        f"{t['hits_per_minute']:.1f} HITs/min",
        f"  5xx: {t['responses_5xx']} ({t['responses_5xx_outside_database_faults']} outside the "
        f"database's fault windows); connection failures: {t['connection_failures']}; "
        f"retries: {t['retries']}; given up: {t['gave_up']}",
        "",
        f"  {'endpoint':<22} {'n':>7} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}",
    ]
    for key, e in t["endpoints"].items():
        lines.append(
            f"  {key:<22} {e['n']:>7} {e['p50_ms']:>9.1f} {e['p95_ms']:>9.1f} {e['p99_ms']:>9.1f}"
        )
    lines += ["", "Invariants:"]
    for name, check in report["checks"].items():
        mark = "PASS" if check["ok"] else "FAIL"
        lines.append(f"  [{mark}] {name}: {check['detail']}")
    if report.get("restarted"):
        lines.append(f"\nProcesses restarted by the supervisor: {', '.join(report['restarted'])}")
    lines.append(f"\nLogs and JSON: {report['folder']}")
    verdict = "PASSED" if all(c["ok"] for c in report["checks"].values()) else "FAILED"
    lines.append(f"Rehearsal {verdict}.")
    return "\n".join(lines)

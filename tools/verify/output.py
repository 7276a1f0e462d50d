"""Findings as text (one line each, then a summary line) or as JSON (--json)."""

from __future__ import annotations

import json

from tools.verify.rules import Finding


def line(f: Finding) -> str:
    return f"{f.rule}\t{f.stack}/{f.release}\t{f.object}\t{f.message}"


def text_report(findings: list[Finding], accepted: list, summary: dict, notes: list[str]) -> str:
    out = [line(f) for f in findings]
    out += [f"note: {n}" for n in notes]
    per_rule: dict[str, int] = {}
    for f in findings:
        per_rule[f.rule] = per_rule.get(f.rule, 0) + 1
    counts = ", ".join(f"{k} {v}" for k, v in sorted(per_rule.items()))
    rendered = summary.get("rendered", summary["releases"])
    missing = summary.get("charts_missing", 0)
    not_rendered = summary["releases"] - rendered
    done = f"{summary['releases']} releases" if not not_rendered else f"{rendered} of {summary['releases']} releases"
    tail = ""
    if not_rendered:
        tail = f"; {not_rendered} not rendered" + (f" ({missing} for want of the chart: `task charts`, then "
                                                   "HELIX_CHARTS=<that folder>)" if missing else "") + ","
    out.append(f"verify: {len(findings)} finding(s){' (' + counts + ')' if counts else ''}, {len(accepted)} allowed; "
               f"{done} in {summary['stacks']} stacks rendered for Kubernetes "
               f"{summary['kube_version']}{tail} in {summary['seconds']:.1f} s")
    return "\n".join(out)


def json_report(findings: list[Finding], accepted: list, summary: dict, notes: list[str]) -> str:
    return json.dumps({
        "findings": [f.as_dict() for f in findings],
        "allowed": [dict(f.as_dict(), reason=a.reason) for f, a in accepted],
        "notes": notes,
        "summary": dict(summary, findings=len(findings), allowed=len(accepted)),
    }, indent=2, sort_keys=True)

"""The allow list: findings that are true and accepted, per component (release name), each with its reason.

config/verify-allow.yaml:

    <release name>:
      - rule: order                     # one of the rule names
        object: "Kafka/.*"              # optional regular expression, searched in the finding's object
        message: "no release renders"   # optional regular expression, searched in the message
        reason: why this is accepted    # required
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from tools.verify.errors import VerifyError
from tools.verify.rules import RULE_NAMES, Finding


@dataclass
class Allowed:
    release: str
    rule: str
    object: re.Pattern | None
    message: re.Pattern | None
    reason: str
    where: str
    used: int = 0

    def matches(self, f: Finding) -> bool:
        return (f.release == self.release and f.rule == self.rule
                and (self.object is None or bool(self.object.search(f.object)))
                and (self.message is None or bool(self.message.search(f.message))))


def load_allow(path: Path, shown: str) -> list[Allowed]:
    if not path.is_file():
        return []
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise VerifyError(f"{shown}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if doc is None:
        return []
    if not isinstance(doc, dict):
        raise VerifyError(f"{shown}: expected a mapping of release name to a list of entries")
    out: list[Allowed] = []
    problems: list[str] = []
    for release, entries in doc.items():
        if not isinstance(entries, list):
            problems.append(f"{shown}: {release}: expected a list of entries")
            continue
        for i, entry in enumerate(entries):
            where = f"{shown}: {release}[{i}]"
            if not isinstance(entry, dict):
                problems.append(f"{where}: expected a mapping")
                continue
            unknown = set(entry) - {"rule", "object", "message", "reason"}
            if unknown:
                problems.append(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
            if entry.get("rule") not in RULE_NAMES:
                problems.append(f"{where}.rule: {entry.get('rule')!r} is not one of {', '.join(RULE_NAMES)}")
            if not str(entry.get("reason") or "").strip():
                problems.append(f"{where}.reason: every accepted finding needs its reason")
            pats = {}
            for key in ("object", "message"):
                try:
                    pats[key] = re.compile(str(entry[key])) if entry.get(key) is not None else None
                except re.error as exc:
                    problems.append(f"{where}.{key}: not a regular expression ({exc})")
                    pats[key] = None
            out.append(Allowed(str(release), str(entry.get("rule")), pats["object"], pats["message"],
                               str(entry.get("reason") or ""), where))
    if problems:
        raise VerifyError("\n".join(problems))
    return out


def split(findings: list[Finding], allowed: list[Allowed]) -> tuple[list[Finding], list[tuple[Finding, Allowed]]]:
    kept, accepted = [], []
    for f in findings:
        match = next((a for a in allowed if a.matches(f)), None)
        if match is None:
            kept.append(f)
        else:
            match.used += 1
            accepted.append((f, match))
    return kept, accepted

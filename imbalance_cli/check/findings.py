"""What a check run produces: :class:`Finding` (one rule violation, pointing at the boxes and
images involved) and :class:`CheckResult` (the findings of one file and the verdict).

The ``imbalance.check/1`` report (``CheckResult.to_dict``)::

    {"schema": "imbalance.check/1", "path", "passed", "fail_on",
     "counts": {"error", "warning", "info"}, "summary": {...}, "rules_run": [...],
     "findings": [{"rule", "severity", "message",
                   # optional, present when set:
                   "category_id", "category", "value", "threshold",
                   "annotation_ids": [...],   # every annotation (box) involved
                   "image_ids": [...],        # every image involved
                   "file_names": [...],       # the images' file names, aligned with image_ids ("" unknown)
                   "records": [...],          # structural rules: every broken record, "annotations[3] (id 7): ..."
                   "locations": [{"file", "line"}]}]}  # YOLO label rules: every file (and line) at fault

``annotation_ids``, ``image_ids``, ``file_names``, ``records``, ``category`` and ``locations`` were
added to schema 1 without changing any earlier field.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCHEMA = "imbalance.check/1"
SEVERITIES = ("info", "warning", "error")
LEVEL = {"info": 0, "warning": 1, "error": 2}


@dataclass
class Finding:
    """One rule violation: rule, severity, a one-line message and what it is about.

    ``category_id``/``category`` name the class concerned; ``annotation_ids``, ``image_ids`` and
    ``file_names`` (aligned with ``image_ids``) list every box and image involved; ``records``
    describes every broken record for the structural rules.
    """

    rule: str
    severity: str
    message: str
    category_id: int | None = None
    value: float | None = None
    threshold: float | None = None
    category: str | None = None
    annotation_ids: list[int] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)
    file_names: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    locations: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain dict; optional keys only when set (lists only when non-empty)."""
        d = {"rule": self.rule, "severity": self.severity, "message": self.message}
        for k in ("category_id", "category", "value", "threshold"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        for k in ("annotation_ids", "image_ids", "file_names", "records", "locations"):
            v = getattr(self, k)
            if v:
                d[k] = list(v)
        return d

    def images(self) -> list[str]:
        """Each involved image as ``"id (file name)"`` (or the id alone when the name is unknown)."""
        names = self.file_names or [""] * len(self.image_ids)
        return [f"{i} ({n})" if n else str(i) for i, n in zip(self.image_ids, names)]


@dataclass
class CheckResult:
    """Findings of one run and the verdict."""

    path: str
    findings: list[Finding]
    fail_on: str
    rules_run: list[str]
    summary: dict

    @property
    def passed(self) -> bool:
        """True when no finding is at or above ``fail_on``."""
        return not any(LEVEL[f.severity] >= LEVEL[self.fail_on] for f in self.findings)

    @property
    def exit_code(self) -> int:
        """0 pass, 1 fail."""
        return 0 if self.passed else 1

    def counts(self) -> dict[str, int]:
        """Number of findings per severity."""
        return {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}

    def failing(self) -> list[Finding]:
        """Findings at or above ``fail_on``."""
        return [f for f in self.findings if LEVEL[f.severity] >= LEVEL[self.fail_on]]

    def to_dict(self) -> dict:
        """The ``imbalance.check/1`` report."""
        return {
            "schema": SCHEMA,
            "path": self.path,
            "passed": self.passed,
            "fail_on": self.fail_on,
            "counts": self.counts(),
            "summary": self.summary,
            "rules_run": self.rules_run,
            "findings": [f.to_dict() for f in self.findings],
        }


def many_to_dict(results: list[CheckResult]) -> dict:
    """One report for one file, or ``{"schema", "passed", "fail_on", "files": [reports]}`` for several."""
    if len(results) == 1:
        return results[0].to_dict()
    return {
        "schema": SCHEMA,
        "passed": all(r.passed for r in results),
        "fail_on": results[0].fail_on,
        "files": [r.to_dict() for r in results],
    }

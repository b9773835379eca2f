"""``imbalance check``: rules -> findings -> exit code, the CI gate in front of training.

A finding has a rule name, a severity (``error`` > ``warning`` > ``info``), a one-line message and,
where it applies, the class (``category_id``, ``category``), ``value``, ``threshold`` and the
annotation ids, image ids and file names involved. The run fails (exit code 1) when a finding is at
or above ``fail_on`` (``error`` by default); bad input or usage is exit code 2.

* :mod:`imbalance_cli.check.rules`: the rules, their settings (TOML rules file) and :func:`run_check`;
* :mod:`imbalance_cli.check.findings`: :class:`Finding`, :class:`CheckResult`, the ``imbalance.check/1`` report.

Rendering (text, JSON, JUnit, GitHub annotations, Markdown) lives in :mod:`imbalance_cli.report.check`.
"""

from imbalance_cli.check.findings import LEVEL, SCHEMA, SEVERITIES, CheckResult, Finding, many_to_dict
from imbalance_cli.check.rules import (
    DEFAULT_RULES,
    GROUP_OF,
    RULE_GROUPS,
    Rules,
    anchor_findings,
    distribution_findings,
    drift_findings,
    label_findings,
    load_baseline,
    load_for_check,
    load_rules,
    run_check,
    structure_findings,
)

__all__ = [
    "LEVEL",
    "SCHEMA",
    "SEVERITIES",
    "CheckResult",
    "Finding",
    "many_to_dict",
    "DEFAULT_RULES",
    "GROUP_OF",
    "RULE_GROUPS",
    "Rules",
    "anchor_findings",
    "distribution_findings",
    "drift_findings",
    "label_findings",
    "load_baseline",
    "load_for_check",
    "load_rules",
    "run_check",
    "structure_findings",
]

"""Fairness audit of a ranked queue and of human decisions, by group and intersection.

The public interface: configure an audit (``AuditConfig``, ``ReferenceGroups``), run it on a
scored set (``audit``, or ``audit_scored`` for a training table), turn the result into a
versioned JSON document (``to_document``, ``JSON_SCHEMA``) and a self-contained HTML report
(``render_html``, ``write_report``), and serve it to researchers (``pseudonymise_document``;
``withhold_crossed`` applies the same disclosure control to other tables of counts).
The modules behind it are private: ``_config`` (settings, tolerances, verdict names),
``_groups`` (attributes, deprivation bands, groupings), ``_statistics`` (intervals, tests,
corrections, verdicts), ``_metrics`` (exact per-group metrics), ``_bootstrap`` (the
stratified or household bootstrap), ``_audit`` (the audit), ``_document`` (the JSON document)
and ``_html`` (the report, from ``templates/report.html.j2``).

Why a gap exists (signal contributions by group) needs the explanations, which sit above
``models``: it lives in ``explain.fairness_gaps``.
"""

from models.fairness._audit import FairnessAudit, audit
from models.fairness._config import (
    CAPACITIES,
    DEFAULT_TOLERANCES,
    DISPARITY,
    ECE_MIN_SIZE,
    ESCALATING,
    HIGH_BANDS,
    HUMAN_TOLERANCE,
    INSUFFICIENT,
    TOLERANCE_VERSION,
    VERDICTS,
    WITHIN,
    AuditConfig,
    ReferenceGroups,
)
from models.fairness._disclosure import withhold_crossed
from models.fairness._document import (
    DEFAULT_MIN_COUNT,
    JSON_SCHEMA,
    SCHEMA,
    SCHEMA_VERSION,
    audit_scored,
    label_gap,
    load_decisions,
    pseudonymise_document,
    records,
    to_document,
    validate_document,
    write_report,
)
from models.fairness._groups import (
    ATTRIBUTES,
    INTERSECTIONS,
    PROTECTED,
    VOICE_GROUPINGS,
    audit_attributes,
    deprivation_band,
    parse_intersection,
)
from models.fairness._html import render_html
from models.fairness._statistics import (
    benjamini_hochberg,
    fisher_exact_p,
    holm,
    verdicts,
    wilson_interval,
)

__all__ = [
    "ATTRIBUTES",
    "CAPACITIES",
    "DEFAULT_MIN_COUNT",
    "DEFAULT_TOLERANCES",
    "DISPARITY",
    "ECE_MIN_SIZE",
    "ESCALATING",
    "HIGH_BANDS",
    "HUMAN_TOLERANCE",
    "INSUFFICIENT",
    "INTERSECTIONS",
    "JSON_SCHEMA",
    "PROTECTED",
    "SCHEMA",
    "SCHEMA_VERSION",
    "TOLERANCE_VERSION",
    "VERDICTS",
    "VOICE_GROUPINGS",
    "WITHIN",
    "AuditConfig",
    "FairnessAudit",
    "ReferenceGroups",
    "audit",
    "audit_attributes",
    "audit_scored",
    "benjamini_hochberg",
    "deprivation_band",
    "fisher_exact_p",
    "holm",
    "label_gap",
    "load_decisions",
    "parse_intersection",
    "pseudonymise_document",
    "records",
    "render_html",
    "to_document",
    "validate_document",
    "verdicts",
    "wilson_interval",
    "withhold_crossed",
    "write_report",
]

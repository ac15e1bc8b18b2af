"""The Algorithmic Transparency Recording Standard record of the champion (Tier 1 and Tier 2).

Sections and fields follow the standard's published template (v3.0: metadata, Tier 1
overview, Tier 2 sections 1 owner and responsibility, 2 description and rationale, 3
decision-making process, 4 tool specification with model and data, 5 risks, mitigations and
impact assessments). What the project knows is generated, with its source; what only a
council can say (who owns it, contacts, volumes, lawful basis, procurement) is marked
``to_complete``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from service.governance.fields import generated, to_complete
from service.governance.sources import Sources

STANDARD_VERSION = "3.0"
TOOL_NAME = "Referral triage: front-door decision support"

ATRS_REQUIRED: tuple[str, ...] = (
    "metadata.standard_version",
    "metadata.date_generated",
    "tier_1.name",
    "tier_1.description",
    "tier_1.website",
    "tier_1.contact_email",
    "tier_1.organisation",
    "tier_1.function",
    "tier_1.phase",
    "tier_1.region",
    "tier_2.owner_and_responsibility.organisation",
    "tier_2.owner_and_responsibility.team",
    "tier_2.owner_and_responsibility.senior_responsible_owner",
    "tier_2.owner_and_responsibility.external_supplier",
    "tier_2.owner_and_responsibility.data_access_terms",
    "tier_2.description_and_rationale.detailed_description",
    "tier_2.description_and_rationale.scope",
    "tier_2.description_and_rationale.benefit",
    "tier_2.description_and_rationale.previous_process",
    "tier_2.description_and_rationale.alternatives_considered",
    "tier_2.decision_making_process.process_integration",
    "tier_2.decision_making_process.provided_information",
    "tier_2.decision_making_process.frequency_and_scale",
    "tier_2.decision_making_process.human_decisions_and_review",
    "tier_2.decision_making_process.required_training",
    "tier_2.decision_making_process.appeals_and_review",
    "tier_2.tool_specification.system_architecture",
    "tier_2.tool_specification.phase",
    "tier_2.tool_specification.maintenance",
    "tier_2.tool_specification.model.name",
    "tier_2.tool_specification.model.version",
    "tier_2.tool_specification.model.task",
    "tier_2.tool_specification.model.inputs",
    "tier_2.tool_specification.model.output",
    "tier_2.tool_specification.model.architecture",
    "tier_2.tool_specification.model.performance",
    "tier_2.tool_specification.model.datasets",
    "tier_2.tool_specification.data.source_data",
    "tier_2.tool_specification.data.sensitive_attributes",
    "tier_2.tool_specification.data.completeness_and_representativeness",
    "tier_2.tool_specification.data.data_sharing_agreements",
    "tier_2.tool_specification.data.access_and_storage",
    "tier_2.risks_and_impact.impact_assessments",
    "tier_2.risks_and_impact.risks_and_mitigations",
)
"""Every field the record must carry (dotted paths), generated or marked for the council."""

CARD = "model card"
CATALOGUE = "signal catalogue"
SERVICE = "the service's design (docs/)"


def atrs_record(sources: Sources, *, today: date) -> dict[str, Any]:
    """The champion's transparency record as plain data (JSON-ready)."""
    card = sources.card
    details = card.get("model_details", {})
    return {
        "metadata": {
            "standard_version": generated(STANDARD_VERSION, "the standard's template"),
            "date_generated": generated(today.isoformat(), "the day this record was generated"),
            "model_version": generated(details.get("version"), CARD),
        },
        "tier_1": _tier_1(card),
        "tier_2": {
            "owner_and_responsibility": _owners(),
            "description_and_rationale": _description(sources),
            "decision_making_process": _process(sources),
            "tool_specification": _specification(sources),
            "risks_and_impact": _risks(sources),
        },
    }


def _tier_1(card: dict[str, Any]) -> dict[str, Any]:
    details = card.get("model_details", {})
    predicts = details.get("predicts") or details.get("outcome") or "the outcome it predicts"
    description = (
        f"{card.get('intended_use', '')} For each open referral it estimates the chance of "
        f"{predicts}, places it in a priority band, and shows the reasons, dated and linked "
        "to the records behind them. A practitioner decides every referral."
    ).strip()
    return {
        "name": generated(TOOL_NAME, SERVICE),
        "description": generated(description, CARD),
        "website": to_complete("The council's page about the tool and its use."),
        "contact_email": to_complete(
            "An email address of the team or contact person responsible for the tool."
        ),
        "organisation": to_complete("The council (or partnership) that uses the tool."),
        "function": generated(
            "Children's social care: triage of referrals at the front door (multi-agency "
            "safeguarding hub)",
            SERVICE,
        ),
        "phase": to_complete(
            "Pre-deployment, pilot, production or retired, as the council runs it. This "
            "repository holds no real case data: it runs only on a synthetic world."
        ),
        "region": to_complete("The area the council serves."),
    }


def _owners() -> dict[str, Any]:
    return {
        "organisation": to_complete("The full name of the council or partnership."),
        "team": to_complete("The team responsible for the tool's use (for example, the MASH)."),
        "senior_responsible_owner": to_complete(
            "The role title of the senior responsible owner (for example, Director of "
            "Children's Services)."
        ),
        "external_supplier": to_complete(
            "Whether a supplier built or runs the tool; its name, Companies House number, role "
            "and the procurement route."
        ),
        "data_access_terms": to_complete(
            "The terms on which any supplier may access the council's data (none when the "
            "council runs the service itself)."
        ),
    }


def _description(sources: Sources) -> dict[str, Any]:
    card = sources.card
    details = card.get("model_details", {})
    bands = details.get("bands", {})
    band_names = ", ".join(str(b) for b in bands.get("names", [])) or "priority bands"
    detailed = (
        f"A {details.get('family', 'calibrated')} model ({details.get('calibration', '')}) "
        f"reads {len(sources.signals)} signals from the catalogue (version "
        f"{details.get('catalogue_version', '?')}): the referral's structured fields, earlier "
        "referrals and decisions, who lives in the household and partner agencies' records, "
        "each counted only if it was shared before the referral arrived. It estimates the "
        f"chance of {details.get('predicts', 'the predicted outcome')} and places each open "
        f"referral in a band ({band_names}). Safety rules place some referrals in a higher "
        "band whatever the score. Exact per-referral contributions (SHAP) are shown as "
        "reasons in words, each dated and linked to its records."
    )
    return {
        "detailed_description": generated(detailed, CARD),
        "scope": generated(
            {
                "intended_use": card.get("intended_use"),
                "out_of_scope_uses": card.get("out_of_scope_uses", []),
            },
            CARD,
        ),
        "benefit": to_complete(
            "The benefit the council expects and how it will measure it (for example, "
            "timeliness of decisions on the referrals most likely to need protection). The "
            "project's own figures come from a synthetic world and say nothing about a "
            "council's data."
        ),
        "previous_process": to_complete("How referrals were prioritised before the tool."),
        "alternatives_considered": generated(
            details.get("choice")
            or "Model families were compared on the validation period; the choice is in the "
            "model card.",
            CARD,
        ),
    }


def _process(sources: Sources) -> dict[str, Any]:
    unknowns = sources.unknowns
    return {
        "process_integration": generated(
            "The tool orders the front door's queue of open referrals and shows, for each, a "
            "suggested band with its reasons. It never decides: a referral leaves the queue "
            "only through a decision a practitioner records, with a rationale, and the "
            "practitioner's own priority is asked before or beside the suggestion.",
            SERVICE,
        ),
        "provided_information": generated(
            {
                "shown": [
                    "a priority band and the chance of the predicted outcome in words",
                    "reasons in words, dated, linked to the records behind them",
                    "the child's history across agencies and who lives in the household",
                    "what the model does not know",
                ],
                "what_the_model_does_not_know": unknowns.get("summary"),
            },
            "the referral page and what the model does not know",
        ),
        "frequency_and_scale": to_complete(
            "How many referrals a year the front door receives and how many are scored."
        ),
        "human_decisions_and_review": generated(
            "Every referral is decided by a practitioner; disagreeing and agreeing carry the "
            "same effort. Practitioners can dispute a record and see the score without it, "
            "confirm or reject a possible match of two children's records (never merged "
            "automatically), and reopen a decision. Every score, view, decision and export "
            "is in a hash-chained audit log.",
            SERVICE,
        ),
        "required_training": to_complete(
            "The training practitioners and managers receive before using the tool."
        ),
        "appeals_and_review": to_complete(
            "How a family or a professional can ask for a decision to be reviewed (the "
            "council's complaints and review routes). The service supports this with record "
            "disputes, reopening, and a chronology of everything the tool showed."
        ),
    }


def _specification(sources: Sources) -> dict[str, Any]:
    card = sources.card
    details = card.get("model_details", {})
    evaluation = card.get("evaluation_data", {})
    training = card.get("training_data", {})
    return {
        "system_architecture": generated(
            "A web service (FastAPI) with a relational store (SQLite or PostgreSQL): referral "
            "systems post referrals and agency records through a versioned REST API; a feature "
            "layer builds the signals; the registered champion model (MLflow) scores each "
            "referral at intake; practitioners use server-rendered pages.",
            SERVICE,
        ),
        "phase": to_complete("The deployment phase, as in Tier 1."),
        "maintenance": generated(
            {
                "promotion_gates": [
                    {k: gate.get(k) for k in ("gate", "passed", "value", "limit", "detail")}
                    for gate in sources.gates
                ],
                "rule": "A retrained model replaces the champion only when every promotion "
                "gate passes, including the priority policy "
                f"({sources.policy_version}).",
            },
            "promotion gates",
        ),
        "model": {
            "name": generated(details.get("name"), CARD),
            "version": generated(details.get("version"), CARD),
            "task": generated(
                f"Estimate the chance of {details.get('predicts', 'the outcome')} for a "
                "referral (binary classification, calibrated probability), to rank open "
                "referrals.",
                CARD,
            ),
            "inputs": generated(
                [{"signal": s["signal"], "reads as": s["reads as"]} for s in sources.signals],
                CATALOGUE,
            ),
            "output": generated(
                "A probability with an interval, a band, and each signal's contribution.",
                CARD,
            ),
            "architecture": generated(
                {
                    "family": details.get("family"),
                    "calibration": details.get("calibration"),
                    "bands": details.get("bands"),
                },
                CARD,
            ),
            "performance": generated(
                {"metrics": card.get("metrics", {}), "evaluation_data": evaluation}, CARD
            ),
            "datasets": generated(
                {
                    "training": training,
                    "note": "Synthetic: generated to match published national figures. A "
                    "council must validate on its own records before any use.",
                },
                CARD,
            ),
        },
        "data": {
            "source_data": generated(
                "Referrals (child's details, referrer, concerns, injury), agency records from "
                "police, health, schools, housing and social care with when they occurred and "
                "when they were shared, household memberships, front-door decisions.",
                "the extract format (docs/reference/extract-format.md)",
            ),
            "sensitive_attributes": generated(
                {
                    "audited_groups": card.get("factors", {}).get("audited_groups", []),
                    "protected_attributes_are_inputs": card.get("factors", {}).get(
                        "protected_attributes_are_inputs"
                    ),
                },
                CARD,
            ),
            "completeness_and_representativeness": to_complete(
                "How complete and representative the council's own records are (for example, "
                "ethnicity not stated, agencies not linked)."
            ),
            "data_sharing_agreements": to_complete(
                "The agreements under which each partner agency shares its records."
            ),
            "access_and_storage": generated(
                "Role-based access (default deny: practitioner, manager, researcher, admin; "
                "API keys bound to a source system and agencies); researchers see pseudonymised, "
                "small-count-suppressed exports only; every view and export is audited. Where "
                "the data is hosted and for how long it is kept are the council's to state.",
                SERVICE,
            ),
        },
    }


def _risks(sources: Sources) -> dict[str, Any]:
    card = sources.card
    fairness = sources.fairness or {}
    summary = fairness.get("summary", {}) if isinstance(fairness, dict) else {}
    return {
        "impact_assessments": generated(
            [
                {
                    "assessment": "Data protection impact assessment",
                    "status": "draft generated by `triage governance dpia`; the council "
                    "completes and signs it off",
                },
                {
                    "assessment": "Equality impact assessment",
                    "status": "draft generated by `triage governance eqia`; the council "
                    "completes and signs it off",
                },
            ],
            "governance commands",
        ),
        "risks_and_mitigations": generated(
            {
                "risks": card.get("ethical_considerations", []),
                "caveats": card.get("caveats", []),
                "fairness_audit": summary.get("sentences", []),
                "fairness_verdicts": summary.get("verdicts", {}),
                "priority_policy": [
                    f"{row['signal']}: {row['rule'].replace('_', ' ')} ({row['why']})"
                    for row in sources.policy
                ],
            },
            "model card, fairness audit and priority policy",
        ),
    }

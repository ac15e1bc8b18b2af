"""Pre-filled drafts of the data protection and equality impact assessments.

The DPIA follows the ICO's template (need, processing, scope, context, purposes,
consultation, necessity and proportionality, risks, measures, sign-off) and adds how the
service meets the safeguards the Data (Use and Access) Act 2025 attaches to automated
decision-making (information, representations, human intervention, contest). The EqIA goes
through the Equality Act 2010's protected characteristics, with socio-economic disadvantage
as councils usually add it. Data flows and categories come from the store's tables, risks from
the model card and the fairness audit; lawful basis, retention, consultation, likelihoods and
sign-off are the council's (``to_complete``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from service.governance.fields import generated, to_complete
from service.governance.sources import Sources
from triage.security import USER_ROLES
from triage.store.tables import Base

DPIA_REQUIRED: tuple[str, ...] = (
    "need.why",
    "processing.data_flows",
    "processing.data_categories",
    "processing.sources",
    "processing.recipients",
    "processing.retention.configured",
    "processing.retention.decision",
    "scope.volumes",
    "scope.geography",
    "context.data_subjects",
    "context.concerns",
    "purposes.purpose",
    "consultation.who",
    "necessity_and_proportionality.lawful_basis",
    "necessity_and_proportionality.special_category_condition",
    "necessity_and_proportionality.minimisation",
    "necessity_and_proportionality.accuracy",
    "automated_decisions.solely_automated",
    "automated_decisions.information",
    "automated_decisions.representations",
    "automated_decisions.human_intervention",
    "automated_decisions.contest",
    "risks.identified",
    "risks.likelihood_and_severity",
    "measures.mitigations",
    "sign_off.dpo_advice",
    "sign_off.approved_by",
)
"""Every field the DPIA draft carries (dotted paths)."""

_CATEGORIES: dict[str, str] = {
    "given_name": "identifying details",
    "family_name": "identifying details",
    "date_of_birth": "identifying details",
    "postcode": "identifying details",
    "nhs_number": "identifying details",
    "school": "identifying details",
    "source_person_id": "identifying details",
    "ethnicity": "special category: racial or ethnic origin",
    "disability": "special category: health",
    "injury_sites": "special category: health",
    "deprivation_decile": "socio-economic circumstances",
    "concerns": "children's social care: concerns about a child",
    "narrative": "children's social care: free text from the referrer",
    "rationale": "children's social care: practitioners' reasoning",
    "attributes": "agency records' details (police records may be criminal offence data)",
    "kind": "agency records: what happened (including health and police records)",
    "probability": "derived: the model's estimate",
    "reasons": "derived: the model's reasons",
    "username": "staff: who signs in",
    "decided_by": "staff: who decided",
    "actor": "staff or system: who acted",
}

_CHARACTERISTICS: tuple[tuple[str, str | None], ...] = (
    ("age", "age_band"),
    ("disability", "disability"),
    ("gender reassignment", None),
    ("marriage and civil partnership", None),
    ("pregnancy and maternity", None),
    ("race", "ethnicity"),
    ("religion or belief", None),
    ("sex", "sex"),
    ("sexual orientation", None),
    ("socio-economic disadvantage (as councils usually add)", "deprivation_decile"),
)
"""Each characteristic and the audit's grouping that measures it (None: not recorded)."""


def data_categories() -> list[dict[str, Any]]:
    """Per stored table, the categories of personal data its columns hold."""
    rows = []
    for table in Base.metadata.sorted_tables:
        found = sorted({_CATEGORIES[c.name] for c in table.columns if c.name in _CATEGORIES})
        if found:
            rows.append({"table": table.name, "categories": found})
    return rows


def dpia_draft(sources: Sources, *, today: date) -> dict[str, Any]:
    """The DPIA, pre-filled where the project knows the answer."""
    card = sources.card
    return {
        "metadata": {
            "document": generated("Data protection impact assessment (draft)", "this command"),
            "date_generated": generated(today.isoformat(), "the day this draft was generated"),
            "model_version": generated(card.get("model_details", {}).get("version"), "model card"),
        },
        "need": {
            "why": generated(
                "Large-scale processing of children's data, including special category data "
                "(health, ethnicity) and police records, with profiling that informs decisions "
                "about children: a DPIA is required before processing (UK GDPR Article 35; "
                "the ICO's list of processing likely to result in high risk).",
                "the store's data categories",
            )
        },
        "processing": {
            "data_flows": generated(
                [
                    "Referral systems post referrals and partner agencies post records to the "
                    "service's API (keys bound to a source system and agencies).",
                    "The service stores them, resolves each child's identity across agencies "
                    "(a probabilistic linker; uncertain matches go to a practitioner), builds "
                    "signals from records shared before the referral, and scores it.",
                    "Practitioners and managers see the queue, referral pages and decisions; "
                    "researchers see pseudonymised, small-count-suppressed audits.",
                    "Every score, view, decision and export is written to a hash-chained audit "
                    "log.",
                ],
                "the service's design (docs/)",
            ),
            "data_categories": generated(data_categories(), "the store's tables"),
            "sources": generated(
                "Police, health, schools, housing, social care and other referrers (including "
                "relatives and members of the public).",
                "the extract format and the API",
            ),
            "recipients": generated(
                {
                    "roles": list(USER_ROLES),
                    "rule": "default deny: each route names the roles that may use it",
                },
                "triage.security",
            ),
            "retention": {
                "configured": (
                    generated(
                        sources.retention,
                        "the service's settings (`TRIAGE_RETENTION_*`), enforced by "
                        "`triage retention apply`; open work is never removed",
                    )
                    if sources.retention
                    else to_complete(
                        "How long each kind of record is kept (referrals, agency records, "
                        "decisions, scores, audit log)."
                    )
                ),
                "decision": to_complete(
                    "Whether these periods are the council's: its retention schedule for "
                    "children's social care records and the legal basis for each period. "
                    "The periods above are settings, not a lawful decision."
                ),
            },
        },
        "scope": {
            "volumes": to_complete("Referrals and agency records a year; children affected."),
            "geography": to_complete("The area the council serves."),
        },
        "context": {
            "data_subjects": generated(
                "Children referred to the front door, the adults in their households, "
                "referrers, and staff.",
                "the store's tables",
            ),
            "concerns": generated(
                card.get("ethical_considerations", []), "model card (ethical considerations)"
            ),
        },
        "purposes": {"purpose": generated(card.get("intended_use"), "model card")},
        "consultation": {
            "who": to_complete(
                "Who was consulted (practitioners, families or their advocates, partner "
                "agencies, the DPO) and what changed as a result."
            )
        },
        "necessity_and_proportionality": {
            "lawful_basis": to_complete(
                "The Article 6 lawful basis the council relies on, with its legal duty."
            ),
            "special_category_condition": to_complete(
                "The Article 9 condition (and DPA 2018 Schedule 1 condition) for special "
                "category data, and the Article 10 basis for criminal offence data."
            ),
            "minimisation": generated(
                [
                    "Protected characteristics are not model inputs; they are used only to "
                    "audit fairness.",
                    "The referral's narrative text is stored for practitioners and never read "
                    "by the model.",
                    f"The model reads {len(sources.signals)} signals, each documented in the "
                    "catalogue; records shared after a referral arrived never count for it.",
                ],
                "signal catalogue and model card",
            ),
            "accuracy": generated(
                "Practitioners can dispute a record and see the score without it; uncertain "
                "identity matches are decided by a person and any merge can be undone.",
                "the service's design (docs/)",
            ),
        },
        "automated_decisions": _automated_decisions(),
        "risks": {
            "identified": generated(_risks(sources), "model card and fairness audit"),
            "likelihood_and_severity": to_complete(
                "For each risk: likelihood, severity and overall rating, as the council judges."
            ),
        },
        "measures": {
            "mitigations": generated(
                [
                    "A practitioner records every decision; the tool never decides.",
                    "Agreeing with the suggestion is never the path of least effort.",
                    f"The priority policy ({sources.policy_version}): who referred and repeated "
                    "concerns never lower priority; protected characteristics are not inputs.",
                    "Promotion gates: a model replaces the champion only when every gate passes.",
                    "Fairness audits of the model and of human decisions, with small counts "
                    "suppressed.",
                    "Roles default to deny; every view and export is audited.",
                ],
                "the service's design (docs/)",
            )
        },
        "sign_off": {
            "dpo_advice": to_complete("The data protection officer's advice and date."),
            "approved_by": to_complete("Who approved the residual risks, and when."),
        },
    }


def _automated_decisions() -> dict[str, Any]:
    """The Data (Use and Access) Act 2025 safeguards, and how the service meets each."""
    source = "the service's design (docs/)"
    return {
        "solely_automated": generated(
            "No decision is taken solely by automated processing: a practitioner decides every "
            "referral, and a referral leaves the queue only through that recorded decision. "
            "The safeguards below are met all the same, since the score informs a significant "
            "decision about a child.",
            source,
        ),
        "information": generated(
            "The transparency record (`triage governance atrs`) describes the tool; each "
            "referral page shows the band, reasons in words with their dates and records, and "
            "what the model does not know.",
            source,
        ),
        "representations": generated(
            "A practitioner can dispute any record behind a score and see the score without "
            "it; how a family or referrer makes representations is the council's process "
            "(to complete in the appeals section).",
            source,
        ),
        "human_intervention": generated(
            "Every decision is a practitioner's, with a rationale; managers review "
            "disagreements and overrides.",
            source,
        ),
        "contest": generated(
            "A decided referral can be reopened with a reason; the audit log and the "
            "referral's chronology show exactly what the tool said at the time.",
            source,
        ),
    }


def _risks(sources: Sources) -> list[str]:
    fairness = sources.fairness or {}
    sentences: Iterable[str] = fairness.get("summary", {}).get("sentences", [])
    return [
        *sources.card.get("ethical_considerations", []),
        "A false identity match brings another child's history into a referral: uncertain "
        "matches go to a practitioner, never merged automatically, and merges can be undone.",
        *sentences,
    ]


EQIA_REQUIRED: tuple[str, ...] = (
    *(f"characteristics.{name}" for name, _ in _CHARACTERISTICS),
    "evidence.fairness_audit",
    "mitigations.design",
    "decision.outcome",
    "decision.approved_by",
)
"""Every field the EqIA draft carries (dotted paths)."""


def eqia_draft(sources: Sources, *, today: date) -> dict[str, Any]:
    """The EqIA, one entry per protected characteristic, with the audit's evidence."""
    audited = set(sources.card.get("factors", {}).get("audited_groups", []))
    fairness = sources.fairness or {}
    sentences = list(fairness.get("summary", {}).get("sentences", []))
    characteristics = {}
    for name, grouping in _CHARACTERISTICS:
        if grouping is not None and grouping in audited:
            words = grouping.replace("_", " ")
            evidence = [s for s in sentences if words in s.lower() or grouping in s]
            characteristics[name] = generated(
                {
                    "recorded": True,
                    "audited_as": grouping,
                    "an_input_to_the_model": False,
                    "evidence": evidence
                    or ["The audit found no difference to report for this grouping."],
                },
                "fairness audit",
            )
        else:
            characteristics[name] = to_complete(
                "Not recorded in the service's data, so the audit cannot assess it: say how "
                "the council will assess the impact (for example, practitioners' feedback, "
                "complaints, a sample review)."
            )
    return {
        "metadata": {
            "document": generated("Equality impact assessment (draft)", "this command"),
            "date_generated": generated(today.isoformat(), "the day this draft was generated"),
        },
        "characteristics": characteristics,
        "evidence": {
            "fairness_audit": generated(
                {
                    "verdicts": fairness.get("summary", {}).get("verdicts", {}),
                    "sentences": sentences,
                },
                "fairness audit",
            )
            if fairness
            else to_complete(
                "No publishable fairness audit was logged with the champion: run `triage "
                "audit` and attach its published findings."
            ),
        },
        "mitigations": {
            "design": generated(
                [
                    "Protected characteristics are not model inputs.",
                    "Promotion gates compare calibration across groups.",
                    "Who referred never lowers priority (relatives' concerns count).",
                    "Human decisions are audited by group as well as the model.",
                ],
                "priority policy, promotion gates and fairness audit",
            ),
        },
        "decision": {
            "outcome": to_complete(
                "Proceed, adjust, or stop, with the reasons (the Public Sector Equality Duty)."
            ),
            "approved_by": to_complete("Who approved this assessment, and when."),
        },
    }

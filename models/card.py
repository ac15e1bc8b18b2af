"""The model card (after Mitchell et al., 2019), as JSON and Markdown, from a training result."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from features.policy import POLICY_VERSION, policy_rows
from models.splits import EXCLUDED, TEST, TRAIN, VALIDATION

if TYPE_CHECKING:
    from models.train import TrainResult

HEADLINE = ("auc", "pr_auc", "brier", "calibration_slope", "calibration_intercept", "ece",
            "precision_at_10", "recall_at_10", "fnr_at_10")  # fmt: skip


def _clean(value: object) -> object:
    """JSON-safe numbers (NaN becomes null)."""
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else round(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    return value


def model_card(result: TrainResult) -> dict[str, Any]:
    """The card's sections as plain data."""
    data, scorer = result.data, result.scorer
    split_counts = data.split.value_counts().to_dict()
    test_ids = data.part(TEST)
    card = {
        "model_details": {
            "name": "referral-triage",
            "version": scorer.version,
            "family": scorer.family,
            "choice": result.reason,
            "outcome": scorer.outcome,
            "predicts": scorer.outcome_words,
            "catalogue_version": scorer.catalogue_version,
            "calibration": "Platt scaling on the validation period (keeps contributions additive)",
            "bands": scorer.bands.to_dict(),
        },
        "intended_use": (
            "Ranking open referrals at a multi-agency front door so that practitioners review the "
            "highest-priority ones first. It supports professional judgement: every referral "
            "leaves the queue only through a recorded human decision."
        ),
        "out_of_scope_uses": [
            "Deciding any outcome for a child or family without a practitioner's decision.",
            "Screening families who have not been referred, or any population but referrals.",
            "Comparing or rating practitioners, teams or councils.",
            "Use on real case data without a new validation on that council's own records.",
        ],
        "factors": {
            "audited_groups": ["ethnicity", "sex", "disability", "deprivation_decile", "age_band"],
            "protected_attributes_are_inputs": False,
        },
        "metrics": {
            name: {
                "estimate": _clean(result.intervals.at[name, "estimate"]),
                "lower": _clean(result.intervals.at[name, "lower"]),
                "upper": _clean(result.intervals.at[name, "upper"]),
            }
            for name in result.intervals.index
        },
        "evaluation_data": {
            "period": "the latest referrals by time (test split)",
            "referrals": int(split_counts.get(TEST, 0)),
            "from": str(data.received_at.loc[test_ids].min()),
            "to": str(data.received_at.loc[test_ids].max()),
            "base_rate": _clean(float(data.label.loc[test_ids].mean())),
            "interval_method": "household cluster bootstrap, 95% percentile intervals",
        },
        "training_data": {
            "referrals": {
                TRAIN: int(split_counts.get(TRAIN, 0)),
                VALIDATION: int(split_counts.get(VALIDATION, 0)),
                EXCLUDED: int(split_counts.get(EXCLUDED, 0)),
            },
            "split": "by time, then by household: no family appears on both sides of any split",
            "fingerprint_sha256": data.fingerprint,
            "synthetic": True,
        },
        "quantitative_analyses": {
            attribute: {
                str(group): {k: _clean(v) for k, v in row.items()}
                for group, row in table.to_dict(orient="index").items()
            }
            for attribute, table in result.groups.items()
        },
        "selective_labels": (
            None
            if result.label_gap is None
            else {
                k: {c: _clean(v) for c, v in row.items()}
                for k, row in result.label_gap.to_dict(orient="index").items()
            }
        ),
        "priority_policy": {
            "version": POLICY_VERSION,
            "rules": policy_rows(),
            "how": (
                "Every family is monotone in each signal the catalogue gives a direction. "
                "Signals under 'never lowers' have their contribution measured from 'none' (no "
                "such record), so their contribution is zero or more; signals under 'not an "
                "input' are not read by any model. A promotion gate per signal checks both on "
                "the test period."
            ),
        },
        "label_choice": {
            **result.label_choice,
            "why": (
                "The model predicts the outcome of this referral: a child protection plan "
                "arising from it. 'A plan within 12 months' is also met by a plan that arises "
                "from an earlier referral still being assessed, so under that label a referral "
                "made days after another counts as positive whatever it reports, and recency "
                "becomes the strongest reason. The figures compare, on the test period, how "
                "much an already-open case (an earlier referral within the open-case days) "
                "accounts for under each observed label."
            ),
            "consequences": [
                "A referral about a child whose case is already open is still scored on its "
                "own; its reasons name the recent earlier referral and its date, and the "
                "practitioner sees the child's other open referrals beside it.",
                "Harm that the earlier referral's plan already addresses is not credited to "
                "this referral, so its probability can be lower than under the 12-month label.",
                "The 12-month label stays available (triage train --outcome "
                "significant_harm_12m) for comparison.",
            ],
        },
        "sharing_delays": _delays_section(result.delay_cost),
        "promotion_gates": [g.to_dict() for g in result.gates],
        "ethical_considerations": [
            "The observed outcome exists only where a family was investigated (selective labels): "
            "the model learns past system actions as well as harm.",
            "More deprived families have more recorded agency contact whatever the harm "
            "(surveillance bias); signals built from contact counts carry that bias.",
            "Scores must be shown with band, reasons, uncertainty and records, never bare.",
            "Historic decisions weighed relatives' and other individuals' concerns less than "
            "professionals' (the national review's finding), so the observed label records "
            "their children's harm less often; the priority policy stops the model learning "
            "that who referred, or a repeated concern, lowers priority.",
        ],
        "caveats": [
            "Trained and evaluated on a synthetic world calibrated to published national figures; "
            "its performance says nothing about any real council's data.",
            "What the model does not know: the conversation with the family, anything not "
            "recorded, "
            "records held by agencies not linked to the front door.",
        ],
    }
    return card


def _delays_section(cost: dict[str, Any]) -> dict[str, Any] | None:
    """What records shared late cost the ranking (None for a result measured without it)."""
    if not cost:
        return None
    late = int(cost["events_recorded_late"])
    return {
        **{k: _clean(v) for k, v in cost.items()},
        "how": (
            "A signal counts an agency record only once it was recorded (shared), as the "
            "service does at the front door. Test AUC against the "
            f"{cost['against']}, with the chosen family trained and tested on features as of "
            "recorded_at, and again as of occurred_at: as if every record had been shared the "
            "moment it happened."
            + (
                ""
                if late
                else " No event of this extract was recorded after it occurred, so the two "
                "are the same and the delays cost nothing here."
            )
        ),
    }


def card_json(result: TrainResult) -> str:
    """The card as indented JSON."""
    return json.dumps(model_card(result), indent=2, default=str)


def card_markdown(result: TrainResult) -> str:
    """The card as Markdown for people."""
    card = model_card(result)
    d = card["model_details"]
    pairs = zip(d["bands"]["names"], d["bands"]["thresholds"], strict=False)
    bands = ", ".join(f"{name} ≥ {threshold:.3f}" for name, threshold in pairs)
    lines = [
        f"# Model card: {d['name']} ({d['version']})",
        "",
        "## Model details",
        f"- Family: **{d['family']}**. {d['choice']}.",
        f"- Predicts: {d['predicts']} (`{d['outcome']}`).",
        f"- Signal catalogue version {d['catalogue_version']}; calibration: {d['calibration']}.",
        f"- Bands: {bands}; otherwise Lower.",
        "",
        "## Intended use",
        card["intended_use"],
        "",
        "## Out-of-scope uses",
        *(f"- {u}" for u in card["out_of_scope_uses"]),
        "",
        "## Factors",
        "Audited groups: "
        + ", ".join(card["factors"]["audited_groups"])
        + ". None is a model input.",
        "",
        "## Metrics (test period, 95% household-bootstrap intervals)",
        "| metric | estimate | interval |",
        "|---|---|---|",
        *(
            "| {0} | {1[estimate]} | {1[lower]} – {1[upper]} |".format(m, card["metrics"][m])
            for m in HEADLINE
            if m in card["metrics"]
        ),
        "",
        "## Evaluation data",
        *(f"- {k}: {v}" for k, v in card["evaluation_data"].items()),
        "",
        "## Training data",
        *(f"- {k}: {v}" for k, v in card["training_data"].items()),
        "",
        "## Quantitative analyses by group",
    ]
    for attribute, groups in card["quantitative_analyses"].items():
        lines += [
            f"### {attribute}",
            "| group | n | base rate | mean score | AUC | selected (top 10%) |",
            "|---|---|---|---|---|---|",
        ]
        for group, row in groups.items():
            if row.get("suppressed"):
                lines.append(f"| {group} | {row['n']} | suppressed (small group) | | | |")
            else:
                cells = [row[k] for k in ("n", "base_rate", "mean_score", "auc", "selection_rate")]
                lines.append(f"| {group} | " + " | ".join(map(str, cells)) + " |")
    if card["selective_labels"]:
        lines += ["", "## Selective labels: observed outcome against the latent truth (synthetic)",
                  "| metric | observed | truth | gap |", "|---|---|---|---|"]  # fmt: skip
        for metric in HEADLINE:
            row = card["selective_labels"].get(metric)
            if row:
                lines.append(f"| {metric} | {row['observed']} | {row['truth']} | {row['gap']} |")
    policy = card["priority_policy"]
    lines += ["", f"## Priority policy ({policy['version']})", policy["how"], "",
              "| signal | rule | why |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {r['signal']} | {r['rule'].replace('_', ' ')} | {r['why']} |"
              for r in policy["rules"]]  # fmt: skip
    lines += _label_choice_lines(card["label_choice"])
    delays = card["sharing_delays"]
    if delays:
        lines += ["", "## What sharing delays cost", delays["how"], "",
                  "| events recorded late | test AUC, as recorded | test AUC, if no delays "
                  "| cost |", "|---|---|---|---|",
                  f"| {delays['events_recorded_late']} | {delays['auc_as_recorded']} | "
                  f"{delays['auc_if_no_delays']} | {delays['cost']} |"]  # fmt: skip
    lines += ["", "## Promotion gates", "| gate | passed | value | limit |", "|---|---|---|---|"]
    lines += [
        f"| {g['gate']} | {g['passed']} | {g['value']:.4f} | {g['limit']} |"
        for g in card["promotion_gates"]
    ]
    lines += ["", "## Ethical considerations", *(f"- {e}" for e in card["ethical_considerations"])]
    lines += ["", "## Caveats", *(f"- {c}" for c in card["caveats"])]
    return "\n".join(lines) + "\n"


def _label_choice_lines(choice: dict[str, Any]) -> list[str]:
    """The label choice section: why, the measured figures per label, the consequences."""
    lines = ["", "## The label: this referral's own outcome", choice["why"], ""]
    if choice.get("labels"):
        lines += [
            f"Test period: {choice['test_referrals_on_an_open_case']} of referrals, and "
            f"{choice['top_tenth_on_an_open_case']} of the model's top tenth, follow an earlier "
            f"referral within {choice['open_case_days']} days.",
            "",
            "| label | base rate | positives on an open case | AUC | AUC without open cases "
            "| AUC of recency alone |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in choice["labels"].items():
            chosen = " (chosen)" if name == choice["chosen"] else ""
            lines.append(
                f"| {row['words']}{chosen} | {row['base_rate']} | "
                f"{row['positives_on_an_open_case']} | {row['auc']} | "
                f"{row['auc_without_open_cases']} | {row['auc_recency_alone']} |"
            )
    lines += ["", *(f"- {c}" for c in choice["consequences"])]
    return lines

"""The linkage model's specification: input columns, comparisons and blocking rules.

Blocking rules (which record pairs are scored at all; a pair is scored when ANY rule holds):

1. the same NHS number;
2. the same family name and date of birth;
3. the same given name and date of birth (a surname change);
4. the same given name and family name (a wrong or missing date of birth);
5. the same postcode and date of birth (both names typed differently);
6. the same postcode and given name (a wrong date of birth and a new surname);
7. the same postcode and family name (a nickname and a wrong date of birth).

Names are compared after normalising (lower case, letters only). A pair that no rule admits
is never a match: a person whose name, date of birth and postcode all differ between two
records, with no shared NHS number, is not found (the recall measured says how often).

Comparisons (the first level that holds is the pair's level for that field):

* given name: missing, exact, variant (nickname or spelling: ``triage.identity.names``),
  Damerau-Levenshtein distance <= 1, Jaro-Winkler >= 0.88, differs;
* family name: missing, exact, Damerau-Levenshtein <= 1, Jaro-Winkler >= 0.88, differs;
* date of birth: missing, exact, day and month swapped, one of day/month/year differs, differs;
* sex: missing (or ``unknown``), exact, differs;
* postcode: missing, exact, sector, district, area, differs;
* NHS number: missing, exact, differs;
* school: missing, exact, differs.
"""

from __future__ import annotations

from typing import Any

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import SettingsCreator, block_on

# Evidence labels by comparison, from the highest level down to "differs"; -1 is "missing".
LEVEL_LABELS: dict[str, tuple[str, ...]] = {
    "given_name": ("exact", "variant", "typo", "similar", "differs"),
    "family_name": ("exact", "typo", "similar", "differs"),
    "date_of_birth": ("exact", "day_month_swapped", "one_part_differs", "differs"),
    "sex": ("exact", "differs"),
    "postcode": ("exact", "sector", "district", "area", "differs"),
    "nhs_number": ("exact", "differs"),
    "school": ("exact", "differs"),
}
COMPARED_FIELDS: tuple[str, ...] = tuple(LEVEL_LABELS)
GIVEN_NAME_DIFFERS = 0
"""The given-name comparison's value (gamma) when the names clearly differ."""
DOB_DIFFERS = 0
"""The birth-date comparison's value when both dates are there and no level explains the
difference (not a swap, not one part)."""
NHS_DIFFERS = 0
"""The NHS-number comparison's value when both numbers are there and differ."""


def evidence_label(field: str, gamma: int) -> str:
    """The evidence word for a field's comparison value (gamma): ``exact`` ... ``missing``."""
    if gamma < 0:
        return "missing"
    labels = LEVEL_LABELS[field]
    return labels[len(labels) - 1 - gamma]


def _one_part_differs() -> str:
    same = [f"dob_{p}_l = dob_{p}_r" for p in ("y", "m", "d")]
    pairs = [
        f"({a} AND {b})" for a, b in ((same[0], same[1]), (same[0], same[2]), (same[1], same[2]))
    ]
    return " OR ".join(pairs)


def comparisons() -> list[Any]:
    """The model's comparisons, one per compared field (the module docstring lists levels)."""
    given = cl.CustomComparison(
        output_column_name="given_name",
        comparison_levels=[
            cll.NullLevel("given_name"),
            cll.ExactMatchLevel("given_name").configure(label_for_charts="exact"),
            cll.ArrayIntersectLevel("given_groups", 1).configure(label_for_charts="variant"),
            cll.DamerauLevenshteinLevel("given_name", 1).configure(label_for_charts="typo"),
            cll.JaroWinklerLevel("given_name", 0.88).configure(label_for_charts="similar"),
            cll.ElseLevel().configure(label_for_charts="differs"),
        ],
    )
    family = cl.CustomComparison(
        output_column_name="family_name",
        comparison_levels=[
            cll.NullLevel("family_name"),
            cll.ExactMatchLevel("family_name").configure(label_for_charts="exact"),
            cll.DamerauLevenshteinLevel("family_name", 1).configure(label_for_charts="typo"),
            cll.JaroWinklerLevel("family_name", 0.88).configure(label_for_charts="similar"),
            cll.ElseLevel().configure(label_for_charts="differs"),
        ],
    )
    dob = cl.CustomComparison(
        output_column_name="date_of_birth",
        comparison_levels=[
            cll.NullLevel("date_of_birth"),
            cll.ExactMatchLevel("date_of_birth").configure(label_for_charts="exact"),
            cll.CustomLevel(
                "dob_y_l = dob_y_r AND dob_m_l = dob_d_r AND dob_d_l = dob_m_r",
                label_for_charts="day_month_swapped",
            ),
            cll.CustomLevel(_one_part_differs(), label_for_charts="one_part_differs"),
            cll.ElseLevel().configure(label_for_charts="differs"),
        ],
    )
    return [
        given,
        family,
        dob,
        cl.ExactMatch("sex"),
        cl.PostcodeComparison("postcode"),
        cl.ExactMatch("nhs_number"),
        cl.ExactMatch("school"),
    ]


BLOCKING_KEYS: tuple[tuple[str, ...], ...] = (
    ("nhs_number",),
    ("family_name", "date_of_birth"),
    ("given_name", "date_of_birth"),
    ("given_name", "family_name"),
    ("postcode", "date_of_birth"),
    ("postcode", "given_name"),
    ("postcode", "family_name"),
)
"""The blocking rules' columns (the module docstring explains them), in the prepared frame."""


def blocking_rules() -> list[Any]:
    """The rules that choose which pairs are scored: equal values on each of BLOCKING_KEYS."""
    return [block_on(*keys) for keys in BLOCKING_KEYS]


def settings() -> SettingsCreator:
    """An untrained Splink model for deduplicating identity records."""
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_id",
        comparisons=comparisons(),
        blocking_rules_to_generate_predictions=blocking_rules(),
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
        additional_columns_to_retain=[],
    )

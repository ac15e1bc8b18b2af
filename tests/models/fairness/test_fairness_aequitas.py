"""Cross-check with aequitas: its group and disparity tables equal the audit's, where defined alike.

aequitas reads a binary decision (here: in the top 10% of the queue) and a label. Its group
metrics (prevalence, predicted prevalence, PPR, precision, FPR, FNR, FDR, FOR, group size)
and its disparities (the ratio of a group's metric to the reference group's) are defined as
the audit's. Its significance tests are not compared: for FPR and FNR they condition on the
selected set, the audit's tests do not (see docs/concepts/fairness.md).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

aequitas_group = pytest.importorskip("aequitas.group")
aequitas_bias = pytest.importorskip("aequitas.bias")

OURS_TO_AEQUITAS = {
    "base_rate": "prev",
    "selection_rate_at_10": "pprev",
    "precision_at_10": "precision",
    "fpr_at_10": "fpr",
    "fnr_at_10": "fnr",
    "fdr_at_10": "fdr",
    "for_at_10": "for",
}


@pytest.mark.parametrize("grouping", ["ethnicity", "sex", "deprivation_band"])
def test_group_and_disparity_tables_equal_aequitas(small_audit, grouping) -> None:
    y, p, attributes, result = small_audit
    frame = pd.DataFrame(
        {
            "score": (p >= result.thresholds[10]).astype(int),
            "label_value": y.astype(int),
            # aequitas checks for object columns; pandas 3 reads strings as its own dtype.
            grouping: attributes[grouping].astype(object),
        }
    )
    crosstab, _ = aequitas_group.Group().get_crosstabs(frame)
    reference = result.references[grouping]["group"]
    bias = aequitas_bias.Bias().get_disparity_predefined_groups(
        crosstab,
        original_df=frame,
        ref_groups_dict={grouping: reference},
        alpha=0.05,
        check_significance=False,
    )
    theirs = bias.set_index("attribute_value")
    ours = result.metrics.query(f"grouping == '{grouping}' and label == 'observed'")
    for metric, column in OURS_TO_AEQUITAS.items():
        mine = ours[ours["metric"] == metric].set_index("group")["estimate"]
        np.testing.assert_allclose(mine, theirs.loc[mine.index, column], rtol=0, atol=1e-12)
    sizes = result.groups.query(f"grouping == '{grouping}'").set_index("group")["n"]
    np.testing.assert_array_equal(sizes, theirs.loc[sizes.index, "group_size"])
    ranking = result.ranking.query(f"grouping == '{grouping}'").set_index("group")
    np.testing.assert_allclose(
        ranking["share_of_top_10"], theirs.loc[ranking.index, "ppr"], rtol=0, atol=1e-12
    )
    # Disparities: a group's metric over the reference group's, as the audit's ratios.
    comparisons = result.comparisons.query(f"grouping == '{grouping}' and label == 'observed'")
    checked = 0
    for metric, column in OURS_TO_AEQUITAS.items():
        if metric == "base_rate":
            continue
        mine = comparisons[comparisons["metric"] == metric].set_index("group")["ratio"]
        np.testing.assert_allclose(
            mine, theirs.loc[mine.index, f"{column}_disparity"], rtol=1e-12, atol=1e-12
        )
        checked += mine.size
    assert checked >= 6

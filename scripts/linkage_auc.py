"""What joining up the pieces is worth: test AUC against the latent truth under three joins.

The synthetic world keeps every record's true child; a council has only each agency's identity
records. This trains the project's default model three times on one extract, each time with
the children's histories assembled a different way, and reports test AUC against the observed
label and the latent truth, and the share of truly harmed children reaching the top 20%:

* **perfect**: the true child IDs (what the project assumed before issue 21);
* **splink**: the children's records joined by the identity model's clusters;
* **exact**: joined only where two records share an NHS number or are the same agency's
  record (``source_system`` and ``source_person_id``): each agency holds its piece.

Only children are re-keyed (referrals and the events about a child, with their memberships,
copied from the cluster's most frequent true child); adults and households keep their true
IDs, so the comparison isolates the child's own history. A child split over two clusters
becomes two children of one household; two children merged become one.

    python scripts/linkage_auc.py var/extract [--capacity 0.2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from models.evaluation import auc
from models.splits import TEST
from models.train import TrainConfig, TrainResult, train
from triage.identity import IdentityModel, default_model, model_path


def exact_clusters(records: pd.DataFrame) -> pd.DataFrame:
    """Clusters of records sharing an NHS number or an agency's own person ID."""
    n = len(records)
    edges: list[np.ndarray] = []
    for keys in (records[["source_system", "source_person_id"]], records[["nhs_number"]]):
        present = keys.notna().all(axis=1).to_numpy()
        group = keys[present].astype(str).agg("|".join, axis=1)
        codes = pd.factorize(group)[0]
        rows = np.flatnonzero(present)
        first = pd.Series(rows).groupby(codes).transform("first").to_numpy()
        edges.append(np.stack([rows, first]))
    pairs = np.concatenate(edges, axis=1)
    graph = coo_matrix((np.ones(pairs.shape[1]), (pairs[0], pairs[1])), shape=(n, n))
    labels = connected_components(graph, directed=False)[1]
    return pd.DataFrame({"record_id": records["record_id"].to_numpy(), "cluster_id": labels})


def relinked_extract(source: Path, clusters: pd.DataFrame, target: Path) -> dict[str, int]:
    """A copy of ``source`` whose children are the clusters; returns counts for the report."""
    shutil.copytree(source, target)
    truth = pd.read_parquet(source / "identity_truth.parquet")
    number = pd.factorize(clusters["cluster_id"])[0]
    cluster_of = pd.Series([f"L-{n:09d}" for n in number], index=clusters["record_id"].to_numpy())
    referrals = pd.read_parquet(source / "referrals.parquet")
    events = pd.read_parquet(source / "events.parquet")
    children = pd.read_parquet(source / "children.parquet")
    is_child = set(children["child_id"].astype(str))
    # The cluster's most frequent true child supplies its details and its memberships.
    members = truth.assign(cluster_id=truth["record_id"].map(cluster_of))
    members = members[members["person_id"].astype(str).isin(is_child)]
    modal = members.groupby("cluster_id")["person_id"].agg(lambda s: s.value_counts().index[0])
    ref_cluster = referrals["subject_record_id"].map(cluster_of)
    referrals["child_id"] = ref_cluster.fillna(referrals["child_id"])
    about_child = events["child_id"].notna() & events["subject_record_id"].notna()
    event_cluster = events["subject_record_id"].map(cluster_of)
    events.loc[about_child, "child_id"] = event_cluster[about_child].fillna(
        events.loc[about_child, "child_id"]
    )
    used = pd.Index(pd.concat([referrals["child_id"], events["child_id"]]).dropna().unique())
    clustered = modal[modal.index.isin(used)]
    by_id = children.set_index("child_id")
    new_children = by_id.loc[clustered.to_numpy()].reset_index()
    new_children["child_id"] = clustered.index.to_numpy()
    # Children none of whose records were re-keyed keep their own rows (they still live there).
    kept = children[~children["child_id"].isin(clustered.to_numpy())]
    pd.concat([kept, new_children]).to_parquet(target / "children.parquet")
    referrals.to_parquet(target / "referrals.parquet")
    events.to_parquet(target / "events.parquet")
    _relink_people(source, target, clustered)
    true_referred = pd.read_parquet(source / "referrals.parquet", columns=["child_id"])
    return {
        "true_children_referred": int(true_referred["child_id"].nunique()),
        "children_after_join": int(referrals["child_id"].nunique()),
    }


def _relink_people(source: Path, target: Path, clustered: pd.Series) -> None:
    """The modal children's persons and memberships replaced by their clusters' copies; other
    people (adults, children with no re-keyed record) unchanged."""
    persons = pd.read_parquet(source / "persons.parquet")
    stays = pd.read_parquet(source / "household_memberships.parquet")
    replaced = set(clustered.to_numpy())
    others = persons[~persons["person_id"].isin(replaced)]
    copies = persons.set_index("person_id").loc[clustered.to_numpy()].reset_index()
    copies["person_id"] = clustered.index.to_numpy()
    pd.concat([others, copies]).to_parquet(target / "persons.parquet")
    other_stays = stays[~stays["person_id"].isin(replaced)]
    child_stays = stays[stays["person_id"].isin(clustered.to_numpy())]
    cluster_of_child = pd.Series(clustered.index.to_numpy(), index=clustered.to_numpy())
    # One child may be the modal child of several clusters: each gets a copy of its stays.
    expanded = child_stays.merge(
        cluster_of_child.rename("cluster_id").rename_axis("person_id").reset_index(),
        on="person_id",
    )
    expanded["membership_id"] = expanded["membership_id"] + "@" + expanded["cluster_id"]
    expanded["person_id"] = expanded.pop("cluster_id")
    pd.concat([other_stays, expanded]).to_parquet(target / "household_memberships.parquet")


def measure(result: TrainResult, capacity: float) -> dict[str, float | str]:
    """Test AUCs and the reach of truly harmed children."""
    data = result.data
    test_ids = data.part(TEST)
    p = np.asarray(result.test_probability)
    assert data.truth is not None, "the extract has no truth table (not a synthetic world)"
    truth = data.truth.loc[test_ids].to_numpy(dtype=bool)
    observed = data.label.loc[test_ids].to_numpy(dtype=bool)
    selected = p >= np.quantile(p, 1 - capacity)
    return {
        "chosen_family": result.chosen,
        "auc_observed": auc(observed.astype(float), p),
        "auc_truth": auc(truth.astype(float), p),
        "reach_harmed": float(selected[truth].mean()),
    }


def main() -> None:
    """Train under the three joins and print the comparison as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extract", type=Path)
    parser.add_argument("--capacity", type=float, default=0.2)
    parser.add_argument("--model", type=Path, default=None, help="identity model JSON")
    args = parser.parse_args()
    started = time.perf_counter()
    records = pd.read_parquet(args.extract / "identity_records.parquet")
    path = args.model or model_path()
    model = IdentityModel.load(path) if path.exists() else default_model()
    report: dict[str, object] = {"extract": str(args.extract), "identity_records": len(records)}
    with tempfile.TemporaryDirectory() as tmp:
        joins = {
            "perfect": (args.extract, None),
            "splink": (Path(tmp) / "splink", model.link_batch(records)),
            "exact": (Path(tmp) / "exact", exact_clusters(records)),
        }
        for name, (directory, clusters) in joins.items():
            counts = {}
            if clusters is not None:
                counts = relinked_extract(args.extract, clusters, directory)
            report[name] = {**counts, **measure(train(directory, TrainConfig()), args.capacity)}
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

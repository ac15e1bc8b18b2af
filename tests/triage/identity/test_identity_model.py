"""The identity linker on a small noisy world: training, resolving, batch clustering, twins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from identity_world import IdentityWorld, make_world

from triage.identity import LINK_AT, REVIEW_FROM, IdentityModel
from triage.identity.evaluate import pairwise_scores
from triage.identity.model import _cluster, prepare
from triage.identity.names import normalise_name, variant_groups


@pytest.fixture(scope="module")
def world() -> IdentityWorld:
    return make_world(300, seed=3)


@pytest.fixture(scope="module")
def model(world: IdentityWorld) -> IdentityModel:
    return IdentityModel.train(world.records)


@pytest.fixture(scope="module")
def known(world: IdentityWorld) -> pd.DataFrame:
    return world.records.merge(world.truth, on="record_id")


def _twins(known: pd.DataFrame) -> list[tuple[str, str]]:
    people = known.drop_duplicates("person_id").copy()
    people["household"] = people["person_id"].str.rsplit("-", n=1).str[0]
    pairs = []
    for _, group in people.groupby("household"):
        ids = group["person_id"].tolist()
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                if a.endswith("-0") or b.endswith("-0"):
                    continue
                pairs.append((a, b))
    return pairs


def test_thresholds_are_ordered() -> None:
    assert 0 < REVIEW_FROM < LINK_AT < 1


def test_names_variants() -> None:
    assert normalise_name(" O'Brien ") == "obrien"
    assert set(variant_groups("bob")) & set(variant_groups("robert"))
    assert not set(variant_groups("samuel")) & set(variant_groups("samantha"))
    assert variant_groups("zebedee") == ["zebedee"]


def test_prepare_normalises(world: IdentityWorld) -> None:
    table = prepare(world.records.head(5))
    assert table.num_rows == 5
    assert table.column_names[:3] == ["record_id", "given_name", "given_groups"]


def test_save_and_load_round_trip(model: IdentityModel, tmp_path: Path) -> None:
    path = tmp_path / "identity" / "model.json"
    model.save(path)
    assert IdentityModel.load(path).settings == model.settings


def test_a_misspelt_record_links_to_its_person(model: IdentityModel, known: pd.DataFrame) -> None:
    row = known[known["given_name"].str.len() > 5].iloc[0].to_dict()
    misspelt = {**row, "record_id": "IDR-NEW", "given_name": row["given_name"][:-1] + "q"}
    resolution = model.resolve(misspelt, known)
    assert resolution.outcome == "linked"
    assert resolution.person_id == row["person_id"]
    assert resolution.match_probability is not None and resolution.match_probability >= LINK_AT
    assert resolution.candidates[0].evidence["given_name"] in ("typo", "similar")


def test_a_stranger_is_new(model: IdentityModel, known: pd.DataFrame) -> None:
    stranger = {
        "record_id": "IDR-NEW",
        "given_name": "Zebedee",
        "family_name": "Quartermaine",
        "date_of_birth": "2015-02-03",
        "sex": "male",
        "postcode": "QQ9 9QQ",
        "nhs_number": None,
        "school": None,
    }
    resolution = model.resolve(stranger, known)
    assert resolution.outcome == "new"
    assert resolution.person_id is None and resolution.candidates == ()


def test_twins_never_link(model: IdentityModel, known: pd.DataFrame) -> None:
    people = known.drop_duplicates("person_id").set_index("person_id")
    twin_pairs = [
        (a, b)
        for a, b in _twins(known)
        if people.loc[a, "date_of_birth"] == people.loc[b, "date_of_birth"]
    ]
    assert twin_pairs, "the world has twins"
    for a, b in twin_pairs[:4]:
        for _, row in known[known["person_id"] == a].iterrows():
            others = known[known["person_id"] != a]
            resolution = model.resolve(row.to_dict(), others)
            assert resolution.outcome != "linked" or resolution.person_id != b


def test_batch_links_precisely_and_keeps_twins_apart(model: IdentityModel) -> None:
    other = make_world(300, seed=4)
    linkage = model.link(other.records)
    scores = pairwise_scores(linkage.clusters, other.truth)
    assert scores.precision >= 0.995
    assert scores.recall >= 0.93
    assert set(linkage.pairs.columns) >= {"record_id_l", "record_id_r", "match_probability"}
    assert (linkage.pairs["match_probability"] >= REVIEW_FROM).all()
    assert model.link_batch(other.records).equals(linkage.clusters)


def test_clustering_never_joins_a_forbidden_pair_through_a_third_record() -> None:
    ids = np.array(["a", "b", "x", "y"])
    # x (given name missing) links to both twins a and b; a and b must not link.
    clusters = _cluster(
        ids,
        np.array(["x", "x", "y"]),
        np.array(["a", "b", "a"]),
        np.array(["a"]),
        np.array(["b"]),
    )
    by_id = dict(zip(ids, clusters, strict=True))
    assert by_id["a"] == by_id["x"] == by_id["y"]
    assert by_id["b"] != by_id["a"]


def test_pairwise_scores() -> None:
    clusters = pd.DataFrame({"record_id": ["1", "2", "3", "4"], "cluster_id": ["1", "1", "1", "4"]})
    truth = pd.DataFrame({"record_id": ["1", "2", "3", "4"], "person_id": ["p", "p", "q", "q"]})
    scores = pairwise_scores(clusters, truth)
    assert (scores.true_pairs, scores.predicted_pairs, scores.correct_pairs) == (2, 3, 1)
    assert scores.precision == pytest.approx(1 / 3) and scores.recall == pytest.approx(0.5)


def test_a_record_without_a_given_name_does_not_pick_a_twin(
    model: IdentityModel, known: pd.DataFrame
) -> None:
    people = known.drop_duplicates("person_id").set_index("person_id")
    a, b = next(
        (a, b)
        for a, b in _twins(known)
        if people.loc[a, "date_of_birth"] == people.loc[b, "date_of_birth"]
    )
    twin = people.loc[a]
    record = {
        "record_id": "IDR-NEW",
        "given_name": None,
        "family_name": twin["family_name"],
        "date_of_birth": twin["date_of_birth"],
        "sex": None,
        "postcode": twin["postcode"],
        "nhs_number": None,
        "school": None,
    }
    both = known[known["person_id"].isin([a, b])]
    resolution = model.resolve(record, both)
    assert resolution.outcome != "linked"

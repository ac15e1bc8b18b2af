"""The identity model: a trained Splink model (DuckDB backend) that links identity records.

``resolve`` decides one new record against the known ones (the service's intake);
``link_batch`` clusters a whole extract's records (``triage link run``). Both apply the same
rule on top of Splink's match probability: a pair links automatically only at or above
``LINK_AT`` AND when neither its given names nor its birth dates clearly differ and its NHS
numbers are not two different ones (the same NHS number links whatever else differs). Twins
(same birth date, surname and postcode, different given names) therefore never link
automatically, nor does a parent and the child named after them; at most they become a
possible match for a person to decide.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from splink import DuckDBAPI, Linker, block_on

from triage.identity.names import normalise_name, variant_groups
from triage.identity.spec import (
    BLOCKING_KEYS,
    COMPARED_FIELDS,
    DOB_DIFFERS,
    GIVEN_NAME_DIFFERS,
    NHS_DIFFERS,
    evidence_label,
    settings,
)

# Splink logs its progress (and, at DEBUG, its SQL) on the "splink" loggers; a log must never
# hold personal details, and these messages are not the service's to keep.
logging.getLogger("splink").setLevel(logging.ERROR)

LINK_AT: float = 0.95
"""Match probability at or above which a record links automatically (given names agreeing)."""
REVIEW_FROM: float = 0.5
"""From here up to LINK_AT (or a link the given-name rule stopped): a possible-match task."""
SCORED_FROM = 0.01
"""Batch linking keeps blocked pairs from this probability up (for the given-name rule's
forbidden pairs); the rest (most pairs of a large world: household members, namesakes) are
dropped inside DuckDB rather than held in memory."""
MAX_CANDIDATES = 5
NEW_RECORD_ID = "__new__"
NHS_EXACT = 1
"""The NHS-number comparison's value (gamma) when both numbers are present and equal."""

RECORD_COLUMNS: tuple[str, ...] = (
    "record_id",
    "given_name",
    "family_name",
    "date_of_birth",
    "sex",
    "postcode",
    "nhs_number",
    "school",
)
"""The identity-record columns the model reads (the contract has more; they are ignored)."""

_PREPARED_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("given_name", pa.string()),
        ("given_groups", pa.list_(pa.string())),
        ("family_name", pa.string()),
        ("date_of_birth", pa.string()),
        ("dob_y", pa.int32()),
        ("dob_m", pa.int32()),
        ("dob_d", pa.int32()),
        ("sex", pa.string()),
        ("postcode", pa.string()),
        ("nhs_number", pa.string()),
        ("school", pa.string()),
    ]
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Candidate:
    """A known person the record may be, with the best pair's score and evidence."""

    person_id: str
    match_probability: float
    match_weight: float
    evidence: dict[str, str]


@dataclass(frozen=True)
class Resolution:
    """How one record was resolved: linked to a person, a possible match, or a new person."""

    outcome: Literal["linked", "possible_match", "new"]
    person_id: str | None
    match_probability: float | None
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class BatchLinkage:
    """A batch run: each record's cluster, and the scored pairs at or above REVIEW_FROM."""

    clusters: pd.DataFrame
    pairs: pd.DataFrame


def _text(series: pd.Series) -> list[str | None]:
    """Stripped strings, with missing and blank values as None."""
    out: list[str | None] = []
    for value in series.astype("object").tolist():
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            out.append(None)
        else:
            text = str(value).strip()
            out.append(text or None)
    return out


def _mapped(values: list[str | None], fn: Callable[[str], Any]) -> list[Any]:
    """``fn`` over the distinct non-missing values, spread back (None stays None)."""
    cache = {v: fn(v) for v in set(values) if v is not None}
    return [None if v is None else cache[v] for v in values]


def _digits(value: str) -> str | None:
    return "".join(ch for ch in value if ch.isdigit()) or None


def prepare(records: pd.DataFrame) -> pa.Table:
    """Identity records (the contract's columns) as the model's normalised input table."""
    missing = [c for c in RECORD_COLUMNS if c not in records.columns]
    if missing:
        raise ValueError(f"identity records lack columns: {', '.join(missing)}")
    if records.empty:
        return _PREPARED_SCHEMA.empty_table()
    given = _mapped(_text(records["given_name"]), normalise_name)
    groups = _mapped(given, variant_groups)
    family = _mapped(_text(records["family_name"]), normalise_name)
    dob = pd.to_datetime(pd.Series(records["date_of_birth"].astype("object")), errors="coerce")
    no_dob = dob.isna().to_numpy()
    dob_text = [None if m else v for m, v in zip(no_dob, dob.dt.strftime("%Y-%m-%d"), strict=True)]
    sex = _mapped(_text(records["sex"]), lambda v: None if v.lower() == "unknown" else v.lower())
    postcode = _mapped(_text(records["postcode"]), lambda v: " ".join(v.upper().split()))
    nhs = _mapped(_text(records["nhs_number"]), _digits)
    school = _mapped(_text(records["school"]), str.lower)

    def ints(values: pd.Series) -> pa.Array:
        return pa.array(np.asarray(values.fillna(0), dtype=np.int32), mask=no_dob)

    return pa.table(
        {
            "record_id": pa.array(records["record_id"].astype(str).tolist(), pa.string()),
            "given_name": pa.array(given, pa.string()),
            "given_groups": pa.array(groups, pa.list_(pa.string())),
            "family_name": pa.array(family, pa.string()),
            "date_of_birth": pa.array(dob_text, pa.string()),
            "dob_y": ints(dob.dt.year),
            "dob_m": ints(dob.dt.month),
            "dob_d": ints(dob.dt.day),
            "sex": pa.array(sex, pa.string()),
            "postcode": pa.array(postcode, pa.string()),
            "nhs_number": pa.array(nhs, pa.string()),
            "school": pa.array(school, pa.string()),
        },
        schema=_PREPARED_SCHEMA,
    )


def _linker(table: pa.Table, model: dict[str, Any] | Any) -> tuple[Linker, DuckDBAPI, Any]:
    if isinstance(model, dict):  # keep the comparison values (gamma_*) for the linking rule
        model = {**model, "retain_matching_columns": True}
    db_api = DuckDBAPI()
    sdf = db_api.register(table, table_name="identity_records")
    # The settings were validated when the model was trained; validating parses every SQL
    # condition again (most of a single resolution's time).
    return Linker(sdf, model, log_level=None, validate_settings=False), db_api, sdf


def _linkable(given_gamma: int, nhs_gamma: int, dob_gamma: int) -> bool:
    """Whether a pair may link automatically: given names not clearly different, or same NHS."""
    if nhs_gamma == NHS_EXACT:
        return True
    return (
        given_gamma != GIVEN_NAME_DIFFERS and dob_gamma != DOB_DIFFERS and nhs_gamma != NHS_DIFFERS
    )


class IdentityModel:
    """A trained Splink model (its settings JSON with the weights) and the linking rules."""

    def __init__(self, model: dict[str, Any]) -> None:
        """Wrap a trained Splink settings dictionary."""
        self._model = model

    @property
    def settings(self) -> dict[str, Any]:
        """The Splink settings dictionary with the trained parameters (a copy)."""
        copied: dict[str, Any] = json.loads(json.dumps(self._model))
        return copied

    def settings_for(self, sql_dialect: str) -> dict[str, Any]:
        """The trained model for another Splink backend (``"spark"``, ``"duckdb"``...).

        The saved settings hold DuckDB SQL; this rebuilds the comparisons and blocking rules
        in ``sql_dialect`` from the specification and carries the trained parameters over.
        """
        rebuilt = settings().create_settings_dict(sql_dialect)
        trained = self._model
        for new, old in zip(rebuilt["comparisons"], trained["comparisons"], strict=True):
            if new["output_column_name"] != old["output_column_name"]:
                raise ValueError("the saved model's comparisons differ from the specification")
            for new_level, old_level in zip(
                new["comparison_levels"], old["comparison_levels"], strict=True
            ):
                for key in ("m_probability", "u_probability"):
                    if key in old_level:
                        new_level[key] = old_level[key]
        rebuilt["probability_two_random_records_match"] = trained[
            "probability_two_random_records_match"
        ]
        rebuilt["retain_matching_columns"] = True
        return rebuilt

    @classmethod
    def train(
        cls, records: pd.DataFrame, *, seed: int = 1, progress: Progress | None = None
    ) -> IdentityModel:
        """Estimate the model's weights on identity records (unsupervised: no truth used)."""
        say = progress or (lambda _: None)
        table = prepare(records)
        n = table.num_rows
        if n < 50:
            raise ValueError(f"too few identity records to train on ({n}; need at least 50)")
        linker, _, _ = _linker(table, settings())
        say("estimating the prior")
        linker.training.estimate_probability_two_random_records_match(
            [
                block_on("nhs_number"),
                block_on("given_name", "family_name", "date_of_birth", "postcode"),
            ],
            recall=0.6,
        )
        say("estimating u by random sampling")
        linker.training.estimate_u_using_random_sampling(
            max_pairs=min(5e6, max(1e5, n * 20.0)), seed=seed
        )
        # Expectation maximisation on pairs that are nearly all the same person: the same NHS
        # number (trains every other field), then the same names and birth date (trains the
        # NHS number and the rest). Blocking on one shared field alone (birth date, postcode)
        # would mistake households and twins for matches.
        proportion = min(1.0, 300_000 / n)
        for columns in (("nhs_number",), ("given_name", "family_name", "date_of_birth")):
            say(f"expectation maximisation on pairs with the same {', '.join(columns)}")
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on(*columns), record_sample_proportion=proportion
            )
        return cls(_floored(linker.misc.save_model_to_json()))

    @classmethod
    def load(cls, path: Path) -> IdentityModel:
        """Read a model saved by ``save``."""
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def save(self, path: Path) -> None:
        """Write the model's settings JSON (parents created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self._model, indent=2), encoding="utf-8")
        tmp.replace(path)

    def _score(self, left: pa.Table, right: pa.Table) -> pd.DataFrame:
        """Score every left x right pair (no blocking; the caller has blocked)."""
        linker, db_api, right_sdf = _linker(right, self._model)
        left_sdf = db_api.register(left, table_name="identity_new")
        scored = linker.inference.score_pairs(left_sdf, right_sdf)
        table = db_api.duckdb_con.sql(f"SELECT * FROM {scored.physical_name}").to_arrow_table()
        frame: pd.DataFrame = table.to_pandas()
        return frame

    def resolve(self, record: Mapping[str, Any], known: pd.DataFrame) -> Resolution:
        """Link one record to a known person, propose a possible match, or call it new."""
        row = {c: record.get(c) for c in RECORD_COLUMNS}
        row["record_id"] = str(record.get("record_id") or NEW_RECORD_ID)
        new = prepare(pd.DataFrame([row], columns=list(RECORD_COLUMNS)))
        if known.empty:
            return Resolution("new", None, None, ())
        if "person_id" not in known.columns:
            raise ValueError("known identity records need their resolved person_id")
        known = known[known["record_id"].astype(str) != row["record_id"]]
        near = known.iloc[_blocked_rows(new, known)]
        if near.empty:
            return Resolution("new", None, None, ())
        persons = dict(
            zip(near["record_id"].astype(str), near["person_id"].astype(str), strict=True)
        )
        scored = self._score(new, prepare(near.reset_index(drop=True)))
        return _decide(scored, persons)

    def link(self, records: pd.DataFrame, *, progress: Progress | None = None) -> BatchLinkage:
        """Cluster identity records into persons; also return the pairs scored >= REVIEW_FROM."""
        say = progress or (lambda _: None)
        say("preparing records")
        table = prepare(records)
        linker, db_api, _ = _linker(table, self._model)
        say("scoring blocked pairs")
        predictions = linker.inference.predict(
            threshold_match_probability=SCORED_FROM, warning_mode="never"
        )
        con = db_api.duckdb_con
        name = predictions.physical_name
        say("selecting links")
        rule = (
            f"(gamma_nhs_number = {NHS_EXACT} OR (gamma_given_name <> {GIVEN_NAME_DIFFERS} "
            f"AND gamma_date_of_birth <> {DOB_DIFFERS} AND gamma_nhs_number <> {NHS_DIFFERS}))"
        )
        pairs = con.sql(
            f"SELECT record_id_l, record_id_r, match_probability, match_weight, "
            f"(match_probability >= {LINK_AT!r} AND {rule}) AS linked FROM {name} "
            f"WHERE match_probability >= {REVIEW_FROM!r} "
            f"ORDER BY match_probability DESC, record_id_l, record_id_r"
        ).to_arrow_table()
        forbidden = con.sql(
            f"SELECT record_id_l, record_id_r FROM {name} WHERE NOT {rule}"
        ).to_arrow_table()
        say("clustering")
        ids = table.column("record_id").to_numpy(zero_copy_only=False).astype(str)
        linked = pairs.filter(pairs.column("linked"))

        def strings(t: pa.Table, column: str) -> np.ndarray:
            out: np.ndarray = t.column(column).to_numpy(zero_copy_only=False).astype(str)
            return out

        cluster_of = _cluster(
            ids,
            strings(linked, "record_id_l"),
            strings(linked, "record_id_r"),
            strings(forbidden, "record_id_l"),
            strings(forbidden, "record_id_r"),
        )
        clusters = pd.DataFrame({"record_id": ids, "cluster_id": cluster_of})
        pairs_df = pairs.to_pandas()
        return BatchLinkage(clusters=clusters, pairs=pairs_df.reset_index(drop=True))

    def link_batch(self, records: pd.DataFrame) -> pd.DataFrame:
        """Each record's cluster (``record_id``, ``cluster_id``); ``link`` also gives the pairs."""
        return self.link(records).clusters


M_FLOOR = 0.005
"""Least m probability of any level: a field that never disagreed for one person in training
(NHS number, school) may still disagree in service; an m of 0 would forbid it outright."""
U_FLOOR = 1e-6
"""Least u probability: a level never seen among random pairs must not weigh infinitely."""


def _floored(model: dict[str, Any]) -> dict[str, Any]:
    """The model with every non-null level's m and u probabilities raised to their floors."""
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            for key, floor in (("m_probability", M_FLOOR), ("u_probability", U_FLOOR)):
                value = level.get(key)
                if value is None or value < floor:
                    level[key] = floor
    return model


def _normalised_key(known: pd.DataFrame, key: str) -> np.ndarray:
    """One blocking column of raw known records, normalised as ``prepare`` does (vectorised)."""
    if key == "date_of_birth":
        dob = pd.to_datetime(known[key].astype("object"), errors="coerce")
        return np.asarray(dob.dt.strftime("%Y-%m-%d").fillna("").astype(str), dtype=object)
    text = known[key].astype("string").str.strip()
    if key in ("given_name", "family_name"):
        text = text.str.lower().str.replace("ë", "e").str.replace(r"[^a-z]+", "", regex=True)
    elif key == "postcode":
        text = text.str.upper().str.split().str.join(" ")
    elif key == "nhs_number":
        text = text.str.replace(r"\D+", "", regex=True)
    return np.asarray(text.fillna("").astype(str), dtype=object)  # "" never equals a key


def _blocked_rows(new: pa.Table, known: pd.DataFrame) -> np.ndarray:
    """Positions of ``known`` records sharing any blocking key with the one ``new`` record.

    Only the candidates are prepared and scored: filtering first keeps one resolution fast
    when thousands of records are known.
    """
    keep = np.zeros(len(known), dtype=bool)
    columns: dict[str, np.ndarray] = {}
    for keys in BLOCKING_KEYS:
        values = [new.column(k)[0].as_py() for k in keys]
        if any(v is None for v in values):
            continue
        mask = np.ones(len(known), dtype=bool)
        for key, value in zip(keys, values, strict=True):
            if key not in columns:
                columns[key] = _normalised_key(known, key)
            mask &= columns[key] == value
        keep |= mask
    return np.flatnonzero(keep)


def _decide(scored: pd.DataFrame, persons: Mapping[str, str]) -> Resolution:
    """The outcome for one record from its scored pairs with known records."""
    if scored.empty:
        return Resolution("new", None, None, ())
    best: dict[str, tuple[float, float, bool, dict[str, str]]] = {}
    for row in scored.to_dict("records"):
        person = persons[str(row["record_id_r"])]
        probability = float(row["match_probability"])
        if person in best and best[person][0] >= probability:
            continue
        evidence = {f: evidence_label(f, int(row[f"gamma_{f}"])) for f in COMPARED_FIELDS}
        linkable = _linkable(
            int(row["gamma_given_name"]),
            int(row["gamma_nhs_number"]),
            int(row["gamma_date_of_birth"]),
        )
        weight = float(row["match_weight"])
        best[person] = (probability, weight if math.isfinite(weight) else 0.0, linkable, evidence)
    ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))
    candidates = tuple(
        Candidate(person, p, w, ev) for person, (p, w, _, ev) in ranked if p >= REVIEW_FROM
    )[:MAX_CANDIDATES]
    if not candidates:
        return Resolution("new", None, None, ())
    top_person, (top_p, _, top_linkable, _) = ranked[0]
    rivals = [p for _, (p, _, _, _) in ranked[1:] if p >= LINK_AT]
    if top_p >= LINK_AT and top_linkable and not rivals:
        return Resolution("linked", top_person, top_p, candidates)
    return Resolution("possible_match", None, top_p, candidates)


def _cluster(
    ids: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    forbid_left: np.ndarray,
    forbid_right: np.ndarray,
) -> np.ndarray:
    """Greedy clustering: join pairs best first, never joining two records forbidden to link.

    Plain connected components would let one record with a missing given name join twins
    through itself; here a join is skipped when the two clusters hold a forbidden pair.
    Returns each record's cluster id: the smallest record id in its cluster.
    """
    index = {rid: i for i, rid in enumerate(ids)}
    parent = np.arange(ids.size)
    size = np.ones(ids.size, dtype=np.int64)
    forbidden: dict[int, set[int]] = {}
    for a, b in zip(forbid_left, forbid_right, strict=True):
        i, j = index[a], index[b]
        forbidden.setdefault(i, set()).add(j)
        forbidden.setdefault(j, set()).add(i)

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = int(parent[root])
        while parent[i] != root:
            parent[i], i = root, int(parent[i])
        return root

    for a, b in zip(left, right, strict=True):
        ra, rb = find(index[a]), find(index[b])
        if ra == rb:
            continue
        fa, fb = forbidden.get(ra), forbidden.get(rb)
        if (fa and any(find(m) == rb for m in fa)) or (fb and any(find(m) == ra for m in fb)):
            continue  # the two clusters hold records that must not link
        if size[ra] < size[rb]:
            ra, rb = rb, ra
        parent[rb] = ra
        size[ra] += size[rb]
        merged = forbidden.pop(ra, set()) | forbidden.pop(rb, set())
        if merged:
            forbidden[ra] = merged
    roots = np.array([find(i) for i in range(ids.size)])
    order = np.argsort(ids, kind="stable")
    smallest: dict[int, str] = {}
    for i in order:
        smallest.setdefault(int(roots[i]), str(ids[i]))
    return np.array([smallest[int(r)] for r in roots], dtype=object)

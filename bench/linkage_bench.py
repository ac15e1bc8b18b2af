"""Benchmark: link a world's identity records with Splink on DuckDB, and recordlinkage beside it.

Splink (the project's linker, ``triage.identity``) trains and clusters every record; the peer
is the ``recordlinkage`` package (pandas blocking index, Jaro-Winkler and exact comparisons,
the unsupervised ECM classifier, connected components), given the same blocking keys and
fields. Each run is a fresh process, so its peak RSS is its own. Both report wall time, peak
memory and pairwise precision/recall against the truth.

recordlinkage 0.16 requires pandas < 3 and this project runs pandas 3, so the peer runs in a
separate virtual environment (``var/bench-recordlinkage``: ``python -m venv`` it and
``pip install 'recordlinkage==0.16' 'pandas<3' pyarrow``; the script says so when it is
missing). recordlinkage holds every candidate pair and its comparison vectors in pandas in
memory: when ``--peer-records`` is below the sample size, the peer and a second Splink run
use the first N records only, and the ratio is taken on that shared sample.

    .venv/bin/python bench/linkage_bench.py --extract var/extract-1m     # a world's records
    .venv/bin/python bench/linkage_bench.py --households 100000          # the test world
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEER_PYTHON = ROOT / "var" / "bench-recordlinkage" / "bin" / "python"

SPLINK = """
import json, resource, sys, time
import pandas as pd
from triage.identity import IdentityModel
from triage.identity.evaluate import pairwise_scores
records = pd.read_parquet(sys.argv[1])
truth = pd.read_parquet(sys.argv[2])
start = time.perf_counter()
model = IdentityModel.train(records)
trained = time.perf_counter()
linkage = model.link(records)
done = time.perf_counter()
s = pairwise_scores(linkage.clusters, truth)
print(json.dumps({
    "records": len(records), "train_seconds": trained - start, "link_seconds": done - trained,
    "seconds": done - start,
    "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    "precision": s.precision, "recall": s.recall, "pairs_scored_at_review": len(linkage.pairs),
}))
"""

PEER = """
import json, re, resource, sys, time
import numpy as np
import pandas as pd
import recordlinkage as rl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
records = pd.read_parquet(sys.argv[1])
truth = pd.read_parquet(sys.argv[2])
start = time.perf_counter()
df = records.set_index("record_id")
norm = lambda s: s.astype("object").where(s.notna(), None).map(
    lambda v: None if v is None else (re.sub("[^a-z]", "", str(v).lower()) or None))
df["given_name"] = norm(df["given_name"])
df["family_name"] = norm(df["family_name"])
dob = pd.to_datetime(df["date_of_birth"], errors="coerce")
df["date_of_birth"] = dob.dt.strftime("%Y-%m-%d")
df["sex"] = df["sex"].where(df["sex"] != "unknown")
keys = [["nhs_number"], ["family_name", "date_of_birth"], ["given_name", "date_of_birth"],
        ["given_name", "family_name"], ["postcode", "date_of_birth"], ["postcode", "given_name"],
        ["postcode", "family_name"]]
pairs = None
for key in keys:
    idx = rl.Index(); idx.block(key)
    found = idx.index(df.dropna(subset=key))
    pairs = found if pairs is None else pairs.union(found)
c = rl.Compare(n_jobs=1)
c.string("given_name", "given_name", method="jarowinkler", threshold=0.88, label="given")
c.string("family_name", "family_name", method="jarowinkler", threshold=0.88, label="family")
c.exact("date_of_birth", "date_of_birth", label="dob")
c.exact("sex", "sex", label="sex")
c.exact("postcode", "postcode", label="postcode")
c.exact("nhs_number", "nhs_number", label="nhs")
c.exact("school", "school", label="school")
features = c.compute(pairs, df)
matches = rl.ECMClassifier(binarize=0.5).fit_predict(features)
ids = pd.Index(df.index)
left = ids.get_indexer(matches.get_level_values(0))
right = ids.get_indexer(matches.get_level_values(1))
graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(len(ids), len(ids)))
_, labels = connected_components(graph, directed=False)
done = time.perf_counter()
clusters = pd.DataFrame({"record_id": ids, "cluster_id": labels})
j = clusters.merge(truth, on="record_id")
pairs_of = lambda g: int((g * (g - 1) // 2).sum())
tp = pairs_of(j.groupby(["cluster_id", "person_id"]).size())
pred = pairs_of(j.groupby("cluster_id").size())
true = pairs_of(j.groupby("person_id").size())
print(json.dumps({
    "records": len(records), "seconds": done - start, "candidate_pairs": len(pairs),
    "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    "precision": tp / pred if pred else 1.0, "recall": tp / true if true else 1.0,
}))
"""


def _run(python: Path | str, code: str, records: Path, truth: Path) -> dict[str, float]:
    """One run in a fresh interpreter; its JSON line."""
    out = subprocess.run(
        [str(python), "-c", code, str(records), str(truth)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _synthetic(households: int, seed: int, directory: Path) -> tuple[Path, Path]:
    """The test-only identity world (``tests/triage/identity/identity_world.py``) as Parquet."""
    sys.path.insert(0, str(ROOT / "tests" / "triage" / "identity"))
    from identity_world import make_world

    world = make_world(households, seed=seed)
    records, truth = directory / "identity_records.parquet", directory / "identity_truth.parquet"
    world.records.to_parquet(records, index=False)
    world.truth.to_parquet(truth, index=False)
    return records, truth


def _head(records: Path, truth: Path, n: int, directory: Path) -> tuple[Path, Path]:
    """The first ``n`` records and their truth, written beside the full sample."""
    import pandas as pd

    head = pd.read_parquet(records).head(n)
    head_truth = pd.read_parquet(truth).merge(head[["record_id"]], on="record_id")
    out_records, out_truth = directory / f"records_{n}.parquet", directory / f"truth_{n}.parquet"
    head.to_parquet(out_records, index=False)
    head_truth.to_parquet(out_truth, index=False)
    return out_records, out_truth


def _line(name: str, r: dict[str, float]) -> str:
    return (
        f"{name}: {int(r['records']):,} records in {r['seconds']:.1f} s, "
        f"peak {r['peak_gb']:.2f} GB, precision {r['precision']:.4f}, recall {r['recall']:.4f}"
    )


def main() -> None:
    """Run Splink on the whole sample, then the peer and Splink on the shared sample."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--extract", type=Path, help="an extract with identity_records/_truth")
    source.add_argument("--households", type=int, help="households in the test-only world")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--peer-records",
        type=int,
        default=200_000,
        help="records the peer links (the first N; 0: the whole sample)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        if args.extract is not None:
            records = args.extract / "identity_records.parquet"
            truth = args.extract / "identity_truth.parquet"
        else:
            started = time.perf_counter()
            records, truth = _synthetic(args.households, args.seed, directory)
            print(f"test world generated in {time.perf_counter() - started:.0f} s", flush=True)
        full = _run(sys.executable, SPLINK, records, truth)
        print(
            _line("Splink (DuckDB), whole sample", full)
            + f" (train {full['train_seconds']:.1f} s, link {full['link_seconds']:.1f} s)",
            flush=True,
        )
        if not PEER_PYTHON.exists():
            print(f"recordlinkage: not run, no environment at {PEER_PYTHON} (see the docstring)")
            return
        shared_records, shared_truth = records, truth
        if args.peer_records and args.peer_records < full["records"]:
            shared_records, shared_truth = _head(records, truth, args.peer_records, directory)
            print(
                f"recordlinkage keeps every candidate pair in pandas: the peer and a second "
                f"Splink run take the first {args.peer_records:,} records",
                flush=True,
            )
        splink = full
        if shared_records != records:
            splink = _run(sys.executable, SPLINK, shared_records, shared_truth)
            print(_line("Splink (DuckDB), shared sample", splink), flush=True)
        peer = _run(PEER_PYTHON, PEER, shared_records, shared_truth)
        print(
            _line("recordlinkage (ECM), shared sample", peer)
            + f", {peer['candidate_pairs']:,} pairs"
        )
        print(
            f"ratio recordlinkage / Splink on the shared sample: time "
            f"{peer['seconds'] / splink['seconds']:.2f}x, peak memory "
            f"{peer['peak_gb'] / splink['peak_gb']:.2f}x"
        )


if __name__ == "__main__":
    main()

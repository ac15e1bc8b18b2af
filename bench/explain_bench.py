"""Benchmark: reasons for many referrals, and one referral's reasons with provenance.

Fits both families on a synthetic world (not timed), then times, for each family:

- batch: contributions, the top 5 reasons per referral and their sentences, for N rows (the
  world's feature rows repeated to N);
- one referral: ``explain_features`` (score, range, band, all reasons with their records) on
  online features already built from the store, and ``explain_referral`` including the
  store's history queries;
- beside each, shap's default ``Explainer`` on the same model and rows (timed on a sample,
  since it is slow), and the ratio.

    .venv/bin/python bench/explain_bench.py [--referrals 50000] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import shap
from score_bench import fitted_scorers

from explain.reasons import top_reasons
from explain.referral import explain_features, explain_referral
from features.online import online_features
from models.scorer import Scorer
from triage.store.engine import make_engine, session_factory
from triage.store.loader import load_extract
from triage.store.migrate import upgrade
from triage.synth import WorldParams, generate_world
from triage.synth.extract import write_extract

BATCH_TARGET_S = 10.0
ONE_TARGET_P99_MS = 2.0


def batch_reasons_seconds(scorer: Scorer, X: np.ndarray, repeats: int) -> tuple[float, float]:
    """Median seconds for contributions + top 5 reasons + sentences, and the reasons share."""
    totals, reasons = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        batch = scorer.score_matrix(X, with_range=False)
        middle = time.perf_counter()
        table = top_reasons(scorer.signals, X, batch.contributions, top=5)
        table.sentences()
        end = time.perf_counter()
        totals.append(end - start)
        reasons.append(end - middle)
    return statistics.median(totals), statistics.median(reasons)


def shap_default_explainer(scorer: Scorer, background: np.ndarray):
    """shap's default ``Explainer`` for the model: Tree for the challenger, else model-agnostic."""
    if scorer.family == "challenger":
        return shap.Explainer(scorer.model.model_), lambda rows: rows
    masker = shap.maskers.Independent(np.nan_to_num(background, nan=-1.0), max_samples=100)

    def log_odds(rows: np.ndarray) -> np.ndarray:
        return scorer.model.log_odds(np.where(rows == -1.0, np.nan, rows))

    return shap.Explainer(log_odds, masker), lambda rows: np.nan_to_num(rows, nan=-1.0)


def percentile_ms(seconds: list[float], q: float) -> float:
    """A percentile in milliseconds."""
    return float(np.percentile(np.array(seconds) * 1e3, q))


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--referrals", type=int, default=50_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--challenger-rows", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=3_000)
    parser.add_argument("--peer-rows", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        extract = Path(tmp) / "extract"
        write_extract(generate_world(WorldParams(n_referrals=args.referrals)), extract)
        scorers, X_all = fitted_scorers(extract)
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        load_extract(extract, url=url, progress=False)
        engine = make_engine(url)
        Session = session_factory(engine)
        with Session() as session:
            ids = [r for (r,) in session.execute(_busiest_referrals())]
            features = [online_features(session, referral_id=r) for r in ids]

        for family, scorer in scorers.items():
            n = args.rows if family == "scorecard" else args.challenger_rows
            rows = X_all[np.arange(n) % X_all.shape[0]]
            scorer.score_matrix(rows[:100])  # warm caches (the challenger builds its explainer)
            total, reasons_only = batch_reasons_seconds(scorer, rows, args.repeats)
            per_million = total * 1_000_000 / n
            explainer, encode = shap_default_explainer(scorer, X_all[:100])
            sample = rows[: args.peer_rows]
            start = time.perf_counter()
            explainer(encode(sample))
            peer_rows_s = args.peer_rows / (time.perf_counter() - start)
            ours_rows_s = n / total
            scaled = "" if n == 1_000_000 else f" (measured on {n:,} rows, scaled)"
            print(
                f"{family} batch: {per_million:.2f} s per 1,000,000 referrals{scaled}, of which "
                f"reasons and sentences {reasons_only * 1_000_000 / n:.2f} s; "
                f"{'within' if per_million <= BATCH_TARGET_S else 'OUTSIDE'} target "
                f"{BATCH_TARGET_S:g} s; peer shap.Explainer {peer_rows_s:,.0f} rows/s on "
                f"{args.peer_rows} rows (contributions only); "
                f"ratio {ours_rows_s / peer_rows_s:,.1f}x"
            )

            for f in features:
                explain_features(scorer, f)
            one = []
            for i in range(args.calls):
                start = time.perf_counter()
                explain_features(scorer, features[i % len(features)])
                one.append(time.perf_counter() - start)
            with Session() as session:
                full = []
                for i in range(max(300, args.calls // 10)):
                    start = time.perf_counter()
                    explain_referral(session, scorer, referral_id=ids[i % len(ids)])
                    full.append(time.perf_counter() - start)
            peer_one = []
            for i in range(50):
                row = np.array([[features[i % len(features)].values[s].value
                                 for s in scorer.signals]])  # fmt: skip
                start = time.perf_counter()
                explainer(encode(row))
                peer_one.append(time.perf_counter() - start)
            p99 = percentile_ms(one, 99)
            print(
                f"{family} one referral, all reasons with records (features built): "
                f"p50 {percentile_ms(one, 50):.2f} ms, p99 {p99:.2f} ms; "
                f"{'within' if p99 <= ONE_TARGET_P99_MS else 'OUTSIDE'} target "
                f"{ONE_TARGET_P99_MS:g} ms; with the store's history queries: "
                f"p50 {percentile_ms(full, 50):.2f} ms, p99 {percentile_ms(full, 99):.2f} ms; "
                f"peer shap.Explainer on one row p50 {percentile_ms(peer_one, 50):.2f} ms "
                f"(ratio {percentile_ms(peer_one, 50) / percentile_ms(one, 50):,.1f}x at p50)"
            )
        engine.dispose()


def _busiest_referrals():
    """Twenty referrals whose child has the most earlier referrals (a realistic worst case)."""
    from sqlalchemy import text

    return text(
        "SELECT r.referral_id FROM referrals r JOIN referrals p ON p.child_id = r.child_id"
        " AND p.received_at < r.received_at GROUP BY r.referral_id"
        " ORDER BY count(*) DESC, r.referral_id LIMIT 20"
    )


if __name__ == "__main__":
    main()

"""Households and children: demography, deprivation and latent household risk factors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from triage.synth.params import REFERRALS_PER_CHILD_YEAR, WorldParams
from triage.vocab import Ethnicity

YEAR = 365.25
ADULT_AGE_DAYS = 18 * YEAR
AGE_BANDS_YEARS: tuple[tuple[float, float], ...] = ((0, 1), (1, 5), (5, 12), (12, 18))
"""Age bands with their own rates: infants, pre-school, primary, secondary."""

ETHNICITIES: tuple[Ethnicity, ...] = tuple(Ethnicity)
ETHNICITY_SHARES = np.array([0.70, 0.07, 0.12, 0.06, 0.03, 0.02])
"""Children in England by top-level census group (2021, rounded), in ``ETHNICITIES`` order."""
DEPRIVATION_TILT = np.array([1.0, 0.75, 0.8, 0.7, 0.8, 1.0])
"""Beta shape for each group's deprivation: below 1 skews toward the most deprived deciles."""

MEAN_CHILDREN_PER_HOUSEHOLD = 1.9
SIBLING_SPACING_YEARS = 2.6
TWIN_MATERNITY_RATE = 14.6 / 1000
"""Maternities with more than one baby, England and Wales 2022 (ONS, Births in England and
Wales: 14.6 per 1,000 maternities); multiple births are about 3% of births (NICE CG129)."""
TWIN_STREAM = 2105
"""Random stream of the twins, apart from the world's own draws (which stay as they were)."""


def logit(p: float) -> float:
    """Log-odds of a probability."""
    return float(np.log(p / (1 - p)))


def sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Inverse of the log-odds."""
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Population:
    """Columnar households (``hh_*``) and children (``child_*``); times in days from the start."""

    window_days: float
    hh_deprivation: np.ndarray
    hh_ethnicity: np.ndarray
    hh_frailty: np.ndarray
    hh_domestic_abuse: np.ndarray
    hh_mental_health: np.ndarray
    hh_substance_misuse: np.ndarray
    hh_adult_violence: np.ndarray
    hh_custody_dispute: np.ndarray
    hh_persistent_caller: np.ndarray
    child_household: np.ndarray
    """The household each child is born into (``moves`` says where it lives later)."""
    child_dob: np.ndarray
    child_sex: np.ndarray
    child_disability: np.ndarray
    child_ethnicity: np.ndarray

    @property
    def hh_deprived(self) -> np.ndarray:
        """Deprivation on a -1 (least deprived decile) to +1 (most deprived decile) scale."""
        deprived: np.ndarray = (5.5 - self.hh_deprivation) / 4.5
        return deprived

    def with_households(self, **columns: np.ndarray) -> Population:
        """This population with households appended (``columns`` keyed by ``hh_*`` field)."""
        fields = {k: v for k, v in vars(self).items()}
        for name, values in columns.items():
            fields[name] = np.concatenate([fields[name], values.astype(fields[name].dtype)])
        return Population(**fields)

    def band_exposure(self, lo_years: float, hi_years: float, until: float) -> np.ndarray:
        """Days each child spends aged ``[lo, hi)`` years within ``[0, until)``."""
        a = np.maximum(self.child_dob + lo_years * YEAR, 0.0)
        b = np.minimum(self.child_dob + hi_years * YEAR, until)
        days: np.ndarray = np.clip(b - a, 0.0, None)
        return days

    def age_years(self, child: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Age in years of ``child`` at day ``t``."""
        years: np.ndarray = (t - self.child_dob[child]) / YEAR
        return years


def build_population(params: WorldParams, rng: np.random.Generator) -> Population:
    """Draw households and children sized so referrals per child-year match England's rate."""
    window = float(round(params.years * YEAR))  # whole days, as the extract's window
    child_years = params.n_referrals / REFERRALS_PER_CHILD_YEAR
    mean_exposure_years = 18 * params.years / (18 + params.years)
    n_households = int(child_years / (mean_exposure_years * MEAN_CHILDREN_PER_HOUSEHOLD * 0.93))

    ethnicity = rng.choice(len(ETHNICITIES), size=n_households, p=ETHNICITY_SHARES).astype(np.int8)
    tilt = DEPRIVATION_TILT[ethnicity]
    deprivation = (np.floor(rng.beta(tilt, 1.0) * 10) + 1).clip(1, 10).astype(np.int8)
    deprived = (5.5 - deprivation) / 4.5
    frailty = rng.standard_normal(n_households)

    def risk_factor(prevalence: float, deprivation_weight: float) -> np.ndarray:
        x = logit(prevalence) + deprivation_weight * deprived + 0.9 * frailty
        return rng.random(n_households) < sigmoid(x)

    domestic_abuse = risk_factor(params.domestic_abuse_prevalence, 0.6)
    mental_health = risk_factor(params.mental_health_prevalence, 0.4)
    substance = risk_factor(params.substance_misuse_prevalence, 0.7)
    violence = risk_factor(params.adult_violence_prevalence, 0.7) | (
        domestic_abuse & (rng.random(n_households) < 0.15)
    )
    custody = rng.random(n_households) < params.custody_dispute_share
    persistent = rng.random(n_households) < params.persistent_caller_share

    n_children = 1 + np.minimum(rng.poisson(MEAN_CHILDREN_PER_HOUSEHOLD - 1, n_households), 5)
    household = np.repeat(np.arange(n_households, dtype=np.int32), n_children)
    youngest_dob = rng.uniform(-ADULT_AGE_DAYS, window, n_households)
    # Siblings are older than the youngest by cumulative gamma-distributed gaps.
    gaps = rng.gamma(4.0, SIBLING_SPACING_YEARS * YEAR / 4.0, household.size)
    first = np.r_[0, np.cumsum(n_children)[:-1]]
    gaps[first] = 0.0
    cumulative = np.cumsum(gaps)
    offsets = cumulative - np.repeat(cumulative[first], n_children)
    dob = np.repeat(youngest_dob, n_children) - offsets

    alive_in_window = dob + ADULT_AGE_DAYS > 0
    household, dob = household[alive_in_window], dob[alive_in_window]
    dob = make_twins(household, dob, params.seed)
    n = household.size
    child_ethnicity = ethnicity[household].copy()
    # Some children are recorded as mixed, or not stated, whatever the household's group.
    child_ethnicity[rng.random(n) < 0.03] = ETHNICITIES.index(Ethnicity.mixed)
    child_ethnicity[rng.random(n) < 0.02] = ETHNICITIES.index(Ethnicity.not_stated)

    return Population(
        window_days=window,
        hh_deprivation=deprivation,
        hh_ethnicity=ethnicity,
        hh_frailty=frailty,
        hh_domestic_abuse=domestic_abuse,
        hh_mental_health=mental_health,
        hh_substance_misuse=substance,
        hh_adult_violence=violence,
        hh_custody_dispute=custody,
        hh_persistent_caller=persistent,
        child_household=household,
        child_dob=dob,
        child_sex=(rng.random(n) < 0.51).astype(np.int8),  # 0 female, 1 male
        child_disability=rng.random(n) < 0.07,
        child_ethnicity=child_ethnicity,
    )


def make_twins(household: np.ndarray, dob: np.ndarray, seed: int) -> np.ndarray:
    """Some siblings born the same day as the next younger one, at the twin maternity rate.

    Children sit youngest first within each household, so a twin takes the birth of the
    sibling before it; no chains (triplets are too rare to matter).
    """
    rng = np.random.default_rng([seed, TWIN_STREAM])
    elder = np.flatnonzero(household[1:] == household[:-1]) + 1
    if elder.size == 0:
        return dob
    # Twin maternities over all maternities: each chosen child removes one maternity.
    p = min(1.0, TWIN_MATERNITY_RATE / (1 + TWIN_MATERNITY_RATE) * dob.size / elder.size)
    chosen = elder[rng.random(elder.size) < p]
    chosen = chosen[~np.isin(chosen - 1, chosen)]
    out = dob.copy()
    out[chosen] = dob[chosen - 1]
    return out

"""Referrals: who is referred, when, by whom, for what, and with which injury."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import cast

import numpy as np

from triage.synth.channels import (
    ABUSE_SITES,
    ACCIDENT_SITES,
    CHANNEL_CONCERNS,
    HARM_CHANNELS,
    INJURY_PROBABILITY,
    NON_HARM_BAND_RATES,
    SCHOOL_SOURCES,
    SEXUAL_SITES,
    SITES,
    SOURCE_AFFINITY,
    SOURCES,
    Channel,
)
from triage.synth.drift import knob_at
from triage.synth.harm import Episodes
from triage.synth.moves import Residence
from triage.synth.params import WorldParams
from triage.synth.population import AGE_BANDS_YEARS, YEAR, Population
from triage.vocab import Concern, ReferrerType

CONCERNS: tuple[Concern, ...] = tuple(Concern)
SCHOOL_START_AGE = 4.0
AGE_VISIBILITY = np.array([0.9, 0.7, 1.1, 1.0])
"""How visible harm is to agencies in each age band (schools see primary-age children daily)."""
FOLLOW_UP_MEAN_DAYS = 100.0


@dataclass
class Referrals:
    """Columnar referrals, sorted by time; ``episode`` is -1 where no episode raised it."""

    child: np.ndarray
    t: np.ndarray
    household: np.ndarray
    """The household the child lives in when the referral is made."""
    channel: np.ndarray
    episode: np.ndarray
    by_family: np.ndarray
    """Raised by a relative or family friend who saw the harm at home."""
    disputed: np.ndarray
    """Raised by a parent or relative on one side of a custody dispute."""
    persistent: np.ndarray
    """Raised by a household's persistent caller (good faith, nothing behind it)."""
    source: np.ndarray
    concerns: np.ndarray
    injury_sites: np.ndarray
    photographed: np.ndarray

    @property
    def injury_reported(self) -> np.ndarray:
        """Whether any injury site is recorded."""
        # A (referral x site) matrix reduced along its rows is an array, never a scalar.
        return cast(np.ndarray, self.injury_sites.any(axis=1))

    def take(self, index: np.ndarray) -> Referrals:
        """The referrals at ``index``."""
        return Referrals(**{k: v[index] for k, v in vars(self).items()})


def _harm_referrals(
    pop: Population, episodes: Episodes, params: WorldParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Referrals raised by maltreatment episodes while they last: by agencies, and by family.

    Agencies see more of deprived households (surveillance bias); family see the child at
    home whatever the household's deprivation, young children above all, and several family
    members may each raise the same concern.
    """
    age_at_start = pop.age_years(episodes.child, episodes.start)
    band = np.searchsorted([hi for _, hi in AGE_BANDS_YEARS], age_at_start, side="right")
    deprived = pop.hh_deprived[episodes.household]
    visibility = AGE_VISIBILITY[np.minimum(band, 3)] * np.exp(
        0.5 * params.surveillance_bias * deprived
    )
    detection = knob_at(params, "harm_detection_rate", episodes.start)
    agency_counts = rng.poisson(detection * visibility)
    notice = knob_at(params, "family_notice_probability", episodes.start) * np.where(
        age_at_start < SCHOOL_START_AGE, 1, 0.5
    )
    noticed = rng.random(episodes.child.size) < notice
    repeat = knob_at(params, "family_repeat_mean", episodes.start)
    family_counts = noticed * (1 + rng.poisson(repeat, episodes.child.size))
    counts = agency_counts + family_counts
    episode = np.repeat(np.arange(episodes.child.size), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    by_family = np.arange(episode.size) - first >= agency_counts[episode]
    span = np.minimum(episodes.end - episodes.start, 365.0)[episode]
    t = episodes.start[episode] + rng.random(episode.size) * span
    channel = np.asarray(HARM_CHANNELS)[episodes.kind[episode]]
    return episodes.child[episode], t, channel, episode, by_family


def _non_harm_rates(
    pop: Population, rows: Residence, params: WorldParams
) -> dict[Channel, np.ndarray]:
    """Daily rate of each non-harm channel per residence row, before age bands and scale."""
    hh = rows.household
    surveillance = np.exp(params.surveillance_bias * pop.hh_deprived[hh])
    messy = np.exp(0.3 * pop.hh_frailty[hh])
    da, mh, sm = (pop.hh_domestic_abuse[hh], pop.hh_mental_health[hh], pop.hh_substance_misuse[hh])
    per_year = {
        Channel.domestic_abuse_notification: 0.02 + 0.6 * da,
        Channel.parental_mental_health: 0.01 + 0.5 * mh,
        Channel.substance_misuse: 0.005 + 0.4 * sm,
        Channel.child_mental_health: 0.02 * messy,
        Channel.missing_exploitation: 0.012 * messy,
        Channel.accidental_injury: np.full(hh.size, 0.02),
        Channel.school_attendance: 0.012 * messy * (1 + sm + mh),
        Channel.housing: 0.006 * (1 + sm),
        Channel.wellbeing_other: 0.025 * messy,
    }
    return {c: r * surveillance / YEAR for c, r in per_year.items()}


def _non_harm_referrals(
    pop: Population, rows: Residence, params: WorldParams, target: float, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """Concern referrals without maltreatment behind them, scaled to ``target`` in expectation.

    Drawn over each child's residence rows, so the household at the time sets the rates.
    Returns child, time, household and channel.
    """
    until = pop.window_days
    rates = _non_harm_rates(pop, rows, params)
    channels = list(rates)
    band_totals, froms, exposures = [], [], []
    for b, (lo, hi) in enumerate(AGE_BANDS_YEARS):
        a, days = rows.band(pop.child_dob, lo, hi, until)
        total = sum(rates[c] * NON_HARM_BAND_RATES[c][b] for c in channels)
        band_totals.append(total * rows.weight)
        froms.append(a)
        exposures.append(days)
    expected = sum(
        float((tot * exp).sum()) for tot, exp in zip(band_totals, exposures, strict=True)
    )
    scale = max(target, 0.0) / expected
    children, times, households, chosen = [], [], [], []
    for b in range(len(AGE_BANDS_YEARS)):
        counts = rng.poisson(scale * band_totals[b] * exposures[b])
        who = np.repeat(np.arange(counts.size), counts)
        weights = np.column_stack([rates[c][who] * NON_HARM_BAND_RATES[c][b] for c in channels])
        pick = _categorical(weights, rng)
        children.append(rows.child[who])
        households.append(rows.household[who])
        times.append(froms[b][who] + rng.random(who.size) * exposures[b][who])
        chosen.append(np.asarray(channels)[pick])
    return tuple(np.concatenate(c) for c in (children, times, households, chosen))


def _unfounded_referrals(
    pop: Population, rows: Residence, params: WorldParams, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """Referrals with no harm behind them: good-faith concerns, and intentionally false ones.

    Returns child, time, household, channel, whether a side of a custody dispute made it and
    whether a persistent caller did.
    """
    until = pop.window_days
    begin, days = rows.band(pop.child_dob, 0, 18, until)
    exposure = days * rows.weight
    custody = pop.hh_custody_dispute[rows.household]
    persistent = pop.hh_persistent_caller[rows.household]
    parts = []
    for rate, channel, disputed, repeated in (
        (np.full(custody.size, params.unfounded_referral_rate), Channel.unfounded, False, False),
        (np.full(custody.size, params.malicious_referral_rate), Channel.malicious, False, False),
        (custody * params.custody_dispute_referral_rate, None, True, False),
        (persistent * params.persistent_caller_rate, Channel.unfounded, False, True),
    ):
        counts = rng.poisson(rate / YEAR * exposure)
        who = np.repeat(np.arange(counts.size), counts)
        if channel is None:
            false = rng.random(who.size) < params.custody_dispute_false_share
            chosen = np.where(false, Channel.malicious, Channel.unfounded)
        else:
            chosen = np.full(who.size, channel)
        parts.append(
            (
                rows.child[who],
                begin[who] + rng.random(who.size) * days[who],
                rows.household[who],
                chosen,
                np.full(who.size, disputed),
                np.full(who.size, repeated),
            )
        )
    return tuple(np.concatenate(cols) for cols in zip(*parts, strict=True))


def _categorical(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row from unnormalised row weights."""
    cumulative = np.cumsum(weights, axis=1)
    u = rng.random(weights.shape[0]) * cumulative[:, -1]
    draws: np.ndarray = (cumulative < u[:, None]).sum(axis=1).clip(0, weights.shape[1] - 1)
    return draws


def _follow_ups(
    child: np.ndarray,
    t: np.ndarray,
    *rest: np.ndarray,
    params: WorldParams,
    until: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, ...]:
    """Chains of re-referrals: each referral may be followed by another within a year.

    A follow-up repeats every column of the referral it follows (``rest``) but the time.
    """
    current = (child, t, *rest)
    parts = [current]
    while current[0].size:
        keep = rng.random(current[0].size) < params.follow_up_probability
        gap = np.minimum(7.0 + rng.exponential(FOLLOW_UP_MEAN_DAYS, keep.sum()), 365.0)
        nxt = tuple(a[keep] for a in current)
        nxt = (nxt[0], nxt[1] + gap, *nxt[2:])
        inside = nxt[1] < until
        current = tuple(a[inside] for a in nxt)
        parts.append(current)
    return tuple(np.concatenate(cols) for cols in zip(*parts, strict=True))


def rake_source_probabilities(
    group_counts: np.ndarray, group_affinity: np.ndarray, targets: np.ndarray, iterations: int = 50
) -> np.ndarray:
    """Per-group source probabilities whose mixture matches ``targets`` (iterative fitting)."""
    weights = np.ones(group_affinity.shape[1])
    for _ in range(iterations):
        probs = group_affinity * weights
        probs /= probs.sum(axis=1, keepdims=True)
        realised = (group_counts[:, None] * probs).sum(axis=0) / group_counts.sum()
        weights *= np.where(realised > 0, targets / np.maximum(realised, 1e-12), 1.0)
    probs = group_affinity * weights
    raked: np.ndarray = probs / probs.sum(axis=1, keepdims=True)
    return raked


def _assign_sources(
    pop: Population,
    child: np.ndarray,
    t: np.ndarray,
    channel: np.ndarray,
    individual: np.ndarray,
    targets: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Referrer type per referral: channel affinity raked to the national source shares.

    Rows already known to come from an individual (family who saw harm, a side of a custody
    dispute) keep that source; the others are raked so that all rows together match.
    """
    individual_code = SOURCES.index(ReferrerType.individual)
    school_age = pop.age_years(child, t) >= SCHOOL_START_AGE
    group = channel.astype(np.int64) * 2 + school_age
    n_groups = SOURCE_AFFINITY.shape[0] * 2
    affinity = np.repeat(SOURCE_AFFINITY, 2, axis=0).astype(float)
    school_cols = [SOURCES.index(s) for s in SCHOOL_SOURCES]
    affinity[0::2, school_cols] = 0.0  # no school referrals before school age
    affinity[affinity.sum(axis=1) == 0] = 1.0
    counts = np.bincount(group[~individual], minlength=n_groups).astype(float)
    rest = targets * child.size
    rest[individual_code] -= individual.sum()
    rest = np.clip(rest, 0, None) / (~individual).sum()
    probs = rake_source_probabilities(counts, affinity, rest)
    source = _categorical(probs[group], rng).astype(np.int8)
    source[individual] = individual_code
    return source


def _concerns(
    pop: Population, hh: np.ndarray, channel: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Boolean matrix of concerns ticked (referral x ``CONCERNS``), given the household."""
    n = hh.size
    out = np.zeros((n, len(CONCERNS)), dtype=bool)
    for ch, ticks in CHANNEL_CONCERNS.items():
        rows = channel == ch
        for concern, p in ticks:
            out[rows, CONCERNS.index(concern)] |= rng.random(rows.sum()) < p
    extras = (
        (pop.hh_domestic_abuse[hh], Concern.domestic_abuse, 0.35),
        (pop.hh_mental_health[hh], Concern.parental_mental_health, 0.25),
        (pop.hh_substance_misuse[hh], Concern.parental_substance_misuse, 0.25),
    )
    for present, concern, p in extras:
        out[:, CONCERNS.index(concern)] |= present & (rng.random(n) < p)
    out[~out.any(axis=1), CONCERNS.index(Concern.other)] = True
    return out


def _injuries(
    channel: np.ndarray,
    by_family: np.ndarray,
    t: np.ndarray,
    params: WorldParams,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Injury sites (referral x ``SITES``) and whether photographs were taken."""
    n = channel.size
    reported = rng.random(n) < INJURY_PROBABILITY[channel]
    site_probs = np.tile(ABUSE_SITES, (n, 1))
    site_probs[channel == Channel.accidental_injury] = ACCIDENT_SITES
    site_probs[channel == Channel.harm_sexual] = SEXUAL_SITES
    sites = np.zeros((n, len(SITES)), dtype=bool)
    first = _categorical(site_probs, rng)
    sites[np.arange(n), first] = True
    second = _categorical(site_probs, rng)
    add_second = rng.random(n) < 0.25
    sites[np.arange(n)[add_second], second[add_second]] = True
    sites &= reported[:, None]
    family_photographs = knob_at(params, "family_photograph_probability", t)
    photo_probability = np.where(by_family, family_photographs, 0.5)
    photographed = reported & (rng.random(n) < photo_probability)
    return sites, photographed


def _lockdown_window(pop_window_days: float, end: date, years: int) -> tuple[float, float]:
    """School closure of spring 2020 in window days."""
    start = date.fromordinal(end.toordinal() - round(years * YEAR))
    return (
        float(date(2020, 3, 23).toordinal() - start.toordinal()),
        float(date(2020, 6, 1).toordinal() - start.toordinal()),
    )


def draw_referrals(
    pop: Population,
    residence: Residence,
    episodes: Episodes,
    params: WorldParams,
    source_targets: np.ndarray,
    rng: np.random.Generator,
) -> Referrals:
    """All referrals in the window: harm-driven, concern-driven, unfounded and follow-ups."""
    until = pop.window_days
    harm = _harm_referrals(pop, episodes, params, rng)
    inside = harm[1] < until
    h_child, h_t, h_channel, h_episode, h_family = (a[inside] for a in harm)
    h_household = residence.at(h_child, h_t)
    u_child, u_t, u_household, u_channel, u_disputed, u_persistent = _unfounded_referrals(
        pop, residence, params, rng
    )
    index_target = params.n_referrals * (1 - params.follow_up_probability)
    n_child, n_t, n_household, n_channel = _non_harm_referrals(
        pop, residence, params, index_target - h_child.size - u_child.size, rng
    )
    n_none = np.zeros(n_child.size, dtype=bool)
    child = np.concatenate([h_child, n_child, u_child])
    t = np.concatenate([h_t, n_t, u_t])
    household = np.concatenate([h_household, n_household, u_household])
    channel = np.concatenate([h_channel, n_channel, u_channel]).astype(np.int8)
    episode = np.concatenate([h_episode, np.full(n_child.size + u_child.size, -1)])
    by_family = np.concatenate([h_family, n_none, np.zeros(u_child.size, dtype=bool)])
    disputed = np.concatenate([np.zeros(h_child.size, dtype=bool), n_none, u_disputed])
    persistent = np.concatenate([np.zeros(h_child.size, dtype=bool), n_none, u_persistent])
    child, t, household, channel, episode, by_family, disputed, persistent = _follow_ups(
        child, t, household, channel, episode, by_family, disputed, persistent,
        params=params, until=until, rng=rng,
    )  # fmt: skip
    # A follow-up after a move is about the child's new household.
    moved = ~residence.covers(child, household, t)
    household[moved] = residence.at(child[moved], t[moved])

    individual = by_family | disputed | persistent
    source = _assign_sources(pop, child, t, channel, individual, source_targets, rng)
    lock_from, lock_to = _lockdown_window(until, params.end, params.years)
    school = np.isin(source, [SOURCES.index(ReferrerType.school)])
    lost = (
        school
        & (t >= lock_from)
        & (t < lock_to)
        & (rng.random(t.size) < params.lockdown_school_drop)
    )
    order = np.argsort(t[~lost], kind="stable")
    keep = np.flatnonzero(~lost)[order]
    columns = (child, t, household, channel, episode, by_family, disputed, persistent, source)
    child, t, household, channel, episode, by_family, disputed, persistent, source = (
        a[keep] for a in columns
    )
    sites, photographed = _injuries(channel, by_family, t, params, rng)
    return Referrals(
        child=child,
        t=t,
        household=household,
        channel=channel,
        episode=episode,
        by_family=by_family,
        disputed=disputed,
        persistent=persistent,
        source=source,
        concerns=_concerns(pop, household, channel, rng),
        injury_sites=sites,
        photographed=photographed,
    )

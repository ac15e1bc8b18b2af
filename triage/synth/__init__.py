"""The synthetic referral world: seeded, vectorised, calibrated to published figures."""

from triage.synth.layout import World
from triage.synth.params import WorldParams
from triage.synth.world import generate_world

__all__ = ["World", "WorldParams", "generate_world"]

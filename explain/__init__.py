"""Per-referral reasons with their records, what-if, global views, plots and batch reasons."""

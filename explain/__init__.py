"""Per-referral reasons, what-if and global views (the "Explanations" issue fills this package)."""

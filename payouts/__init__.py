"""payouts domain package."""

"""accounts domain package."""

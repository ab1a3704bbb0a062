"""classroom domain package."""

"""moderation domain package."""

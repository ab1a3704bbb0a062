"""Connects domain hooks that must not import each other (e.g. classroom → moderation)."""

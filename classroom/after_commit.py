"""Relay controls (mute, remove, end, disconnect) wait for the transaction: see
``storage.after_commit``, which this module re-exports for the classroom's services."""

from __future__ import annotations

from storage.after_commit import after_commit, drain

__all__ = ["after_commit", "drain"]

"""Keeping an index up to date: per-source cursors (cursors) and the nightly run (reindex)."""

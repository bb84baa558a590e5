"""The embedded trace store (pending)."""

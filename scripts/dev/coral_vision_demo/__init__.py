"""A development-only camera that shows the photos of a folder in turn (used by scripts/develop)."""

"""Model files: read, describe, label, catalog, store, download and check them."""

"""LanceDB connector (``lancedb``): a table in a local directory, Arrow in and out."""

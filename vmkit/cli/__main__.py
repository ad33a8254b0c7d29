"""``python -m vmkit.cli`` runs the CLI, as it did when the CLI was a single module."""

from vmkit.cli import app

app()

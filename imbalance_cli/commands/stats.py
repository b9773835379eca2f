"""`imbalance stats` (being written; registers nothing yet)."""


def register(app):
    """Add this module's command(s) to the Typer app."""

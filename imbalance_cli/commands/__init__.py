"""One module per CLI command; each exposes ``register(app)``. See :mod:`imbalance_cli.cli`."""

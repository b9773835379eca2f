"""``python -m imbalance_cli`` runs the command line."""

from imbalance_cli.cli import main

main()

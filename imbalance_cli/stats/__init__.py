"""imbalance_cli.stats"""

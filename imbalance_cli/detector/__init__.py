"""imbalance_cli.detector"""

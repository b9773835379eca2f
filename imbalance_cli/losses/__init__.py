"""imbalance_cli.losses"""

"""imbalance_cli.report"""

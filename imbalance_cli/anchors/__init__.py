"""imbalance_cli.anchors"""

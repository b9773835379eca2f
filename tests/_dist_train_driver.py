"""Run under torchrun by tests/test_distributed.py: ``imbalance_cli.detector.train.train`` with a JSON TrainConfig.

``--stop-after-epoch E`` raises after epoch E's checkpoint (a killed run, to be resumed).
"""

import json
import sys

from imbalance_cli import dist
from imbalance_cli.detector.train import TrainConfig, train


class Stopped(Exception):
    """Raised on every rank after the chosen epoch's checkpoint is written."""


def main() -> None:
    cfg = TrainConfig(**json.loads(sys.argv[1]))
    stop = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--stop-after-epoch" else None

    def on_epoch_end(epoch):
        if stop is not None and epoch == stop:
            raise Stopped(f"stopped after epoch {epoch}")

    dist.init()
    try:
        train(cfg, on_epoch_end=on_epoch_end)
    except Stopped:
        sys.exit(3)
    dist.finish()


if __name__ == "__main__":
    main()

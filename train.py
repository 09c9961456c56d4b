"""Trains a method from an ml_collections config.

  python train.py --config=configs/quickstart.py
  python train.py --config=configs/cifar10_wrn.py --config.model=wrn-16-2 --workdir=workdirs/wrn16
  python train.py --config=configs/cunet_keypoints.py:818 --config.epochs=2

`jaxaug.train.train` trains every config: classification, or keypoints (CU-Net, stacked hourglass)
for task="keypoints".

Every config field can be overridden with --config.<field>=<value>; unknown fields are errors.
"""

import logging as std_logging
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxaug.train import TrainingDiverged, train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to an ml_collections config file.")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Where checkpoints, metrics and the summary go (default: workdirs/<config name>)."
)
flags.mark_flags_as_required(["config"])


class _HideLibraryInfo(std_logging.Filter):
    """Drops Orbax's INFO records (several per checkpoint); its warnings and errors still show."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config_file = config_flags.get_config_filename(flags.FLAGS["config"])
    config_name = os.path.splitext(os.path.basename(config_file))[0]
    workdir = _WORKDIR.value or os.path.join("workdirs", config_name)
    logging.set_verbosity(logging.INFO)
    logging.get_absl_handler().addFilter(_HideLibraryInfo())
    config = _CONFIG.value
    try:
        summary = train(config, workdir)
    except TrainingDiverged as e:
        sys.exit(f"{e}\nWrote {os.path.join(workdir, 'summary.json')}")  # exit status 1
    print(f"Wrote {os.path.join(workdir, 'summary.json')}")
    metric = summary["metric"]
    if f"last_test_{metric}" in summary:
        # The best test score is chosen on the test set; the score to report is the one at the
        # best validation epoch (config.val_size > 0).
        at_val = summary.get(f"test_{metric}_at_best_val")
        print(
            f"test {metric}: last {summary[f'last_test_{metric}']:.4f}, "
            + (f"at the best val epoch {at_val:.4f}, " if at_val is not None else "")
            + f"best {summary[f'best_test_{metric}']:.4f}; "
            f"wall time {summary['wall_time_s']:.1f} s; "
            f"{summary['train_images_per_s'] or 0:.0f} train images/s"
        )

if __name__ == "__main__":
    app.run(main)

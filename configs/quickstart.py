"""One plain run: a small Wide-ResNet on the embedded synthetic shapes dataset, about 2 CPU
minutes (`make demo` is `demo.py` with `configs/demo.py`).

  python train.py --config=configs/quickstart.py

WRN-10-1 with batch 32: on a 2-core CPU, XLA's convolutions run about 3x more images/s at batch
32 than at 128 for this model, and more, smaller steps learn the shapes faster.
"""

from jaxaug.train.config import base_config


def get_config():
    config = base_config()
    config.dataset = "synthetic"
    config.model = "wrn-10-1"
    config.epochs = 3
    config.batch_size = 32
    config.optimizer.lr = 0.05
    config.log_every_steps = 50
    return config

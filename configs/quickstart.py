"""The demo: a small Wide-ResNet on the embedded synthetic shapes dataset, a few CPU minutes.

  python train.py --config=configs/quickstart.py
"""

from jaxaug.train.config import base_config


def get_config():
    config = base_config()
    config.dataset = "synthetic"
    config.model = "wrn-10-2"
    config.epochs = 3
    config.batch_size = 128
    config.optimizer.lr = 0.1
    config.optimizer.warmup_epochs = 0.0
    config.log_every_steps = 20
    return config

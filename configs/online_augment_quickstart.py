"""OnlineAugment with an A-STN generator on the built-in synthetic dataset: a short CPU run that
exercises the whole method (generator, reversed adversarial gradient, cycle regularizer, two
BatchNorm sets). The quickstart's WRN-10-1, batch 32, for one epoch.

  python train.py --config=configs/online_augment_quickstart.py
  python train.py --config=configs/online_augment_quickstart.py --config.online_augment.meta=True
"""

from jaxaug.train.config import base_config


def get_config():
    config = base_config()
    config.dataset = "synthetic"
    config.model = "wrn-10-1"
    config.num_bn_sets = 2
    config.epochs = 1
    config.batch_size = 32
    config.optimizer.lr = 0.05
    config.log_every_steps = 50
    config.method = "online_augment"
    config.online_augment.generator = "astn"
    return config

"""Target networks for method tests that compile in about a second (a WRN step takes 30-60 s on
the 2-core CPU): conv, BatchNorm, global average pool, linear, with the models' call signature;
and `jit_init`, a faster-compiling initialisation for networks with convolutions."""

import flax.linen as nn
import jax

from jaxaug.models.batchnorm import MultiBatchNorm


class TinyNet(nn.Module):
    num_classes: int = 10

    @nn.compact
    def __call__(self, x, train=True, bn_set=0):
        del bn_set
        x = nn.Conv(8, (3, 3), strides=2)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        return nn.Dense(self.num_classes)(nn.relu(x).mean((1, 2)))


class TinyMultiBNNet(nn.Module):
    """TinyNet with the models' ``num_bn_sets`` BatchNorm sets, routed by ``bn_set`` as in the
    real models (`MultiBatchNorm`), for methods that send images to their own sets."""

    num_classes: int = 10
    num_bn_sets: int = 1

    @nn.compact
    def __call__(self, x, train=True, bn_set=0):
        x = nn.Conv(8, (3, 3), strides=2)(x)
        x = MultiBatchNorm(self.num_bn_sets)(x, train=train, bn_set=bn_set)
        return nn.Dense(self.num_classes)(nn.relu(x).mean((1, 2)))


def jit_init(init, *args, **kwargs):
    """``jax.jit(init)(*args, **kwargs)`` (keyword arguments static) under the classic threefry:
    with the default partitionable one, XLA on CPU compiles random draws, of convolution kernels
    above all, several times slower (only the initial values differ)."""
    with jax.threefry_partitionable(False):
        return jax.jit(init, static_argnames=tuple(kwargs))(*args, **kwargs)

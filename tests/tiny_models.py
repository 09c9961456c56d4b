"""Target networks for method tests that compile in about a second (a WRN step takes 30-60 s on
the 2-core CPU): conv, BatchNorm, global average pool, linear, with the models' call signature;
`jit_init`, a faster-compiling initialisation for networks with convolutions; and
`numpy_variables`, which fills a model's variable shapes without compiling an init at all."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

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


def numpy_variables(shapes, seed=0):
    """Variables of the shapes ``shapes`` (``jax.eval_shape`` of an init) drawn with numpy: kernels
    normal, scaled by 1/sqrt(fan-in), BatchNorm variances uniform in [0.5, 2], other leaves
    normal. Sane values for a forward pass, where even a jitted init of a large model costs
    seconds of compiling."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        if path[-1].key == "var":
            return jnp.asarray(rng.uniform(0.5, 2.0, leaf.shape), jnp.float32)
        scale = 1 / np.sqrt(np.prod(leaf.shape[:-1])) if leaf.ndim > 1 else 1.0
        return jnp.asarray(rng.normal(size=leaf.shape) * scale, jnp.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


class TinyTransformer(nn.Module):
    """AdaTransform's T (`jaxaug.models.TransformerNet`'s interface) in one strided
    conv with dropout: a method test that is not about T's architecture compiles its step in
    seconds. The output layer starts at zero: a uniform policy."""

    num_actions: int
    dropout: float = 0.3

    @nn.compact
    def __call__(self, images, extra, train=False):
        x = nn.relu(nn.Conv(8, (3, 3), strides=2)(images))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = jnp.concatenate([x.mean((1, 2)), extra], axis=-1)
        return nn.Dense(self.num_actions, kernel_init=nn.initializers.zeros)(x)

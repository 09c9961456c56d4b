"""CU-Net: coupled U-Nets for heatmap keypoint regression (Tang et al., ECCV 2018 / BMVC 2018).

With block width m (``features``, 128), growth n (``growth``, 32), ``depth`` d (4) and order K:

* Stem: 7x7 conv to m channels (stride 2; 1 when ``stem_stride`` is 1) - BN - ReLU - 2x2 max pool
  (only when ``stem_stride`` is 4), so a 256x256 image gives 64x64 features.
* ``num_unets`` U-Nets, each with d down blocks (each followed by 2x2 max pooling), a neck block at
  the lowest resolution and d up blocks; an up block takes the x2 nearest-upsampled features
  concatenated with the skip features of the down block at its resolution (2m channels).
* Dense block: its inputs concatenated - BN-ReLU-Conv1x1 to 4n - BN-ReLU-Conv3x3 to n new features;
  inputs and new features concatenated - BN-ReLU-Conv1x1 to m (the block output). Down blocks have a
  second such 1x1 giving their skip features.
* Order-K coupling: the block of U-Net u also takes the n new features of the same block (same
  position and resolution) of U-Nets u-K..u-1, so its input is m + min(u, K)·n channels wide
  (2m + min(u, K)·n for up blocks).
* U-Net u >= 1 takes BN-ReLU-Conv1x1 to m of [output of U-Net u-1, inputs of U-Nets u-K..u-1]
  (the reference's intermediate block); the stem output is U-Net 0's input.
* Heads (intermediate supervision): BN-ReLU-Conv1x1 to ``num_joints`` on every U-Net's output. As in
  the reference, heatmaps are not fed into the next U-Net.
* Iterative refinement (``refine_iterations`` r; Tang thesis, sec. 5.3.4 and 5.5.6): the whole
  chain of U-Nets, adapters and heads runs r more times with the same convolution kernels; every
  BatchNorm in that chain has its own scale, bias and statistics in each iteration ("independent
  batch normalization parameters", parameters ``bn_iter<t>`` next to ``bn``). Iteration t >= 1
  starts from the `RefineBlock` of [input of the first U-Net, input of the last U-Net] of
  iteration t - 1 (2m channels): 4 densely connected BN-ReLU-Conv3x3 layers of g =
  ``refine_growth`` new channels each, then BN-ReLU-Conv1x1 of all 2m + 4g channels to m. Its
  kernels are shared by the iterations too, its BatchNorms are per iteration. Coupling starts
  afresh in each iteration, as the block widths depend on the U-Net's index. The thesis does not
  state g; g = 16 gives its "0.2M" extra parameters (0.20 M of kernels on CU-Net-4, m = 128:
  CU-Net-4 3.93 M -> 4.13 M with 68 landmarks, its table 5.7's 3.9 M -> 4.1 M), where g = 32, the
  blocks' growth, would add 0.40 M. Departure: the thesis trains the two passes on separate
  mini-batches (one batch through the first pass and updated; the next through both and updated
  from the second pass only); here every iteration's heads are supervised on the same batch in one
  loss, as for the U-Nets' intermediate supervision.

The model returns float32 heatmaps [S, N, H/stem_stride, W/stem_stride, num_joints] with
S = num_unets·(1 + r), in order of computation. Convolutions are `QuantConv`s quantized by ``quant``
except the stem conv and the heads' convs, which stay full precision; every BatchNorm's scale starts
at U(0, 1) where the spec's ``bn_scale_init`` is "uniform" (the paper settings), as in the official
code.

Initialization (``initialization``): "reference" is the official code's (zhiqiangdon/CU-Net,
``models/cu_net.py``): every conv's weights from U(+-1/sqrt(fan_in)) (std 1/sqrt(3 fan_in)), the
heads included, and every BatchNorm's gamma from U(0, 1), in full precision too. "kaiming" (the
default) is this library's: Kaiming normal kernels with fan-out (std sqrt(2 / fan_out)), zero heads,
and gamma 1 unless the spec says "uniform". For CU-Net-2 with m = 64, n = 16 its kernels behind a
BatchNorm start 3.5x (1x1, median) to 4.9x (3x3) larger than the reference's (the stem 0.53x);
since RMSProp's first steps move every weight by about the same amount (10 lr at the first step),
such a kernel's direction, all its BatchNorm passes on, turns that many times more slowly than in
the reference. The functions and layers
shared with the stacked hourglass (input checks, occlusion, pooling) live here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxaug.quant.layers import (
    QuantConv,
    QuantSpec,
    batchnorm_scale_init,
    get_spec,
    kaiming_fan_out,
)
from jaxaug.quant.residuals import codes_policy

STEM_STRIDES = (1, 2, 4)
MEMORY_EFFICIENT = (False, True, "int8_codes")


def check_int(model: str, name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{model}: {name} must be an int >= {minimum}, got {value!r}")


def check_common(model: str, module: nn.Module) -> None:
    """Checks the fields every pose model has: num_joints, depth, stem_stride, quant, dtype."""
    check_int(model, "num_joints", module.num_joints, 1)
    check_int(model, "depth", module.depth, 1)
    if module.stem_stride not in STEM_STRIDES:
        raise ValueError(f"{model}: stem_stride must be one of {STEM_STRIDES}, "
                         f"got {module.stem_stride!r}")
    try:
        get_spec(module.quant)
    except ValueError as e:
        raise ValueError(f"{model}: quant: {e}") from None
    try:
        dtype = jnp.dtype(module.dtype)
    except TypeError:
        dtype = None
    if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16)):
        raise ValueError(f"{model}: dtype must be float32 or bfloat16, got {module.dtype!r}")


def check_inputs(model: str, images: jax.Array, occlusion: jax.Array | None, stem_stride: int,
                 depth: int) -> None:
    """Images must be NHWC with sides divisible by stem_stride·2^depth; the occlusion grid [N, gh,
    gw] must divide every U-Net resolution so that nearest upsampling is an integer repeat."""
    if images.ndim != 4:
        raise ValueError(f"{model}: images must be NHWC (rank 4), got shape {images.shape}")
    multiple = stem_stride * 2**depth
    if images.shape[1] % multiple or images.shape[2] % multiple:
        raise ValueError(f"{model}: images height and width must be multiples of "
                         f"stem_stride·2^depth = {multiple}, got shape {images.shape}")
    if occlusion is None:
        return
    if occlusion.ndim != 3 or occlusion.shape[0] != images.shape[0]:
        raise ValueError(f"{model}: occlusion must be [N, g, g] with N = {images.shape[0]}, got "
                         f"shape {occlusion.shape}")
    lowest = (images.shape[1] // multiple, images.shape[2] // multiple)
    if lowest[0] % occlusion.shape[1] or lowest[1] % occlusion.shape[2]:
        raise ValueError(f"{model}: occlusion grid {occlusion.shape[1:]} must divide the lowest "
                         f"feature resolution {lowest}")


def occlude(x: jax.Array, occlusion: jax.Array | None) -> jax.Array:
    """x [N, H, W, C] times the [N, gh, gw] mask upsampled (nearest) to H x W."""
    if occlusion is None:
        return x
    mask = jnp.repeat(occlusion, x.shape[1] // occlusion.shape[1], axis=1)
    mask = jnp.repeat(mask, x.shape[2] // occlusion.shape[2], axis=2)
    return x * mask[..., None].astype(x.dtype)


def max_pool2(x: jax.Array) -> jax.Array:
    return nn.max_pool(x, (2, 2), strides=(2, 2))


def upsample2(x: jax.Array) -> jax.Array:
    """Nearest-neighbour x2 upsampling."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def bn_name(iteration: int) -> str:
    """The BatchNorm of refinement iteration ``iteration``: "bn" for the first pass, so that a
    CU-Net without refinement (and the stacked hourglass) keeps its parameter tree."""
    return "bn" if iteration == 0 else f"bn_iter{iteration}"


def batch_norm(train: bool, dtype: Any, name: str | None = None,
               scale_init: Any = nn.initializers.ones) -> nn.BatchNorm:
    """BatchNorm with PyTorch's defaults (momentum 0.1 there is 0.9 here, eps 1e-5)."""
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
                        scale_init=scale_init, name=name)


#: ``CUNet.initialization``: "kaiming", this library's (Kaiming normal fan-out kernels, zero
#: heads, BatchNorm gamma 1 unless the quant spec says "uniform"), or "reference", the official
#: code's.
INITS = ("kaiming", "reference")

# The official code's conv init (zhiqiangdon/CU-Net, models/cu_net.py): U(+-1/sqrt(fan_in)),
# i.e. variance scaling 1/3 on the fan-in, uniform.
REFERENCE_KERNEL_INIT = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


def unit_inits(initialization: str, spec: QuantSpec | None) -> dict[str, Any]:
    """The ``kernel_init`` and ``bn_scale_init`` of a BN-ReLU-Conv unit under ``init``
    (`INITS`): the official code draws every conv from U(+-1/sqrt(fan_in)) and every gamma from
    U(0, 1), in full precision too."""
    if initialization == "reference":
        return {"kernel_init": REFERENCE_KERNEL_INIT, "bn_scale_init": nn.initializers.uniform(1.0)}
    return {"kernel_init": kaiming_fan_out, "bn_scale_init": batchnorm_scale_init(spec)}


class BnReluConv(nn.Module):
    """Channel concatenation of the inputs - BN - ReLU - k x k `QuantConv`; ``iteration`` (static)
    picks the BatchNorm of that refinement iteration (`bn_name`), the conv is shared."""

    features: int
    kernel_size: int
    train: bool
    spec: QuantSpec | None = None
    use_bias: bool = False
    dtype: Any = jnp.float32
    kernel_init: Any = kaiming_fan_out
    bn_scale_init: Any = nn.initializers.ones

    @nn.compact
    def __call__(self, inputs: Sequence[jax.Array], iteration: int = 0) -> jax.Array:
        x = jnp.concatenate(inputs, axis=-1)
        x = nn.relu(batch_norm(self.train, self.dtype, bn_name(iteration), self.bn_scale_init)(x))
        return QuantConv(features=self.features, kernel_size=self.kernel_size, spec=self.spec,
                         use_bias=self.use_bias, dtype=self.dtype, kernel_init=self.kernel_init,
                         name="conv")(x)


# Heatmap heads start at zero, so the first predictions are the all-zero maps. Random heads (Kaiming
# fan-out, or even PyTorch's U(+-1/sqrt(fan_in))) start with heatmaps of std 0.4 to 2, whose MSE
# (0.2 to 2 per stack, against targets of mean square ~0.01) takes hundreds of steps only to
# shrink back to the level of predicting zero. The heads' own gradient is nonzero from the start.
HEAD_INIT = nn.initializers.zeros


# Rematerialized: the concatenation and BN-ReLU outputs are recomputed in the backward pass
# instead of being stored, as the reference's memory-efficient (checkpointed) bottlenecks. Same
# parameter tree as BnReluConv. The iteration (argument 2, after self and the inputs) names modules.
RematBnReluConv = nn.remat(BnReluConv, static_argnums=(2,))
# memory_efficient="int8_codes": the unit saves only its conv's int8 input codes.
CodesRematBnReluConv = nn.remat(BnReluConv, static_argnums=(2,), policy=codes_policy())


class DenseBlock(nn.Module):
    """inputs -> [BN-ReLU-Conv1x1 (4n) - BN-ReLU-Conv3x3 (n)] = new; [inputs, new] -> BN-ReLU-Conv1x1
    (m), once per output. Returns (new, outputs)."""

    features: int
    growth: int
    num_outputs: int
    train: bool
    spec: QuantSpec | None
    memory_efficient: bool
    dtype: Any
    initialization: str = "kaiming"

    @nn.compact
    def __call__(self, inputs: Sequence[jax.Array], iteration: int = 0
                 ) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        common = {"train": self.train, "spec": self.spec, "dtype": self.dtype,
                  **unit_inits(self.initialization, self.spec)}
        concat_unit = RematBnReluConv if self.memory_efficient else BnReluConv
        bottleneck = concat_unit(4 * self.growth, 1, name="bottleneck", **common)(inputs, iteration)
        new = BnReluConv(self.growth, 3, name="conv3x3", **common)([bottleneck], iteration)
        outputs = tuple(concat_unit(self.features, 1, name=f"neck{i}", **common)([*inputs, new],
                                                                                  iteration)
                        for i in range(self.num_outputs))
        return new, outputs


#: Dense 3x3 layers of the refinement block (Tang thesis, sec. 5.3.4).
REFINE_LAYERS = 4


class RefineBlock(nn.Module):
    """The iterative refinement's input block (Tang thesis, sec. 5.3.4): its inputs (the first and
    last U-Nets' inputs) concatenated, ``REFINE_LAYERS`` densely connected BN-ReLU-Conv3x3 layers
    of ``growth`` new channels each (layer i sees the inputs and the i earlier layers' outputs),
    then BN-ReLU-Conv1x1 of everything to ``features``."""

    features: int
    growth: int
    train: bool
    spec: QuantSpec | None
    memory_efficient: bool
    dtype: Any
    initialization: str = "kaiming"

    @nn.compact
    def __call__(self, inputs: Sequence[jax.Array], iteration: int = 0) -> jax.Array:
        common = {"train": self.train, "spec": self.spec, "dtype": self.dtype,
                  **unit_inits(self.initialization, self.spec)}
        unit = RematBnReluConv if self.memory_efficient else BnReluConv
        features = list(inputs)
        for i in range(REFINE_LAYERS):
            features.append(unit(self.growth, 3, name=f"dense{i}", **common)(list(features),
                                                                              iteration))
        return unit(self.features, 1, name="compress", **common)(features, iteration)


class UNet(nn.Module):
    """One coupled U-Net. ``coupled[p]`` lists the previous U-Nets' new features of block position
    p (down blocks 0..d-1, neck d, up blocks d+1..2d from low to high resolution).

    Returns (output, new features per position, [skip features highest resolution first, then the
    neck's output]); those skip and neck features are multiplied by the occlusion mask.
    """

    depth: int
    features: int
    growth: int
    train: bool
    spec: QuantSpec | None
    memory_efficient: bool
    dtype: Any
    initialization: str = "kaiming"

    @nn.compact
    def __call__(self, x, coupled: Sequence[Sequence[jax.Array]], occlusion: jax.Array | None,
                 iteration: int = 0):
        def block(num_outputs, name):
            return DenseBlock(self.features, self.growth, num_outputs, self.train, self.spec,
                              self.memory_efficient, self.dtype, self.initialization, name=name)

        new, skips = [], []
        for level in range(self.depth):
            f, (x, skip) = block(2, f"down{level}")([x, *coupled[level]], iteration)
            new.append(f)
            skips.append(occlude(skip, occlusion))
            x = max_pool2(x)
        f, (x,) = block(1, "neck")([x, *coupled[self.depth]], iteration)
        new.append(f)
        x = occlude(x, occlusion)
        bridge = x
        for level in reversed(range(self.depth)):
            f, (x,) = block(1, f"up{level}")([upsample2(x), skips[level],
                                              *coupled[2 * self.depth - level]], iteration)
            new.append(f)
        return x, new, [*skips, bridge]


# memory_efficient="int8_codes": a whole U-Net saves only its convs' int8 input codes (the
# iteration, argument 4, names modules).
CodesRematUNet = nn.remat(UNet, static_argnums=(4,), policy=codes_policy())


def _last(items: list, k: int) -> list:
    """The last k items (none for k = 0, where items[-0:] would be all of them)."""
    return items[max(len(items) - k, 0):]


class CUNet(nn.Module):
    """CU-Net with order-``order`` coupling (see the module docstring).

    ``model.apply(variables, images, train, occlusion=None, return_features=False)`` on NHWC
    images returns heatmaps [S, N, H', W', num_joints] (float32), or (heatmaps, features) with
    ``return_features``: the first U-Net's skip features and neck output, highest resolution first,
    in the compute dtype. ``occlusion`` [N, g, g] (1 keep, 0 drop) multiplies those features in
    every U-Net. ``train=True`` needs ``mutable=['batch_stats']``; stochastic-rounding quant specs
    need a 'quant' rng.
    """

    num_joints: int = 16
    num_unets: int = 8
    order: int = 1
    depth: int = 4
    features: int = 128
    growth: int = 32
    refine_iterations: int = 0
    refine_growth: int = 16
    stem_stride: int = 4
    memory_efficient: bool | str = False
    quant: str | QuantSpec | None = None
    dtype: Any = jnp.float32
    initialization: str = "kaiming"

    def __post_init__(self):
        super().__post_init__()
        check_common("CUNet", self)
        check_int("CUNet", "num_unets", self.num_unets, 1)
        check_int("CUNet", "features", self.features, 1)
        check_int("CUNet", "growth", self.growth, 1)
        check_int("CUNet", "refine_iterations", self.refine_iterations, 0)
        check_int("CUNet", "refine_growth", self.refine_growth, 1)
        check_int("CUNet", "order", self.order, 0)
        if self.order >= self.num_unets:
            raise ValueError(f"CUNet: order must be < num_unets = {self.num_unets} (a U-Net can "
                             f"only couple to the ones before it), got {self.order}")
        if self.memory_efficient not in MEMORY_EFFICIENT:
            raise ValueError(f"CUNet: memory_efficient must be one of {MEMORY_EFFICIENT}, got "
                             f"{self.memory_efficient!r}")
        if self.initialization not in INITS:
            raise ValueError(f"CUNet: initialization must be one of {INITS}, got "
                             f"{self.initialization!r}")
        spec = get_spec(self.quant)
        if self.memory_efficient == "int8_codes" and not (spec and spec.int8_residuals):
            raise ValueError(f"CUNet: memory_efficient='int8_codes' needs a quant setting with "
                             f"int8 residuals (e.g. '818+int8'), got quant={self.quant!r}")

    @nn.compact
    def __call__(self, images: jax.Array, train: bool, occlusion: jax.Array | None = None,
                 return_features: bool = False):
        check_inputs("CUNet", images, occlusion, self.stem_stride, self.depth)
        spec = get_spec(self.quant)
        codes = self.memory_efficient == "int8_codes"
        concat_unit = (CodesRematBnReluConv if codes
                       else RematBnReluConv if self.memory_efficient else BnReluConv)
        unet_module = CodesRematUNet if codes else UNet
        inits = unit_inits(self.initialization, spec)
        common = {"train": train, "spec": spec, "dtype": self.dtype, **inits}
        # Inside a codes-saving U-Net region the units need no checkpoints of their own.
        unets = [unet_module(self.depth, self.features, self.growth, train, spec,
                             bool(self.memory_efficient) and not codes, self.dtype,
                             self.initialization, name=f"unet{u}")
                 for u in range(self.num_unets)]
        adapters = [concat_unit(self.features, 1, name=f"inter{u}", **common)
                    for u in range(1, self.num_unets)]
        # With the codes policy the (full-precision) heads recompute their BN-ReLU too.
        head_unit = RematBnReluConv if codes else BnReluConv
        head_init = inits["kernel_init"] if self.initialization == "reference" else HEAD_INIT
        heads = [head_unit(self.num_joints, 1, train, dtype=self.dtype, kernel_init=head_init,
                           bn_scale_init=inits["bn_scale_init"], name=f"head{u}")
                 for u in range(self.num_unets)]
        refine = RefineBlock(self.features, self.refine_growth, train, spec,
                             self.memory_efficient, self.dtype, self.initialization, name="refine")

        x = self._stem(images, train, inits)
        heatmaps, first_features = [], None
        for iteration in range(1 + self.refine_iterations):
            if iteration:
                x = refine([unet_inputs[0], unet_inputs[-1]], iteration - 1)
            coupled = [[] for _ in range(2 * self.depth + 1)]
            unet_inputs = []
            for u, unet in enumerate(unets):
                if u:
                    x = adapters[u - 1]([x, *_last(unet_inputs, self.order)], iteration)
                unet_inputs.append(x)
                x, new, skip_features = unet(x, [_last(c, self.order) for c in coupled],
                                             occlusion, iteration)
                for c, f in zip(coupled, new):
                    c.append(f)
                first_features = first_features or skip_features
                heatmaps.append(heads[u]([x], iteration).astype(jnp.float32))
        heatmaps = jnp.stack(heatmaps)
        return (heatmaps, first_features) if return_features else heatmaps

    def _stem(self, images: jax.Array, train: bool, inits: dict[str, Any]) -> jax.Array:
        """7x7 conv (full precision) - BN - ReLU - max pool, reducing the sides by stem_stride."""
        # QuantConv's leading fields are spec, use_bias and dtype, hence keywords only.
        x = QuantConv(features=self.features, kernel_size=7, strides=min(self.stem_stride, 2),
                      use_bias=False, dtype=self.dtype, kernel_init=inits["kernel_init"],
                      name="stem_conv")(images)
        x = nn.relu(batch_norm(train, self.dtype, "stem_bn", inits["bn_scale_init"])(x))
        return max_pool2(x) if self.stem_stride == 4 else x

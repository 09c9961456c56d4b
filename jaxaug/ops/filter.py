"""Linear filters: separable Gaussian blur."""

import functools
from typing import Literal, get_args

import jax
import jax.numpy as jnp

from jaxaug.ops.validate import check_image, check_shape

#: Border rules, as `jnp.pad` modes: "reflect" mirrors about the edge pixel (torch's "reflect",
#: scipy's "mirror"), "symmetric" repeats it (scipy's "reflect"), "edge" extends it (scipy's
#: "nearest", skimage.filters.gaussian's default).
BlurPadding = Literal["reflect", "symmetric", "edge"]
#: scipy.ndimage.gaussian_filter's default truncation, in standard deviations.
TRUNCATE = 4.0


def default_kernel_size(sigma: float) -> int:
    """2 * int(4 sigma + 1/2) + 1: the taps scipy.ndimage.gaussian_filter (truncate=4.0) and
    skimage.filters.gaussian use. torchvision has no default (its GaussianBlur requires
    kernel_size; it derives sigma from the size instead), nor does timm."""
    return 2 * int(TRUNCATE * float(sigma) + 0.5) + 1


def gaussian_kernel(sigma: float | jax.Array, kernel_size: int) -> jax.Array:
    """torchvision's 1-D kernel: g[k] = exp(-t_k^2 / (2 sigma^2)) / sum, t_k = k - (size - 1) / 2
    for k = 0..size-1. Differentiable in sigma."""
    sigma = jnp.asarray(sigma, jnp.result_type(sigma, jnp.float32))
    t = jnp.arange(kernel_size, dtype=sigma.dtype) - (kernel_size - 1) / 2
    g = jnp.exp(-0.5 * (t / sigma) ** 2)
    return g / jnp.sum(g)


def _convolve(img, kernel, axis, padding):
    """Correlate `img` with the 1-D `kernel` along `axis` (0 rows, 1 columns), `padding` borders."""
    r = (kernel.shape[0] - 1) // 2
    pad = [(0, 0)] * 3
    pad[axis] = (r, r)
    padded = jnp.pad(img, pad, mode=padding)
    x = jnp.moveaxis(padded, -1, 0)[:, None]  # [C, 1, H', W']: channels as the batch
    k = kernel.reshape((-1, 1) if axis == 0 else (1, -1))[None, None]
    out = jax.lax.conv_general_dilated(x, k.astype(img.dtype), (1, 1), "VALID",
                                       precision=jax.lax.Precision.HIGHEST)
    return jnp.moveaxis(out[:, 0], 0, -1)


def gaussian_blur(img: jax.Array, sigma: float | jax.Array, kernel_size: int | None = None, *,
                  padding: BlurPadding = "reflect") -> jax.Array:
    """Gaussian blur with torchvision `functional.gaussian_blur`'s kernel (v0.15-0.20): the 1-D
    kernel `gaussian_kernel(sigma, kernel_size)` along the rows, then the columns (its 2-D kernel
    is their outer product), each border padded by (kernel_size - 1) / 2 with `padding`
    ("reflect", torchvision's; "symmetric" and "edge" as in the docstring of BlurPadding).

    kernel_size: odd and static; None takes `default_kernel_size(sigma)` (scipy's truncation at
    4 sigma), which needs a concrete sigma. sigma > 0 may be traced and is differentiated
    through the kernel. Unlike torch, padding wider than the image reflects again (numpy's pad)
    instead of raising. PIL's `ImageFilter.GaussianBlur` is a different filter (repeated box
    blurs). Differentiable w.r.t. img and sigma.
    """
    check_image("gaussian_blur", img)
    check_shape("gaussian_blur", "sigma", sigma, ((),))
    if padding not in get_args(BlurPadding):
        raise ValueError(f"gaussian_blur: padding must be one of {get_args(BlurPadding)}, "
                         f"got {padding!r}")
    try:
        value = float(sigma)
    except jax.errors.ConcretizationTypeError:  # traced: checked by the caller, if at all
        value = None
    concrete = value is not None
    if concrete and not value > 0:
        raise ValueError(f"gaussian_blur: sigma must be > 0, got {sigma!r}")
    if kernel_size is None:
        if not concrete:
            raise ValueError("gaussian_blur: kernel_size=None needs a concrete sigma (the size "
                             "is static); pass kernel_size when sigma is traced")
        kernel_size = default_kernel_size(value)
    if (isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1
            or kernel_size % 2 == 0):
        raise ValueError(f"gaussian_blur: kernel_size must be a positive odd int, got "
                         f"{kernel_size!r}")
    return _blur(img, sigma, kernel_size, padding)


# One program per (shape, kernel_size, padding) when called eagerly (as `eval.corruptions` does)
# instead of a compile per primitive; inlined under an outer jit.
@functools.partial(jax.jit, static_argnums=(2, 3))
def _blur(img, sigma, kernel_size, padding):
    kernel = gaussian_kernel(sigma, kernel_size)
    return _convolve(_convolve(img, kernel, 0, padding), kernel, 1, padding).astype(img.dtype)

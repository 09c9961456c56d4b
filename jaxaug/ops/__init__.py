"""Pure JAX image ops for learned augmentation: float HWC images in [0, 1], one image per call
(batch with jax.vmap), parameters in natural units, semantics matching PIL as used by the
AutoAugment / RandAugment references; `warp_targets` moves masks, keypoints and boxes with the
geometric ones."""

from jaxaug.ops.color import (
    brightness,
    color,
    color_jitter,
    contrast,
    grayscale,
    hue_shift,
    sharpness,
    smooth,
)
from jaxaug.ops.crop import inception_crop, random_resized_crop, random_resized_crop_matrix
from jaxaug.ops.filter import gaussian_blur
from jaxaug.ops.geometry import (
    affine,
    compose,
    deform,
    hflip,
    pad_crop,
    rotate,
    rotate_matrix,
    scale,
    scale_matrix,
    shear_x,
    shear_x_matrix,
    shear_y,
    shear_y_matrix,
    translate_x,
    translate_x_matrix,
    translate_y,
    translate_y_matrix,
    vflip,
    warp_chain,
)
from jaxaug.ops.misc import (
    cutout,
    gaussian_noise,
    identity,
    random_erasing,
    sample_pairing,
)
from jaxaug.ops.point import (
    auto_contrast,
    equalize,
    invert,
    posterize,
    solarize,
    to_float,
    to_uint8,
)
from jaxaug.ops.targets import warp_targets

__all__ = [
    "affine", "auto_contrast", "brightness", "color", "color_jitter", "compose", "contrast",
    "cutout", "deform", "equalize", "gaussian_blur", "gaussian_noise", "grayscale", "hflip",
    "hue_shift", "identity", "inception_crop", "invert", "pad_crop", "posterize",
    "random_erasing", "random_resized_crop", "random_resized_crop_matrix", "rotate",
    "rotate_matrix", "sample_pairing",
    "scale", "scale_matrix", "sharpness", "shear_x", "shear_x_matrix", "shear_y",
    "shear_y_matrix", "smooth", "solarize", "to_float", "to_uint8", "translate_x",
    "translate_x_matrix", "translate_y", "translate_y_matrix", "vflip", "warp_chain",
    "warp_targets",
]

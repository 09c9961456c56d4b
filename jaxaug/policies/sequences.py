"""Sequences of transformation functions (TFs), TANDA's action space (Ratner et al., NeurIPS 2017).

A vocabulary ``tfs`` holds K fixed-magnitude TFs h_1..h_K, each an ``(op name, level)`` pair of
`jaxaug.policies` (level on the AutoAugment 0-10 scale, mapped to the op's parameter by
`policies.level_to_arg` for the image's size). Signed ops (rotate, shear, translate) take a signed
level, so ``("rotate", -2)`` is a deterministic rotation by -6 degrees. A sequence
tau = (tau_1..tau_L) transforms an image as h_tau = h_tau_L o ... o h_tau_1, applied by
`policies.apply_steps`: the geometric steps are composed and resampled once (bilinear by
default), the point ops run in order around that warp. For L <= 2 this is exactly sequential
application; longer sequences carry the approximations documented in `jaxaug.policies.apply`.
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxaug.policies import apply, levels

#: The default TF vocabulary: the reference code's CIFAR-10 TFs (``experiments/cifar10/train.py``)
#: that our op set has, each at the nearest level: rotations by +-2.5 and +-5 degrees (levels
#: +-1, +-2 = 3, 6 degrees), shears +-0.1 and +-0.25 (levels +-3, +-8 = 0.09, 0.24), and contrast,
#: brightness and color factors 0.5, 0.75, 1.25, 1.5 (levels 2, 4, 6, 8 = 0.46, 0.82, 1.18,
#: 1.54). Its zooms, swirls, hue shifts and horizontal flip have no op here.
DEFAULT_TFS = (
    ("rotate", 1), ("rotate", -1), ("rotate", 2), ("rotate", -2),
    ("shear_x", 3), ("shear_x", -3), ("shear_x", 8), ("shear_x", -8),
    ("contrast", 2), ("contrast", 4), ("contrast", 6), ("contrast", 8),
    ("brightness", 2), ("brightness", 4), ("brightness", 6), ("brightness", 8),
    ("color", 2), ("color", 4), ("color", 6), ("color", 8),
)  # fmt: skip

def check_tfs(tfs: Sequence) -> tuple[tuple[str, int], ...]:
    """The vocabulary as a tuple of ``(op name, level)``; ``ValueError`` naming ``tfs`` for an
    empty or repeated vocabulary, an unknown op, a level off the 0-10 scale, or a negative level
    of an unsigned op."""
    if isinstance(tfs, (str, bytes)) or not len(tfs):
        raise ValueError(f"tfs must be a non-empty sequence of (op name, level) pairs, got {tfs!r}")
    out = []
    for tf in tfs:
        if not isinstance(tf, (tuple, list)) or len(tf) != 2:
            raise ValueError(f"tfs: each TF must be an (op name, level) pair, got {tf!r}")
        name, level = tf
        is_int = isinstance(level, (int, np.integer)) and not isinstance(level, bool)
        try:  # the level's sign is the direction; level_to_arg checks its magnitude (and type)
            apply.check_vocabulary((name,))
            levels.level_to_arg(name, abs(int(level)) if is_int else level)
        except ValueError as e:
            raise ValueError(f"tfs: invalid TF {tf!r}: {e}") from e
        if level < 0 and not levels.is_signed(name):
            raise ValueError(f"tfs: TF {tf!r} has a negative level, but {name!r} is unsigned")
        out.append((name, int(level)))
    if len(set(out)) != len(out):
        raise ValueError(f"tfs must not repeat a TF, got {tuple(out)!r}")
    return tuple(out)

def _signed_arg(name, level, image_size):
    """A TF's parameter: `level_to_arg` at |level|, reflected about the op's identity point for a
    negative level; 0 for the magnitude-free ops (which ignore it)."""
    value = levels.level_to_arg(name, abs(level), image_size=image_size)
    return levels.apply_sign(name, 0.0 if value is None else float(value), level < 0)

@functools.lru_cache(maxsize=32)
def tf_table(tfs: tuple, image_size: int) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Constant tables of a vocabulary for images of side ``image_size``: the op names it uses
    (the `apply_steps` vocabulary), and per TF its op index [K] and signed parameter [K]."""
    op_names = tuple(dict.fromkeys(name for name, _ in tfs))
    op_index = np.asarray([op_names.index(name) for name, _ in tfs], np.int32)
    value = np.asarray([_signed_arg(name, level, image_size) for name, level in tfs], np.float32)
    return op_names, op_index, value

def apply_tfs(key: jax.Array, img: jax.Array, sequence: jax.Array, tfs: tuple,
              interpolation: str = "bilinear", applied: jax.Array | None = None) -> jax.Array:
    """h_tau(img): the TFs ``sequence`` [L] (indices into ``tfs``) applied in order to one image
    in [0, 1], the geometric ones with a single resampling of their composition. A step whose
    ``applied`` [L] (default all True) is False is the identity; the resampling still runs."""
    op_names, op_index, value = tf_table(tuple(map(tuple, tfs)), max(img.shape[:2]))
    applied = jnp.ones(sequence.shape, bool) if applied is None else applied
    return apply.apply_steps(key, img, jnp.asarray(op_index)[sequence],
                             jnp.asarray(value)[sequence], applied, op_names=op_names,
                             interpolation=interpolation)

def augment(key: jax.Array, images: jax.Array, sequences: jax.Array, tfs: tuple,
            interpolation: str = "bilinear", applied: jax.Array | None = None) -> jax.Array:
    """The batch ``images`` [B, H, W, C] in [0, 1] transformed by ``sequences`` [B, L] (steps
    masked by ``applied`` [B, L], default all applied), one key per image."""
    keys = jax.random.split(key, images.shape[0])
    applied = jnp.ones(sequences.shape, bool) if applied is None else applied
    return jax.vmap(lambda k, img, seq, on: apply_tfs(k, img, seq, tfs, interpolation, on))(
        keys, images, sequences, applied)


def incremental_inputs(key: jax.Array, images: jax.Array, sequences: jax.Array, tfs: tuple,
                       interpolation: str = "bilinear") -> jax.Array:
    """[L + 1, B, H, W, C]: ``images`` in [0, 1] through the prefixes tau_<=t, t = 0..L, of
    their ``sequences`` [B, L]; row 0 is the empty sequence (D's real images), row L the full one.
    One `augment` program vmapped over the prefixes with the same per-image keys, so a prefix
    that changes nothing gives row 0 bitwise."""
    length = sequences.shape[1]
    prefixes = jnp.arange(length)[None, :] < jnp.arange(length + 1)[:, None]  # [L + 1, L]

    def through(prefix):
        applied = jnp.broadcast_to(prefix, sequences.shape)
        return augment(key, images, sequences, tfs, interpolation, applied)

    return jax.vmap(through)(prefixes)

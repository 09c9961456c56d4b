"""The conventions every public op of jaxaug.ops keeps, checked from a table generated against
`ops.__all__` (in the spirit of dm_pix's API test): an op added without an entry fails the suite.

For each op: its signature (a `key` first where it draws randomness, then `img`; every parameter
and the return annotated); a batch, a 2-D array and uint8 levels where one float HWC image is
expected raise a ValueError naming the op and the problem; `jax.jit(jax.vmap(op))` over two
images with per-image parameters equals the op traced on each image; and float image outputs are
float32, keep the input's shape and stay in [0, 1]. Images are 16x16x3, the smallest at which
every op changes them (equalize is the identity below 256 pixels per channel); compile time, the
test's cost, does not grow with the size. Names that are not image ops (`NOT_IMAGE_OPS`, each with
its reason) are tested elsewhere. Last, every public function of jaxaug.ops, jaxaug.policies and
jaxaug.objectives carries type annotations.
"""

import dataclasses
import functools
import importlib
import inspect
import pkgutil
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxaug.ops as O

_RNG = np.random.default_rng(0)
IMAGES = _RNG.random((2, 16, 16, 3)).astype(np.float32)
OTHERS = _RNG.random((2, 16, 16, 3)).astype(np.float32)
LEVELS = _RNG.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
FLOWS = (_RNG.standard_normal((2, 16, 16, 2)) * 1.5).astype(np.float32)
# Two generic affine matrices (output -> input), one per image.
MATRICES = np.asarray([[[1.0, 0.2, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
                       [[0.9, 0.0, 0.4], [0.1, 1.1, -0.3], [0.0, 0.0, 1.0]]], np.float32)


def _per_image(*values, dtype=np.float32):
    """One parameter value per image of the batch of 2 (the vmapped axis)."""
    return np.asarray(values, dtype)


@dataclasses.dataclass(frozen=True)
class Call:
    """How the table calls an op: op(key?, img?, *params, **static).

    params: traced arguments after the image, each with a leading axis of 2 (one per image; the
    two differ, so a vmap that mixed them up would show). image: the dtype the op takes ("float":
    a float HWC image in [0, 1]; "uint8": levels), None for the matrix helpers. any_rank: the op
    is elementwise and documented to take one image or a batch. out: "image" (float32, the input's
    shape, in [0, 1]), "gray" (the same with one channel), "uint8" (the input's shape), "matrix"
    (float32 [3, 3]) or "warp" (warp_chain's (image, int32 fill_step [H, W]))."""

    params: tuple = ()
    key: bool = False
    static: dict = dataclasses.field(default_factory=dict)
    image: str | None = "float"
    any_rank: bool = False
    out: str = "image"


def _matrix_helper(*values, **static):
    return Call(params=(_per_image(*values),), static=static, image=None, out="matrix")


FACTORS = _per_image(0.4, 1.7)
CALLS = {
    "affine": Call(params=(MATRICES,)),
    "auto_contrast": Call(),
    "brightness": Call(params=(FACTORS,)),
    "color": Call(params=(FACTORS,)),
    "color_jitter": Call(key=True, static={"brightness": 0.4, "contrast": 0.4, "saturation": 0.4,
                                           "hue": 0.1}),
    "compose": Call(params=(MATRICES, MATRICES[::-1]), image=None, out="matrix"),
    "contrast": Call(params=(FACTORS,)),
    "cutout": Call(params=(_per_image([2, 3], [5, 6], dtype=np.int32),
                           _per_image(2, 4, dtype=np.int32))),
    "deform": Call(params=(FLOWS,)),
    "equalize": Call(),
    "gaussian_blur": Call(params=(_per_image(0.7, 1.5),), static={"kernel_size": 5}),
    "gaussian_noise": Call(params=(_per_image(0.1, 0.3),), key=True),
    "grayscale": Call(out="gray"),
    "hflip": Call(),
    "hue_shift": Call(params=(_per_image(0.2, -0.35),)),
    "identity": Call(),
    "inception_crop": Call(key=True, static={"size": 16}),
    "invert": Call(),
    "pad_crop": Call(params=(_per_image([0, 3], [4, 1], dtype=np.int32),),
                     static={"padding": 2}),
    "posterize": Call(params=(_per_image(2, 5, dtype=np.int32),)),
    # A constant fill: the default noise fill draws an image of threefry bits, whose XLA CPU
    # compile is the most expensive part of the op (test_ops_extra checks that fill under jit).
    "random_erasing": Call(key=True, static={"fill": 0.5}),
    "random_resized_crop": Call(key=True, static={"size": 16}),
    "random_resized_crop_matrix": Call(key=True, static={"height": 16, "width": 16}, image=None,
                                       out="matrix"),
    "rotate": Call(params=(_per_image(15.0, -40.0),)),
    "rotate_matrix": _matrix_helper(15.0, -40.0, height=16, width=16),
    "sample_pairing": Call(params=(OTHERS, _per_image(0.3, 0.8))),
    "scale": Call(params=(_per_image(0.7, 1.5),)),
    "scale_matrix": _matrix_helper(0.7, 1.5, height=16, width=16),
    "sharpness": Call(params=(FACTORS,)),
    "shear_x": Call(params=(_per_image(0.2, -0.3),)),
    "shear_x_matrix": _matrix_helper(0.2, -0.3),
    "shear_y": Call(params=(_per_image(0.2, -0.3),)),
    "shear_y_matrix": _matrix_helper(0.2, -0.3),
    "smooth": Call(),
    "solarize": Call(params=(_per_image(0.3, 0.7),)),
    "to_float": Call(image="uint8", any_rank=True),
    "to_uint8": Call(any_rank=True, out="uint8"),
    "translate_x": Call(params=(_per_image(1.5, -3.0),)),
    "translate_x_matrix": _matrix_helper(1.5, -3.0),
    "translate_y": Call(params=(_per_image(1.5, -3.0),)),
    "translate_y_matrix": _matrix_helper(1.5, -3.0),
    "vflip": Call(),
    "warp_chain": Call(params=(np.stack([MATRICES, MATRICES[::-1]], axis=1),), out="warp"),
}
NAMES = sorted(CALLS)
#: Public names of jaxaug.ops that are not image ops, with the reason and where they are tested.
NOT_IMAGE_OPS = {
    "warp_targets": "moves masks, keypoints and boxes, takes no image and returns a dict; "
                    "tests/test_label_aware.py checks it under jit and vmap",
}


def _op(name):
    return functools.partial(getattr(O, name), **CALLS[name].static)


def _batched_args(name):
    """The op's positional arguments for the batch of 2 (every one with a leading axis of 2)."""
    call = CALLS[name]
    args = [jax.random.split(jax.random.key(0), 2)] if call.key else []
    if call.image is not None:
        args.append(LEVELS if call.image == "uint8" else IMAGES)
    return args + [jnp.asarray(p) for p in call.params]


def _one_image_args(name, img):
    """The op's arguments for the single image `img` (the first image's key and parameters)."""
    call = CALLS[name]
    key = [jax.random.key(0)] if call.key else []
    return key + [img] + [p[0] for p in call.params]


def _batched_and_each(name):
    """args -> (vmap(op), lax.map(op)) over the batch: lax.map runs the op traced unbatched, one
    image per loop step, so it is the per-image reference, and it holds one copy of the op where a
    Python loop over the images would inline two."""
    op = _op(name)
    return lambda *args: (jax.vmap(op)(*args), jax.lax.map(lambda a: op(*a), args))


@functools.cache
def _results():
    """{name: _batched_and_each(name) on the batch, or the exception tracing it raised}.

    ONE jitted program holds every op: 44 small compiles cost about 1.5x one large one (XLA's
    per-program overhead). An op that fails to trace is left out of it (tracing is cheap, so each
    is first traced alone), so that it fails its own tests only."""
    args, results = {}, {}
    for name in NAMES:
        try:
            jax.eval_shape(_batched_and_each(name), *_batched_args(name))
            args[name] = _batched_args(name)
        except Exception as error:  # re-raised by the op's own tests
            results[name] = error
    every = jax.jit(lambda args: {n: _batched_and_each(n)(*a) for n, a in args.items()})
    results.update(every(args))
    return results


def _result(name):
    result = _results()[name]
    if isinstance(result, Exception):
        raise result
    return result


def test_table_covers_exactly_the_public_ops():
    assert set(CALLS) | set(NOT_IMAGE_OPS) == set(O.__all__), (
        "every name in jaxaug.ops.__all__ needs an entry in CALLS or NOT_IMAGE_OPS (and only "
        "those)")
    assert not set(CALLS) & set(NOT_IMAGE_OPS)


@pytest.mark.parametrize("name", NAMES)
def test_signature(name):
    fn = getattr(O, name)
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    names = [p.name for p in params]
    call = CALLS[name]
    # A key comes first, as in jax.random and dm_pix, then the image.
    assert ("key" in names) == call.key, names
    expected = (["key"] if call.key else []) + (["img"] if call.image is not None else [])
    assert names[:len(expected)] == expected, names
    missing = [p.name for p in params if p.annotation is inspect.Parameter.empty]
    assert not missing, f"{name}: parameters without a type annotation: {missing}"
    assert sig.return_annotation is not inspect.Signature.empty, f"{name}: no return annotation"


@pytest.mark.parametrize("name", NAMES)
def test_wrong_rank_and_dtype_raise(name):
    """Shapes and dtypes are static, so jax.eval_shape checks them without compiling."""
    call, op = CALLS[name], _op(name)
    if call.image is None:
        # A matrix helper given a batch (of keys, magnitudes, or of matrices for compose)
        # without jax.vmap; integer magnitudes are promoted to a float32 matrix.
        batch = _batched_args(name)
        field = ("matrix" if name == "compose"
                 else next(iter(inspect.signature(getattr(O, name)).parameters)))
        with pytest.raises(ValueError, match=rf"^{name}: {field} must have shape"):
            jax.eval_shape(op, *batch)
        if name != "compose":
            out = jax.eval_shape(op, jax.random.key(0) if call.key else jnp.int32(3))
            assert (out.shape, out.dtype) == ((3, 3), jnp.float32)
        return
    good = LEVELS[0] if call.image == "uint8" else IMAGES[0]
    for bad in (good[None].repeat(2, 0), good[..., 0]):  # a [N, H, W, C] batch, an [H, W] image
        if call.any_rank:  # elementwise: one image or a batch alike
            out = jax.eval_shape(op, *_one_image_args(name, bad))
            assert out.shape == bad.shape
        else:
            shape = re.escape(str(bad.shape))
            with pytest.raises(ValueError, match=rf"^{name}: img must be a float HWC image, "
                                                 rf"got shape {shape}"):
                jax.eval_shape(op, *_one_image_args(name, bad))
    if call.image == "uint8":
        with pytest.raises(ValueError, match=rf"^{name}: img must hold 8-bit levels .*float32"):
            jax.eval_shape(op, *_one_image_args(name, IMAGES[0]))
    elif name == "to_uint8":
        with pytest.raises(ValueError, match=rf"^{name}: img must be a float image .*uint8"):
            jax.eval_shape(op, *_one_image_args(name, LEVELS[0]))
    else:
        with pytest.raises(ValueError, match=rf"^{name}: img must be a float HWC image in "
                                             r"\[0, 1\], got dtype uint8; call jaxaug.ops.to_float"):
            jax.eval_shape(op, *_one_image_args(name, LEVELS[0]))


@pytest.mark.parametrize("name", NAMES)
def test_jit_vmap_equals_each_image(name):
    batched, each = _result(name)
    jax.tree.map(lambda b, e: np.testing.assert_allclose(b, e, atol=1e-6, err_msg=name),
                 batched, each)
    if CALLS[name].image == "float" and name != "identity":  # the comparison is not vacuous
        image = batched[0] if CALLS[name].out == "warp" else batched
        assert image.shape != IMAGES.shape or not np.allclose(image, IMAGES), name


@pytest.mark.parametrize("name", NAMES)
def test_output_dtype_shape_and_range(name):
    call = CALLS[name]
    out, _ = _result(name)
    images = LEVELS if call.image == "uint8" else IMAGES
    if call.out == "warp":
        out, fill_step = out
        assert (fill_step.shape, fill_step.dtype) == ((2, 16, 16), jnp.int32)
        steps = call.params[0].shape[1]
        assert int(fill_step.min()) >= -1 and int(fill_step.max()) < steps
    if call.out == "matrix":
        assert (out.shape, out.dtype) == ((2, 3, 3), jnp.float32)
        np.testing.assert_array_equal(out[:, 2], np.broadcast_to([0.0, 0.0, 1.0], (2, 3)))
        return
    shape = images.shape[:-1] + (1,) if call.out == "gray" else images.shape
    assert out.shape == shape
    if call.out == "uint8":
        assert out.dtype == jnp.uint8
        return
    assert out.dtype == jnp.float32
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0, (float(out.min()), float(out.max()))


def _public_functions(package):
    """(qualified name, function) of every public function and method defined in `package`'s
    modules (methods of its classes included, `__call__` too)."""
    root = importlib.import_module(package)
    modules = [root] + [importlib.import_module(m.name)
                        for m in pkgutil.iter_modules(root.__path__, package + ".")]
    for module in modules:
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    member = member.fget if isinstance(member, property) else member
                    if (inspect.isfunction(member) and member.__module__ == module.__name__
                            and (not attr.startswith("_") or attr == "__call__")):
                        yield f"{module.__name__}.{name}.{attr}", member
            elif callable(obj):  # functions, and jax.custom_jvp / custom_vmap wrappers
                yield f"{module.__name__}.{name}", obj


@pytest.mark.parametrize("package", ["jaxaug.ops", "jaxaug.policies", "jaxaug.objectives"])
def test_public_functions_are_annotated(package):
    missing = []
    for name, fn in _public_functions(package):
        sig = inspect.signature(fn)
        params = [p.name for p in sig.parameters.values()
                  if p.annotation is inspect.Parameter.empty and p.name not in ("self", "cls")]
        if params or sig.return_annotation is inspect.Signature.empty:
            missing.append(f"{name}({', '.join(params)})")
    assert not missing, f"not fully annotated (parameters listed, or the return): {missing}"

"""OnlineAugment generators: A-STN transforms and conventions, D-VAE / P-VAE architecture and outputs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tiny_models import jit_init

from jaxaug import objectives, ops
from jaxaug.generators import (
    ASTN,
    DeformVAE,
    PerturbVAE,
    apply_astn,
    cycle_images,
    invert,
    normalized_to_pixel,
)

RNGS = {"params": jax.random.key(0), "noise": jax.random.key(1), "dropout": jax.random.key(2)}


def _smooth_images(batch, size, channels=3, seed=0):
    """Low-frequency images in [0, 1], so bilinear resampling error stays small."""
    rng = np.random.default_rng(seed)
    ys, xs = np.meshgrid(np.arange(size) / size, np.arange(size) / size, indexing="ij")
    freq = rng.uniform(0.5, 1.5, (batch, channels, 2))
    phase = rng.uniform(0, 2 * np.pi, (batch, channels))
    img = 0.5 + 0.4 * np.sin(2 * np.pi * (freq[..., 0, None, None] * xs + freq[..., 1, None, None]
                                          * ys) + phase[..., None, None])
    return jnp.asarray(img.transpose(0, 2, 3, 1), jnp.float32)


def _small_theta(batch, seed=0):
    """Random rotations (up to 10 deg), scales (0.9..1.1) and shifts (up to 0.1) as theta [B, 2, 3]."""
    rng = np.random.default_rng(seed)
    ang = np.deg2rad(rng.uniform(-10, 10, batch))
    s = rng.uniform(0.9, 1.1, batch)
    t = rng.uniform(-0.1, 0.1, (batch, 2))
    rot = np.stack([np.stack([np.cos(ang), -np.sin(ang)], -1),
                    np.stack([np.sin(ang), np.cos(ang)], -1)], -2) * s[:, None, None]
    return jnp.asarray(np.concatenate([rot, t[..., None]], -1), jnp.float32)


@functools.partial(jax.jit, static_argnames=("model", "train", "sample"))
def _apply(model, variables, x, noise, *, train, sample=None):
    """``model.apply`` (batch statistics updates dropped), with ``noise`` as the noise key:
    jitted, one compile per model and mode rather than one per primitive."""
    kwargs = {} if sample is None else {"sample": sample}
    rngs = {"noise": noise, "dropout": RNGS["dropout"]}
    if train:
        return model.apply(variables, x, train=True, rngs=rngs, mutable=["batch_stats"],
                           **kwargs)[0]
    return model.apply(variables, x, train=False, rngs=rngs, **kwargs)


@functools.cache
def _astn(conditioning="noise"):
    model = ASTN(conditioning=conditioning)
    return model, jit_init(model.init, RNGS, jnp.zeros((4, 16, 16, 3)), train=False)


def test_identity_astn_returns_input():
    model, variables = _astn()
    x = _smooth_images(4, 16)
    theta = _apply(model, variables, x, RNGS["noise"], train=True)
    np.testing.assert_allclose(theta, np.tile([[1, 0, 0], [0, 1, 0]], (4, 1, 1)), atol=1e-7)
    out, labels, masks = apply_astn(x, theta)
    assert out.shape == (8, 16, 16, 3) and labels is None and masks is None
    np.testing.assert_allclose(out[:4], x, atol=1e-5)
    np.testing.assert_allclose(out[4:], x, atol=1e-5)


def test_feature_conditioning_identity_at_init():
    model, variables = _astn("features")
    x = _smooth_images(4, 16)
    assert variables["params"]["input"]["dense"]["kernel"].shape == (1 + 3, 8)
    theta = _apply(model, variables, x, RNGS["noise"], train=False)
    np.testing.assert_allclose(theta, np.tile([[1, 0, 0], [0, 1, 0]], (4, 1, 1)), atol=1e-7)


def test_astn_architecture():
    _, variables = _astn()
    params = variables["params"]
    dense = {path[0].key: leaf.shape for path, leaf in jax.tree_util.tree_leaves_with_path(params)
             if path[-1].key == "kernel"}
    assert dense == {"input": (1, 8), "stage0_a": (8, 8), "stage0_b": (8, 8), "stage1_a": (8, 8),
                     "stage1_b": (8, 8), "output": (8, 6)}
    np.testing.assert_array_equal(params["output"]["kernel"], 0.0)
    np.testing.assert_array_equal(params["output"]["bias"], [1, 0, 0, 0, 1, 0])
    assert set(variables["batch_stats"]) == {"input", "stage0_a", "stage0_b", "stage1_a", "stage1_b"}


def test_invert_composes_to_identity():
    theta = _small_theta(4) + 0.1 * jax.random.normal(jax.random.key(3), (4, 2, 3))
    pad = jnp.concatenate([theta, jnp.tile(jnp.array([[[0.0, 0.0, 1.0]]]), (4, 1, 1))], axis=1)
    inv = invert(theta)
    inv_pad = jnp.concatenate([inv, jnp.tile(jnp.array([[[0.0, 0.0, 1.0]]]), (4, 1, 1))], axis=1)
    np.testing.assert_allclose(pad @ inv_pad, np.tile(np.eye(3), (4, 1, 1)), atol=1e-5)
    np.testing.assert_allclose(inv_pad @ pad, np.tile(np.eye(3), (4, 1, 1)), atol=1e-5)


def test_warp_then_inverse_restores_interior():
    x = _smooth_images(4, 32)
    theta = _small_theta(4, seed=1)
    out, _, _ = apply_astn(x, theta)
    back, _, _ = apply_astn(out[:4], invert(theta))
    interior = (slice(None), slice(6, -6), slice(6, -6))
    np.testing.assert_allclose(back[:4][interior], x[interior], atol=0.03)
    # The second half of the doubled batch is T^-1(x): warping it by T also restores x.
    again, _, _ = apply_astn(out[4:], theta)
    np.testing.assert_allclose(again[:4][interior], x[interior], atol=0.03)


def _torch_affine_grid_sample(img, theta, align_corners):
    """NumPy transcription of torch affine_grid + grid_sample (bilinear, zeros padding) for one HWC
    image; align_corners=True is PyTorch 1.2's (the reference's) only convention."""
    return _torch_grid_sample(img, _torch_identity_grid(*img.shape[:2], align_corners)
                              @ np.asarray(theta, np.float64).T, align_corners)


def _torch_identity_grid(h, w, align_corners):
    """affine_grid's homogeneous sample points [H, W, 3] (x, y, 1) of the identity."""
    if align_corners:
        xn, yn = np.linspace(-1, 1, w), np.linspace(-1, 1, h)
    else:
        xn, yn = (2 * np.arange(w) + 1) / w - 1, (2 * np.arange(h) + 1) / h - 1
    gy, gx = np.meshgrid(yn, xn, indexing="ij")
    return np.stack([gx, gy, np.ones_like(gx)], -1)


def _torch_grid_sample(img, grid, align_corners, padding="zeros"):
    """NumPy transcription of torch grid_sample (bilinear) of one HWC image at ``grid`` [H, W, 2]
    (x, y in [-1, 1]); padding "border" clamps the source coordinates to [0, size - 1]."""
    h, w, _ = img.shape
    if align_corners:
        ix, iy = (grid[..., 0] + 1) * (w - 1) / 2, (grid[..., 1] + 1) * (h - 1) / 2
    else:
        ix, iy = ((grid[..., 0] + 1) * w - 1) / 2, ((grid[..., 1] + 1) * h - 1) / 2
    if padding == "border":
        ix, iy = np.clip(ix, 0, w - 1), np.clip(iy, 0, h - 1)
    x0, y0 = np.floor(ix).astype(int), np.floor(iy).astype(int)
    out = np.zeros(img.shape, np.float64)
    for dx in (0, 1):
        for dy in (0, 1):
            xc, yc = x0 + dx, y0 + dy
            wgt = (1 - np.abs(ix - xc)) * (1 - np.abs(iy - yc))
            ok = (xc >= 0) & (xc < w) & (yc >= 0) & (yc < h)
            val = img[np.clip(yc, 0, h - 1), np.clip(xc, 0, w - 1)]
            out += np.where(ok[..., None], wgt[..., None] * val, 0.0)
    return out


@pytest.mark.parametrize("align_corners", [True, False])
def test_apply_astn_matches_torch_grid_sample(align_corners):
    # Everywhere, the border included: each neighbour outside the frame reads the zero padding.
    rng = np.random.default_rng(0)
    h, w = 12, 16  # non-square, so swapped axes would show
    img = rng.uniform(size=(4, h, w, 3)).astype(np.float32)
    theta = np.array([[1, 0, 0], [0, 1, 0]]) + 0.3 * rng.normal(size=(4, 2, 3))
    warp = jax.jit(functools.partial(apply_astn, align_corners=align_corners))
    out, _, _ = warp(jnp.asarray(img), jnp.asarray(theta, jnp.float32))
    inv = np.asarray(invert(jnp.asarray(theta, jnp.float32)))
    for b in range(4):
        np.testing.assert_allclose(out[b], _torch_affine_grid_sample(img[b], theta[b], align_corners),
                                   atol=1e-5)
        np.testing.assert_allclose(out[4 + b], _torch_affine_grid_sample(img[b], inv[b], align_corners),
                                   atol=1e-5)


def _cycle_loss(theta, x):
    """A-STN's regulariser R(theta): the double cycle consistency of apply_astn / cycle_images."""
    aug, _, _ = apply_astn(x, theta)
    return objectives.stn_cycle_consistency(x, *cycle_images(aug, theta))


def test_cycle_regularizer_gradient_matches_finite_differences():
    # Float64 central differences (eps 1e-6) of R over every entry of theta [2, 2, 3]: image 0 a
    # generic theta 0.3 from the identity (many points out of frame), image 1 a shift that puts
    # column 0's sample points 0.3 eps inside the left edge, so its differences cross it.
    eps = 1e-6
    with jax.enable_x64(True):
        x = _smooth_images(2, 16).astype(jnp.float64)
        rng = np.random.default_rng(4)
        tx = 2.0 / 15 * (0.3 * eps - 0.5)  # normalised (align_corners) shift to PIL x = 0.3 eps
        theta = np.stack([np.eye(2, 3) + 0.3 * rng.normal(size=(2, 3)),
                          [[1.0, 0.0, tx], [0.0, 1.0, 0.05]]])
        basis = jnp.eye(12, dtype=jnp.float64).reshape(12, 2, 2, 3)

        @jax.jit
        def derivatives(theta):
            fd = jax.vmap(lambda d: (_cycle_loss(theta + eps * d, x)
                                     - _cycle_loss(theta - eps * d, x)) / (2 * eps))(basis)
            return jax.grad(_cycle_loss)(theta, x).ravel(), fd

        auto, fd = (np.asarray(v) for v in derivatives(jnp.asarray(theta)))
    cosine = auto @ fd / np.linalg.norm(auto) / np.linalg.norm(fd)
    print(f"cycle regulariser: cosine(autodiff, finite differences) = {cosine:.6f}")
    assert np.linalg.norm(fd) > 1e-2 and cosine > 0.99


def test_descending_the_cycle_regularizer_returns_theta_to_the_identity():
    # Adam on R alone from 0.1 away: R's minimum is the identity, where nothing leaves the frame.
    x = _smooth_images(4, 16)
    eye = jnp.tile(jnp.eye(2, 3), (4, 1, 1))
    theta0 = eye + 0.1 * jax.random.normal(jax.random.key(5), (4, 2, 3))
    opt = optax.adam(1e-2)

    @jax.jit
    def descend(theta):
        def step(carry, _):
            theta, state = carry
            loss, grad = jax.value_and_grad(_cycle_loss)(theta, x)
            updates, state = opt.update(grad, state)
            return (optax.apply_updates(theta, updates), state), loss
        (theta, _), losses = jax.lax.scan(step, (theta, opt.init(theta)), None, length=300)
        return theta, losses[0], _cycle_loss(theta, x)

    theta, r0, r = descend(theta0)
    dist = jnp.linalg.norm((theta - eye).reshape(4, -1), axis=1)
    print(f"cycle descent: R {float(r0):.4f} -> {float(r):.2e}, |theta - I| max {float(dist.max()):.4f}")
    assert float(r0) > 0.05 and float(r) < 1e-6 and float(dist.max()) < 1e-3


def test_apply_astn_labels_and_nearest_masks():
    x = _smooth_images(4, 16)
    theta = _small_theta(4, seed=2) * jnp.array([1.0, 1.0, 3.0])  # larger shifts: fill appears
    labels = jnp.arange(4)
    masks = jnp.asarray(np.random.default_rng(0).choice([1, 3, 7], size=(4, 16, 16, 1)), jnp.int32)
    out, out_labels, out_masks = apply_astn(x, theta, labels=labels, masks=masks, mask_fill=255)
    assert out.shape == (8, 16, 16, 3)
    np.testing.assert_array_equal(out_labels, [0, 1, 2, 3, 0, 1, 2, 3])
    assert out_masks.shape == (8, 16, 16, 1) and out_masks.dtype == jnp.int32
    assert set(np.unique(out_masks)) <= {1, 3, 7, 255}
    # Same grids as the images: nearest-warp of the mask equals ops.affine with nearest sampling.
    m = normalized_to_pixel(theta[0], 16, 16, align_corners=True)
    want = ops.affine(masks[0].astype(jnp.float32), m, interpolation="nearest", fill=255.0)
    np.testing.assert_array_equal(out_masks[0], want.astype(jnp.int32))


@functools.cache
def _vae(cls):
    model = cls()
    return model, jit_init(model.init, RNGS, jnp.zeros((4, 16, 16, 3)), train=False)


def _randomise_head(variables, scale):
    params = dict(variables["params"])
    head = dict(params["head"])
    head["kernel"] = scale * jax.random.normal(jax.random.key(7), head["kernel"].shape)
    params["head"] = head
    return {**variables, "params": params}


@pytest.mark.parametrize("cls, latent", [(DeformVAE, 32), (PerturbVAE, 8)])
def test_vae_architecture(cls, latent):
    _, variables = _vae(cls)
    vae = variables["params"]["vae"]
    assert [vae[f"enc_conv{i}"]["kernel"].shape[-1] for i in range(5)] == [32, 64, 64, 128, 128]
    assert vae["enc_fc"]["kernel"].shape == (128 * 4 * 4, 512)
    assert vae["mean"]["kernel"].shape == (512, latent) == vae["logvar"]["kernel"].shape
    assert vae["dec_fc0"]["kernel"].shape == (latent, 512)
    np.testing.assert_array_equal(variables["params"]["head"]["kernel"], 0.0)


def test_deform_vae_outputs():
    model, variables = _vae(DeformVAE)
    x = _smooth_images(4, 16)

    @jax.jit  # one compile for both heads
    def apply(variables):
        return model.apply(variables, x, train=True, rngs=RNGS, mutable=["batch_stats"])[0]

    out = apply(variables)
    assert out["flow"].shape == out["grid_offset"].shape == (4, 16, 16, 2)
    assert out["mean"].shape == out["logvar"].shape == (4, 32)
    np.testing.assert_allclose(out["images"], x, atol=1e-6)  # zero-initialised head: identity

    out = apply(_randomise_head(variables, 0.5))
    flow = np.asarray(out["flow"])
    assert np.isfinite(flow).all() and np.abs(flow).max() > 0.5
    _assert_torch_deformation(out, x, "border", align_corners=True)
    # Border padding: every sample point stays on or inside the outer pixel centres.
    centres = np.arange(16) + 0.5
    assert (centres[None, :] + flow[..., 0] >= 0.5 - 1e-5).all()
    assert (centres[:, None] + flow[..., 1] <= 15.5 + 1e-5).all()


def _assert_torch_deformation(out, x, padding, align_corners):
    """D-VAE's images are the reference's grid_sample(x, affine_grid(id) + grid_offset)
    (bilinear), the offsets here reaching past the frame."""
    offset = np.asarray(out["grid_offset"], np.float64)
    base = _torch_identity_grid(*x.shape[1:3], align_corners)[..., :2]
    assert np.abs(base + offset).max() > 1.2  # sample points out of the frame
    for b in range(x.shape[0]):
        want = _torch_grid_sample(np.asarray(x[b], np.float64), base + offset[b], align_corners,
                                  padding)
        np.testing.assert_allclose(out["images"][b], want, atol=1e-5)


@pytest.mark.parametrize("align_corners, half", [(True, 7.5), (False, 8.0)])
def test_deform_vae_zeros_padding_flow_units(align_corners, half):
    """In training mode (batch statistics: offsets of order 1, past the frame)."""
    model = DeformVAE(padding="zeros", align_corners=align_corners)
    x = _smooth_images(4, 16)
    variables = _randomise_head(_vae(DeformVAE)[1], 0.5)
    out = _apply(model, variables, x, RNGS["noise"], train=True)
    np.testing.assert_allclose(out["flow"], out["grid_offset"] * half, rtol=1e-6)
    _assert_torch_deformation(out, x, "zeros", align_corners)


def test_perturb_vae_outputs():
    model, variables = _vae(PerturbVAE)
    x = _smooth_images(4, 16)
    out = _apply(model, variables, x, RNGS["noise"], train=True)
    assert out["perturbation"].shape == (4, 16, 16, 3)
    assert out["mean"].shape == out["logvar"].shape == (4, 8)
    np.testing.assert_allclose(out["perturbation"], 0.5)  # sigmoid of a zero-initialised head
    out = _apply(model, _randomise_head(variables, 0.5), x, RNGS["noise"], train=False)
    p = np.asarray(out["perturbation"])
    assert np.isfinite(p).all() and (p > 0).all() and (p < 1).all() and p.std() > 0
    np.testing.assert_allclose(out["images"], x + out["perturbation"], atol=1e-6)
    np.testing.assert_array_equal(out["reconstruction"], out["images"])


def test_vae_sampling_uses_noise_stream():
    model, variables = _vae(PerturbVAE)
    variables = _randomise_head(variables, 0.5)
    x = _smooth_images(4, 16)

    def run(key, sample):
        return _apply(model, variables, x, jax.random.key(key), train=False,
                      sample=sample)["images"]

    assert not np.allclose(run(0, True), run(1, True))
    np.testing.assert_array_equal(run(0, False), run(1, False))


def test_bad_inputs_raise():
    model, variables = _astn()
    with pytest.raises(ValueError, match="images"):
        model.apply(variables, jnp.zeros((16, 16, 3)), train=False, rngs=RNGS)
    with pytest.raises(ValueError, match="conditioning"):
        ASTN(conditioning="labels").init(RNGS, jnp.zeros((4, 16, 16, 3)), train=False)
    with pytest.raises(ValueError, match="theta"):
        normalized_to_pixel(jnp.eye(3), 16, 16)
    with pytest.raises(ValueError, match="theta"):
        invert(jnp.zeros((4, 6)))
    x = jnp.zeros((4, 16, 16, 3))
    with pytest.raises(ValueError, match="theta"):
        apply_astn(x, jnp.zeros((3, 2, 3)))
    with pytest.raises(ValueError, match="masks"):
        apply_astn(x, _small_theta(4), masks=jnp.zeros((4, 16, 16)))
    with pytest.raises(ValueError, match="labels"):
        apply_astn(x, _small_theta(4), labels=jnp.zeros(3))
    dvae, dvars = _vae(DeformVAE)
    with pytest.raises(ValueError, match="images"):
        dvae.apply(dvars, jnp.zeros((16, 16, 3)), train=False)
    with pytest.raises(ValueError, match="images"):
        dvae.apply(dvars, jnp.zeros((4, 18, 18, 3)), train=False)
    with pytest.raises(ValueError, match="padding"):
        DeformVAE(padding="reflect").apply(dvars, x, train=False)

"""Robustness of a trained keypoint model (`jaxaug.eval.pose_robustness`): the swept scores equal a
per-image re-implementation, the identity warp equals the clean score (which equals training's own
evaluation), occlusion changes exactly one cell, and the CLI writes JSON / Markdown / PNG that
match the API."""

import functools
import json
import os
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxaug import objectives
from jaxaug.data import keypoints
from jaxaug.eval import pose_robustness as pr
from jaxaug.methods.pose import predict_joints
from jaxaug.train import keypoints_config, train
from jaxaug.train import load_trained


pytestmark = pytest.mark.usefixtures("unoptimized_xla")


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# batch_size 5 splits the 12 test images into 5 + 5 + 2 (+ 3 masked padding copies).
SWEEP = {"scales": (0.8, 1.0, 1.3), "rotations": (-45.0, 0.0, 30.0), "grid": 4, "batch_size": 5}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    c = keypoints_config()
    c.train_size, c.test_size, c.image_size = 30, 12, 32
    c.cunet.update(num_unets=1, order=0, depth=1, features=8, growth=4, stem_stride=2)
    c.batch_size, c.epochs = 6, 1
    c.checkpoint.enabled = True
    workdir = str(tmp_path_factory.mktemp("robustness") / "tiny")
    summary = train(c, workdir)
    run = load_trained(workdir)
    results = pr.robustness(run["model"], run["variables"], run["test"],
                            run["model"].normalization.mean, metric=run["test"].metric,
                            threshold=c.pck_threshold, **SWEEP)
    return workdir, summary, run, results


# One image at a time, jitted only to keep the per-image loop fast.
_warp_one = jax.jit(keypoints.transform_sample, static_argnums=6)


@functools.partial(jax.jit, static_argnums=0)
def _predict(model, variables, images):
    """All images in one batch (the module pads to batches of 5)."""
    state = types.SimpleNamespace(**variables)
    return predict_joints(model, state, images, images.shape[1:3])[0]


def _reference_pckh(run, threshold, scale=1.0, degrees=0.0, cell=None, grid=4):
    """Per image: warp (or occlude one cell with the mean colour, by slicing), predict the whole
    set in one batch and score with `objectives.pckh`, the normaliser scaled by ``scale``."""
    test, images, joints, visible = run["test"], [], [], []
    for image, p, v in zip(test.images, test.joints, test.visible, strict=True):
        image = np.asarray(image, np.float32) / 255.0
        if cell is None:
            image, p, v = _warp_one(image, p, v, scale, degrees, False, ())
        else:
            h, w = image.shape[0] // grid, image.shape[1] // grid
            i, j = divmod(cell, grid)
            image = image.copy()
            image[i * h:(i + 1) * h, j * w:(j + 1) * w] = run["model"].normalization.mean
        images.append(image), joints.append(p), visible.append(v)
    images = jnp.stack(images)
    pred = _predict(run["model"], run["variables"], images)
    score, _ = objectives.pckh(pred, jnp.stack(joints), jnp.stack(visible), test.norm * scale,
                               threshold, joints=objectives.MPII_PCKH_JOINTS)
    return float(score)


def test_sweeps_equal_a_per_image_reimplementation(trained):
    _, _, run, results = trained
    assert results["metric"] == "pckh" and results["threshold"] == 0.5
    scale, degrees = dict(results["scale"]), dict(results["rotation"])
    for got, how in [(scale[1.3], {"scale": 1.3}), (degrees[-45.0], {"degrees": -45.0})]:
        want = _reference_pckh(run, 0.5, **how)
        assert 0 < want < 1, (how, want)  # an informative comparison, not 0 == 0
        assert got == pytest.approx(want, abs=1e-6), how
    want = [[_reference_pckh(run, 0.5, cell=i * 4 + j) for j in range(4)] for i in range(4)]
    assert len(np.unique(want)) > 1  # the cells differ, so a wrong cell order would show
    np.testing.assert_allclose(results["occlusion"], want, rtol=0, atol=1e-6)
    assert results["occlusion_mean"] == pytest.approx(np.mean(results["occlusion"]), abs=1e-12)


def test_identity_warp_is_the_clean_score_and_that_is_trainings_own(trained):
    _, summary, _, results = trained
    assert dict(results["scale"])[1.0] == pytest.approx(results["clean"], abs=1e-6)
    assert dict(results["rotation"])[0.0] == pytest.approx(results["clean"], abs=1e-6)
    assert results["clean"] == pytest.approx(summary["last_test_pckh"], abs=1e-6)
    assert np.shape(results["occlusion"]) == (4, 4)


def test_occlusion_fills_exactly_one_cell_with_the_mean_colour():
    rng = np.random.default_rng(0)
    images = rng.random((2, 8, 12, 3)).astype(np.float32)
    fill = np.array([0.2, 0.4, 0.6], np.float32)
    # grid 4 on 8 x 12: cells of 2 rows x 3 columns; cell 6 is row 1, column 2 of the grid.
    want = images.copy()
    want[:, 2:4, 6:9, :] = fill
    np.testing.assert_array_equal(pr.occlude(jnp.asarray(images), 6, 4, fill), want)
    np.testing.assert_array_equal(pr.occlude(jnp.asarray(images), -1, 4, fill), images)


def test_nme_averages_the_visible_landmarks_of_each_image():
    rng = np.random.default_rng(1)
    gt = rng.uniform(0, 64, (3, 68, 2)).astype(np.float32)
    pred = gt + rng.normal(0, 2, gt.shape).astype(np.float32)
    iod = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=-1)
    visible, mask = np.ones((3, 68), bool), np.ones(3, np.float32)
    sums = pr._sums(pred, gt, visible, iod, mask, "nme", 0.5)
    assert float(sums["value"] / sums["count"]) == pytest.approx(
        float(objectives.nme(pred, gt)), rel=1e-5)
    # Landmarks warped off the frame leave the mean; an image with none left, and padding, too.
    visible[0, :30], visible[1], mask[2] = False, False, 0.0
    sums = pr._sums(pred, gt, visible, iod, mask, "nme", 0.5)
    want = np.linalg.norm(pred[0, 30:] - gt[0, 30:], axis=-1).mean() / iod[0]
    assert float(sums["count"]) == 1 and float(sums["value"]) == pytest.approx(want, rel=1e-5)


def test_cli_writes_json_markdown_and_png_matching_the_api(trained, tmp_path):
    workdir, _, _, results = trained
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "jaxaug.eval.pose_robustness", f"--workdirs={workdir}",
         "--labels=tiny", f"--out={out}", "--scales=0.8,1.0,1.3", "--rotations=-45,0,30",
         "--grid=4", "--batch_size=5"], cwd=REPO, capture_output=True, text=True, timeout=300,
        check=False, env={**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"})  # as in-process
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(os.listdir(out)) == ["robustness.json", "robustness.md", "robustness.png"]
    written = json.loads((out / "robustness.json").read_text())
    assert list(written) == ["tiny"]
    assert written["tiny"].keys() == results.keys()
    for key, value in results.items():
        if isinstance(value, str):
            assert written["tiny"][key] == value
        else:
            np.testing.assert_allclose(written["tiny"][key], value, rtol=0, atol=1e-6)
    table = (out / "robustness.md").read_text()
    assert table == pr.markdown({"tiny": results}) and table in proc.stdout
    assert "PCKh@0.5" in table and "| tiny | " in table
    with Image.open(out / "robustness.png") as image:
        assert image.format == "PNG" and min(image.size) > 0
        image.load()


def test_two_runs_share_the_table_and_the_plot(trained, tmp_path):
    results = trained[3]
    table = pr.markdown({"random": results, "adversarial": results})
    assert table.count("| random | ") == 3 and table.count("| adversarial | ") == 3
    pr.plot({"random": results, "adversarial": results}, tmp_path / "two.png")
    with Image.open(tmp_path / "two.png") as image:
        assert image.format == "PNG"
    nme = {**results, "metric": "nme"}
    assert "NME (lower is better)" in pr.markdown({"face": nme})
    with pytest.raises(ValueError, match="different metrics"):
        pr.markdown({"random": results, "face": nme})


def test_bad_input_errors_name_the_offender(trained, tmp_path):
    workdir, _, run, _ = trained
    missing = str(tmp_path / "no-such-run")
    with pytest.raises(FileNotFoundError, match="no-such-run"):
        pr.evaluate([missing])
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        pr.evaluate([str(tmp_path)])
    with pytest.raises(ValueError, match="2 labels"):
        pr.evaluate([workdir], ["a", "b"])
    args = (run["model"], run["variables"], run["test"], run["model"].normalization.mean)
    with pytest.raises(ValueError, match="scales must be positive"):
        pr.robustness(*args, metric="pckh", threshold=0.5, scales=(1.0, 0.0))
    with pytest.raises(ValueError, match="grid=5 must divide the 32x32"):
        pr.robustness(*args, metric="pckh", threshold=0.5, grid=5)

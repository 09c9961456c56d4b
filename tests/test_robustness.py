"""The corruption-robustness evaluation: a tiny SelfNorm + CrossNorm run trained with the
consistency method end to end, then evaluated; clean error agrees with the trainer's own test
accuracy, a corruption's error agrees with a numpy re-implementation, and the outputs are
labelled and written whole."""

import json
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_train import tiny_config

from jaxaug.data.sources import ArraySource
from jaxaug.eval import robustness as rob
from jaxaug.train import train_and_evaluate

pytestmark = pytest.mark.usefixtures("unoptimized_xla")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("cnsn_run"))
    config = tiny_config(**{"epochs": 1, "method": "cnsn_consistency", "cnsn.selfnorm": True,
                            "cnsn.crossnorm": True, "cnsn.cn_active": 1, "cnsn.cn_prob": 0.75,
                            "cnsn.cn_crop": "both"})
    summary = train_and_evaluate(config, workdir)
    return workdir, summary


def test_clean_error_matches_training_evaluation(trained):
    workdir, summary = trained
    results = rob.robustness([workdir], corruptions=("contrast",), severities=(5,),
                             batch_size=300)
    (r,) = results.values()
    assert r["clean_error"] == pytest.approx(100 * (1 - summary["last_test_accuracy"]), abs=1e-9)
    assert r["step"] == summary["step"]


def test_corrupted_error_matches_numpy_and_outputs(trained, tmp_path):
    from jaxaug.train.loop import load_trained
    workdir, _ = trained
    results = rob.robustness([workdir, workdir], ["a", "b"], corruptions=("contrast", "frost"),
                             severities=(1, 5), num_images=100, batch_size=40)
    a = results["a"]
    assert a == {**results["b"], "workdir": a["workdir"]}  # same inputs, same model
    assert set(a["corruption_errors"]) == {"contrast", "frost"}
    assert a["procedural"] == ["frost"]
    assert a["mce"] == pytest.approx(np.mean([e for v in a["corruption_errors"].values()
                                               for e in v]))

    # Contrast at severity 5 by its closed form, quantised as the benchmark stores it.
    run = load_trained(workdir)
    index = np.round(np.linspace(0, len(run["dataset"].test) - 1, 100)).astype(int)
    images, labels = run["dataset"].test.get(index)
    x = images.astype(np.float64) / 255
    mu = x.mean(axis=(1, 2), keepdims=True)
    corrupted = np.floor(np.clip((x - mu) * 0.15 + mu, 0, 1) * 255) / 255
    logits = np.asarray(jax.jit(run["predict"])(corrupted.astype(np.float32)))
    expected = 100 * np.mean(np.argmax(logits, -1) != labels)
    assert a["corruption_errors"]["contrast"][1] == pytest.approx(expected, abs=1.0 + 1e-9)

    table = rob.markdown(results)
    assert "frost (procedural)" in table and "**mCE**" in table
    rob.plot(results, str(tmp_path / "r.png"))
    with open(tmp_path / "r.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    json.dumps(results)  # serialisable as written


def _std_classifier(images):
    """A closed-form stand-in for a network: class round(40 std(image)) of 10, so that contrast
    (which scales the std by its factor) moves images between classes."""
    std = jnp.std(images.reshape(images.shape[0], -1), axis=1)
    return -jnp.abs(jnp.arange(10.0) - 40 * std[:, None])


def test_errors_of_a_closed_form_classifier_on_uneven_batches(monkeypatch):
    """robustness() with a known classifier instead of a trained run (load_runs replaced): every
    error equals numpy's, per severity, with the last batch padded (37 images, batch 16), the
    corrupted images floored to uint8 levels, and mCE the mean of the table."""
    rng = np.random.default_rng(0)
    amplitude = rng.permutation(np.linspace(5, 120, 37))[:, None, None, None]
    images = np.clip(128 + amplitude * rng.standard_normal((37, 8, 8, 3)), 0, 255).astype(np.uint8)
    clean_class = np.asarray(_std_classifier(jnp.asarray(images / 255, jnp.float32))).argmax(-1)
    labels = np.where(np.arange(37) % 3 == 0, (clean_class + 1) % 10, clean_class)
    test = ArraySource(images, labels)
    run = {"dataset": types.SimpleNamespace(name="toy", test=test), "predict": _std_classifier,
           "step": 7}
    monkeypatch.setattr(rob.cli, "load_runs", lambda workdirs, task: [run] * len(workdirs))
    (r,) = rob.robustness(["toy"], corruptions=("contrast",), severities=(1, 3, 5),
                          batch_size=16).values()

    def error(x):
        predicted = np.asarray(_std_classifier(jnp.asarray(x, jnp.float32))).argmax(-1)
        return 100 * np.mean(predicted != labels)

    x = images.astype(np.float32) / 255
    mu = x.mean(axis=(1, 2), keepdims=True)
    # CIFAR-10-C's contrast factors of severities 1, 3 and 5, written out (not the module's).
    want = [error(np.floor(np.clip((x - mu) * c + mu, 0, 1) * 255) / 255)
            for c in (0.75, 0.4, 0.15)]
    print("contrast errors (%)", r["corruption_errors"]["contrast"], "clean", r["clean_error"])
    assert r["clean_error"] == pytest.approx(100 * 13 / 37)
    np.testing.assert_allclose(r["corruption_errors"]["contrast"], want, rtol=0, atol=1e-9)
    assert len(set(want)) == 3  # the severities move the classifier apart
    assert r["mce"] == pytest.approx(np.mean(want)) and r["num_images"] == 37


def test_bad_arguments_are_named(trained, tmp_path):
    workdir, _ = trained
    with pytest.raises(ValueError, match="unknown corruptions \\['speckle'\\]"):
        rob.robustness([workdir], corruptions=("speckle",))
    with pytest.raises(ValueError, match="severities must be in"):
        rob.robustness([workdir], severities=(0,))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        rob.robustness([str(tmp_path / "none")])
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        rob.robustness([str(tmp_path)])
    with pytest.raises(ValueError, match="num_images must be in"):
        rob.robustness([workdir], corruptions=("contrast",), num_images=10**6)
    with pytest.raises(ValueError, match="one distinct label per workdir"):
        rob.robustness([workdir, workdir])


@pytest.mark.slow  # the shared CLI skeleton (jaxaug.eval.cli) runs fast in test_pose_robustness.py
def test_cli_writes_json_markdown_and_png(trained, tmp_path):
    import subprocess
    import sys
    workdir, _ = trained
    out = tmp_path / "out"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-m", "jaxaug.eval.robustness", f"--workdirs={workdir}", "--labels=tiny",
         f"--out={out}", "--corruptions=contrast,jpeg_compression", "--severities=2",
         "--num_images=30", "--batch_size=16"],
        cwd=repo, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(os.listdir(out)) == ["robustness.json", "robustness.md", "robustness.png"]
    written = json.loads((out / "robustness.json").read_text())
    assert list(written) == ["tiny"] and written["tiny"]["num_images"] == 30
    assert list(written["tiny"]["corruption_errors"]) == ["contrast", "jpeg_compression"]
    table = (out / "robustness.md").read_text()
    assert table == rob.markdown(written) and table in proc.stdout
    with open(out / "robustness.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_shared_flags_belong_to_the_calling_tool_so_its_help_lists_them():
    """absl's --help lists only the main module's key flags: `cli.define_flags` must give
    --workdirs, --labels and --out to the tool that calls it, not to `jaxaug.eval.cli`."""
    from absl import flags
    flag_values = flags.FlagValues()
    rob.cli.define_flags("classification", flag_values=flag_values)
    key_flags = {f.name for f in flag_values.get_key_flags_for_module(__name__)}
    assert key_flags == {"workdirs", "labels", "out"}
    assert flag_values.get_key_flags_for_module(rob.cli.__name__) == []

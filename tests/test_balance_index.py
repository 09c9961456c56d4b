"""The balance index BI = E^2 * TM * MS of finished keypoint runs, with TM and MS measured as
ratios to the full-precision run."""

import json

import pytest

from jaxaug.eval import balance_index as bi
from jaxaug.train import keypoints_config


pytestmark = pytest.mark.usefixtures("unoptimized_xla")


def _run(tmp_path, quant, pckh):
    c = keypoints_config()
    c.quant = quant
    # Measuring compiles a training step: one U-Net on 16 x 16 images keeps that cheap, and its
    # width keeps the binary kernels the bulk of the model (see the size ratio below).
    c.cunet.update(num_unets=1, order=0, depth=1, features=32, growth=16, stem_stride=2)
    c.image_size, c.batch_size = 16, 2
    workdir = tmp_path / quant
    workdir.mkdir()
    (workdir / "config.json").write_text(c.to_json())
    (workdir / "summary.json").write_text(json.dumps({"metric": "pckh", "best_test_pckh": pckh}))
    return str(workdir)


def test_balance_index_of_a_full_precision_and_a_binary_run(tmp_path):
    rows = bi.balance_index([_run(tmp_path, "fp", 0.8), _run(tmp_path, "bw", 0.7)])
    fp, bw = rows
    assert fp["training_memory_ratio"] == 1.0 and fp["model_size_ratio"] == 1.0
    assert fp["balance_index"] == pytest.approx(0.2 ** 2)
    # Binary kernels take 1/32 of their float bytes; the first and last layers, BatchNorm and
    # the scales keep this tiny model's whole ratio well above that, but far below 1.
    assert 1 / 32 < bw["model_size_ratio"] < 0.25
    assert bw["balance_index"] == pytest.approx(
        0.3 ** 2 * bw["training_memory_ratio"] * bw["model_size_ratio"])
    table = bi.markdown(rows)
    assert "| bw | 0.3000 |" in table and table.count("\n") == 4


def test_balance_index_needs_a_full_precision_run_and_keypoint_summaries(tmp_path):
    with pytest.raises(ValueError, match="none of the workdirs is a full-precision run"):
        bi.balance_index([_run(tmp_path, "bw", 0.7)])
    with pytest.raises(ValueError, match="not a keypoint run"):
        bi.run_error({"last_test_accuracy": 0.9})
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        bi.balance_index([str(tmp_path)])
    assert bi.run_error({"metric": "nme", "best_test_nme": 0.05}) == 0.05

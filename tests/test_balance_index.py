"""The balance index BI = E^2 * TM * MS of finished keypoint runs (Tang thesis, Eq. 5.8): E in
percent at the best validation epoch, TM and MS ratios to the full-precision run, measured and
nominal."""

import json
import types

import numpy as np
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
    # The best test score (0.99) is never E: it would be chosen on the test set.
    (workdir / "summary.json").write_text(json.dumps(
        {"metric": "pckh", "best_test_pckh": 0.99, "last_test_pckh": 0.5,
         "best_val_pckh": 0.9, "test_pckh_at_best_val": pckh}))
    return str(workdir)


def test_balance_index_of_a_full_precision_and_a_binary_run(tmp_path):
    rows = bi.balance_index([_run(tmp_path, "fp", 0.8), _run(tmp_path, "bw", 0.7)])
    fp, bw = rows
    assert fp["error_percent"] == pytest.approx(20.0)
    assert fp["error_from"] == "test_pckh_at_best_val"
    assert fp["training_memory_ratio_measured"] == 1.0 and fp["model_size_ratio_measured"] == 1.0
    assert fp["balance_index_measured"] == pytest.approx(20.0 ** 2)
    assert fp["balance_index_nominal"] == pytest.approx(20.0 ** 2)
    # Binary kernels take 1/32 of their float bytes; the first and last layers, BatchNorm and
    # the scales keep this tiny model's whole ratio well above that, but far below 1.
    assert 1 / 32 < bw["model_size_ratio_measured"] < 0.25
    assert bw["balance_index_measured"] == pytest.approx(
        30.0 ** 2 * bw["training_memory_ratio_measured"] * bw["model_size_ratio_measured"])
    # Nominal: float features (TM 1), 1-bit weights (MS 1/32).
    assert bw["training_memory_ratio_nominal"] == 1.0
    assert bw["balance_index_nominal"] == pytest.approx(30.0 ** 2 / 32)
    table = bi.markdown(rows)
    assert f"| bw | {tmp_path / 'bw'} | 30.00 | test_pckh_at_best_val |" in table
    assert table.count("\n") == 6  # one run a setting: no per-setting table


def test_seeds_of_a_setting_share_one_measurement_and_get_mean_and_spread(tmp_path, monkeypatch):
    """Three runs (two fp seeds, one bw): two compiles, not three; per setting, E and BI as mean
    ± sample standard deviation. `measure` is replaced by fixed costs (TM 0.5, MS 0.25 for bw)."""
    calls = []

    def fake_measure(model, quant, **kwargs):
        calls.append(quant)
        return types.SimpleNamespace(total_bytes=100.0 if quant == "fp" else 50.0,
                                     packed_bytes=100.0 if quant == "fp" else 25.0)

    monkeypatch.setattr(bi, "measure", fake_measure)
    (tmp_path / "s1").mkdir()
    runs = [_run(tmp_path, "fp", 0.8), _run(tmp_path / "s1", "fp", 0.7),
            _run(tmp_path, "bw", 0.6)]
    rows = bi.balance_index(runs)
    assert calls == ["fp", "bw"]
    fp, bw = bi.by_setting(rows)
    assert (fp["quant"], fp["runs"], bw["runs"]) == ("fp", 2, 1)
    assert fp["error_percent_mean"] == pytest.approx(25.0)
    assert fp["error_percent_std"] == pytest.approx(np.std([20.0, 30.0], ddof=1))
    assert fp["balance_index_measured_mean"] == pytest.approx((400 + 900) / 2)
    assert bw["balance_index_measured_mean"] == pytest.approx(40.0 ** 2 * 0.5 * 0.25)
    assert bw["error_percent_std"] is None
    table = bi.markdown(rows)
    assert "| fp | 2 | 25.00 ± 7.07 | 650 ± 354 | 650 ± 354 |" in table, table
    assert "| bw | 1 | 40.00 | 200 | 50 |" in table, table


def test_balance_index_reproduces_the_thesis_table():
    """Table 5.9 (MPII, CU-Net-2): PCKh 86.1 gives BI 193 in full precision; 818 (8-bit
    dataflow, binary weights: nominal TM 0.25, MS 1/32) at PCKh 81.5 gives 18.5² · 0.25 / 32 =
    2.67 (the table's 2.57 uses MS rounded to 0.03). Table 5.8 (300-W): NME 3.38% gives 11.4."""
    error, source = bi.run_error({"metric": "pckh", "last_test_pckh": 0.861})
    assert source == "last_test_pckh" and round(error ** 2) == 193
    tm, ms = bi.nominal_ratios("818")
    assert (tm, ms) == (0.25, 1 / 32)
    error, _ = bi.run_error({"metric": "pckh", "test_pckh_at_best_val": 0.815})
    assert error ** 2 * tm * ms == pytest.approx(18.5 ** 2 * 0.25 / 32)
    assert error ** 2 * tm * 0.03 == pytest.approx(2.57, abs=0.005)
    error, _ = bi.run_error({"metric": "nme", "test_nme_at_best_val": 0.0338})
    assert error ** 2 == pytest.approx(11.4, abs=0.05)
    assert bi.nominal_ratios("tw") == (1.0, 2 / 32) and bi.nominal_ratios("fp") == (1.0, 1.0)
    assert bi.nominal_ratios("616")[0] == 6 / 32


def test_balance_index_needs_a_full_precision_run_and_keypoint_summaries(tmp_path):
    with pytest.raises(ValueError, match="none of the workdirs is a full-precision run"):
        bi.balance_index([_run(tmp_path, "bw", 0.7)])
    with pytest.raises(ValueError, match="not a keypoint run"):
        bi.run_error({"last_test_accuracy": 0.9})
    with pytest.raises(ValueError, match="never evaluated"):
        bi.run_error({"metric": "pck", "best_test_pck": 0.9})
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        bi.balance_index([str(tmp_path)])

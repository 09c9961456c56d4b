"""`python -m jaxaug.preview`: grid geometry, originals in the first column, augmented copies,
determinism in the seed, and flag errors that name the flag."""

import os
import subprocess
import sys

import numpy as np
import pytest
from absl import app, flags
from PIL import Image

from jaxaug import preview
from jaxaug.data import load_dataset

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One policy configuration throughout: every run then reuses one compiled program (the
# persistent compilation cache of conftest.py also serves the subprocess run).
_ARGS = ["--policy=randaugment", "--num_ops=3", "--magnitude=10", "--num_images=3", "--copies=2"]
_N, _COPIES, _SIDE, _PAD = 3, 2, 32, 2  # synthetic images are 32x32; save_image_grid pads by 2


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("synthetic")


@pytest.fixture
def run(monkeypatch, dataset):
    """`run(*args)` parses the flags and calls `preview.main` in-process, reusing the loaded
    synthetic dataset (the subprocess test loads it for real)."""
    monkeypatch.setattr(preview, "load_dataset", lambda name, **kw: dataset)

    def parse_and_run(*args):
        flags.FLAGS(["preview", *args])
        preview.main(["preview"])

    yield parse_and_run
    flags.FLAGS.unparse_flags()


def _cells(path):
    """The grid at `path` as [rows, columns, H, W, 3] images, after checking its geometry."""
    grid = np.asarray(Image.open(path))
    cols = 1 + _COPIES
    assert grid.shape == (_PAD + _N * (_SIDE + _PAD), _PAD + cols * (_SIDE + _PAD), 3)
    step = _SIDE + _PAD
    return np.stack([np.stack([grid[_PAD + r * step:][:_SIDE, _PAD + c * step:][:, :_SIDE]
                               for c in range(cols)]) for r in range(_N)])


def test_grid_layout_copies_and_seeds(run, dataset, tmp_path, capsys):
    run(*_ARGS, "--seed=0", f"--out={tmp_path / 'a.png'}")
    assert str(tmp_path / "a.png") in capsys.readouterr().out  # the path written is printed
    run(*_ARGS, "--seed=1", f"--out={tmp_path / 'b.png'}")
    cells = _cells(tmp_path / "a.png")
    np.testing.assert_array_equal(cells[:, 0], dataset.train.images[:_N])
    for row in cells:
        assert not np.array_equal(row[1], row[0]) and not np.array_equal(row[2], row[0])
        assert not np.array_equal(row[1], row[2])
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "b.png").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]  # no temporary files left


@pytest.mark.slow  # a fresh process (7 s); the test above runs the same main with the same flags
def test_the_command_line_writes_the_same_file_and_prints_its_path(run, tmp_path):
    run(*_ARGS, "--seed=0", f"--out={tmp_path / 'a.png'}")
    out = tmp_path / "c.png"
    result = subprocess.run(
        [sys.executable, "-m", "jaxaug.preview", *_ARGS, "--seed=0", f"--out={out}"],
        check=False, cwd=_REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    assert out.read_bytes() == (tmp_path / "a.png").read_bytes()


@pytest.mark.parametrize("bad, flag", [("--policy=nope", "--policy"), ("--copies=0", "--copies"),
                                       ("--num_images=0", "--num_images")])
def test_bad_flag_values_name_the_flag(run, tmp_path, bad, flag):
    with pytest.raises(flags.IllegalFlagValueError, match=flag):
        run(*_ARGS, bad, f"--out={tmp_path / 'x.png'}")


def test_unknown_dataset_and_missing_out_dir_name_the_flag(run, monkeypatch, tmp_path):
    with pytest.raises(app.UsageError, match="--out"):
        run(*_ARGS, f"--out={tmp_path / 'missing' / 'x.png'}")
    monkeypatch.setattr(preview, "load_dataset", load_dataset)  # the real one, which rejects it
    with pytest.raises(app.UsageError, match="--dataset=bogus"):
        run(*_ARGS, "--dataset=bogus", f"--out={tmp_path / 'x.png'}")
    assert not os.listdir(tmp_path)

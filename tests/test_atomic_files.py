"""Files written atomically: whole or absent, no temporary left behind, and the permissions a normal
file gets (0o666 minus the umask), not mkstemp's owner-only 0o600."""

import json
import os
import stat

import numpy as np
import pytest

from jaxaug.data import atomic, cache, save_image_grid
from jaxaug.train.metrics_writer import write_json_atomic, write_report


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    before = os.umask(request.param)
    yield request.param
    os.umask(before)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_umask_is_read_without_changing_it(umask):
    assert atomic.umask() == umask
    assert os.umask(umask) == umask  # still what the fixture set


def test_every_writer_gives_the_umask_permissions(tmp_path, umask):
    write_json_atomic(str(tmp_path / "summary.json"), {"a": 1})
    write_report(str(tmp_path / "eval"), "report", {"b": 2}, "| b |",
                 lambda results, path: open(path, "w").write(json.dumps(results)))
    save_image_grid(np.zeros((2, 4, 4, 3), np.uint8), tmp_path / "grid.png")
    cache.save(tmp_path / "cache" / "x.npz", {"x": np.arange(3)})
    written = [tmp_path / "summary.json", tmp_path / "grid.png", tmp_path / "cache" / "x.npz",
               *(tmp_path / "eval" / f"report.{ext}" for ext in ("json", "md", "png"))]
    assert {p: _mode(p) for p in written} == {p: 0o666 & ~umask for p in written}
    assert json.load(open(tmp_path / "summary.json")) == {"a": 1}
    assert (tmp_path / "eval" / "report.md").read_text() == "| b |"
    np.testing.assert_array_equal(cache.load(tmp_path / "cache" / "x.npz")["x"], np.arange(3))
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "summary.json"
    write_json_atomic(str(path), {"old": True})

    def fail(tmp):
        with open(tmp, "w") as f:
            f.write('{"half')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.write_atomic(path, fail)
    assert json.load(open(path)) == {"old": True}
    assert os.listdir(tmp_path) == ["summary.json"]

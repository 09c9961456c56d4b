"""Checkpoints are verified on restore: a damaged one is named, the newest intact one is used
instead, loudly, and when none is intact the error names the directory."""

import logging
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

from jaxaug.train.checkpoint import (
    CheckpointMismatchError,
    Checkpointer,
    DamagedCheckpointError,
    resume,
)

WEIGHTS = np.linspace(-1.0, 1.0, 4096, dtype=np.float32)


def _state(step):
    return {"w": jnp.asarray(WEIGHTS * step), "b": jnp.full((3,), float(step))}


@pytest.fixture
def saved(tmp_path):
    """Steps 1 and 2 saved under tmp_path/ckpt, whose copy each test may damage."""
    directory = tmp_path / "ckpt"
    checkpointer = Checkpointer(str(directory), keep=3)
    for step in (1, 2):
        checkpointer.save(step, _state(step), {"step": step})
    checkpointer.close()
    return directory


def _flip_weights(directory, step):
    """Flips four bytes in the middle of the largest file of `step`'s state (the compressed
    weights): the damage a bad disk or copy does, which Orbax itself reads without complaint."""
    files = [os.path.join(root, name) for root, _, names in os.walk(directory / str(step) / "state")
             for name in names]
    path = max(files, key=os.path.getsize)
    data = bytearray(open(path, "rb").read())
    middle = len(data) // 2
    data[middle:middle + 4] = bytes(b ^ 0x5A for b in data[middle:middle + 4])
    open(path, "wb").write(bytes(data))


def _remove_state_files(directory, step):
    shutil.rmtree(directory / str(step) / "state")
    (directory / str(step) / "state").mkdir()


@pytest.mark.parametrize("damage, why", [(_flip_weights, r"array \['w'\] does not match"),
                                         (_remove_state_files, "unreadable")])
def test_a_damaged_latest_checkpoint_is_named_and_the_previous_one_used(saved, damage, why,
                                                                        caplog):
    damage(saved, 2)
    checkpointer = Checkpointer(str(saved), keep=3)
    with pytest.raises(DamagedCheckpointError, match=f"step 2 in {saved}: .*{why}"):
        checkpointer.restore(2, _state(0))
    with caplog.at_level(logging.ERROR):
        step, state, meta = checkpointer.restore_newest_intact(_state(0))
    assert step == 1 and meta == {"step": 1}
    np.testing.assert_array_equal(state["w"], WEIGHTS)
    assert "Falling back to checkpoint step 1" in caplog.text and "step 2" in caplog.text
    checkpointer.close()


def test_resume_sets_the_damaged_step_aside_so_training_can_save_it_again(saved):
    _flip_weights(saved, 2)
    checkpointer = Checkpointer(str(saved), keep=3)
    state, meta, input_state = resume(checkpointer, _state(0), {}, enabled=True,
                                      workdir=str(saved.parent))
    assert meta == {"step": 1} and sorted(checkpointer.all_steps()) == [1]
    assert input_state is None  # saved without one
    checkpointer.save(2, _state(2), {"step": 2})
    checkpointer.close()
    checkpointer = Checkpointer(str(saved), keep=3)
    assert checkpointer.restore(2, _state(0))[1] == {"step": 2}
    checkpointer.close()
    assert os.listdir(str(saved) + "-damaged") == ["2"]


def test_the_input_pipeline_state_is_saved_per_process_and_restored(tmp_path):
    pipeline = {"step": 3, "start": 0, "worker_count": 2, "grain": {"next_index": [1, 2]}}
    checkpointer = Checkpointer(str(tmp_path / "ckpt"), keep=2)
    checkpointer.save(3, _state(3), {"step": 3}, data=pipeline)
    checkpointer.close()
    assert "process_0-of-1.json" in os.listdir(tmp_path / "ckpt" / "3" / "data")
    checkpointer = Checkpointer(str(tmp_path / "ckpt"), keep=2)
    _, _, restored = resume(checkpointer, _state(0), {}, enabled=True, workdir=str(tmp_path))
    checkpointer.close()
    assert restored == pipeline


def test_no_intact_checkpoint_names_the_directory(saved):
    for step in (1, 2):
        _flip_weights(saved, step)
    checkpointer = Checkpointer(str(saved), keep=3)
    with pytest.raises(DamagedCheckpointError, match=f"{saved}: all checkpoints"):
        checkpointer.restore_newest_intact(_state(0))
    checkpointer.close()


def test_a_state_of_another_structure_is_named_a_mismatch_and_nothing_is_set_aside(saved):
    """Code whose state has another tree (a field more, as after an optimizer change) meets a
    run's checkpoints: not damage, so no fallback to older ones and nothing moved aside."""
    other = {**_state(0), "opt": jnp.zeros((2,))}
    checkpointer = Checkpointer(str(saved), keep=3)
    with pytest.raises(CheckpointMismatchError,
                       match=f"step 2 in {saved} holds a state of another structure"):
        resume(checkpointer, other, {}, enabled=True, workdir=str(saved.parent))
    assert sorted(checkpointer.all_steps()) == [1, 2]
    assert not os.path.exists(str(saved) + "-damaged")
    checkpointer.close()

"""Issue 20's arms whose code changed after 568ca62 in ways that matter to training, run at
90b87c0 exactly as `plans/cifar10_cpu.py:evidence` resolves them (same config hashes): tanda and
adatransform (the DCGAN discriminator's N(0, 0.02) init), cnsn (SelfNorm's attention init) and
trivialaugment (torchvision's solarize thresholds and whole-pixel translations). All four pair
with cropflip, which 568ca62 and 90b87c0 train bit for bit alike (docs/results.md). The first arm
stands in as the harness's required baseline; paired differences come from main's collect.
Run from a worktree at 90b87c0: --plan=<main>/plans/as_run/issue20_at_90b87c0.py
"""
import importlib.util
import os

ARMS = ("trivialaugment", "tanda", "adatransform", "cnsn")


def get_plan():
    spec = importlib.util.spec_from_file_location(
        "cifar10_cpu", os.path.join(os.getcwd(), "plans", "cifar10_cpu.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    full = module.get_plan("evidence")
    arms = {}
    for name in ARMS:
        arm = dict(full["arms"][name])
        arm.pop("matched", None)
        arms[name] = arm
    return {"baseline": ARMS[0], "seeds": full["seeds"], "arms": arms}

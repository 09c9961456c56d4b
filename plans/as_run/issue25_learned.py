"""Issue 25's four learned arms, exactly as `plans/cifar10_cpu.py:evidence` resolves them (same
config files and overrides, so the same config hashes), and Cutout rerun at this commit as
"cutout@0616728" (TeachAugment's matched baseline). The other baselines run once, in the issue-20
worktree: 568ca62 and 0616728 train cropflip, randaugment and autoaugment bit for bit alike, but
not Cutout (docs/results.md). Paired differences come from main's
`python -m jaxaug.experiments.collect --plan=plans/cifar10_cpu.py:evidence-as-run`, not from
this plan's report, whose baseline is only the harness's required stand-in.
Run from a worktree at 0616728: --plan=<main>/plans/as_run/issue25_learned.py
"""
import importlib.util
import os

ARMS = ("teachaugment", "dada", "uncertainty", "dct")


def get_plan():
    spec = importlib.util.spec_from_file_location(
        "cifar10_cpu", os.path.join(os.getcwd(), "plans", "cifar10_cpu.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    full = module.get_plan("evidence")
    arms = {"cutout@0616728": dict(full["arms"]["cutout"])}
    for name in ARMS:
        arm = dict(full["arms"][name])
        arm.pop("matched", None)
        arms[name] = arm
    return {"baseline": "cutout@0616728", "seeds": full["seeds"], "arms": arms}

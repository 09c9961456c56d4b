"""<plan file>[:<arg>]@<seed>: that plan (the file's path relative to the harness's working
directory, or absolute) with only the one seed, so that a harness can run every arm's seed 0 before
any arm's seed 1. The arms and their config hashes are the plan's: only the order of the runs
changes, and the workdirs (<out>/<arm>/seed<N>) are the same, so finished runs are skipped and
interrupted ones resume as before. The evidence worktrees run it because their commits predate the
harness's --seeds, which does the same.

  python -m jaxaug.experiments --plan=<main>/plans/as_run/seed_major.py:plans/cifar10_cpu.py:evidence@0 ...
"""
import importlib.util
import os


def get_plan(arg):
    spec, at, seed = arg.rpartition("@")
    if not at or not seed.isdigit():
        raise ValueError(f"seed_major.py: expected <plan file>[:<arg>]@<seed>, got {arg!r}")
    path, _, plan_arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location(
        "_seed_major_plan", os.path.join(os.getcwd(), path))
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    plan = module.get_plan(plan_arg) if plan_arg else module.get_plan()
    if int(seed) not in plan["seeds"]:
        raise ValueError(f"seed_major.py: seed {seed} is not one of {spec}'s seeds {plan['seeds']}")
    return {**plan, "seeds": [int(seed)]}

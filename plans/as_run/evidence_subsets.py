"""The subsets of `plans/cifar10_cpu.py:evidence` that the evidence worktrees other than 568ca62's
run, each arm exactly as `evidence` resolves it (same config hashes), without its `matched` (the
baselines run elsewhere; paired differences come from main's
`python -m jaxaug.experiments.collect --plan=plans/cifar10_cpu.py:evidence-as-run`). The harness
needs a baseline that is an arm, so each subset's first arm stands in for it.

  "issue25"     from a worktree at 0616728: Cutout rerun there as "cutout@0616728" (TeachAugment's
                baseline; the commits' Cutout draws differ) and issue 25's four arms. The other
                baselines run at 568ca62, which trains them bit for bit as 0616728 does.
  "at-90b87c0"  from a worktree at 90b87c0: tanda and adatransform (the DCGAN discriminator's
                N(0, 0.02) init), cnsn (SelfNorm's attention init) and trivialaugment
                (torchvision's solarize thresholds and whole-pixel translations), fixed after
                568ca62; all pair with cropflip, which both commits train alike.
  "uncertainty-reference"  from a worktree at 09752bb, where they exist: uncertainty-based
                sampling with the authors' copies and its matched control, one copy of them.

  python -m jaxaug.experiments --plan=<main>/plans/as_run/evidence_subsets.py:issue25 \\
      --out=experiments/evidence_issue25
(docs/results.md has the comparisons of logged metrics behind "bit for bit".)
"""
import importlib.util
import os

SUBSETS = {
    "issue25": ("cutout@0616728", "teachaugment", "dada", "uncertainty", "dct"),
    "at-90b87c0": ("trivialaugment", "tanda", "adatransform", "cnsn"),
    "uncertainty-reference": ("random_composition", "uncertainty_reference"),
}


def get_plan(arg):
    if arg not in SUBSETS:
        raise ValueError(f"plans/as_run/evidence_subsets.py: unknown subset {arg!r}; valid: "
                         f"{', '.join(SUBSETS)}")
    # The worktree's own plan file: this file may be newer than the commit it runs at.
    spec = importlib.util.spec_from_file_location(
        "cifar10_cpu", os.path.join(os.getcwd(), "plans", "cifar10_cpu.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    evidence = module.get_plan("evidence")
    full = {**evidence["arms"], "cutout@0616728": evidence["arms"]["cutout"]}
    arms = {name: {k: v for k, v in full[name].items() if k != "matched"}
            for name in SUBSETS[arg]}
    return {"baseline": SUBSETS[arg][0], "seeds": evidence["seeds"], "arms": arms}

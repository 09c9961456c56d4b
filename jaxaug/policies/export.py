"""The policy a policy-search run found, as an AutoAugment table in JSON:

  python -m jaxaug.policies.export --workdir=SEARCH_WORKDIR [--out=policy.json]
  python train.py --config=configs/cifar10_wrn.py --config.augment.policy=table:policy.json

The run is a ``dada`` run (`jaxaug.methods.dada`: each sub-policy stage's op of largest logit,
with its probability and level, `dada.export_table`); the table is written atomically, by
`jaxaug.policies.write_table`, to ``--out`` (default ``SEARCH_WORKDIR/dada_policy.json``).
A command module of its own, not part of `jaxaug.methods`: that package imports all of its
modules, so ``python -m`` on one of them would run it a second time.
"""

import argparse
import os

from jaxaug.policies.policy import write_table

SEARCHING_METHODS = ("dada",)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m jaxaug.policies.export",
        description="Write the policy a policy-search run found as an AutoAugment table (JSON).")
    parser.add_argument("--workdir", required=True, help="the search run's workdir")
    parser.add_argument("--out", help="output JSON (default: WORKDIR/dada_policy.json)")
    args = parser.parse_args(argv)
    # Imported here: the trainer and the methods build on this package.
    from jaxaug.methods import dada
    from jaxaug.train.loop import load_trained

    try:
        run = load_trained(args.workdir)
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    if run["config"].method not in SEARCHING_METHODS:
        raise SystemExit(f"error: {args.workdir!r} is a {run['config'].method!r} run; a policy "
                         f"is exported from a run of {', '.join(SEARCHING_METHODS)}")
    table = dada.export_table(run["state"].policy.params)
    out = args.out or os.path.join(args.workdir, "dada_policy.json")
    write_table(table, out)
    print(f"{len(table)} sub-policies of step {run['step']} -> {out}")


if __name__ == "__main__":
    main()

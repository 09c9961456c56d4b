"""Issue 20, part 2: a third point of the search, `plans/regime_search.py` with 200 epochs,
evaluated every 10 epochs (and after the last), 3 seeds.

  python -m jaxaug.experiments --plan=plans/regime_search_200ep.py --out=experiments/regime_1000_wrn10_1_200ep
"""

import importlib.util
import os

_SPEC = importlib.util.spec_from_file_location(
    "regime_search", os.path.join(os.path.dirname(os.path.abspath(__file__)), "regime_search.py"))
_FIRST = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_FIRST)


def get_plan():
    plan = _FIRST.get_plan()
    plan["seeds"] = [0, 1, 2]
    for arm in plan["arms"].values():
        arm["overrides"] = {**arm["overrides"], "epochs": 200, "eval_every": 10}
    return plan

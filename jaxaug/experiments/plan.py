"""A comparison plan: arms (a config file, its optional argument, overrides), seeds and a baseline.

A plan is a Python file whose ``get_plan()`` returns, or a JSON file that holds, a dict::

    {"baseline": "cropflip",
     "seeds": [0, 1, 2],
     "arms": {"cropflip": {"config": "configs/cifar10_wrn.py"},
              "autoaugment": {"config": "configs/cifar10_wrn.py:autoaugment",
                              "overrides": {"epochs": 10}},
              "aa_astn": {"config": "configs/online_augment.py:cifar10,astn,aa",
                          "matched": "autoaugment"}}}

``config`` is what ``train.py --config=`` takes (``path[:arg]``, the path relative to the current
directory); ``overrides`` maps dotted config fields to values, applied as
``--config.<field>=<value>``. Each arm's config is resolved here, once per seed, so that an unknown
field fails before any run starts and every run has a hash of its resolved config. ``matched``
names an arm's matched baseline, the same pipeline without the learned part: the report gives the
arm's paired difference from it besides the one from the plan's baseline. An optional ``regime``
(a JSON-serializable dict, for example the shared overrides) describes the setting every arm runs
in; the reports carry it.
"""

import dataclasses
import hashlib
import importlib.util
import inspect
import json
import os
from typing import Any

import ml_collections

from jaxaug.train.config import load_config_file


@dataclasses.dataclass(frozen=True)
class Arm:
    name: str
    config: str  # path[:arg], as train.py's --config takes it
    overrides: dict[str, Any]
    matched: str | None = None  # the arm's matched baseline

    @property
    def config_path(self) -> str:
        return self.config.split(":", 1)[0]

    @property
    def config_arg(self) -> str | None:
        parts = self.config.split(":", 1)
        return parts[1] if len(parts) == 2 else None

    def resolve(self, seed: int) -> ml_collections.ConfigDict:
        """The config a run of this arm with ``seed`` trains: the file's ``get_config([arg])``,
        the overrides, then ``seed``."""
        config = load_config_file(self.config_path, self.config_arg)
        for field, value in self.overrides.items():
            keys, node = field.split("."), config
            for i, key in enumerate(keys):  # update_from_flattened_dict ignores unknown fields
                if not isinstance(node, ml_collections.ConfigDict) or key not in node:
                    raise ValueError(f"arm {self.name!r}: override {field!r}: "
                                     f"config has no field {'.'.join(keys[:i + 1])!r}")
                node = node[key]
            try:
                config.update_from_flattened_dict({field: value})
            except (KeyError, AttributeError, TypeError) as e:
                raise ValueError(f"arm {self.name!r}: override {field}={value!r}: {e}") from e
        config.seed = seed
        return config

    def flags(self, seed: int) -> list[str]:
        """train.py's config flags for a run of this arm with ``seed``."""
        return [f"--config={self.config}",
                *(f"--config.{k}={_flag_value(v)}" for k, v in self.overrides.items()),
                f"--config.seed={seed}"]


def _flag_value(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def json_hash(payload: Any) -> str:
    """SHA-256 (first 16 hex digits) of ``payload``'s JSON with sorted keys."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def config_hash(config: ml_collections.ConfigDict) -> str:
    """The hash of a resolved config, equal to that of the ``config.json`` its run writes."""
    return json_hash(json.loads(config.to_json()))


@dataclasses.dataclass(frozen=True)
class Plan:
    arms: dict[str, Arm]  # in the plan's order, which the report keeps (it ranks nothing)
    seeds: tuple[int, ...]
    baseline: str
    regime: dict[str, Any] = dataclasses.field(default_factory=dict)

    def matched_baselines(self) -> dict[str, str]:
        """arm -> its matched baseline, for the arms that name one."""
        return {name: arm.matched for name, arm in self.arms.items() if arm.matched}


def parse_plan(raw: Any, only_arms: list[str] | None = None,
               only_seeds: list[str] | None = None) -> Plan:
    """Checks a plan dict; ``only_arms`` keeps those arms (and the baseline), ``only_seeds`` (as
    the command line gives them) those of the plan's seeds, in the plan's order. Every error names
    the offending key or value."""
    if not isinstance(raw, dict):
        raise ValueError(f"plan: must be a dict with arms, seeds and baseline, got {type(raw).__name__}")
    unknown = set(raw) - {"arms", "seeds", "baseline", "regime"}
    if unknown:
        raise ValueError(f"plan: unknown keys {sorted(unknown)}; expected arms, seeds, baseline "
                         "and optionally regime")
    regime = raw.get("regime", {})
    if not isinstance(regime, dict):
        raise ValueError(f"plan: 'regime' must be a dict, got {type(regime).__name__}")
    try:
        json.dumps(regime)
    except (TypeError, ValueError) as e:
        raise ValueError(f"plan: 'regime' must be JSON-serializable: {e}") from e
    arms_raw = raw.get("arms")
    if not isinstance(arms_raw, dict) or not arms_raw:
        raise ValueError("plan: 'arms' must be a non-empty dict of arm name -> {config, overrides}")
    seeds = raw.get("seeds")
    if (not isinstance(seeds, (list, tuple)) or not seeds
            or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds)):
        raise ValueError(f"plan: 'seeds' must be a non-empty list of ints, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"plan: 'seeds' has duplicates: {seeds!r}")
    arms = {}
    for name, spec in arms_raw.items():
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise ValueError(f"plan: arm name {name!r} must be a non-empty string without '/'")
        if not isinstance(spec, dict) or not isinstance(spec.get("config"), str):
            raise ValueError(f"arm {name!r}: must be a dict with a 'config' string (path[:arg])")
        extra = set(spec) - {"config", "overrides", "matched"}
        if extra:
            raise ValueError(f"arm {name!r}: unknown keys {sorted(extra)}; expected config, "
                             "overrides, matched")
        overrides = spec.get("overrides", {})
        if not isinstance(overrides, dict) or not all(isinstance(k, str) for k in overrides):
            raise ValueError(f"arm {name!r}: 'overrides' must be a dict of field name -> value")
        if "seed" in overrides:
            raise ValueError(f"arm {name!r}: 'seed' is set by the plan's seeds, not an override")
        arm = Arm(name, spec["config"], dict(overrides), spec.get("matched"))
        if not os.path.isfile(arm.config_path):
            raise ValueError(f"arm {name!r}: config file {arm.config_path!r} not found")
        arms[name] = arm
    baseline = raw.get("baseline")
    if baseline not in arms:
        raise ValueError(f"plan: baseline {baseline!r} is not an arm; arms are {list(arms)}")
    for arm in arms.values():
        if arm.matched is not None and (arm.matched not in arms or arm.matched == arm.name):
            raise ValueError(f"arm {arm.name!r}: matched baseline {arm.matched!r} is not another "
                             f"arm; arms are {list(arms)}")
    if only_arms:
        missing = [a for a in only_arms if a not in arms]
        if missing:
            raise ValueError(f"unknown arm(s) {missing}; the plan's arms are {list(arms)}")
        keep = set(only_arms) | {baseline} | {arms[a].matched for a in only_arms} - {None}
        arms = {k: v for k, v in arms.items() if k in keep}
    if only_seeds:
        wanted = []
        for seed in only_seeds:
            if not str(seed).lstrip("-").isdigit() or int(seed) not in seeds:
                raise ValueError(f"seed {seed!r} is not one of the plan's seeds {list(seeds)}")
            wanted.append(int(seed))
        seeds = [s for s in seeds if s in wanted]
    for arm in arms.values():
        arm.resolve(seeds[0])  # an unknown override field fails now, not after other runs
    return Plan(arms=arms, seeds=tuple(seeds), baseline=baseline, regime=dict(regime))


def load_plan(spec: str, only_arms: list[str] | None = None,
              only_seeds: list[str] | None = None) -> Plan:
    """Reads a plan from a ``.json`` file, or from a Python file's ``get_plan()``; for
    ``path.py:arg``, from ``get_plan(arg)`` (one file, several plans, as configs take an
    argument)."""
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        raise ValueError(f"plan file {path!r} not found")
    if path.endswith(".json"):
        if arg:
            raise ValueError(f"plan {spec!r}: a .json plan takes no argument")
        with open(path) as f:
            try:
                raw = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"plan file {path!r} is not valid JSON: {e}") from None
    else:
        module_spec = importlib.util.spec_from_file_location("_experiment_plan", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        if not hasattr(module, "get_plan"):
            raise ValueError(f"plan file {path!r} has no get_plan()")
        args = (arg,) if arg else ()
        try:  # checked before the call, so that a TypeError inside get_plan stays one
            inspect.signature(module.get_plan).bind(*args)
        except TypeError:
            raise ValueError(f"plan {spec!r}: get_plan() of {path!r} " + (
                f"takes no argument, got {arg!r}" if arg else
                f"needs an argument ({path}:<arg>)")) from None
        raw = module.get_plan(*args)
    return parse_plan(raw, only_arms, only_seeds)

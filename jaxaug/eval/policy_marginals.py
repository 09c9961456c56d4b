"""What a policy learner ended up sampling: the distribution of a trained run's policy, against
the uniform one it starts near. Its logged entropy barely moves near the uniform distribution
(the entropy's gradient there is zero, so a shift of the logits by d lowers it by O(d^2)); the
marginals show what changed.

* Adversarial AutoAugment (`adv_autoaugment`): the frequency of each of its 16 op types and 10
  magnitudes over the ops of sampled policies (`methods.adv_autoaugment.controller_marginals`,
  Zhang et al.'s fig. 6).
* TANDA (`tanda`): the frequency of each transformation function over the positions of sampled
  sequences (`TandaMethod.tf_probs`).

Each distribution is reported with its entropy and its KL divergence from the uniform
distribution (nats; KL = log K - entropy), and its most frequent choices.

  python -m jaxaug.eval.policy_marginals --workdirs=W1,W2 [--samples=4096] [--out=marginals]

Writes ``<out>.json`` and ``<out>.md`` and prints the Markdown.
"""

import json
import math
import os

import jax
import numpy as np
from absl import app, flags

from jaxaug.data.atomic import write_text_atomic
from jaxaug.methods import adv_autoaugment
from jaxaug.train.loop import load_trained
from jaxaug.train.metrics_writer import write_json_atomic

METHODS = ("adv_autoaugment", "tanda")
TOP = 5


def summarize(names: list[str], probs) -> dict:
    """``probs`` over ``names``: the probabilities by name, the entropy, the KL divergence from
    uniform (nats) and the `TOP` most frequent names."""
    probs = np.asarray(probs, np.float64)
    if probs.shape != (len(names),) or abs(probs.sum() - 1) > 1e-5:
        raise ValueError(f"expected a distribution over {len(names)} choices, got {probs}")
    entropy = float(-np.sum(probs[probs > 0] * np.log(probs[probs > 0])))
    order = np.argsort(-probs, kind="stable")[:TOP]
    return {"probs": dict(zip(names, probs.tolist())), "entropy": entropy,
            "kl_uniform": math.log(len(names)) - entropy,
            "top": [(names[i], float(probs[i])) for i in order]}


def policy_marginals(workdir: str, num_samples: int = 4096, seed: int = 0) -> dict:
    """{"method", "step", "distributions": {name: `summarize`}} of the run in ``workdir``."""
    config_path = os.path.join(workdir, "config.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{config_path} is missing: {workdir!r} is not a training workdir")
    with open(config_path) as f:
        method = json.load(f).get("method")
    if method not in METHODS:  # checked before loading the run's data and checkpoint
        raise ValueError(f"{workdir!r} is a {method!r} run; this tool reads the policies of "
                         f"{', '.join(METHODS)} runs")
    run = load_trained(workdir)
    state, key = run["state"], jax.random.key(seed)
    if method == "adv_autoaugment":
        ops, magnitudes = adv_autoaugment.controller_marginals(state.controller.params, key,
                                                               num_samples)
        distributions = {
            "op": summarize(list(adv_autoaugment.OPS), ops),
            "magnitude": summarize([str(m) for m in range(len(magnitudes))], magnitudes)}
    elif method == "tanda":
        method_obj = run["method"]
        probs = method_obj.tf_probs(state, key, num_samples).mean(0)
        names = [f"{op} {level:+d}" for op, level in method_obj.tfs]
        distributions = {"transformation": summarize(names, probs)}
    return {"workdir": workdir, "method": method, "step": int(run["step"]),
            "num_samples": num_samples, "distributions": distributions}


def markdown(results: list[dict]) -> str:
    lines = ["| run | step | distribution | entropy (nats) | KL from uniform | most frequent |",
             "|---|---|---|---|---|---|"]
    for r in results:
        for name, d in r["distributions"].items():
            top = ", ".join(f"{k} {p:.3f}" for k, p in d["top"])
            lines.append(f"| {r['workdir']} | {r['step']} | {name} ({len(d['probs'])}) | "
                         f"{d['entropy']:.4f} | {d['kl_uniform']:.4f} | {top} |")
    return ("What each run's policy samples, from its latest checkpoint (frequencies over "
            f"{results[0]['num_samples'] if results else 0} sampled policies).\n\n"
            + "\n".join(lines) + "\n")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    results = [policy_marginals(w, flags.FLAGS.samples) for w in flags.FLAGS.workdirs]
    table = markdown(results)
    write_json_atomic(flags.FLAGS.out + ".json", results)
    write_text_atomic(flags.FLAGS.out + ".md", table)
    print(table)


if __name__ == "__main__":
    # Defined here, not at import, so that importing this module cannot clash with other flags.
    flags.DEFINE_list("workdirs", None, "Workdirs of adv_autoaugment or tanda runs.")
    flags.DEFINE_integer("samples", 4096, "Policies sampled per run.", lower_bound=1)
    flags.DEFINE_string("out", "policy_marginals", "Output path without extension.")
    flags.mark_flags_as_required(["workdirs"])
    app.run(main)

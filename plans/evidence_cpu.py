"""Issue 20, part 3: every method in the CPU regime of part 2, 3 seeds each.

The regime (`plans/regime_search_200ep.py`): reduced CIFAR-10 (1,000 class-balanced training
images of ../shared/data/cifar10-jpeg.zip), WRN-10-1, batch 32, SGD lr 0.05 cosine, 200 epochs,
evaluated on the 10,000 test images every 10 epochs and after the last. Every arm shares it; each
learned arm names its matched baseline, the same pipeline without the learned part:

  controls     cropflip, cutout (16), autoaugment (+ Cutout), randaugment, trivialaugment
  OnlineAugment (Cutout 16, inner_num 1: one generated update, then the clean one, per step;
               the official reduced-data scripts use 4, too slow here): astn, pvae, dvae
               (matched: cutout), astn_meta (matched: astn), aa_astn (matched: autoaugment)
  policy learners: adv_aa (the paper's M = 8 policies and one controller update per epoch, so
               200 updates; Cutout after the policy; matched: cutout), adatransform
               (transformer width 8, not the thesis's 64; matched: cropflip), adacutout
               (matched: cutout, the random box it moves), tanda (LSTM generator, 500 warm-up
               steps; matched: cropflip)
  cnsn         SelfNorm + CrossNorm in every block (the reference's "cnsn" setting; matched:
               cropflip); its mCE comes from `python -m jaxaug.eval.robustness` on the workdirs.

  python -m jaxaug.experiments --plan=plans/evidence_cpu.py --out=experiments/evidence_cpu
"""

import importlib.util
import os

_SPEC = importlib.util.spec_from_file_location(
    "regime_search_200ep",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "regime_search_200ep.py"))
_REGIME = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_REGIME)


def get_plan():
    regime = _REGIME.get_plan()
    base = regime["arms"]["cutout"]["overrides"]  # the regime's shared overrides
    arms = dict(regime["arms"])
    arms["randaugment"] = {"config": "configs/cifar10_wrn.py:randaugment", "overrides": base}
    arms["trivialaugment"] = {"config": "configs/cifar10_wrn.py:trivialaugment", "overrides": base}

    def learned(config, matched, **overrides):
        return {"config": config, "overrides": {**base, **overrides}, "matched": matched}

    oa = "configs/online_augment.py:rcifar10"
    arms["astn"] = learned(f"{oa},astn", "cutout", **{"online_augment.inner_num": 1})
    arms["pvae"] = learned(f"{oa},pvae", "cutout", **{"online_augment.inner_num": 1})
    arms["dvae"] = learned(f"{oa},dvae", "cutout", **{"online_augment.inner_num": 1})
    arms["astn_meta"] = learned(f"{oa},astn", "astn", **{"online_augment.inner_num": 1,
                                                         "online_augment.meta": True})
    arms["aa_astn"] = learned(f"{oa},astn,aa", "autoaugment", **{"online_augment.inner_num": 1})
    pl = "configs/policy_learners.py"
    arms["adv_aa"] = learned(f"{pl}:adv_aa,cifar10", "cutout")
    arms["adatransform"] = learned(f"{pl}:adatransform,cifar10", "cropflip",
                                   **{"augment.cutout": 0, "adatransform.transformer_width": 8})
    arms["adacutout"] = learned(f"{pl}:adacutout,cifar10", "cutout",
                                **{"augment.cutout": 0, "adatransform.transformer_width": 8})
    arms["tanda"] = learned(f"{pl}:tanda,cifar10", "cropflip", **{"augment.cutout": 0})
    arms["cnsn"] = learned("configs/cnsn_cifar10.py:cnsn", "cropflip", **{"augment.cutout": 0})
    return {"baseline": "cropflip", "seeds": [0, 1, 2], "arms": arms}

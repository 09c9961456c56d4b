"""Issue 20 on 2 CPU cores: the search for a regime where augmentation matters (part 2), and every
method in the regime found (part 3). One file, several plans, picked by the argument:

  python -m jaxaug.experiments --plan=plans/cifar10_cpu.py:regime-20ep --out=experiments/regime_20ep
  python -m jaxaug.experiments --plan=plans/cifar10_cpu.py:regime-200ep --out=experiments/regime_200ep
  python -m jaxaug.experiments --plan=plans/cifar10_cpu.py:evidence --out=experiments/evidence_cpu
  python -m jaxaug.experiments.collect --plan=plans/cifar10_cpu.py:evidence-as-run ...

The regime: reduced CIFAR-10 (class-balanced training images of ../shared/data/cifar10-jpeg.zip),
a small WRN, batch 32, SGD lr 0.05 cosine, tested on all 10,000 test images; crop + flip against
Cutout 16 against AutoAugment + Cutout. The points of the search: 1,000 images and WRN-10-1 for
20 and 60 epochs ("regime-20ep", "regime-60ep": one seed, evaluated every epoch) and 200 epochs
("regime-200ep": 3 seeds, evaluated every 10 epochs and after the last); 500 images and the
wider WRN-10-2 for 120 epochs ("regime-500-wrn10-2": 3 seeds, evaluated every 20 epochs).

"evidence" runs every method in the 200-epoch regime, 3 seeds; each learned arm names its
matched baseline, the same pipeline without the learned part:

  controls     cropflip, cutout (16), autoaugment (+ Cutout), randaugment, trivialaugment
  OnlineAugment (Cutout 16, inner_num 1: one generated update, then the clean one, per step;
               the official reduced-data scripts use 4, too slow here): astn, pvae, dvae
               (matched: cutout), astn_meta (matched: astn), aa_astn (matched: autoaugment)
  policy learners: adv_aa (the paper's M = 8 policies and one controller update per epoch, so
               200 updates; Cutout after the policy; matched: cutout), adatransform
               (transformer width 8, not the thesis's 64; matched: cropflip), adacutout
               (matched: cutout, the random box it moves), tanda (LSTM generator, 500 warm-up
               steps; matched: cropflip)
  cnsn         SelfNorm + CrossNorm units after every block (configs/cnsn_cifar10.py:cnsn, the
               reference's "cnsn" setting: CrossNorm 2-instance, crops on both, active in 2
               blocks drawn per pass when a 0.25 coin comes up; SelfNorm learns f and g as the
               paper defines it, the reference's CIFAR code g alone; matched: cropflip); its
               mCE comes from `python -m jaxaug.eval.robustness` on the workdirs.
  dct          Deep Co-Training, semi-supervised: the 1,000 labelled images and the other 49,000
               training images unlabelled, 32 of them per step beside each view's 32 labelled
               ones (the thesis's |S| : |U| batch split would need 1,568); the lambda ramp-up
               scaled with the schedule, 80 of 600 epochs -> 26.7 of 200; the first view
               evaluated. Matched: cropflip, supervised on the same labelled set.
  teachaugment the reference's CIFAR-10 augmenter and schedule (one augmenter update per 5
               steps, EMA teacher 0.999), Cutout 16 after it; no warm-up, as the regime
               (matched: cutout).
  uncertainty  C = 4 RandAugment(2, 9) copies per image, the one of highest loss trained on,
               Cutout 16 on it (matched: randaugment, the same policy and Cutout on one copy)
  uncertainty_reference  the same with the authors' copies (2 ops, each applied with a
               probability drawn from U(0, 1) at a uniform level; matched: random_composition,
               that policy and Cutout on one copy, an extra control)
  dada         DADA's search for its 20 epochs (10% of the run; 25 sub-policies, DARTS), then
               the searched policy, hard, for 180 (matched: autoaugment, the published CIFAR-10
               table, + Cutout 16 as here)

"evidence-as-run" is "evidence" as docs/evidence/cpu.json was made: issue 20's arms ran at
568ca62, except trivialaugment, tanda, adatransform and cnsn, whose code was fixed after (run at
90b87c0); issue 25's four ran at 0616728; random_composition and uncertainty_reference at
09752bb. The three commits train cropflip bit for bit alike, and
568ca62 and 0616728 randaugment and autoaugment too (logged metrics compared), but not Cutout
(its draws differ from the first epoch), so teachaugment pairs with Cutout rerun at 0616728, the
arm "cutout@0616728".
"""

CIFAR = "imagefolder:../shared/data/cifar10-jpeg.zip"
POINTS = {  # regime point -> (training images, model, epochs, eval_every, seeds)
    "regime-20ep": (1000, "wrn-10-1", 20, 1, [0]),
    "regime-60ep": (1000, "wrn-10-1", 60, 1, [0]),
    "regime-200ep": (1000, "wrn-10-1", 200, 10, [0, 1, 2]),
    "regime-500-wrn10-2": (500, "wrn-10-2", 120, 20, [0, 1, 2]),
}


def regime(point):
    """The point's shared overrides, its seeds and its control arms."""
    reduced, model, epochs, eval_every, seeds = POINTS[point]
    base = {"dataset": CIFAR, "reduced": reduced, "model": model, "batch_size": 32,
            "epochs": epochs, "eval_every": eval_every, "optimizer.lr": 0.05,
            "eval_batch_size": 1000, "log_every_steps": 31, "save_image_grid": False}
    return base, seeds, {
        "cropflip": {"config": "configs/cifar10_wrn.py", "overrides": {**base, "augment.cutout": 0}},
        "cutout": {"config": "configs/cifar10_wrn.py", "overrides": base},
        "autoaugment": {"config": "configs/cifar10_wrn.py:autoaugment", "overrides": base},
    }


def evidence():
    base, seeds, arms = regime("regime-200ep")
    for policy in ("randaugment", "trivialaugment", "random_composition"):
        arms[policy] = {"config": f"configs/cifar10_wrn.py:{policy}", "overrides": base}

    def learned(config, matched, **overrides):
        return {"config": config, "overrides": {**base, **overrides}, "matched": matched}

    oa, pl = "configs/online_augment.py:rcifar10", "configs/policy_learners.py"
    arms["astn"] = learned(f"{oa},astn", "cutout", **{"online_augment.inner_num": 1})
    arms["pvae"] = learned(f"{oa},pvae", "cutout", **{"online_augment.inner_num": 1})
    arms["dvae"] = learned(f"{oa},dvae", "cutout", **{"online_augment.inner_num": 1})
    arms["astn_meta"] = learned(f"{oa},astn", "astn", **{"online_augment.inner_num": 1,
                                                         "online_augment.meta": True})
    arms["aa_astn"] = learned(f"{oa},astn,aa", "autoaugment", **{"online_augment.inner_num": 1})
    arms["adv_aa"] = learned(f"{pl}:adv_aa,cifar10", "cutout")
    arms["adatransform"] = learned(f"{pl}:adatransform,cifar10", "cropflip",
                                   **{"augment.cutout": 0, "adatransform.transformer_width": 8})
    arms["adacutout"] = learned(f"{pl}:adacutout,cifar10", "cutout",
                                **{"augment.cutout": 0, "adatransform.transformer_width": 8})
    arms["tanda"] = learned(f"{pl}:tanda,cifar10", "cropflip", **{"augment.cutout": 0})
    arms["cnsn"] = learned("configs/cnsn_cifar10.py:cnsn", "cropflip", **{"augment.cutout": 0})
    arms["dct"] = learned("configs/dct_cifar10.py:regime", "cropflip",
                          **{"augment.cutout": 0, "dct.unlabelled_batch_size": 32,
                             "dct.warmup_epochs": 80 * base["epochs"] / 600})
    arms["teachaugment"] = learned("configs/teachaugment.py:cifar10", "cutout",
                                   **{"optimizer.warmup_epochs": 0.0})
    arms["uncertainty"] = learned(f"{pl}:uncertainty,cifar10", "randaugment")
    arms["uncertainty_reference"] = learned(f"{pl}:uncertainty_reference,cifar10",
                                            "random_composition")
    arms["dada"] = learned(f"{pl}:dada,cifar10", "autoaugment")
    return {"baseline": "cropflip", "seeds": seeds, "arms": arms,
            "regime": described("regime-200ep", base)}


def described(point, base):
    """The report's regime: the point's shared overrides and what they leave to the configs."""
    return {"point": point, **base, "test_images": 10000,
            "training_images": "class-balanced subset (data_seed 0), the same for every seed",
            "optimizer": "configs/cifar10_wrn.py's SGD (momentum 0.9, Nesterov, weight decay "
                         "5e-4), cosine schedule"}


def evidence_as_run():
    plan = evidence()
    arms = {}
    for name, arm in plan["arms"].items():
        if name == "teachaugment":
            arms["cutout@0616728"] = dict(plan["arms"]["cutout"])
            arm = {**arm, "matched": "cutout@0616728"}
        arms[name] = arm
    return {**plan, "arms": arms}


def get_plan(arg="regime-200ep"):
    if arg == "evidence":
        return evidence()
    if arg == "evidence-as-run":
        return evidence_as_run()
    if arg not in POINTS:
        raise ValueError(f"plans/cifar10_cpu.py: unknown plan {arg!r}; valid: "
                         f"{', '.join(POINTS)}, evidence, evidence-as-run")
    base, seeds, arms = regime(arg)
    return {"baseline": "cropflip", "seeds": seeds, "arms": arms, "regime": described(arg, base)}

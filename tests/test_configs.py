"""Configs load and validate; the slow tests run the README's real commands end to end."""

import glob
import importlib.util
import json
import os
import re
import subprocess
import sys
import time

import pytest

from jaxaug import methods, models, quant
from jaxaug.train import validate
from jaxaug.methods.registry import stage_schedule
from jaxaug.train.config import config_value

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR_ZIP = os.path.join(REPO, "..", "shared", "data", "cifar10-jpeg.zip")
CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))


def load_config(path, *args):
    spec = importlib.util.spec_from_file_location("config_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(*args)


# Configs whose paper values do not shard over 8 devices, with the most they shard over: Deep
# Co-Training's 92 unlabelled images per step (the thesis's 100-image batch split 8 : 92).
MAX_DEVICES = {"dct_cifar10.py": 4}


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.basename(p) for p in CONFIGS])
def test_config_is_valid(path):
    config = load_config(path)
    validate(config, device_count=1)
    # the same config shards over 8 devices
    validate(config, device_count=MAX_DEVICES.get(os.path.basename(path), 8))


@pytest.mark.parametrize("arg", [*quant.SETTINGS, "818+int8", "tw,hourglass"])
def test_cunet_keypoint_configs(arg):
    config = load_config(os.path.join(REPO, "configs", "cunet_keypoints.py"), arg)
    validate(config, device_count=8)
    assert config.quant == arg.split(",")[0]
    assert config.model == ("hourglass" if arg.endswith("hourglass") else "cunet")
    assert (config.optimizer.lr, config.batch_size) == (2.5e-4, 32)
    with pytest.raises(ValueError, match="unknown option"):
        load_config(os.path.join(REPO, "configs", "cunet_keypoints.py"), "818,hourglas")
    config.quant = "717"
    with pytest.raises(ValueError, match="config.quant='717'"):
        validate(config, device_count=1)


def test_cunet_memory_efficient_takes_the_int8_codes_policy_with_an_int8_setting():
    config = load_config(os.path.join(REPO, "configs", "cunet_keypoints.py"), "818+int8")
    for value in (False, True, "int8_codes"):
        config.cunet.memory_efficient = value
        validate(config, device_count=1)
    config.quant = "818"
    with pytest.raises(ValueError, match="'int8_codes' needs a quant setting with the suffix"):
        validate(config, device_count=1)
    config.cunet.memory_efficient = "codes"
    with pytest.raises(ValueError, match="config.cunet.memory_efficient='codes'"):
        validate(config, device_count=1)


@pytest.mark.parametrize("arg", ["synthetic", "synthetic,hourglass", "mpii", "lsp,cunet"])
def test_adversarial_pose_configs(arg):
    path = os.path.join(REPO, "configs", "adversarial_pose.py")
    config = load_config(path, arg)
    validate(config, device_count=8)
    dataset, _, model = arg.partition(",")
    assert config.method == "adversarial_pose" and config.dataset.startswith(dataset)
    assert config.model == (model or ("cunet" if dataset == "synthetic" else "hourglass"))
    assert (config.adversarial.lr, config.adversarial.alpha, config.adversarial.beta) == (
        5e-5, 0.2, 0.5)
    assert [name for name, _ in stage_schedule(config)] == ["pose", "pretrain", "joint"]
    assert sum(epochs for _, epochs in stage_schedule(config)) == config.epochs
    with pytest.raises(ValueError, match="unknown dataset 'coco'"):
        load_config(path, "coco")


@pytest.mark.parametrize("field,value,message", [
    ("batch_size", 32, "config.batch_size=32: must be divisible by 3"),
    ("adversarial.pretrain_epochs", 20, "pose_epochs \\+ pretrain_epochs must be <= epochs"),
    ("adversarial.grid", 3, "config.adversarial.grid=3: must divide the lowest feature "
                            "resolution 4"),
    ("adversarial.max_cells", 3, "must be 1 or 2"),
    ("method", "adversarial", "keypoint runs support 'heatmap_regression', 'adversarial_pose'"),
])
def test_adversarial_pose_config_errors_name_the_field(field, value, message):
    config = load_config(os.path.join(REPO, "configs", "adversarial_pose.py"))
    section, _, name = field.rpartition(".")
    (config[section] if section else config)[name] = value
    with pytest.raises(ValueError, match=message):
        validate(config, device_count=1)


@pytest.mark.parametrize("arg,policy", [
    ("autoaugment", "autoaugment_cifar10"), ("randaugment", "randaugment"),
    ("trivialaugment", "trivial_augment_wide"), ("random_composition", "random_composition"),
    ("baseline", ""),
])
def test_cifar10_wrn_policy_variants(arg, policy):
    config = load_config(os.path.join(REPO, "configs", "cifar10_wrn.py"), arg)
    validate(config, device_count=8)
    assert config.augment.policy == policy and config.augment.cutout == 16
    assert (config.augment.num_ops, config.augment.magnitude) == (2, 9)
    with pytest.raises(ValueError, match="autoaugmnet"):
        load_config(os.path.join(REPO, "configs", "cifar10_wrn.py"), "autoaugmnet")


@pytest.mark.parametrize("arg, mixup", [
    ("baseline,mixup", {"mixup_alpha": 1.0, "cutmix_alpha": 0.0, "prob": 1.0}),
    ("autoaugment,cutmix", {"mixup_alpha": 0.0, "cutmix_alpha": 1.0, "prob": 0.5})])
def test_cifar10_wrn_mixing_variants_follow_their_papers(arg, mixup):
    config = load_config(os.path.join(REPO, "configs", "cifar10_wrn.py"), arg)
    validate(config, device_count=8)
    assert {k: config.augment.mixup[k] for k in mixup} == mixup and config.augment.cutout == 0
    with pytest.raises(ValueError, match="one of mixup, cutmix"):
        load_config(os.path.join(REPO, "configs", "cifar10_wrn.py"), "baseline,mixpu")


def test_cifar10_wrn_config_follows_the_papers():
    config = load_config(os.path.join(REPO, "configs", "cifar10_wrn.py"))
    assert (config.model, config.epochs, config.batch_size) == ("wrn-28-10", 200, 128)
    assert (config.optimizer.lr, config.optimizer.momentum, config.optimizer.weight_decay) == (0.1, 0.9, 5e-4)
    assert config.optimizer.nesterov and config.augment.cutout == 16


def test_online_augment_configs_follow_the_papers():
    path = os.path.join(REPO, "configs", "online_augment.py")
    for dataset in ("rcifar10", "rcifar100", "rsvhn", "cifar10", "cifar100"):
        for generator in ("astn", "dvae", "pvae", "comb", "none"):
            for options in ("", ",aa", ",aa,shake"):
                validate(load_config(path, f"{dataset},{generator}{options}"), device_count=8)
    config = load_config(path, "rcifar10,astn")
    assert (config.dataset, config.reduced, config.model) == ("tfds:cifar10", 4000, "wrn-28-10")
    assert (config.epochs, config.batch_size, config.optimizer.lr) == (200, 128, 0.1)
    assert (config.optimizer.weight_decay, config.augment.cutout) == (5e-4, 16)
    oa = config.online_augment
    assert (oa.generator, oa.inner_num, oa.astn.beta, oa.astn.cycle_weight) == ("astn", 4, 0.1, 0.1)
    assert oa.grad_clip == 5.0
    assert methods.target_updates_per_step(config) == 5  # 4 generated updates, then the clean one
    dvae = oa.deform_vae
    assert (dvae.beta, dvae.kl_weight, dvae.smooth_weight) == (1e-2, 1, 10)
    assert (oa.perturb_vae.beta, oa.perturb_vae.weight) == (10, 1e-3)
    # The official scripts' inner_num (r-cifar10-wrn-scripts/run-autoaugment-aug-stn.sh: 2, ...).
    for arg, inner in [("rcifar10,astn,aa", 2), ("rcifar10,pvae,aa", 2), ("rcifar10,comb", 1),
                       ("rcifar100,dvae,aa", 2), ("rcifar100,pvae,aa", 4), ("rcifar100,comb", 4),
                       ("cifar10,astn", 2), ("cifar10,astn,aa", 1), ("cifar100,astn", 1),
                       ("rsvhn,dvae", 4), ("cifar10,comb", 1)]:
        assert load_config(path, arg).online_augment.inner_num == inner, arg
    comb = load_config(path, "rsvhn,comb,aa,shake")
    assert (comb.online_augment.generator, comb.num_bn_sets) == ("comb", 4)
    assert (comb.augment.policy, comb.model) == ("autoaugment_svhn", "shake-shake-26-2x96d")
    assert load_config(path, "cifar100,none").method == "supervised"
    bad_args = [("rcifar1,astn", "rcifar1"), ("cifar10,stn", "stn"), ("cifar10,astn,AA", "AA")]
    for bad, name in bad_args:
        with pytest.raises(ValueError, match=repr(name)):
            load_config(path, bad)


def test_evidence_config_variants_differ_only_in_the_method():
    path = os.path.join(REPO, "configs", "evidence_rcifar10.py")
    configs = {v: load_config(path, v) for v in ("cutout", "astn", "pvae", "astn_meta")}
    for config in configs.values():
        validate(config, device_count=1)
        assert (config.seed, config.reduced, config.augment.cutout) == (0, 4000, 16)
    assert configs["cutout"].method == "supervised"
    assert configs["astn_meta"].online_augment.meta and not configs["astn"].online_augment.meta
    assert configs["pvae"].online_augment.generator == "perturb_vae"


def test_demo_config_variants_differ_only_in_the_method():
    """`make demo` compares the two variants: everything but the method must be the same (model
    and its BatchNorm sets, data, seed, epochs, schedule, augmentation)."""
    path = os.path.join(REPO, "configs", "demo.py")
    baseline, astn = load_config(path, "baseline"), load_config(path, "astn")
    matched = load_config(path, "baseline_2x")
    for config in (baseline, astn, matched):
        validate(config, device_count=1)

    def flat(tree, prefix=""):
        return {k: v for name, value in tree.items()
                for k, v in (flat(value, f"{prefix}{name}.") if isinstance(value, dict)
                             else {prefix + name: value}).items()}

    a, b = flat(baseline.to_dict()), flat(astn.to_dict())
    assert len(a) > 50 and {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)} == {"method"}
    assert (baseline.method, astn.method, astn.online_augment.generator) == (
        "supervised", "online_augment", "astn")
    assert (astn.dataset, astn.model) == ("synthetic", "wrn-10-1")
    c = flat(matched.to_dict())
    assert {k for k in a.keys() | c.keys() if a.get(k) != c.get(k)} == {"epochs"}
    assert matched.epochs == 2 * baseline.epochs  # A-STN makes 2 target updates per step
    with pytest.raises(ValueError, match="unknown variant 'stn'"):
        load_config(path, "stn")


@pytest.mark.parametrize("arg,method,field,value", [
    ("adv_aa,cifar10", "adv_autoaugment", "adv_autoaugment.num_policies", 8),
    ("adatransform,cifar100", "adatransform", "adatransform.mode", "transform"),
    ("adacutout,cifar10_10pct", "adatransform", "adatransform.mode", "cutout"),
    ("adaerasing,cifar10", "adatransform", "adatransform.mode", "erasing"),
    ("tanda,cifar10", "tanda", "tanda.generator", "lstm"),
    ("tanda_mf,cifar100", "tanda", "tanda.generator", "mean_field"),
    ("uncertainty,cifar10", "uncertainty", "uncertainty.num_copies", 4),
    ("uncertainty_reference,cifar10", "uncertainty", "uncertainty.policy", "random_composition"),
    ("dada,cifar100", "dada", "dada.search_epochs", 20),
])
def test_policy_learner_configs(arg, method, field, value):
    config = load_config(os.path.join(REPO, "configs", "policy_learners.py"), arg)
    validate(config, device_count=8)
    assert config.method == method and config_value(config, field) == value
    assert config.model == "wrn-28-10" and config.batch_size == 128
    assert config.reduced == (5000 if arg.endswith("10pct") else 0)
    assert config.dataset == ("tfds:cifar100" if arg.endswith("100") else "tfds:cifar10")
    assert config.adv_autoaugment.controller_lr == 3.5e-4
    assert config.adv_autoaugment.entropy_weight == 1e-5


def test_tanda_config_follows_the_reference_code():
    """HazyResearch/tanda's CIFAR-10 settings: end model seq_len 5, p_transform 1; search
    mse_term 1e-3 at mse_layer 1, gamma 0.5; gen_lr 1e-3 its flag default (jaxaug/methods/tanda.py)."""
    t = load_config(os.path.join(REPO, "configs", "policy_learners.py"), "tanda,cifar10").tanda
    assert (t.sequence_length, t.augment_prob, t.diversity_weight, t.diversity_layer,
            t.diversity_space, t.discount, t.generator_lr, t.entropy_weight) == (
        5, 1.0, 1e-3, 1, "discriminator", 0.5, 1e-3, 0.0)


@pytest.mark.parametrize("arg,smoothing", [("cifar10", 0.2), ("cifar100", 0.1)])
def test_teachaugment_configs_follow_the_reference(arg, smoothing):
    """DensoITLab/TeachAugment: config/CIFAR*/wrn-28-10.yaml (label_smooth.epsilon, lr, weight
    decay, epochs) and main.py (AdamW 1e-3 / 1e-2, n_inner 5, ema 0.999, c_reg_coef 10,
    c_scale 0.8, g_scale 0.5, Nesterov SGD, 5 warm-up epochs, clip 5, Cutout 16)."""
    config = load_config(os.path.join(REPO, "configs", "teachaugment.py"), arg)
    validate(config, device_count=8)
    t, o = config.teachaugment, config.optimizer
    assert (config.method, config.model, config.epochs, config.batch_size) == (
        "teachaugment", "wrn-28-10", 200, 128)
    assert (o.lr, o.momentum, o.nesterov, o.weight_decay, o.warmup_epochs) == (
        0.1, 0.9, True, 5e-4, 5.0)
    assert (config.augment.cutout, config.label_smoothing) == (16, 0.0)
    assert (t.adv_label_smoothing, t.augmenter_lr, t.augmenter_weight_decay, t.update_every,
            t.ema_rate, t.color_reg, t.color_scale, t.geometric_scale, t.with_context,
            t.grad_clip) == (smoothing, 1e-3, 1e-2, 5, 0.999, 10.0, 0.8, 0.5, True, 5.0)


@pytest.mark.parametrize("field,value,message", [
    ("adv_autoaugment.num_policies", 1, "at least 2"),
    ("adatransform.mode", "rotate", "transform, cutout, erasing"),
    ("adatransform.gamma", 1.5, r"\[0, 1\]"),
    ("adatransform.cutout_size", 1, "at least 2"),
    ("adatransform.apply_prob", 1.3, r"\[0, 1\]"),
    ("adatransform.clean_weight", -1.0, "non-negative"),
    ("adatransform.stop_epochs", 200, r"\[0, epochs\) = \[0, 200\)"),
    ("adatransform.update_every", 0, "at least 1"),
    ("adatransform.transformer_width", 0, "at least 1"),
    ("adatransform.dropout", 1.0, r"\[0, 1\)"),
    ("adatransform.policy_weight_decay", -1e-4, "non-negative"),
    ("tanda.generator", "gru", "lstm, mean_field"),
    ("tanda.diversity_space", "logits", "pixels, discriminator"),
    ("tanda.diversity_weight", -1.0, "non-negative"),
    ("tanda.discount", 1.5, r"\[0, 1\]"),
])
def test_policy_learner_config_errors_name_the_field(field, value, message):
    arg = {"adv": "adv_aa", "ada": "adatransform", "tan": "tanda"}[field[:3]]
    config = load_config(os.path.join(REPO, "configs", "policy_learners.py"), f"{arg},cifar10")
    config.update_from_flattened_dict({field: value})
    with pytest.raises(ValueError, match=rf"config\.{field}={value!r}.*{message}"):
        validate(config, device_count=1)
    with pytest.raises(ValueError, match="unknown method 'ppo'"):
        load_config(os.path.join(REPO, "configs", "policy_learners.py"), "ppo,cifar10")


@pytest.mark.parametrize("arg,expected", [
    ("adatransform", {"num_steps": 8, "apply_prob": 1.0, "clean_weight": 1.0,
                      "stop_step": 190 * 391, "transformer_width": 64, "dropout": 0.3,
                      "update_every": 5, "policy_optimizer": (1e-4, 1e-4)}),
    ("adacutout", {"num_steps": 3, "apply_prob": 0.3, "clean_weight": 0.0, "stop_step": None,
                   "move_pixels": 2, "policy_optimizer": (3e-5, 1e-5)}),
])
def test_adatransform_gets_the_thesis_settings(arg, expected, monkeypatch):
    """Tang thesis, sec. 3.6.1, through `methods.create` as the trainer calls it (CIFAR-10: 391
    steps per epoch): what reaches the method, captured instead of building it."""
    from jaxaug import methods
    from jaxaug.methods import adatransform
    monkeypatch.setattr(adatransform, "adatransform", lambda model, optimizer, **kw: kw)
    monkeypatch.setattr(adatransform, "make_policy_optimizer", lambda lr, wd: (lr, wd))
    config = load_config(os.path.join(REPO, "configs", "policy_learners.py"), f"{arg},cifar10")
    got = methods.create(methods.Context(
        model=None, optimizer=None, lr_schedule=None, steps_per_epoch=391, num_classes=10,
        normalization=models.Normalization((0.5,), (0.25,)), config=config))
    assert {k: got[k] for k in expected} == expected


def test_evidence_adatransform_configs_shrink_only_what_cpu_needs():
    path = os.path.join(REPO, "configs", "evidence_reinforce.py")
    for variant in ("adatransform", "adacutout", "adatransform_entropy"):
        config = load_config(path, variant)
        validate(config, device_count=1)
        a = config.adatransform
        assert a.transformer_width == 8 and a.num_steps is None and a.policy_lr is None
        assert a.stop_epochs == (None if variant == "adacutout" else 1)


def test_online_augment_config_errors_name_the_field():
    config = load_config(os.path.join(REPO, "configs", "online_augment.py"), "rcifar10,comb")
    config.num_bn_sets = 2
    with pytest.raises(ValueError, match=r"num_bn_sets=2.*needs 4"):
        validate(config, device_count=1)
    config.num_bn_sets, config.online_augment.generator = 4, "astn,vae"
    with pytest.raises(ValueError, match=r"online_augment\.generator='astn,vae'.*'vae'"):
        validate(config, device_count=1)
    config.online_augment.generator, config.online_augment.perturb_vae.beta = "comb", -1.0
    with pytest.raises(ValueError, match=r"online_augment\.perturb_vae\.beta"):
        validate(config, device_count=1)
    config.online_augment.perturb_vae.beta = 10.0
    assert config.online_augment.grad_clip == 5.0  # the reference's --grad_clip
    for off in (0, None):  # no clipping
        config.online_augment.grad_clip = off
        validate(config, device_count=1)
    for bad in (-1.0, float("inf"), float("nan")):
        config.online_augment.grad_clip = bad
        with pytest.raises(ValueError, match=r"online_augment\.grad_clip"):
            validate(config, device_count=1)


def run_train(args, workdir, timeout):
    result = subprocess.run(
        [sys.executable, "train.py", *args, f"--workdir={workdir}"],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(workdir, "summary.json")) as f:
        return json.load(f), result.stdout


@pytest.mark.slow
def test_quickstart_learns_the_synthetic_shapes(tmp_path):
    """The README's single-run quickstart learns. Fast counterparts: test_learning.py's
    test_loss_falls_on_a_small_fixed_batch[synthetic] (the loss falls on the same shapes) and
    test_train.py's uninterrupted run (train_and_evaluate end to end, its summary and metrics)."""
    summary, stdout = run_train(["--config=configs/quickstart.py"], str(tmp_path), timeout=600)
    assert "test accuracy" in stdout
    assert os.path.exists(tmp_path / "train_images.png")
    assert summary["last_test_accuracy"] > 0.5, summary


@pytest.mark.slow
def test_make_demo_prints_both_accuracies_and_draws_the_generator(tmp_path):
    """`make demo`'s script end to end (about 1.5 CPU minutes): one line per accuracy, their
    difference, a picture of 3 rows of 10 upscaled 24 x 24 images, and a second run that reuses
    the finished runs. Fast counterparts: the variants' config test above and
    test_online_augment.py's test of `generate`."""
    def demo():
        result = subprocess.run([sys.executable, "demo.py", f"--workdir={tmp_path}"], cwd=REPO,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    first = demo()
    accuracies = [float(re.search(rf"{name} test accuracy: +([0-9.]+)", first)[1])
                  for name in ("baseline \\(supervised\\)", "OnlineAugment A-STN")]
    difference = float(re.search(r"difference \(A-STN - baseline\): +([-+0-9.]+)", first)[1])
    assert re.search(r"difference \(A-STN - baseline_2x\): +[-+0-9.]+", first)
    assert difference == pytest.approx(accuracies[1] - accuracies[0], abs=2e-4)
    with open(os.path.join(tmp_path, "baseline", "summary.json")) as f:
        assert json.load(f)["last_test_accuracy"] == pytest.approx(accuracies[0], abs=1e-4)
    from PIL import Image
    with Image.open(tmp_path / "generated.png") as image:
        assert image.size == (2 + 10 * (4 * 24 + 2), 2 + 3 * (4 * 24 + 2))
    assert float(re.search(r"mean \|T\(x\) - x\| per pixel ([0-9.]+)", first)[1]) > 0.01
    start = time.perf_counter()
    assert demo().splitlines()[-8:-1] == first.splitlines()[-8:-1]  # the same results, reused
    assert time.perf_counter() - start < 60


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(CIFAR_ZIP), reason=f"{CIFAR_ZIP} is absent")
def test_one_epoch_of_reduced_cifar10_from_the_zip(tmp_path):
    """train.py on the real zip with the paper config. Fast counterparts: test_data_cifar.py
    (the same zip decoded, cached and counted) and test_learning.py's
    test_loss_falls_on_a_small_fixed_batch[cifar10-jpeg] (a model learns from it)."""
    summary, _ = run_train(
        [
            "--config=configs/cifar10_wrn.py",
            "--config.dataset=imagefolder:../shared/data/cifar10-jpeg.zip",
            "--config.reduced=4000",
            "--config.model=wrn-16-2",
            "--config.epochs=1",
            f"--config.cache_dir={tmp_path / 'cache'}",
        ],
        str(tmp_path / "run"),
        timeout=1800,
    )
    assert summary["epochs_completed"] == 1
    assert summary["last_test_accuracy"] > 0.15, summary  # one epoch of 4000 images; chance is 0.1


@pytest.mark.parametrize("arg", ["baseline", "sn", "cn", "cnsn", "cnsn_consistency",
                                 "cnsn,reduced"])
def test_cnsn_configs(arg):
    from jaxaug.train.config import cnsn_placement
    config = load_config(os.path.join(REPO, "configs", "cnsn_cifar10.py"), arg)
    validate(config, device_count=8)
    variant = arg.split(",")[0]
    placement = cnsn_placement(config)
    assert (placement is None) == (variant == "baseline")
    if placement is not None:
        assert (placement.selfnorm, placement.crossnorm) == ("sn" in variant, "cn" in variant)
    assert config.method == ("cnsn_consistency" if variant == "cnsn_consistency"
                             else "supervised")
    assert config.model == ("wrn-16-1" if arg.endswith("reduced") else "wrn-40-2")
    with pytest.raises(ValueError, match="unknown argument 'cnsn,full'"):
        load_config(os.path.join(REPO, "configs", "cnsn_cifar10.py"), "cnsn,full")


@pytest.mark.parametrize("field,value,message", [
    ("model", "shake-shake-26-2x32d", "placed in WRN and ResNet blocks only"),
    ("cnsn.position", "middle", "Invalid config.cnsn: .*position must be one of"),
    ("cnsn.cn_active", -1, "cn_active must be an int >= 0"),
    ("cnsn.crossnorm", False, "config.cnsn.crossnorm=False: method cnsn_consistency"),
])
def test_cnsn_config_errors_name_the_field(field, value, message):
    config = load_config(os.path.join(REPO, "configs", "cnsn_cifar10.py"), "cnsn_consistency")
    section, _, name = field.rpartition(".")
    (config[section] if section else config)[name] = value
    with pytest.raises(ValueError, match=message):
        validate(config, device_count=1)

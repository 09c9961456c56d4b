"""Issue 24 on 2 CPU cores: the quantized CU-Net's settings against full precision on the
synthetic articulated figures, 3 seeds each.

  python -m jaxaug.experiments --plan=plans/keypoints_cpu.py --out=experiments/keypoints_cpu

`configs/cunet_keypoints.py:<setting>` as it stands (4,000 training figures at 64x64, 500 test
figures, CU-Net-2 of depth 2 with m = 64, n = 16, RMSProp 2.5e-4, batch 32, 10 epochs), the
main score PCKh@0.5 on the test figures. Arms: `fp` (the baseline), the thesis's `818` (8-bit
features on WAGE's range with BN's gamma from U(0, 1), binary weights, 8-bit gradients) and `tw`
(ternary weights, no alpha), and `818_r4`, our variant with features on [-4, 4]. Each quantized
arm's matched baseline is fp. The balance index of each comes from
`python -m jaxaug.eval.balance_index` on the workdirs.
"""

SETTINGS = ("fp", "818", "tw", "818_r4")


def get_plan():
    base = {"log_every_steps": 125}
    arms = {setting: {"config": f"configs/cunet_keypoints.py:{setting}", "overrides": base}
            for setting in SETTINGS}
    for setting in SETTINGS[1:]:
        arms[setting]["matched"] = "fp"
    regime = {**base, "config": "configs/cunet_keypoints.py:<setting>", "data": "synthetic "
              "articulated figures at 64x64: 4,000 training (500 of them held out to pick the "
              "best epoch), 500 test", "model": "CU-Net-2, depth 2, m = 64, n = 16",
              "optimizer": "RMSProp 2.5e-4, batch 32, 10 epochs", "score": "PCKh@0.5"}
    return {"baseline": "fp", "seeds": [0, 1, 2], "arms": arms, "regime": regime}

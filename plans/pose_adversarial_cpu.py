"""Adversarial pose augmentation (ASR + AHO, Peng et al., CVPR 2018) against its random-augmentation
baseline on 2 CPU cores, 3 seeds each, on the synthetic articulated figures.

  python -m jaxaug.experiments --plan=plans/pose_adversarial_cpu.py --out=experiments/pose_adversarial_cpu

`configs/adversarial_pose.py` (synthetic: 4,000 training figures at 64x64, 500 of them held out
to pick the best epoch, 500 test figures; the CU-Net of configs/cunet_keypoints.py with the
reference initialization; torch's RMSProp 2.5e-4, batch 24). Arms:

  random   `heatmap_regression` (random scale 0.75-1.25, rotation +-30 degrees, flip) for 10
           epochs: the baseline.
  asr_aho  4 epochs of the pose network alone, 1 epoch pre-training the augmentation network G,
           6 joint epochs (G at 5e-5, alpha 0.2, beta 0.5): 10 epochs of pose-network updates,
           as `random` (the pre-training epoch leaves the pose network unchanged). Its first 4
           epochs are `random`'s computation with the same key.

The main score is PCKh@0.5 over MPII's 14 scored joints on the test figures; robustness from
`python -m jaxaug.eval.pose_robustness --workdirs=...` on the finished workdirs.
"""


def get_plan():
    base = {"log_every_steps": 125}
    arms = {
        "random": {"config": "configs/adversarial_pose.py:synthetic",
                   "overrides": {**base, "method": "heatmap_regression", "epochs": 10}},
        "asr_aho": {"config": "configs/adversarial_pose.py:synthetic", "overrides": base,
                    "matched": "random"},
    }
    regime = {**base, "config": "configs/adversarial_pose.py:synthetic",
              "data": "synthetic articulated figures at 64x64: 4,000 training (500 of them held "
                      "out to pick the best epoch), 500 test",
              "model": "CU-Net-2, depth 2, m = 64, n = 16, reference initialization",
              "optimizer": "RMSProp 2.5e-4 (torch's), batch 24, 10 epochs of pose-network "
                           "updates", "score": "PCKh@0.5"}
    return {"baseline": "random", "seeds": [0, 1, 2], "arms": arms, "regime": regime}

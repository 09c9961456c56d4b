"""Evaluation of trained runs, each tool also a command (``python -m jaxaug.eval.<tool>
--workdirs=...``):

- `robustness`: classifiers' error on the clean test set and on the 15 common corruptions at 5
  severities (unnormalised mCE), generated on the fly by `corruptions` (CIFAR-10-C's parameters);
- `pose_robustness`: keypoint models' score under scale, rotation and single-cell occlusion;
- `balance_index`: the quantized CU-Net paper's BI = E^2 * TM * MS of keypoint runs, from
  `quant_costs` (compiled training memory, packed model size, step time);
- `cli`: what the tools share (loading runs by workdir, the JSON / Markdown / PNG report)."""

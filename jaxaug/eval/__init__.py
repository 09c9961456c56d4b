"""Evaluation scripts and measurements: quantization costs and the balance index of keypoint
models (`python -m jaxaug.eval.balance_index`)."""

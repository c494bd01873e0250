"""Training stage: splits, finetuning, evaluation, calibration and model bundles."""

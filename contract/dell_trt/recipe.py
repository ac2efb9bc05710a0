"""Identity of the recipe's prepared model: what its cache key covers (standard library only).

The host computes the key before starting the model container, so two runs with the same
model, calibration set and recipe share one prepared model, and a change to any of them
prepares a new one. Bump RECIPE_VERSION whenever the graph rewrite or the quantizer changes
what they produce.
"""

from __future__ import annotations

import hashlib
import json

RECIPE_VERSION = 1
CALIBRATION_METHOD = "minmax"  # the default of one prepared model (its key names the method)
# `calibration = "auto"` prepares one model per method and keeps the best on the guard images;
# ties go to the earlier: entropy is what TensorRT's INT8 ResNet50 recipes calibrate with
# (IInt8EntropyCalibrator2), percentile (99.999) and MinMax follow.
CALIBRATION_CHOICES = ("entropy", "percentile", "minmax")
ENCODINGS = ("s8s8", "u8s8")  # TensorRT wants symmetric int8; onnxruntime x86 asymmetric uint8
# What one LoadGen response holds: the engine's top-1 label (0-999, no background class) as one
# int32; the host scores accuracy logs with this dtype.
RESPONSE_DTYPE = "int32"
LABEL_BYTES = 4
TRT_ENCODING = "s8s8"
CPU_ENCODING = "u8s8"
SYNTHETIC_CALIBRATION_STRIDE = 2  # synthetic data: every 2nd image (the official list is real)

ARTIFACT_MANIFEST = "artifact.json"  # written last: the prepared model is complete
GUARD_FILE = "guard-{tag}.json"  # both Q/DQ models' accuracy guards on one dataset sample set
FP32_LABELS_FILE = "fp32-labels-{tag}.json"  # FP32 top-1 and true labels of the guard samples
# Bump when the guard's record changes: it is part of the guard tag, so older records are redone.
GUARD_VERSION = 2


def artifact_key(model_sha256: str, calibration_id: str, method: str = CALIBRATION_METHOD) -> str:
    """Key of a prepared model: model bytes, calibration set, method and recipe version."""
    payload = json.dumps(
        {
            "model": model_sha256,
            "calibration": calibration_id,
            "method": method,
            "recipe": RECIPE_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def guard_tag(val_map_sha256: str, samples: int) -> str:
    """Which images a guard ran on (the dataset's val_map and how many of its first images), and
    how (GUARD_VERSION)."""
    text = f"{val_map_sha256}:{samples}:v{GUARD_VERSION}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]

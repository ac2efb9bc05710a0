"""Facts of the MLPerf Inference ResNet50 benchmark, in one place (standard library only).

Host and containers both import this module, so it must never import numpy, OpenCV or a runtime.
"""

from __future__ import annotations

MODEL_NAME = "resnet50"  # LoadGen's model name in user.conf / audit.config keys

# resnet50_v1.onnx signature (MLCommons reference): NCHW float32 in, 1001 classes out
# (index 0 is the background class, so label = ArgMax − 1).
INPUT_NAME = "input_tensor:0"
ARGMAX_OUTPUT = "ArgMax:0"
SOFTMAX_OUTPUT = "softmax_tensor:0"
NUM_CLASSES_WITH_BACKGROUND = 1001
NUM_CLASSES = 1000

# Rules (LoadGen's embedded mlperf.conf, round v6.1).
PERFORMANCE_SAMPLE_COUNT = 1024
DATASET_SIZE = 50_000
# Closed division: top-1 accuracy of at least 99 % of the FP32 reference's 76.46 %.
FP32_TOP1_PERCENT = 76.46
ACCURACY_RATIO = 0.99

# Reference preprocessing (vision/classification_and_detection dataset.py pre_process_vgg).
IMAGE_SIZE = 224
SCALE_PERCENT = 87.5
CHANNEL_MEANS = (123.68, 116.78, 103.94)
SAMPLE_SHAPE = (3, IMAGE_SIZE, IMAGE_SIZE)
SAMPLE_ELEMENTS = 3 * IMAGE_SIZE * IMAGE_SIZE  # 150 528: also the bytes of one INT8 sample

# The official calibration set for real ImageNet (calibration/ImageNet/cal_image_list_option_1.txt).
CALIBRATION_LIST = "cal_image_list_option_1.txt"
CALIBRATION_LIST_SHA256 = "7662247d1d9407d6cb564268f64c5a4a6cf9f1a34fd2e6cdc3b94dcf278b3dc9"
CALIBRATION_LIST_SIZE = 500

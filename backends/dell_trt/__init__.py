"""dell-trt backend: the Dell/NVIDIA MLPerf ResNet50 recipe (INT8 input, LWIS harness)."""

"""Dell/NVIDIA MLPerf v2.1 ResNet50: INT8 TensorRT engine, LWIS harness, and its CPU twin."""

"""The Dell/NVIDIA MLPerf ResNet50 recipe (INT8, TensorRT on GPU, onnxruntime CPU twin)."""

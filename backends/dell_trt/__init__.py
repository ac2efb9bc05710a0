"""The Dell/NVIDIA MLPerf v2.1 ResNet50 recipe: INT8 input, rewritten graph, explicit INT8."""

"""The MLCommons reference ResNet50 SUT (profile resnet50-onnxruntime) on onnxruntime."""

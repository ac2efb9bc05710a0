"""What the dell-trt backend exposes to the host: harness settings and prepared-model identity."""

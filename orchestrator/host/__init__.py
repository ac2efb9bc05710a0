"""This host: its facts (CPU, memory, disks, GPUs via NVML), GPU access for containers, the
device default and `doctor`."""

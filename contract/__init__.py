"""The contract between the host (`orchestrator`) and the SUT containers (`backends`).

Both sides import this package and nothing of each other: the benchmark's facts
(`resnet50`), the dataset and cache layouts (`layout`, `dataset_check`), the lines a container
prints for the host (`protocol`), the sizing rules (`sizing`), file helpers both sides write
caches with (`digest`, `locks`), and what the dell-trt backend exposes to the host: its harness
settings schema and profiles, and its prepared-model identity (`dell_trt`). Standard library
only: the host never needs a backend's runtime to read it.
"""

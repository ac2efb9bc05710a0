"""Telemetry of each test: NVML and host sampling while its container runs (`sampler`), then the
power window, its figures and the `telemetry/` files (`figures`)."""

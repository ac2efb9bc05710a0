"""A CUDA stand-in for the TensorRT engine: drives gpu_device's CUDA machinery on a GPU without
TensorRT, with answers a test can check exactly.

The "network" is argmax over CLASSES integer scores, score_c = Σ_i x_i · w_ci with x the INT8
sample and w a fixed matrix of −1/0/+1: integer arithmetic, so the GPU result equals the numpy
reference bit for bit (ties go to the lowest class on both sides). One RawKernel launch per batch,
no allocation while enqueuing: capturable into a CUDA graph once compiled (first, un-captured run).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from contract.resnet50 import SAMPLE_ELEMENTS

CLASSES = 16
THREADS = 256

_KERNEL = r"""
extern "C" __global__ void project_argmax(const signed char* x, const signed char* w, int* out,
                                          int elements, int classes) {
    extern __shared__ int partial[];  // classes × blockDim.x
    const signed char* sample = x + (long long)blockIdx.x * elements;
    int acc[16];
    for (int c = 0; c < classes; ++c) acc[c] = 0;
    for (int i = threadIdx.x; i < elements; i += blockDim.x) {
        int v = sample[i];
        for (int c = 0; c < classes; ++c) acc[c] += v * (int)w[c * elements + i];
    }
    for (int c = 0; c < classes; ++c) partial[c * blockDim.x + threadIdx.x] = acc[c];
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) {
            for (int c = 0; c < classes; ++c) {
                int* row = partial + c * blockDim.x;
                row[threadIdx.x] += row[threadIdx.x + stride];
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        int best = 0;
        int best_score = partial[0];
        for (int c = 1; c < classes; ++c) {
            int score = partial[c * blockDim.x];
            if (score > best_score) { best_score = score; best = c; }
        }
        out[blockIdx.x] = best;
    }
}
"""


def projection(seed: int = 0) -> np.ndarray:
    """The fixed (CLASSES, SAMPLE_ELEMENTS) int8 matrix of −1/0/+1."""
    rng = np.random.default_rng(seed)
    return rng.integers(-1, 2, size=(CLASSES, SAMPLE_ELEMENTS), dtype=np.int8)


def reference_labels(samples: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """What the kernel must return for `samples` (n, 3, 224, 224) int8, computed by numpy."""
    flat = samples.reshape(len(samples), -1).astype(np.int64)
    return (flat @ weights.T.astype(np.int64)).argmax(axis=1).astype(np.int32)


class CupyProjectionRunner:
    """`gpu_device.Runner` over the projection kernel (CuPy compiles and launches it)."""

    def __init__(self, contexts: int, max_batch: int, device: int = 0, seed: int = 0) -> None:
        import cupy

        self._cupy: Any = cupy
        self.contexts = contexts
        self.max_batch = max_batch
        self.weights = projection(seed)
        self._device = cupy.cuda.Device(device)
        with self._device:
            self._weights = cupy.asarray(self.weights)
            self._kernel = cupy.RawKernel(_KERNEL, "project_argmax")
            self._kernel.compile()
        self.launches = 0

    def prepare_shape(self, context: int, batch: int, stream: int) -> None:
        if not 0 <= context < self.contexts or not 1 <= batch <= self.max_batch:
            raise ValueError(f"context {context} / batch {batch} out of range")

    def enqueue(self, context: int, batch: int, d_input: int, d_output: int, stream: int) -> None:
        cupy = self._cupy
        with self._device, cupy.cuda.ExternalStream(stream):
            self._kernel(
                (batch,),
                (THREADS,),
                (
                    np.uint64(d_input),  # pointers travel as 64-bit values
                    np.uint64(self._weights.data.ptr),
                    np.uint64(d_output),
                    np.int32(SAMPLE_ELEMENTS),
                    np.int32(CLASSES),
                ),
                shared_mem=CLASSES * THREADS * 4,
            )
        self.launches += 1

    def close(self) -> None:
        self._weights = None

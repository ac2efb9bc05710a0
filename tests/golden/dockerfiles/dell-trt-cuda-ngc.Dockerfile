# mlorch: Dell/NVIDIA MLPerf v2.1 ResNet50 recipe (cuda; TensorRT from the base image, cuda-bindings)
# Rendered by mlorch 0.1.0; base image: nvcr.io/nvidia/tensorrt:26.03-py3
# Stage 1: install the pinned Python packages from the wheelhouse mlorch downloaded on the host
# (the build never reaches a package index, so air-gapped hosts build the same image).
FROM nvcr.io/nvidia/tensorrt:26.03-py3 AS deps
COPY wheelhouse/ /tmp/wheelhouse/
COPY requirements.txt /tmp/requirements.txt
RUN python3 -m venv --without-pip --system-site-packages /opt/venv \
 && /opt/venv/bin/python /tmp/wheelhouse/pip-26.3-py3-none-any.whl/pip install \
        --no-index --find-links /tmp/wheelhouse --no-cache-dir --no-compile \
        --disable-pip-version-check --root-user-action ignore \
        -r /tmp/requirements.txt \
 && /opt/venv/bin/python -c "import importlib.metadata as m; print('\n'.join(sorted(f'{d.name}=={d.version}' for d in m.distributions())))" > /opt/venv/pip-freeze.txt
# The native LoadGen issue path (backends/common/native): LoadGen's C++ sources from the sdist
# of the installed release, compiled with the base's C++ compiler. A base without one records
# why in build.json, and the harness runs the Python issue path (it says so in harness.json).
COPY backends/common/native/ /tmp/native/
RUN /opt/venv/bin/python /tmp/native/build.py --sdist /tmp/wheelhouse/mlcommons_loadgen-6.0.17.tar.gz \
        --out /opt/mlorch-native --match-installed --optional

# Stage 2: the SUT image — the base, the venv, the contract and the backend code; no wheels,
# no build tools.
FROM nvcr.io/nvidia/tensorrt:26.03-py3
COPY --from=deps /opt/venv /opt/venv
COPY --from=deps /opt/mlorch-native /opt/mlorch/native
COPY contract/ /opt/mlorch/contract/
COPY backends/ /opt/mlorch/backends/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/mlorch \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
RUN python -m compileall -q /opt/mlorch/contract /opt/mlorch/backends \
 && python -c "import mlperf_loadgen, backends.dell_trt"
# The native issue path loads in this image, or the image says why it runs the Python one.
RUN python -c "from backends.common.native import describe; print(describe())" > /opt/mlorch/issue-path.txt
# The GPU libraries must load in this image (ldd, no GPU needed): a CUDA or TensorRT major that
# does not match the base fails the build here instead of at run time.
# Exec form: the specs hold shell metacharacters (`a|b` alternatives, globs).
RUN ["python", "-m", "backends.common.libcheck", "tensorrt|tensorrt_bindings:**/*.so"]
# The TensorRT and CUDA runtime bindings the engine code uses import here (no GPU needed); the
# image records the TensorRT it really has.
RUN python -c "import tensorrt, cuda.bindings.runtime; print(tensorrt.__version__)" > /opt/mlorch/tensorrt-version.txt
LABEL mlorch.tool="mlorch" mlorch.backend="dell-trt"
WORKDIR /tmp
# Non-root by default; mlorch also sets the user on every container it starts.
USER 10001:10001
# NGC's entrypoint runs mlorch's command: it turns on CUDA forward compatibility
# (/usr/local/cuda/compat) where the host driver is older than the image's CUDA.
RUN test -x /opt/nvidia/nvidia_entrypoint.sh
ENTRYPOINT ["/opt/nvidia/nvidia_entrypoint.sh", "python", "-m", "backends.dell_trt"]

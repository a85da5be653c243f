# holmbot's image: a wheel built in one stage, installed in a slim one without build tools.
#
# The cluster's nodes are Raspberry Pis (linux/arm64); build and push both platforms with
#   docker buildx build --platform linux/arm64,linux/amd64 \
#     -t 10.110.67.87:5000/holmbot:latest --push .
# or build in the cluster with Kaniko (deploy/build/kaniko-build.yaml, the node's platform).
# Every dependency ships wheels for both platforms, so no stage needs a compiler.

FROM python:3.11-slim AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
COPY sandbox ./sandbox
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
# The uid deploy/deployment.yaml runs the pod as (runAsUser, runAsGroup, fsGroup).
ARG HOLMBOT_UID=10001
# MALLOC_ARENA_MAX=1: glibc keeps freed memory in one pool per thread; the bot's worker
# threads (Kubernetes calls, log decoding) would otherwise hold several MiB each (bench/memory.py).
# MALLOC_MMAP_THRESHOLD_=131072: blocks over 128 KiB (log reads, files) always get their own
# mapping, given back when freed; glibc otherwise raises the threshold after the first such free
# and later big blocks stay in the heap (the 10-pod /logs peak: 132 MiB, 126 with this).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=1 \
    MALLOC_MMAP_THRESHOLD_=131072 \
    HOLMBOT_STATE_DIR=/var/lib/holmbot
COPY --from=builder /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && groupadd --system --gid "${HOLMBOT_UID}" holmbot \
    && useradd --system --no-log-init --uid "${HOLMBOT_UID}" --gid holmbot \
        --home-dir /var/lib/holmbot --no-create-home --shell /usr/sbin/nologin holmbot \
    && mkdir -p /var/lib/holmbot \
    && chown holmbot:holmbot /var/lib/holmbot
USER ${HOLMBOT_UID}:${HOLMBOT_UID}
WORKDIR /var/lib/holmbot
VOLUME /var/lib/holmbot
# /health, /ready and /metrics
EXPOSE 8080
ENTRYPOINT ["holmbot"]
CMD ["run"]

# Base image for training on Kubernetes (docs/deploy/k8s-project/MLproject `docker_env.image`).
# Build from the repository root:
#   docker build -f docs/deploy/training.Dockerfile -t registry.example.com/miniautoml/training-base:0.1.0 .
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/miniautoml
# The CPU build of torch first (the project pins torch==2.13.0), so pip does not pull a CUDA build.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY platform ./platform
COPY training_code ./training_code
COPY params ./params
COPY MLproject ./
# Editable, as in development: training_code finds params/ beside itself. boto3 (MLflow's S3
# artifact client) is pinned as in pyproject's test extra.
RUN pip install --no-cache-dir -e . "boto3>=1.43.115,<1.43.118" && git config --global user.email training@miniautoml \
    && git config --global user.name "miniautoml training"
ENV PYTHONUNBUFFERED=1 MINIAUTOML_PYTHON=python

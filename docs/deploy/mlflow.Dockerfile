# The MLflow tracking server image of docker-compose.yml: MLflow (same release as the project's pin)
# plus the PostgreSQL driver for the backend store (psycopg 3: SQLAlchemy 2.1 maps a plain
# `postgresql://` URI to it, not to psycopg2), boto3 for artifacts on MinIO/S3, and [auth]
# (Flask-WTF) for `mlflow server --app-name basic-auth`.
FROM python:3.11-slim
ARG MLFLOW_VERSION=3.17.2
RUN pip install --no-cache-dir "mlflow[auth]==${MLFLOW_VERSION}" "psycopg[binary]" boto3
EXPOSE 5000
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]

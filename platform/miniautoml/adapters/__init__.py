"""Thin wrappers: the only modules that import git, DVC, MLflow, BentoML and S3 clients."""

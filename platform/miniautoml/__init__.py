"""MiniAutoML: the book's mini deep-learning system on DVC, MLflow, BentoML and Hydra."""

__version__ = "0.1.0"

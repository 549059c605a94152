"""Intent-classification training code, logged with each model (MLflow `code_paths`).

Modules used at inference (`tokenizer`, `model`, `pyfunc`) import only torch, pandas and mlflow,
never `miniautoml`, so a logged model loads wherever its code directory is on `sys.path`.
"""

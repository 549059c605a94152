"""The contract between the platform and the trainer (`training_code/`): all that both sides share.

One direction only: `training_code` may import `miniautoml` (this package, `config`, `errors`,
`redact`, `suggest`, the `mlflow` and `git` adapters); the platform never imports `training_code`. It starts the
trainer only through MLflow Projects (the MLproject's entry points) with parameters checked by
`params`, and reads back the tags, metrics and artifacts `tags` names; `data` is how the trainer
gets a dataset version, `trainer` how the platform finds and ships the trainer's code.
tests/test_structure.py keeps it so.
"""

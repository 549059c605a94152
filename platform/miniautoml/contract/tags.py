"""What a training run records, by name: the trainer writes these, the platform reads them back."""

from __future__ import annotations

# --- run tags ----------------------------------------------------------------------------------
MESSAGE = "miniautoml.message"  # one line for run lists: the result or the error
MOVED_TO = "miniautoml.moved_to"  # on a run `mlflow run` made elsewhere: the run that trained
GIT_COMMIT = "mlflow.source.git.commit"  # the training code's commit
CODE_DIRTY = "code_dirty"  # "true" when the code differed from GIT_COMMIT
WORKSPACE_REV = "workspace_rev"  # the workspace's git revision (its dataset metadata)
DATASET_NAME = "dataset_name"
DATASET_ID = "dataset_id"  # also set at submit on a job's run, with the same value
VERSION_HASH = "version_hash"
DATASET_COMMITS = "dataset_commits"  # comma-separated commit ids the version hash selects
DATA_PATH = "data_path"  # the CSV files, when trained without the dataset service
SNAPSHOT_MD5 = "snapshot_md5"  # DVC's md5 of the training data

# --- tags of the registry version a run registers (with DATASET_ID, VERSION_HASH, SNAPSHOT_MD5) --
VERSION_RUN_ID = "run_id"
VERSION_ALGORITHM = "algorithm"

# --- artifacts ---------------------------------------------------------------------------------
EPOCHS_ARTIFACT = "epochs.json"  # {"epochs": [{"epoch", "start_time", "end_time"}]}, unix seconds
JOB_ARTIFACT = "job.json"  # how and where the trainer ran: pids, host, paths, the run it replaced

# --- metrics -----------------------------------------------------------------------------------
EPOCH_METRICS = ("val_accuracy", "val_loss", "train_accuracy", "loss")  # step = epoch
SUMMARY_METRICS = ("best_val_accuracy", "test_accuracy", "test_loss")  # the whole run
RUN_LEVEL_METRICS = frozenset({"best_val_accuracy", "best_epoch", "epochs_trained", "train_seconds"})

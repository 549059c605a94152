"""The book's training service: a FIFO job queue over MLflow runs, drained by `mlflow run`.

    job_id = submit_job(settings, model_name="intent", dataset_id="1", version_hash="hashAg==")
    wait_job(settings, job_id).status  # "succeed"

Statuses: queuing (SCHEDULED), launch (claimed by a runner), running (RUNNING),
succeed (FINISHED), failure (FAILED/KILLED).
"""

from miniautoml.jobs.service import (
    JobFailedError,
    JobTimeoutError,
    cancel_job,
    ended_job,
    job_logs,
    job_status,
    list_jobs,
    stop_runners,
    submit_job,
    wait_job,
)
from miniautoml.jobs.requests import JobRequest, build_request
from miniautoml.jobs.store import FAILURE, LAUNCH, QUEUING, RUNNING, SUCCEED, JobStatus

__all__ = [
    "FAILURE",
    "LAUNCH",
    "QUEUING",
    "RUNNING",
    "SUCCEED",
    "JobFailedError",
    "JobTimeoutError",
    "JobRequest",
    "JobStatus",
    "build_request",
    "cancel_job",
    "ended_job",
    "job_logs",
    "job_status",
    "list_jobs",
    "stop_runners",
    "submit_job",
    "wait_job",
]

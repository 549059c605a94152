"""Submissions handed to an idle warm runner (jobs/handoff.py): the runner queues the job, the
submitter gets its run id back; one no runner took is withdrawn, never queued twice.

The runner's side is played here by `handoff.idle` and `handoff.take_requests` in this process;
the submitter's by `handoff.offer` in a thread (the real processes: tests/test_warm_start.py).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from conftest import job_settings, new_job_workspace, wait_until

from miniautoml.jobs import handoff, slots, store

TAGS = {store.KIND: store.KIND_JOB, store.ALGORITHM: "intent-classification", store.DATA_PATH: "/data.csv"}


@pytest.fixture
def runner_side(tmp_path: Path, mlflow_template: Path):
    from miniautoml.adapters import mlflow as mlflow_adapter

    settings = job_settings(new_job_workspace(tmp_path, mlflow_template))
    wake = slots.open_wake(settings)  # what a runner listens on while idle
    client = mlflow_adapter.client(settings)
    yield settings, client, mlflow_adapter.ensure_experiment(settings)
    os.close(wake)


def inbox(settings) -> list[Path]:
    folder = settings.state_dir / "runners" / "inbox"
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def offer_in_thread(settings, tags: dict[str, str]) -> tuple[threading.Thread, list]:
    answer: list = []
    thread = threading.Thread(target=lambda: answer.append(handoff.offer(settings, tags)))
    thread.start()
    return thread, answer


def test_with_no_idle_runner_nothing_is_offered(runner_side):
    settings, _, _ = runner_side
    assert handoff.offer(settings, TAGS) is None
    assert inbox(settings) == []


def test_an_idle_runner_queues_the_job_and_the_submitter_gets_its_run_id(runner_side):
    settings, client, experiment_id = runner_side
    with handoff.idle(settings):
        thread, answer = offer_in_thread(settings, TAGS)
        wait_until(lambda: inbox(settings), 30, "the submission in the inbox")
        assert handoff.take_requests(settings, client, experiment_id) == 1
        thread.join(60)
    run = client.get_run(answer[0])
    assert run.info.status == "SCHEDULED"
    assert {k: run.data.tags.get(k) for k in TAGS} == TAGS
    assert run.data.tags[store.NUMBER] == "1"
    assert inbox(settings) == []


def test_submissions_are_queued_in_the_order_they_were_made(runner_side):
    settings, client, experiment_id = runner_side
    with handoff.idle(settings):
        first, first_id = offer_in_thread(settings, TAGS | {store.DATA_PATH: "/first.csv"})
        wait_until(lambda: len(inbox(settings)) == 1, 30, "the first submission in the inbox")
        second, second_id = offer_in_thread(settings, TAGS | {store.DATA_PATH: "/second.csv"})
        wait_until(lambda: len(inbox(settings)) == 2, 30, "the second submission in the inbox")
        assert handoff.take_requests(settings, client, experiment_id) == 2
        first.join(60)
        second.join(60)
    runs = [client.get_run(job_id[0]) for job_id in (first_id, second_id)]
    assert [r.data.tags[store.DATA_PATH] for r in runs] == ["/first.csv", "/second.csv"]
    assert [r.data.tags[store.NUMBER] for r in runs] == ["1", "2"]


def test_a_submission_no_runner_took_is_withdrawn_and_never_queued(runner_side):
    settings, client, experiment_id = runner_side
    with handoff.idle(settings):  # marked idle, but busy elsewhere: it takes nothing in time
        assert handoff.offer(settings, TAGS) is None
        assert inbox(settings) == []
        assert handoff.take_requests(settings, client, experiment_id) == 0
    assert store.search_jobs(client, experiment_id, include_deleted=True) == []


def test_a_runner_that_stopped_waiting_is_not_idle(runner_side):
    settings, _, _ = runner_side
    with handoff.idle(settings):
        assert handoff.idle_runner(settings) is True
    assert handoff.idle_runner(settings) is False

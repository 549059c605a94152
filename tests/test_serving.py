"""The prediction service: the book's Predict(runId, document) over HTTP, on BentoML.

Behaviour is checked through a real `miniautoml serve` (BentoML) process on a free port, with
real models trained by training_code. One server is shared by the module; the model pool's own
rules (LRU, one load per model, alias refresh) are also checked in-process with stand-in models.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from miniautoml import serving
from miniautoml.errors import NotFoundError, UserInputError
from serving_support import (
    same_prediction,
    BIN,
    TEXTS,
    LoadGenerator,
    Server,
    TrainedModels,
    clean_env,
    free_port,
    start_server,
    trained_models,
    wait_until,
)

pytestmark = pytest.mark.slow

MAX_DOCUMENT_CHARS = 300
MAX_REQUEST_BYTES = 4096


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> TrainedModels:
    return trained_models(tmp_path_factory.getbasetemp() / "serving-models")


@pytest.fixture(scope="module")
def server(models: TrainedModels, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """`miniautoml serve` of the trained workspace, aliases re-resolved every second."""
    port = free_port()
    env = clean_env(
        MINIAUTOML_ALIAS_REFRESH_SECONDS="1",
        MINIAUTOML_MAX_DOCUMENT_CHARS=str(MAX_DOCUMENT_CHARS),
        MINIAUTOML_MAX_REQUEST_BYTES=str(MAX_REQUEST_BYTES),
        MINIAUTOML_MAX_BATCH_DOCUMENTS="20",
    )
    argv = [str(BIN / "miniautoml"), "-w", str(models.workspace), "serve", "--port", str(port)]
    srv = start_server(argv, env, tmp_path_factory.mktemp("serve") / "server.log", port=port)
    yield srv
    srv.stop()


def predict(server: Server, model_id: str, document: str = TEXTS[0], **extra) -> tuple[int, dict]:
    return server.post("/predict", {"model_id": model_id, "document": document, **extra})


def load_count(server: Server, run_id: str) -> float:
    status, text = server.get("/metrics")
    assert status == 200
    prefix = f'miniautoml_model_loads_total{{run_id="{run_id}"}} '
    return sum(float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix))


# --------------------------------------------------------------------------------------------
# Predictions
# --------------------------------------------------------------------------------------------


def test_concurrent_first_requests_for_a_model_load_it_once(server: Server, models: TrainedModels) -> None:
    assert load_count(server, models.run_unregistered) == 0
    answers: list[tuple[int, dict]] = []
    threads = [
        threading.Thread(target=lambda: answers.append(predict(server, models.run_unregistered)))
        for _ in range(12)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [status for status, _ in answers] == [200] * 12
    assert load_count(server, models.run_unregistered) == 1


def test_predict_by_run_id_answers_label_scores_and_run(server: Server, models: TrainedModels) -> None:
    status, body = predict(server, models.run_v1)
    assert status == 200
    assert set(body) == {"result", "model_id", "model_version", "scores"}
    assert body["model_id"] == models.run_v1
    assert body["model_version"] is None  # named by run, not by the registry
    assert len(body["scores"]) == 3
    assert body["result"] == max(body["scores"], key=body["scores"].get)


def test_predict_by_alias_reports_the_version_the_alias_names(server: Server, models: TrainedModels) -> None:
    status, body = predict(server, f"{models.name}@champion")
    assert status == 200
    assert (body["model_id"], body["model_version"]) == (models.run_v1, 1)


def test_predict_by_name_and_version(server: Server, models: TrainedModels) -> None:
    status, body = predict(server, f"{models.name}/2")
    assert status == 200
    assert (body["model_id"], body["model_version"]) == (models.run_v2, 2)


def test_prediction_equals_the_training_runs_own_pyfunc_output(server: Server, models: TrainedModels) -> None:
    expected = models.pyfunc_predictions(models.run_v2, TEXTS)
    for text, want in zip(TEXTS, expected):
        status, body = predict(server, models.run_v2, text)
        assert status == 200
        assert same_prediction(body, want), (body, want)


def test_top_k_sets_how_many_scores_come_back(server: Server, models: TrainedModels) -> None:
    status, body = predict(server, models.run_v1, top_k=5)
    assert status == 200 and len(body["scores"]) == 5


def test_predict_batch_answers_every_document_in_order(server: Server, models: TrainedModels) -> None:
    status, body = server.post("/predict_batch", {"model_id": f"{models.name}/1", "documents": TEXTS})
    assert status == 200
    assert (body["model_id"], body["model_version"]) == (models.run_v1, 1)
    singles = [predict(server, f"{models.name}/1", text)[1] for text in TEXTS]
    assert len(body["predictions"]) == len(singles)
    for got, want in zip(body["predictions"], singles):
        assert same_prediction(got, want), (got, want)


def test_concurrent_requests_for_different_models_get_their_own_answers(server: Server, models: TrainedModels) -> None:
    ids = {models.run_v1: models.run_v1, f"{models.name}/2": models.run_v2, models.run_unregistered: models.run_unregistered}
    answers: list[tuple[str, int, dict]] = []

    def ask(model_id: str) -> None:
        for text in TEXTS:
            status, body = predict(server, model_id, text)
            answers.append((model_id, status, body))

    threads = [threading.Thread(target=ask, args=(m,)) for m in list(ids) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 3 * 4 * len(TEXTS)
    assert all(status == 200 and body["model_id"] == ids[m] for m, status, body in answers)


# --------------------------------------------------------------------------------------------
# Errors: a status and a one-line message, never a 500 or a traceback
# --------------------------------------------------------------------------------------------


def assert_error(status: int, body: object, expected_status: int, fragment: str) -> None:
    assert status == expected_status, body
    assert isinstance(body, dict) and fragment in body["error"], body
    assert "Traceback" not in str(body)


@pytest.mark.parametrize(
    ("model_id", "fragment"),
    [
        ("0" * 32, "no such run"),
        ("intent@nobody", "nobody"),
        ("intent/99", "99"),
        ("no-such-model@champion", "no-such-model"),
    ],
    ids=["run", "alias", "version", "model name"],
)
def test_unknown_model_is_404_with_a_message(server: Server, model_id: str, fragment: str) -> None:
    assert_error(*predict(server, model_id), 404, fragment)


@pytest.mark.parametrize("model_id", ["intent", "a b", "intent/latest", "@champion"])
def test_malformed_model_id_is_400(server: Server, model_id: str) -> None:
    assert_error(*predict(server, model_id), 400, "expected a run id")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"model_id": "intent@champion", "document": ', "Invalid JSON"),
        (b"", "Invalid JSON"),
        (b'["intent@champion", "text"]', "should be an object"),
        (b'{"document": "text"}', "model_id: Field required"),
        (b'{"model_id": "intent@champion"}', "document: Field required"),
        (b'{"model_id": "intent@champion", "document": "   "}', "document is empty"),
        (b'{"model_id": "intent@champion", "document": 42}', "document: Input should be a valid string"),
        (b'{"model_id": "intent@champion", "document": "hi", "top_k": 0}', "top_k"),
    ],
    ids=["truncated json", "empty body", "not an object", "no model_id", "no document", "blank document", "number",
         "top_k 0"],
)
def test_malformed_request_is_400(server: Server, raw: bytes, fragment: str) -> None:
    status, body = server.post("/predict", raw=raw)
    assert_error(status, body, 400, fragment)


def test_document_over_the_limit_is_413(server: Server, models: TrainedModels) -> None:
    status, body = predict(server, models.run_v1, "word " * MAX_DOCUMENT_CHARS)
    assert_error(status, body, 413, "limit")


def test_body_over_the_limit_is_413_before_parsing(server: Server) -> None:
    status, body = server.post("/predict", raw=b'{"model_id": "x", "document": "' + b"a" * MAX_REQUEST_BYTES + b'"}')
    assert_error(status, body, 413, "MINIAUTOML_MAX_REQUEST_BYTES")


def test_chunked_body_over_the_limit_is_413(server: Server) -> None:
    import http.client

    conn = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=30)
    chunks = iter([b'{"model_id": "x", "document": "', b"a" * MAX_REQUEST_BYTES, b'"}'])
    conn.request("POST", "/predict", body=chunks, headers={"Content-Type": "application/json"}, encode_chunked=True)
    resp = conn.getresponse()
    assert resp.status == 413
    conn.close()


def test_batch_errors_name_the_document(server: Server, models: TrainedModels) -> None:
    url_id = f"{models.name}/1"
    assert_error(*server.post("/predict_batch", {"model_id": url_id, "documents": ["ok", " "]}), 400, "documents[1]")
    assert_error(*server.post("/predict_batch", {"model_id": url_id, "documents": []}), 400, "empty")
    assert_error(*server.post("/predict_batch", {"model_id": url_id, "documents": ["x"] * 21}), 413, "limit")
    assert_error(*server.post("/predict_batch", {"model_id": "intent@nobody", "documents": ["x"]}), 404, "nobody")


# --------------------------------------------------------------------------------------------
# Operations
# --------------------------------------------------------------------------------------------


def test_health_endpoints_answer(server: Server) -> None:
    assert server.get("/livez")[0] == 200
    assert server.get("/readyz")[0] == 200


def test_metrics_count_requests_and_model_loads(server: Server, models: TrainedModels) -> None:
    predict(server, models.run_v1)
    status, text = server.get("/metrics")
    assert status == 200
    assert 'bentoml_service_request_total{endpoint="/predict",http_response_code="200"' in text
    assert f'miniautoml_model_loads_total{{run_id="{models.run_v1}"}} 1.0' in text
    assert "miniautoml_gc_pause_seconds_bucket" in text


def test_not_ready_while_the_tracking_store_is_unreachable(models: TrainedModels, tmp_path: Path) -> None:
    port, dead = free_port(), free_port()
    env = clean_env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{dead}")
    argv = [str(BIN / "miniautoml"), "-w", str(models.workspace), "serve", "--port", str(port)]
    srv = start_server(argv, env, tmp_path / "server.log", port=port, expect_ready=False)
    try:
        assert srv.get("/livez")[0] == 200
        assert srv.get("/readyz")[0] == 503
    finally:
        srv.stop()


def test_cli_predict_prints_the_answer_as_json(server: Server, models: TrainedModels) -> None:
    proc = subprocess.run(
        [str(BIN / "miniautoml"), "predict", f"{models.name}/1", TEXTS[0], "--url", server.url],
        capture_output=True, text=True, env=clean_env(), timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    import json

    assert json.loads(proc.stdout)["model_id"] == models.run_v1


@pytest.mark.parametrize(
    ("model_id", "document", "fragment"),
    [("intent@nobody", "hi", "nobody"), ("intent@champion", " ", "document is empty")],
    ids=["404", "400"],
)
def test_cli_predict_reports_http_errors_in_one_line(server: Server, model_id: str, document: str, fragment: str) -> None:
    proc = subprocess.run(
        [str(BIN / "miniautoml"), "predict", model_id, document, "--url", server.url],
        capture_output=True, text=True, env=clean_env(), timeout=60,
    )
    assert proc.returncode != 0 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]


def test_cli_predict_without_a_server_fails_in_one_line() -> None:
    proc = subprocess.run(
        [str(BIN / "miniautoml"), "predict", "intent@champion", "hi", "--url", f"http://127.0.0.1:{free_port()}"],
        capture_output=True, text=True, env=clean_env(), timeout=60,
    )
    assert proc.returncode == 3
    assert proc.stderr.strip().startswith("error: prediction server") and "\n" not in proc.stderr.strip()


# --------------------------------------------------------------------------------------------
# Alias hot swap (last: it moves the alias, and puts it back)
# --------------------------------------------------------------------------------------------


def test_alias_moved_under_load_is_followed_with_zero_failed_requests(server: Server, models: TrainedModels) -> None:
    model_id = f"{models.name}@champion"
    assert predict(server, model_id)[1]["model_version"] == 1
    try:
        with LoadGenerator(server.url, model_id, threads=8) as load:
            wait_until(lambda: len(load.answers) >= 50 or load.failures, 60, "answers before the swap")
            models.set_alias("champion", 2)
            # Within the refresh interval (1 s here) every answer comes from version 2.
            wait_until(
                lambda: load.failures or (len(load.answers) > 20 and all(a["model_version"] == 2 for a in load.answers[-20:])),
                60,
                "answers from version 2",
            )
            served_at_swap = len(load.answers)
            wait_until(lambda: len(load.answers) >= served_at_swap + 100 or load.failures, 60, "answers after the swap")
        assert load.failures == []
        versions = Counter(a["model_version"] for a in load.answers)
        assert versions[1] >= 50 and versions[2] >= 100
        assert {a["model_id"] for a in load.answers if a["model_version"] == 2} == {models.run_v2}
    finally:
        models.set_alias("champion", 1)
    wait_until(lambda: predict(server, model_id)[1]["model_version"] == 1, 60, "the alias back at version 1")


# --------------------------------------------------------------------------------------------
# The model pool's rules, in-process with stand-in models
# --------------------------------------------------------------------------------------------


class StandInModel:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def predict_texts(self, texts, top_k=3):
        return [{"result": self.run_id, "scores": {self.run_id: 1.0}} for _ in texts]


class StandInRegistry:
    """Run ids `a...`, `b...`; model `m` with versions 1 (run a), 2 (run b) and alias `best`."""

    RUN_A, RUN_B = "a" * 32, "b" * 32

    def __init__(self) -> None:
        self.versions = {1: self.RUN_A, 2: self.RUN_B}
        self.aliases = {"best": 1}
        self.resolves = 0

    def resolve(self, ref: serving.ModelRef) -> serving.ModelSource:
        self.resolves += 1
        if ref.kind == "run":
            if ref.run_id not in self.versions.values():
                raise NotFoundError(f"no run {ref.run_id}")
            return serving.ModelSource(ref.run_id, f"runs:/{ref.run_id}/model")
        version = ref.version if ref.kind == "version" else self.aliases.get(ref.alias or "")
        if ref.name != "m" or version not in self.versions:
            raise NotFoundError(f"no {ref.text}")
        return serving.ModelSource(self.versions[version], "uri", name="m", version=version)

    def ping(self) -> bool:
        return True


def stand_in_pool(registry: StandInRegistry, loads: Counter, capacity: int = 4, delay: float = 0.0) -> serving.ModelPool:
    def loader(source: serving.ModelSource) -> StandInModel:
        loads[source.run_id] += 1
        time.sleep(delay)
        return StandInModel(source.run_id)

    return serving.ModelPool(registry, loader, capacity=capacity, alias_refresh_seconds=0)


@pytest.mark.parametrize(
    ("text", "kind"),
    [("a" * 32, "run"), ("intent@champion", "alias"), ("intent/3", "version"), ("my model@prod-2", "alias")],
)
def test_model_ids_are_runs_aliases_or_versions(text: str, kind: str) -> None:
    assert serving.parse_model_id(text).kind == kind


@pytest.mark.parametrize("text", ["", "intent", "intent/0", "intent/x", "A" * 32, "@x", "/3", "a@b/c"])
def test_other_model_ids_are_rejected(text: str) -> None:
    with pytest.raises(UserInputError):
        serving.parse_model_id(text)


def test_pool_loads_a_model_once_for_concurrent_first_callers() -> None:
    loads: Counter = Counter()
    pool = stand_in_pool(StandInRegistry(), loads, delay=0.2)
    threads = [threading.Thread(target=pool.get, args=(mid,)) for mid in ["m/1", "m@best", StandInRegistry.RUN_A] * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == {StandInRegistry.RUN_A: 1}


def test_pool_evicts_the_least_recently_used_model() -> None:
    loads: Counter = Counter()
    pool = stand_in_pool(StandInRegistry(), loads, capacity=1)
    pool.get("m/1")
    pool.get("m/2")
    assert pool.loaded_run_ids() == [StandInRegistry.RUN_B]
    assert pool.get("m/1").run_id == StandInRegistry.RUN_A
    assert loads[StandInRegistry.RUN_A] == 2


def test_pool_switches_a_moved_alias_only_after_loading_the_new_model() -> None:
    registry, loads = StandInRegistry(), Counter()
    seen_during_load: list[str | None] = []
    pool = stand_in_pool(registry, loads)

    def loader(source: serving.ModelSource) -> StandInModel:
        served = pool.peek("m@best")
        seen_during_load.append(served.run_id if served else None)
        return StandInModel(source.run_id)

    pool.loader = loader
    assert pool.get("m@best").version == 1
    registry.aliases["best"] = 2
    changes = pool.refresh_aliases()
    assert [(c.old_run_id, c.new_run_id) for c in changes] == [(StandInRegistry.RUN_A, StandInRegistry.RUN_B)]
    assert seen_during_load == [None, StandInRegistry.RUN_A]  # the old model answered while loading
    assert pool.peek("m@best").version == 2


def test_pool_stops_answering_a_deleted_alias() -> None:
    registry = StandInRegistry()
    pool = stand_in_pool(registry, Counter())
    pool.get("m@best")
    del registry.aliases["best"]
    pool.refresh_aliases()
    assert pool.peek("m@best") is None
    with pytest.raises(NotFoundError):
        pool.get("m@best")


def test_pool_remembers_unknown_ids_briefly() -> None:
    registry = StandInRegistry()
    pool = stand_in_pool(registry, Counter())
    for _ in range(3):
        with pytest.raises(NotFoundError):
            pool.get("m@nobody")
    assert registry.resolves == 1


def test_serving_options_reject_bad_knobs() -> None:
    assert serving.ServingOptions.from_env({"MINIAUTOML_MODEL_CACHE_SIZE": "2"}).cache_size == 2
    with pytest.raises(UserInputError, match="MINIAUTOML_BATCHING"):
        serving.ServingOptions.from_env({"MINIAUTOML_BATCHING": "maybe"})
    with pytest.raises(UserInputError, match="MINIAUTOML_MODEL_CACHE_SIZE"):
        serving.ServingOptions.from_env({"MINIAUTOML_MODEL_CACHE_SIZE": "0"})

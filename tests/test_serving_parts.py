"""The prediction service's plain parts, in-process and fast: no server, no trained model.

Request parsing (bodies), batch grouping and replies (answers), the ASGI middleware with fake
apps, the BentoML IO glue and GC tuning (the patches of BentoML: tests/test_compat_bentoml.py).
"""

from __future__ import annotations

import asyncio
import copy
import gc
import json
import time
from collections import Counter
from typing import Any

import pytest

from miniautoml.errors import NotFoundError, UserInputError
from miniautoml.serving import ModelRef, ServingOptions
from miniautoml.serving.server import ModelPool, ModelSource, bentoml_io, bodies, middleware, worker
from miniautoml.serving.server.answers import INLINE_DOCUMENTS, Answers, Reply, error

OPTIONS = ServingOptions(max_document_chars=20, max_batch_documents=5, max_top_k=4)
REQUESTS = bodies.request_models(OPTIONS)
RUN_A, RUN_B, RUN_BROKEN = "a" * 32, "b" * 32, "e" * 32


# --------------------------------------------------------------------------------------------
# ASGI helpers: a request in, what was sent back out
# --------------------------------------------------------------------------------------------


def http_scope(method: str = "POST", path: str = "/predict", headers: list | None = None) -> dict:
    return {"type": "http", "method": method, "path": path, "headers": headers or []}


def receiver(*chunks: bytes):
    """An ASGI `receive` giving `chunks` as one request body, then a disconnect."""
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return receive


class Sent:
    """An ASGI `send` that keeps what it was sent."""

    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def __call__(self, message: dict) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int | None:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        return starts[0]["status"] if starts else None

    @property
    def json(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"))


class EchoApp:
    """An ASGI app answering 200 with the length of the body it read."""

    def __init__(self) -> None:
        self.calls = 0
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        self.calls += 1
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.bodies.append(body)
        await Reply(200, {"length": len(body)}).response()(scope, receive, send)


def call(app: Any, scope: dict, receive: Any) -> Sent:
    sent = Sent()
    asyncio.run(app(scope, receive, sent))
    return sent


# --------------------------------------------------------------------------------------------
# Request bodies
# --------------------------------------------------------------------------------------------


def test_a_valid_body_is_parsed_into_its_request() -> None:
    """The model id is parsed here, once: the request carries its ModelRef to the pool."""
    request = bodies.parse_request(REQUESTS.predict, b'{"model_id": " intent@champion ", "document": "hi", "top_k": 2}')
    assert isinstance(request, REQUESTS.predict)
    assert (request.model_id, request.document, request.top_k) == (ModelRef.parse("intent@champion"), "hi", 2)
    batch = bodies.parse_request(REQUESTS.batch, b'{"model_id": "intent/1", "documents": ["a", "b"]}')
    assert (batch.documents, batch.top_k) == (["a", "b"], 3)


@pytest.mark.parametrize(
    ("model", "raw", "status", "message"),
    [
        ("predict", b'{"model_id": "intent@champion", "document": ', 400, "invalid request: Invalid JSON"),
        ("predict", b'{"model_id": "intent@champion", "document": "  \\u3000"}', 400, "invalid request: document is empty"),
        ("predict", b'{"model_id": "intent", "document": "hi"}', 400, "invalid request: model_id: model id 'intent'"),
        ("predict", b'{"model_id": "intent@x", "document": "hi", "top_k": "3"}', 400, "top_k: Input should be a valid integer"),
        ("predict", b'{"model_id": "intent@x", "document": "hi", "top_k": 5}', 400, "top_k: Input should be less than or equal to 4"),
        ("predict", b'{"model_id": "intent@x", "document": "' + b"x" * 21 + b'"}', 413, "document has 21 characters; the limit is 20"),
        ("batch", b'{"model_id": "intent@x", "documents": ["a", "b", "c", "d", "e", "f"]}', 413, "6 documents; the limit is 5"),
        ("batch", b'{"model_id": "intent@x", "documents": ["a", " "]}', 400, "documents[1] is empty"),
        ("batch", b'{"model_id": "intent@x", "documents": ["a", 7]}', 400, "documents[1]: Input should be a valid string"),
        ("batch", b'{"model_id": "intent@x", "documents": []}', 400, "documents is empty"),
    ],
)
def test_an_invalid_body_is_one_line_naming_the_field(model: str, raw: bytes, status: int, message: str) -> None:
    invalid = bodies.parse_request(getattr(REQUESTS, model), raw)
    assert isinstance(invalid, bodies.InvalidRequest)
    assert invalid.status == status and message in invalid.message, invalid
    assert "\n" not in invalid.message and "pydantic.dev" not in invalid.message


def test_a_size_error_among_others_is_a_400_and_many_errors_are_counted() -> None:
    raw = b'{"model_id": 1, "document": "' + b"x" * 21 + b'", "top_k": "a"}'
    invalid = bodies.parse_request(REQUESTS.predict, raw)
    assert invalid.status == 400  # 413 only when every error is a size limit
    invalid = bodies.parse_request(REQUESTS.batch, b'{"model_id": 1, "documents": [1, 2, 3, 4], "top_k": "a"}')
    assert invalid.message.endswith("and 3 more")


def test_the_request_schemas_declare_the_options_limits() -> None:
    schema = REQUESTS.predict.model_json_schema()
    assert schema["title"] == "PredictRequest"
    assert (schema["properties"]["document"]["maxLength"], schema["properties"]["top_k"]["maximum"]) == (20, 4)
    batch = REQUESTS.batch.model_json_schema()["properties"]["documents"]
    assert (batch["maxItems"], batch["items"]["maxLength"]) == (5, 20)


# --------------------------------------------------------------------------------------------
# Answers: batch grouping and replies
# --------------------------------------------------------------------------------------------


class StandInModel:
    def __init__(self, run_id: str, calls: list) -> None:
        self.run_id, self.calls = run_id, calls

    def predict_texts(self, texts, top_k=3):
        self.calls.append((self.run_id, list(texts), top_k))
        if self.run_id == RUN_BROKEN:
            raise RuntimeError("broken model")
        return [{"result": f"{self.run_id[0]}:{t}", "scores": {t: 1.0}} for t in texts]


class StandInResolver:
    """Runs a, b and a broken one; `m/1` is run a, registered; `m/9` fails to load."""

    def resolve(self, ref: ModelRef) -> ModelSource:
        if ref.kind == "run" and ref.run_id in (RUN_A, RUN_B, RUN_BROKEN):
            return ModelSource(ref.run_id, "uri")
        if ref.text == "m/1":
            return ModelSource(RUN_A, "uri", name="m", version=1)
        if ref.text == "m/9":
            return ModelSource("9" * 32, "uri", name="m", version=9)
        raise NotFoundError(f"no {ref.text}")

    def ping(self) -> bool:
        return True


def answers() -> tuple[Answers, list, Counter]:
    calls: list = []
    loads: Counter = Counter()

    def loader(source: ModelSource) -> StandInModel:
        loads[source.run_id] += 1
        if source.run_id == "9" * 32:
            raise OSError("disk gone")
        return StandInModel(source.run_id, calls)

    pool = ModelPool(StandInResolver(), loader, alias_refresh_seconds=0, not_found_ttl_seconds=0)
    return Answers(pool), calls, loads


def predict_request(model_id: str, document: str, top_k: int = 3) -> Any:
    return REQUESTS.predict(model_id=model_id, document=document, top_k=top_k)


def test_a_batch_is_grouped_by_model_and_top_k_and_answered_in_order() -> None:
    service, calls, loads = answers()
    requests = [
        predict_request(RUN_A, "one"),
        predict_request(RUN_B, "two"),
        bodies.InvalidRequest("invalid request: document is empty"),
        predict_request(RUN_A, "three", top_k=1),
        predict_request("m/1", "four"),
        predict_request(RUN_A, "five"),
    ]
    replies = asyncio.run(service.predict(requests))
    assert [r.status for r in replies] == [200, 200, 400, 200, 200, 200]
    assert [r.body.get("result") for r in replies] == ["a:one", "b:two", None, "a:three", "a:four", "a:five"]
    assert replies[2].body == {"error": "invalid request: document is empty"}
    assert replies[0].body == {"result": "a:one", "model_id": RUN_A, "model_name": None, "model_version": None, "scores": {"one": 1.0}}
    assert (replies[4].body["model_name"], replies[4].body["model_version"]) == ("m", 1)  # by the id it was asked for
    assert sorted(calls) == sorted([
        (RUN_A, ["one", "five"], 3), (RUN_A, ["three"], 1), (RUN_B, ["two"], 3), (RUN_A, ["four"], 3),
    ])  # one call per (model id, top_k)
    assert loads == {RUN_A: 1, RUN_B: 1}


def test_failures_answer_only_the_requests_they_concern() -> None:
    service, _, _ = answers()
    requests = [
        predict_request("x@nobody", "a"),
        predict_request(RUN_BROKEN, "b"),
        predict_request("m/9", "c"),
        predict_request(RUN_A, "d"),
        predict_request("x@nobody", "e"),
    ]
    replies = asyncio.run(service.predict(requests))
    assert [r.status for r in replies] == [404, 500, 500, 200, 404]
    assert replies[0].body == {"error": "no x@nobody"} and replies[4] is replies[0]
    assert replies[1].body == {"error": "prediction failed: RuntimeError"}
    assert replies[2].body == {"error": "model 'm/9' could not be loaded: OSError"}


def test_a_malformed_id_reaching_the_pool_is_400() -> None:
    service, _, _ = answers()
    request = REQUESTS.predict.model_construct(model_id="intent", document="a", top_k=3)  # skips validation
    (reply,) = asyncio.run(service.predict([request]))
    assert reply.status == 400 and "expected a run id" in reply.body["error"]


@pytest.mark.parametrize("size", [2, INLINE_DOCUMENTS + 1], ids=["inline", "worker thread"])
def test_predict_batch_answers_every_document_in_order(size: int) -> None:
    service, calls, _ = answers()
    documents = [f"d{i}" for i in range(size)]
    reply = asyncio.run(service.predict_batch(REQUESTS.batch.model_construct(model_id="m/1", documents=documents, top_k=2)))
    assert reply.status == 200
    assert (reply.body["model_id"], reply.body["model_name"], reply.body["model_version"]) == (RUN_A, "m", 1)
    assert [p["result"] for p in reply.body["predictions"]] == [f"a:{d}" for d in documents]
    assert calls == [(RUN_A, documents, 2)]


def test_predict_batch_answers_invalid_requests_and_unknown_models() -> None:
    service, _, _ = answers()
    assert asyncio.run(service.predict_batch(bodies.InvalidRequest("too big", 413))) == error(413, "too big")
    reply = asyncio.run(service.predict_batch(REQUESTS.batch(model_id="x@nobody", documents=["a"])))
    assert (reply.status, reply.body) == (404, {"error": "no x@nobody"})


def test_a_reply_is_a_json_response() -> None:
    response = Reply(404, {"error": "no 'é'"}).response()
    assert (response.status_code, response.media_type) == (404, "application/json")
    assert json.loads(response.body) == {"error": "no 'é'"}


# --------------------------------------------------------------------------------------------
# Middleware
# --------------------------------------------------------------------------------------------


def test_a_body_over_the_declared_length_is_413_before_the_app_reads_it() -> None:
    app = EchoApp()
    limit = middleware.RequestSizeLimit(app, max_bytes=10)
    sent = call(limit, http_scope(headers=[(b"content-length", b"11")]), receiver(b"x" * 11))
    assert sent.status == 413 and "MINIAUTOML_MAX_REQUEST_BYTES" in sent.json["error"] and app.calls == 0
    sent = call(limit, http_scope(headers=[(b"content-length", b"ten")]), receiver(b"x"))
    assert (sent.status, sent.json) == (400, {"error": "invalid Content-Length"}) and app.calls == 0
    sent = call(limit, http_scope(headers=[(b"content-length", b"10")]), receiver(b"x" * 10))
    assert (sent.status, sent.json) == (200, {"length": 10})


def test_a_chunked_body_is_counted_and_replayed_whole() -> None:
    app = EchoApp()
    limit = middleware.RequestSizeLimit(app, max_bytes=10)
    sent = call(limit, http_scope(), receiver(b"x" * 6, b"y" * 5))
    assert sent.status == 413 and "more than 10" in sent.json["error"] and app.calls == 0
    sent = call(limit, http_scope(), receiver(b"x" * 6, b"y" * 4))
    assert (sent.status, sent.json) == (200, {"length": 10}) and app.bodies == [b"x" * 6 + b"y" * 4]


def test_other_requests_pass_the_size_limit_untouched() -> None:
    app = EchoApp()
    limit = middleware.RequestSizeLimit(app, max_bytes=10)
    assert call(limit, http_scope("GET", "/livez"), receiver(b"x" * 50)).json == {"length": 50}
    sent = call(limit, http_scope(), lambda: asyncio.sleep(0, {"type": "http.disconnect"}))
    assert sent.messages == [] and app.calls == 2  # a disconnect is the app's to see


def test_the_openapi_route_answers_the_document_made_once() -> None:
    made: list[int] = []
    app = EchoApp()
    docs = middleware.OpenAPIDocument(app, document=lambda: made.append(1) or {"openapi": "3.0.2"})
    for _ in range(2):
        assert call(docs, http_scope("GET", "/docs.json"), receiver(b"")).json == {"openapi": "3.0.2"}
    assert made == [1] and app.calls == 0
    assert call(docs, http_scope("POST", "/docs.json"), receiver(b"abc")).json == {"length": 3}


# --------------------------------------------------------------------------------------------
# BentoML glue
# --------------------------------------------------------------------------------------------


class FakeRequest:
    def __init__(self, body: bytes) -> None:
        self._body = body

    async def body(self) -> bytes:
        return self._body


def test_predict_input_is_a_one_element_list_and_output_renders_its_reply() -> None:
    descriptor = bentoml_io.predict_input(REQUESTS.predict)
    parsed = asyncio.run(descriptor.from_http_request(FakeRequest(b'{"model_id": "m/1", "document": "hi"}'), None))
    assert [r.document for r in parsed.requests] == ["hi"]
    parsed = asyncio.run(descriptor.from_http_request(FakeRequest(b"{}"), None))
    assert isinstance(parsed.requests[0], bodies.InvalidRequest)
    batch = asyncio.run(bentoml_io.batch_input(REQUESTS.batch).from_http_request(FakeRequest(b"[]"), None))
    assert batch.request.message == "invalid request: Input should be an object"
    response = asyncio.run(bentoml_io.PredictOutput.to_http_response([error(404, "no")], None))
    assert (response.status_code, json.loads(response.body)) == (404, {"error": "no"})


def test_service_config_and_openapi_additions() -> None:
    config = bentoml_io.service_config(ServingOptions(workers=3, request_timeout_seconds=5))
    assert config["workers"] == 3 and config["traffic"] == {"timeout": 5}
    assert config["tracing"] == {"excluded_urls": ["/predict"]}
    assert "tracing" not in bentoml_io.service_config(ServingOptions(trace_predictions=True))
    route = {"post": {"requestBody": {}, "responses": {200: {}}}}
    spec = bentoml_io.complete_openapi({"paths": {"/predict": route, "/predict_batch": copy.deepcopy(route)}})
    assert spec["paths"]["/predict"]["post"]["requestBody"]["required"] is True
    assert set(spec["paths"]["/predict_batch"]["post"]["responses"]) == {200, 413, 422, 503, 504}
    assert spec["components"]["schemas"]["Error"]["required"] == ["error"]


def test_the_patch_switch_is_a_serving_option() -> None:
    assert ServingOptions.from_env({}).patch_timeout_timers is True
    assert ServingOptions.from_env({"MINIAUTOML_PATCH_TIMEOUT_TIMERS": "0"}).patch_timeout_timers is False


# --------------------------------------------------------------------------------------------
# Worker set-up: GC tuning and pause metrics
# --------------------------------------------------------------------------------------------


def test_tune_gc_sets_the_thresholds_asked_for() -> None:
    before = gc.get_threshold()
    try:
        worker.tune_gc(ServingOptions(gc_freeze=False, gc_threshold=(12345, 11, 12)))
        assert gc.get_threshold() == (12345, 11, 12)
    finally:
        gc.set_threshold(*before)


@pytest.mark.parametrize("generation", [0, 1, 2])
def test_a_collection_is_observed_once_with_its_generation_and_pause(generation: int) -> None:
    observed: list[tuple[str, float]] = []

    class Histogram:
        def labels(self, generation: str) -> Any:
            class Child:
                def observe(self, seconds: float) -> None:
                    observed.append((generation, seconds))

            return Child()

    cycles = [[] for _ in range(50_000)]  # garbage the collection takes a measurable time over
    for item in cycles:
        item.append(item)
    del cycles, item
    was_enabled = gc.isenabled()
    gc.disable()  # no automatic collection in between: the one below is the only one observed
    callback = worker.observe_gc_pauses(Histogram())
    try:
        started = time.perf_counter()
        gc.collect(generation)
        wall = time.perf_counter() - started
    finally:
        gc.callbacks.remove(callback)
        if was_enabled:
            gc.enable()
    [(label, seconds)] = observed
    assert label == str(generation) and 0 < seconds <= wall


def test_server_launch_is_a_process_command_the_cli_execs(tmp_path):
    from miniautoml import processes
    from miniautoml.config import PROJECT_ROOT, load_settings
    from miniautoml.serving.client import server_launch

    launch = server_launch(load_settings(tmp_path), port=3123, workers=2)
    assert isinstance(launch, processes.Command)
    assert launch.cwd == str(PROJECT_ROOT / "bentos") and launch.env["MINIAUTOML_WORKERS"] == "2"
    assert "--port" in launch.argv and "3123" in launch.argv
    with pytest.raises(UserInputError, match="--port"):
        server_launch(load_settings(tmp_path), port=0)


# --------------------------------------------------------------------------------------------
# Predictors: our models' fast path, the pyfunc adapter of any other MLflow model
# --------------------------------------------------------------------------------------------


class FakePyfunc:
    """A loaded MLflow pyfunc model: a signature's input schema, `predict`, and maybe a python model."""

    def __init__(self, schema: Any, output: Any = None, python_model: Any = None) -> None:
        from types import SimpleNamespace

        self.metadata = SimpleNamespace(get_input_schema=lambda: schema)
        self.output, self.python_model, self.inputs = output, python_model, []

    def unwrap_python_model(self) -> Any:
        if self.python_model is None:
            raise RuntimeError("not a python model")  # MLflow raises an MlflowException here
        return self.python_model

    def predict(self, data: Any) -> Any:
        self.inputs.append(data)
        return self.output(data) if callable(self.output) else self.output


def schema_of(*columns: tuple[str | None, str], required: bool = True) -> Any:
    from mlflow.types import ColSpec, Schema

    return Schema([ColSpec(kind, name, required=required) if name else ColSpec(kind) for name, kind in columns])


def test_our_models_are_their_own_predictor_the_fast_path() -> None:
    from miniautoml.serving.server import predictor_for

    ours = StandInModel(RUN_A, [])
    assert predictor_for(FakePyfunc(schema_of(("text", "string")), python_model=ours), RUN_A) is ours


def test_a_foreign_model_gets_its_texts_as_the_signatures_one_string_column() -> None:
    import pandas as pd

    from miniautoml.serving.server import PyfuncPredictor, predictor_for

    model = FakePyfunc(schema_of(("utterance", "string")), output=lambda frame: pd.Series([t.upper() for t in frame["utterance"]]))
    predictor = predictor_for(model, RUN_A)
    assert isinstance(predictor, PyfuncPredictor)
    assert predictor.predict_texts(["a", "b"], 3) == [{"result": "A", "scores": {}}, {"result": "B", "scores": {}}]
    assert list(model.inputs[0].columns) == ["utterance"]


@pytest.mark.parametrize("schema", [None, "column-less"], ids=["no signature", "column-less"])
def test_a_foreign_model_without_a_named_column_gets_a_list_of_strings(schema: Any) -> None:
    import numpy as np

    from miniautoml.serving.server import predictor_for

    model = FakePyfunc(schema_of((None, "string")) if schema else None, output=lambda texts: np.array([len(t) for t in texts]))
    assert predictor_for(model, RUN_A).predict_texts(["ab", "c"]) == [{"result": "2", "scores": {}}, {"result": "1", "scores": {}}]
    assert model.inputs == [["ab", "c"]]


def test_label_probability_columns_become_the_top_k_scores() -> None:
    import pandas as pd

    from miniautoml.serving.server import predictor_for

    frame = pd.DataFrame({"greet": [0.7, 0.1], "bye": [0.2, 0.6], "other": [0.1, 0.3]})
    predictor = predictor_for(FakePyfunc(schema_of(("text", "string")), output=frame), RUN_A)
    assert predictor.predict_texts(["hi", "ciao"], 2) == [
        {"result": "greet", "scores": {"greet": 0.7, "bye": 0.2}},
        {"result": "bye", "scores": {"bye": 0.6, "other": 0.3}},
    ]
    as_dict = predictor_for(FakePyfunc(None, output=frame.to_dict("list")), RUN_A)
    assert as_dict.predict_texts(["hi", "ciao"], 1)[1] == {"result": "bye", "scores": {"bye": 0.6}}


def test_a_frame_with_a_label_column_and_score_mappings_keeps_both() -> None:
    import pandas as pd

    from miniautoml.serving.server import predictor_for

    frame = pd.DataFrame({"result": ["greet"], "scores": [{"greet": 0.9, "bye": 0.1}]})
    predictor = predictor_for(FakePyfunc(None, output=frame), RUN_A)
    assert predictor.predict_texts(["hi"], 1) == [{"result": "greet", "scores": {"greet": 0.9}}]


def test_an_output_of_another_length_is_an_error() -> None:
    from miniautoml.errors import MiniAutoMLError
    from miniautoml.serving.server import predictor_for

    with pytest.raises(MiniAutoMLError, match="answered 1 predictions for 2 documents"):
        predictor_for(FakePyfunc(None, output=["x"]), RUN_A).predict_texts(["a", "b"])


@pytest.mark.parametrize(
    ("columns", "shown"),
    [
        ((("x0", "double"), ("x1", "long")), "['x0': double (required), 'x1': long (required)]"),
        ((("text", "string"), ("lang", "string")), "['text': string (required), 'lang': string (required)]"),
        ((("n", "integer"),), "['n': integer (required)]"),
    ],
    ids=["numeric", "two strings required", "one number"],
)
def test_a_model_whose_signature_cannot_take_text_raises_naming_it(columns: tuple, shown: str) -> None:
    from miniautoml.serving.server import UnsupportedModelError, predictor_for

    predictor = predictor_for(FakePyfunc(schema_of(*columns)), RUN_A)
    with pytest.raises(UnsupportedModelError) as raised:
        predictor.predict_texts(["a"])
    assert str(raised.value) == (
        f"model of run {RUN_A} cannot classify text: its signature's inputs are {shown}; "
        "it needs exactly one string input"
    )


def test_an_optional_input_beside_the_one_required_string_is_left_out() -> None:
    from mlflow.types import ColSpec, Schema

    from miniautoml.serving.server import predictor_for

    schema = Schema([ColSpec("string", "text"), ColSpec("double", "weight", required=False)])
    model = FakePyfunc(schema, output=["x"])
    predictor_for(model, RUN_A).predict_texts(["a"])
    assert list(model.inputs[0].columns) == ["text"]


def test_a_model_that_cannot_take_text_answers_422_and_stays_cached() -> None:
    from miniautoml.serving.server import predictor_for

    loads: Counter = Counter()

    def loader(source: ModelSource) -> Any:
        loads[source.run_id] += 1
        return predictor_for(FakePyfunc(schema_of(("x0", "double"))), source.run_id)

    service = Answers(ModelPool(StandInResolver(), loader, alias_refresh_seconds=0))
    replies = asyncio.run(service.predict([predict_request(RUN_A, "one"), predict_request(RUN_A, "two", top_k=1)]))
    assert [r.status for r in replies] == [422, 422]
    assert "'x0': double (required)" in replies[0].body["error"]
    reply = asyncio.run(service.predict_batch(REQUESTS.batch(model_id=RUN_A, documents=["a", "b"])))
    assert reply.status == 422 and reply.body == replies[0].body
    assert loads == {RUN_A: 1}


def test_a_failing_model_in_predict_batch_is_a_500_in_one_line() -> None:
    service, _, _ = answers()
    reply = asyncio.run(service.predict_batch(REQUESTS.batch(model_id=RUN_BROKEN, documents=["a"])))
    assert (reply.status, reply.body) == (500, {"error": "prediction failed: RuntimeError"})

"""API keys and registered-only serving (issue 12): the keys file, the Bearer middleware, the
launch defaults, and the same through a real `miniautoml serve`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from miniautoml.errors import UserInputError
from miniautoml.serving import auth
from miniautoml.serving.server import bentoml_io, middleware
from miniautoml.serving.client.launch import exposure_warning, server_launch
from miniautoml.serving.options import ServingOptions

# --------------------------------------------------------------------------------------------
# Fast: the keys file, the middleware, the launch
# --------------------------------------------------------------------------------------------


def test_keys_file_skips_blank_lines_and_comments() -> None:
    assert auth.parse_keys("# admin keys\n\n  key-one  \nkey-two\n   # old\n") == (b"key-one", b"key-two")


@pytest.mark.parametrize("content", [None, "", "# only a comment\n\n"])
def test_a_missing_or_empty_keys_file_is_a_one_line_error(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "keys"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserInputError) as caught:
        auth.ApiKeys(str(path))
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert "--api-keys-file" in str(caught.value)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_keys_are_reread_when_the_file_changes_at_most_once_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("alpha\n")
    clock = Clock()
    keys = auth.ApiKeys(str(path), check_seconds=1.0, clock=clock)
    assert keys.allows(b"Bearer alpha") and not keys.allows(b"Bearer beta")
    path.write_text("alpha\nbeta\n")
    clock.now += 0.5
    assert not keys.allows(b"Bearer beta")  # not checked again within the interval
    clock.now += 0.6
    assert keys.allows(b"Bearer beta") and keys.allows("Bearer alpha")
    path.write_text("beta\n")
    clock.now += 1.1
    assert not keys.allows(b"Bearer alpha") and keys.allows(b"bearer beta")
    path.unlink()  # gone: nobody gets in until it is back
    clock.now += 1.1
    assert not keys.allows(b"Bearer beta")
    path.write_text("gamma\n")
    clock.now += 1.1
    assert keys.allows(b"Bearer gamma")


@pytest.mark.parametrize(
    "header", [None, b"", b"alpha", b"Basic alpha", b"Bearer", b"Bearer ", b"Bearer alph", b"Bearer alphaa"]
)
def test_only_a_bearer_token_equal_to_a_key_is_allowed(tmp_path: Path, header: bytes | None) -> None:
    path = tmp_path / "keys"
    path.write_text("alpha\n")
    assert not auth.ApiKeys(str(path)).allows(header)


def test_keys_are_compared_with_compare_digest_over_every_key(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "keys"
    path.write_text("k1\nk2\nk3\n")
    compared = []
    real = auth.hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: compared.append(b) or real(a, b))
    assert auth.ApiKeys(str(path)).allows(b"Bearer k1")
    assert compared == [b"k1", b"k2", b"k3"]  # no early exit on the match


class FakeApp:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        self.calls.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def call(app, path: str, headers: list[tuple[bytes, bytes]] = (), method: str = "POST") -> tuple[int, dict, bytes]:
    scope = {"type": "http", "method": method, "path": path, "headers": list(headers)}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body


@pytest.fixture
def guarded(tmp_path: Path) -> tuple[middleware.BearerAuth, FakeApp]:
    path = tmp_path / "keys"
    path.write_text("secret-key\n")
    inner = FakeApp()
    return middleware.BearerAuth(inner, keys=auth.ApiKeys(str(path))), inner


@pytest.mark.parametrize("path", ["/predict", "/predict_batch", "/metrics", "/predict/", "/anything"])
@pytest.mark.parametrize("header", [None, b"Bearer wrong", b"secret-key"])
def test_the_middleware_answers_401_without_the_key(guarded, path: str, header: bytes | None) -> None:
    app, inner = guarded
    headers = [] if header is None else [(b"authorization", header)]
    status, response_headers, body = call(app, path, headers)
    assert status == 401
    assert response_headers["www-authenticate"] == "Bearer"
    message = json.loads(body)["error"]
    assert "\n" not in message and "Bearer" in message
    assert inner.calls == []


@pytest.mark.parametrize("path", ["/predict", "/predict_batch", "/metrics"])
def test_the_middleware_passes_requests_with_a_key(guarded, path: str) -> None:
    app, inner = guarded
    assert call(app, path, [(b"authorization", b"Bearer secret-key")])[0] == 200
    assert inner.calls == [path]


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/docs.json"])
def test_probes_and_the_document_stay_open(guarded, path: str) -> None:
    app, inner = guarded
    assert call(app, path, method="GET")[0] == 200
    assert inner.calls == [path]


def test_lifespan_passes_through(guarded) -> None:
    app, inner = guarded
    seen = []

    async def fake(scope, receive, send):
        seen.append(scope["type"])

    app.app = fake
    asyncio.run(app({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"]


@pytest.mark.parametrize(
    "host, loopback",
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True), ("127.0.0.2", True),
     ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("example.org", False)],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert auth.is_loopback(host) is loopback


def test_a_non_loopback_host_without_keys_warns_naming_the_flag() -> None:
    warning = exposure_warning("0.0.0.0", {})
    assert warning is not None and "--api-keys-file" in warning and "\n" not in warning
    assert exposure_warning("0.0.0.0", {"MINIAUTOML_API_KEYS_FILE": "/k"}) is None
    assert exposure_warning("127.0.0.1", {}) is None


def test_up_on_all_interfaces_without_keys_warns_naming_the_variable(tmp_path: Path) -> None:
    """`miniautoml up --host 0.0.0.0`: the stack's prediction service has no keys flag of its own."""
    import socket

    from test_stack import records, stack_cli

    with socket.socket() as busy:  # the service's port taken: `up` stops right after its warnings
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = stack_cli(tmp_path / "ws", "up", "--host", "0.0.0.0", "--serve-port", str(port),
                           "--mlflow-port", str(free_port()), env={"MINIAUTOML_API_KEYS_FILE": ""})  # fmt: skip
    assert result.returncode == 2 and "already in use" in result.error_line, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "prediction service" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ")
    assert "0.0.0.0" in warnings[0] and "MINIAUTOML_API_KEYS_FILE" in warnings[0]
    assert records(tmp_path / "ws") == {}


def test_launch_turns_registered_only_on_for_non_loopback_hosts(tmp_path: Path, monkeypatch) -> None:
    from miniautoml.config import load_settings

    monkeypatch.delenv("MINIAUTOML_REGISTERED_ONLY", raising=False)
    monkeypatch.delenv("MINIAUTOML_API_KEYS_FILE", raising=False)
    settings = load_settings(tmp_path)
    assert server_launch(settings, host="127.0.0.1").env["MINIAUTOML_REGISTERED_ONLY"] == "0"
    assert server_launch(settings, host="0.0.0.0").env["MINIAUTOML_REGISTERED_ONLY"] == "1"
    assert server_launch(settings, host="0.0.0.0", registered_only=False).env["MINIAUTOML_REGISTERED_ONLY"] == "0"
    assert server_launch(settings, registered_only=True).env["MINIAUTOML_REGISTERED_ONLY"] == "1"
    monkeypatch.setenv("MINIAUTOML_REGISTERED_ONLY", "1")
    assert server_launch(settings).env["MINIAUTOML_REGISTERED_ONLY"] == "1"
    assert ServingOptions.from_env({"MINIAUTOML_REGISTERED_ONLY": "1"}).registered_only


def test_launch_checks_the_keys_file_and_passes_it_absolute(tmp_path: Path, monkeypatch) -> None:
    from miniautoml.config import load_settings

    monkeypatch.delenv("MINIAUTOML_API_KEYS_FILE", raising=False)
    settings = load_settings(tmp_path)
    with pytest.raises(UserInputError, match="cannot read"):
        server_launch(settings, api_keys_file=str(tmp_path / "missing"))
    (tmp_path / "keys").write_text("k\n")
    monkeypatch.chdir(tmp_path)
    launch = server_launch(settings, api_keys_file="keys")
    assert launch.env["MINIAUTOML_API_KEYS_FILE"] == str(tmp_path / "keys")


def test_the_openapi_document_declares_bearer_security_only_with_keys() -> None:
    def spec() -> dict:
        route = {"post": {"requestBody": {}, "responses": {}}}
        return {"paths": {"/predict": route, "/predict_batch": json.loads(json.dumps(route))}}

    plain = bentoml_io.complete_openapi(spec())
    assert "securitySchemes" not in plain["components"] and 401 not in plain["paths"]["/predict"]["post"]["responses"]
    secured = bentoml_io.complete_openapi(spec(), api_keys=True, registered_only=True)
    assert secured["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": secured["components"]["securitySchemes"]["bearerAuth"]["description"]
    }
    for route in ("/predict", "/predict_batch"):
        post = secured["paths"][route]["post"]
        assert post["security"] == [{"bearerAuth": []}]
        assert {401, 403} <= set(post["responses"])


# --------------------------------------------------------------------------------------------
# Slow: through a real `miniautoml serve` (bentoml serve)
# --------------------------------------------------------------------------------------------

from conftest import wait_until  # noqa: E402
from serving_support import BIN, TEXTS, Server, TrainedModels, clean_env, free_port, start_server, trained_models  # noqa: E402

KEY = "test-key-0123456789"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> TrainedModels:
    return trained_models(tmp_path_factory.getbasetemp() / "serving-models")


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "api-keys"
    path.write_text(f"# prediction clients\n{KEY}\n")
    return path


@pytest.fixture(scope="module")
def secured(models: TrainedModels, keys_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Server:
    port = free_port()
    argv = [str(BIN / "miniautoml"), "-w", str(models.workspace), "serve", "--port", str(port),
            "--api-keys-file", str(keys_file), "--registered-only"]
    srv = start_server(argv, clean_env(), tmp_path_factory.mktemp("serve-auth") / "server.log", port=port)
    yield srv
    srv.stop()


def request(server: Server, path: str, body: dict | None = None, key: str | None = None) -> tuple[int, dict, str]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data, method="GET" if body is None else "POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def calls(models: TrainedModels) -> list[tuple[str, dict | None]]:
    alias = f"{models.name}@champion"
    return [
        ("/predict", {"model_id": alias, "document": TEXTS[0]}),
        ("/predict_batch", {"model_id": alias, "documents": TEXTS[:2]}),
        ("/metrics", None),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_protected_routes_answer_401_without_the_key(secured: Server, models: TrainedModels, key: str | None) -> None:
    for path, body in calls(models):
        status, headers, text = request(secured, path, body, key)
        assert status == 401, (path, status, text)
        assert headers.get("www-authenticate") == "Bearer" or headers.get("WWW-Authenticate") == "Bearer"
        assert "\n" not in text.strip() and "Bearer" in json.loads(text)["error"]


@pytest.mark.slow
def test_protected_routes_answer_200_with_the_key_and_probes_stay_open(secured: Server, models: TrainedModels) -> None:
    for path, body in calls(models):
        status, _, text = request(secured, path, body, KEY)
        assert status == 200, (path, status, text)
    assert request(secured, "/livez")[0] == 200
    assert request(secured, "/readyz")[0] == 200


@pytest.mark.slow
def test_a_key_added_to_the_file_is_accepted_without_restart(secured: Server, models: TrainedModels, keys_file: Path) -> None:
    path, body = calls(models)[0]
    assert request(secured, path, body, "added-later")[0] == 401
    keys_file.write_text(keys_file.read_text() + "added-later\n")
    wait_until(lambda: request(secured, path, body, "added-later")[0] == 200, 10, "the added key accepted")
    assert request(secured, path, body, KEY)[0] == 200


@pytest.mark.slow
def test_registered_only_refuses_an_unregistered_run_with_403(secured: Server, models: TrainedModels) -> None:
    status, _, text = request(secured, "/predict", {"model_id": models.run_unregistered, "document": TEXTS[0]}, KEY)
    assert status == 403, text
    message = json.loads(text)["error"]
    assert message == (
        f"run {models.run_unregistered} is not a registered model version; "
        "this service serves registered models only (--registered-only)"
    )
    status, _, text = request(secured, "/predict", {"model_id": models.run_v2, "document": TEXTS[0]}, KEY)
    assert status == 200 and json.loads(text)["model_version"] == 2
    status, _, text = request(secured, "/predict", {"model_id": f"{models.name}/2", "document": TEXTS[0]}, KEY)
    assert status == 200
    status, _, text = request(secured, "/predict", {"model_id": f"{models.name}@champion", "document": TEXTS[0]}, KEY)
    assert status == 200 and json.loads(text)["model_version"] == 1


@pytest.mark.slow
def test_serving_on_all_interfaces_without_keys_warns_naming_the_flag(models: TrainedModels) -> None:
    # --port 0 fails right after the warning: no server is left running
    argv = [str(BIN / "miniautoml"), "-w", str(models.workspace), "serve", "--host", "0.0.0.0", "--port", "0"]
    proc = subprocess.run(argv, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "--api-keys-file" in proc.stderr and "0.0.0.0" in proc.stderr


@pytest.mark.slow
def test_a_missing_keys_file_stops_the_start_in_one_line(models: TrainedModels, tmp_path: Path) -> None:
    argv = [str(BIN / "miniautoml"), "-w", str(models.workspace), "serve", "--port", str(free_port())]
    env = clean_env(MINIAUTOML_API_KEYS_FILE=str(tmp_path / "no-such-file"))
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: API keys file")

"""The deployment configs parse for their tools and are wired together: docker-compose.yml,
docs/deploy/ (MLflow Projects' kubernetes backend, MinIO distributed mode, bentos behind a load
balancer). There is no Docker engine or cluster here: structure is checked with PyYAML, MLflow's
own parsers and, where installed, `nginx -t`."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from conftest import REPO

DEPLOY = REPO / "docs" / "deploy"
VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<default>[^}]*))?\}")
# MLflow's own placeholders in a kubernetes job template (docs: "Kubernetes Execution").
PROJECT_NAME = "{replaced with MLflow Project name}"
IMAGE_URI = "{replaced with URI of Docker image created during Project execution}"
ENTRY_COMMAND = "{replaced with MLflow Project entry point command}"
# Secrets compose must refuse to start without (`${VAR:?message}`): no default ships for them.
REQUIRED = {"MLFLOW_TRACKING_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"}


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `$$` rules; a stray `$` is an error, as in compose."""
    env = env or {}

    def sub(match: re.Match) -> str:
        name, op, default = match["name"], match["op"], match["default"]
        if name in env and (env[name] or not (op or "").startswith(":")):
            return env[name]
        if op == ":?":
            assert name in REQUIRED, f"{match[0]}: only the secrets in REQUIRED may be required"
            return f"<{name}>"
        assert op in ("-", ":-"), f"{match[0]}: needs a default for a dev setup"
        return default

    out = VAR.sub(sub, value.replace("$$", "\0"))
    assert "$" not in out, f"unsupported interpolation in {value!r}"
    return out.replace("\0", "$")


def walk_strings(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk_strings(key)
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)
    elif isinstance(node, str):
        yield node


# --------------------------------------------------------------------------- docker-compose.yml


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(REPO / "docker-compose.yml")


def test_compose_has_the_stack_services(compose):
    assert set(compose["services"]) == {"minio", "minio-init", "postgres", "mlflow", "prediction", "lb"}
    for string in walk_strings(compose):
        interpolate(string)  # every ${...} is well-formed and has a dev default


def test_compose_publishes_ports_on_loopback_by_default(compose):
    def published(service: str) -> dict[int, tuple[str, int]]:
        out = {}
        for spec in compose["services"][service].get("ports", []):
            host_ip, host_port, container = interpolate(spec).split(":")
            out[int(container)] = (host_ip, int(host_port))
        return out

    assert published("minio") == {9000: ("127.0.0.1", 9000), 9001: ("127.0.0.1", 9001)}
    assert published("mlflow") == {5000: ("127.0.0.1", 5000)}
    assert published("prediction") == {}  # replicas behind `lb`: `--scale prediction=3` clashes on nothing
    assert published("lb") == {8080: ("127.0.0.1", 3000)}
    assert published("postgres") == {}  # reached by MLflow only


def test_compose_startup_order_waits_on_health(compose):
    services = compose["services"]
    for name, service in services.items():
        for dep in service.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"
    assert services["minio-init"]["depends_on"] == {"minio": {"condition": "service_healthy"}}
    assert services["mlflow"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "minio-init": {"condition": "service_completed_successfully"},
    }
    assert "depends_on" not in services["prediction"]  # the bento serves its own model: no MLflow needed
    checks = {name: " ".join(s["healthcheck"]["test"]) for name, s in services.items() if "healthcheck" in s}
    assert set(checks) == {"minio", "postgres", "mlflow", "prediction", "lb"}
    assert "http://127.0.0.1:8080/healthz" in checks["lb"]
    assert "mc ready local" in checks["minio"]
    assert "pg_isready" in checks["postgres"]
    assert "http://localhost:5000/health" in checks["mlflow"]
    assert "http://localhost:3000/readyz" in checks["prediction"]


def test_compose_bucket_init_creates_the_configured_bucket(compose):
    init = compose["services"]["minio-init"]
    script = interpolate(" ".join(init["entrypoint"]))
    assert "mc alias set local http://minio:9000" in script
    assert 'mc mb --ignore-existing "local/$MINIAUTOML_S3_BUCKET"' in script
    assert interpolate(init["environment"]["MINIAUTOML_S3_BUCKET"]) == "miniautoml"
    assert init["restart"] == "no"


def test_compose_mlflow_uses_postgres_and_minio(compose):
    mlflow = compose["services"]["mlflow"]
    env = {k: interpolate(str(v)) for k, v in mlflow["environment"].items()}
    pg = {k: interpolate(v) for k, v in compose["services"]["postgres"]["environment"].items()}
    assert env["MLFLOW_BACKEND_STORE_URI"] == (
        f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}"
    )
    assert env["MLFLOW_ARTIFACTS_DESTINATION"] == "s3://miniautoml/mlflow"
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    minio = {k: interpolate(v) for k, v in compose["services"]["minio"]["environment"].items()}
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])  # fmt: skip
    assert "mlflow" in env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")  # containers call it by name
    argv = shlex.split(interpolate(mlflow["command"][-1]))
    assert argv[:3] == ["exec", "mlflow", "server"]
    assert argv[-1] == "--serve-artifacts"
    opts = {argv[i]: argv[i + 1] for i in range(3, len(argv) - 1, 2)}
    assert opts["--port"] == "5000" and opts["--host"] == "0.0.0.0"
    assert opts["--app-name"] == "basic-auth"  # logins, as `miniautoml up --auth`
    assert "--backend-store-uri" not in opts  # read from MLFLOW_BACKEND_STORE_URI
    assert opts["--artifacts-destination"] == "$MLFLOW_ARTIFACTS_DESTINATION"
    build = mlflow["build"]
    dockerfile = REPO / build["context"] / build["dockerfile"]
    text = dockerfile.read_text()
    assert "psycopg[binary]" in text and "boto3" in text  # drivers: psycopg 3 for `postgresql://`, S3
    pin = re.search(r'"mlflow(?:\[[^]]*\])?>=(\d+\.\d+),<', (REPO / "pyproject.toml").read_text())
    assert interpolate(build["args"]["MLFLOW_VERSION"]).startswith(pin[1] + ".")  # the project's MLflow


def test_compose_prediction_runs_the_containerized_bento(compose):
    prediction = compose["services"]["prediction"]
    assert prediction["image"] == "${MINIAUTOML_BENTO_IMAGE:-miniautoml-prediction:0.1.0}"
    assert interpolate(prediction["image"], {"MINIAUTOML_BENTO_IMAGE": "reg/x:1"}) == "reg/x:1"
    env = {k: interpolate(str(v)) for k, v in prediction["environment"].items()}
    # Nothing it does not use: no S3 keys, no tracking server (the model is inside the bento).
    assert not [k for k in env if k.startswith(("AWS_", "MLFLOW_", "MINIO_"))]


def test_compose_header_builds_the_bento_with_miniautoml():
    header = [ln for ln in (REPO / "docker-compose.yml").read_text().splitlines() if ln.startswith("#")]
    commands = [ln.lstrip("# ") for ln in header]
    assert any(c.startswith("miniautoml bento build ") for c in commands)
    assert any(c.startswith("BENTOML_HOME=") and "bentoml containerize" in c for c in commands)
    assert not any(c.startswith("bentoml build") for c in commands)


def test_compose_mlflow_store_password_stays_off_the_command_line(compose):
    mlflow = compose["services"]["mlflow"]
    command = interpolate(" ".join(mlflow["command"]))
    assert "--backend-store-uri" not in command and "POSTGRES_PASSWORD" not in command
    assert "@postgres" not in command  # no user:password@ on the command line
    assert "MLFLOW_BACKEND_STORE_URI" in mlflow["environment"]  # `mlflow server` reads it from there


def test_compose_volumes_are_declared(compose):
    declared = set(compose.get("volumes", {}))
    for service in compose["services"].values():
        for spec in service.get("volumes", []):
            source = spec.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared


# --------------------------------------------------------------------------- MLflow on Kubernetes


def test_kubernetes_backend_config_has_mlflows_keys():
    config = json.loads((DEPLOY / "kubernetes_config.json").read_text())
    assert set(config) == {"kube-context", "kube-job-template-path", "repository-uri"}
    assert (REPO / config["kube-job-template-path"]).is_file()  # relative to the repo root, where mlflow runs
    assert config["repository-uri"] and config["kube-context"]


def test_mlflow_parses_the_kubernetes_backend_config(monkeypatch: pytest.MonkeyPatch):
    from mlflow.projects import _parse_kubernetes_config

    monkeypatch.chdir(REPO)
    config = _parse_kubernetes_config(json.loads((DEPLOY / "kubernetes_config.json").read_text()))
    assert config["kube-job-template"]["kind"] == "Job"


def test_job_template_is_a_batch_job_with_mlflows_placeholders():
    job = load_yaml(DEPLOY / "kubernetes_job_template.yaml")
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["metadata"]["name"] == PROJECT_NAME
    assert job["metadata"]["namespace"]  # MLflow submits the job into this namespace
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] in ("Never", "OnFailure")
    first = spec["containers"][0]
    assert first["name"] == PROJECT_NAME
    assert first["image"] == IMAGE_URI
    assert first["command"] == [ENTRY_COMMAND]
    env = {e["name"]: e for e in first["env"]}
    assert {"MINIAUTOML_WORKSPACE", "MINIAUTOML_S3_ENDPOINT", "MLFLOW_S3_ENDPOINT_URL"} <= set(env)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "secretKeyRef" in env[key]["valueFrom"]  # keys from a Secret, never inline
    mounts = {m["name"] for c in [*spec["initContainers"], first] for m in c["volumeMounts"]}
    assert mounts == {v["name"] for v in spec["volumes"]}


@pytest.fixture
def mlflow_kubernetes_module(monkeypatch: pytest.MonkeyPatch):
    """mlflow.projects.kubernetes, loaded with stand-ins for the docker and kubernetes clients it
    imports at module level (the template functions use neither); unloaded again afterwards."""
    import mlflow.projects

    kube = types.ModuleType("kubernetes")
    kube.config = types.ModuleType("kubernetes.config")
    exc = types.ModuleType("kubernetes.config.config_exception")
    exc.ConfigException = type("ConfigException", (Exception,), {})
    for name, module in {"docker": types.ModuleType("docker"), "kubernetes": kube,
                         "kubernetes.config": kube.config, "kubernetes.config.config_exception": exc}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delenv("KUBE_MLFLOW_TRACKING_URI", raising=False)
    saved = sys.modules.pop("mlflow.projects.kubernetes", None)
    try:
        import mlflow.projects.kubernetes as module

        yield module
    finally:
        sys.modules.pop("mlflow.projects.kubernetes", None)
        if hasattr(mlflow.projects, "kubernetes"):
            delattr(mlflow.projects, "kubernetes")
        if saved is not None:
            sys.modules["mlflow.projects.kubernetes"] = saved
            mlflow.projects.kubernetes = saved


def test_mlflow_fills_in_the_job_template(mlflow_kubernetes_module):
    kb = mlflow_kubernetes_module
    command = kb._get_run_command(["python -m training_code.train dataset_id=1 version_hash=hashAg=="])
    job = kb._get_kubernetes_job_definition(
        "miniautoml", "registry.example.com/miniautoml/training:abc", "sha256:0123", command,
        {"MLFLOW_RUN_ID": "r1", "MLFLOW_TRACKING_URI": "http://mlflow:5000"},
        load_yaml(DEPLOY / "kubernetes_job_template.yaml"),
    )  # fmt: skip
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert job["metadata"]["name"].startswith("miniautoml-")
    assert container["image"] == "registry.example.com/miniautoml/training:abc@sha256:0123"
    assert container["command"][:3] == ["python", "-m", "training_code.train"]
    names = [e["name"] for e in container["env"]]
    assert "MINIAUTOML_WORKSPACE" in names and names[-2:] == ["MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI"]


def test_kubernetes_project_mirrors_the_training_entry_point():
    from mlflow.projects._project_spec import load_project

    k8s = load_project(str(DEPLOY / "k8s-project"))
    main = load_project(str(REPO))
    assert k8s.docker_env.get("image")  # the kubernetes backend builds FROM this base image
    k8s_train, main_train = k8s.get_entry_point("train"), main.get_entry_point("train")
    assert {n: (p.type, p.default) for n, p in k8s_train.parameters.items()} == {
        n: (p.type, p.default) for n, p in main_train.parameters.items()
    }
    k8s_cmd, main_cmd = k8s_train.command.split(), main_train.command.split()
    assert k8s_cmd[0] == "python"  # run without a shell: no ${...} expansion
    assert k8s_cmd[1:] == main_cmd[1:]


def test_training_image_copies_what_exists():
    text = (DEPLOY / "training.Dockerfile").read_text()
    for source in re.findall(r"^COPY (.+?) \S+$", text, flags=re.M):
        for item in source.split():
            assert (REPO / item).exists(), f"training.Dockerfile copies missing {item}"
    assert "torch==2.13.0" in text  # the project's pin, CPU build


# --------------------------------------------------------------------------- scale-out configs


def test_minio_distributed_compose_runs_four_nodes_behind_nginx():
    doc = load_yaml(DEPLOY / "minio-distributed.compose.yml")
    nodes = {n: s for n, s in doc["services"].items() if n.startswith("minio")}
    assert sorted(nodes) == ["minio1", "minio2", "minio3", "minio4"]
    for name, node in nodes.items():
        assert "http://minio{1...4}/data{1...2}" in node["command"]
        assert node["hostname"] == name
        assert sorted(v.split(":")[1] for v in node["volumes"]) == ["/data1", "/data2"]
        assert node["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]
        for volume in node["volumes"]:
            assert volume.split(":")[0] in doc["volumes"]
    lb = doc["services"]["lb"]
    assert set(lb["depends_on"]) == set(nodes)
    conf = lb["volumes"][0].split(":")[0]
    assert (DEPLOY / conf).is_file()
    for string in walk_strings(doc):
        interpolate(string)


def test_prediction_on_kubernetes_is_a_deployment_behind_a_service():
    docs = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "prediction-k8s.yaml").read_text())}
    assert set(docs) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    deploy, service, hpa = docs["Deployment"], docs["Service"], docs["HorizontalPodAutoscaler"]
    assert deploy["apiVersion"] == "apps/v1" and service["apiVersion"] == "v1"
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert deploy["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 3000}
    assert service["spec"]["ports"][0]["targetPort"] in ports
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert hpa["spec"]["scaleTargetRef"]["name"] == deploy["metadata"]["name"]
    assert len({d["metadata"]["namespace"] for d in docs.values()}) == 1


def parse_nginx(text: str) -> list:
    """nginx config -> [(directive, [args], block | None)]; raises on unbalanced braces or a missing `;`."""
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[{};]|[^\s{};]+', re.sub(r"#[^\n]*", "", text))
    stack: list[list] = [[]]
    words: list[str] = []
    for tok in tokens:
        if tok == ";":
            assert words, "empty statement"
            stack[-1].append((words[0], words[1:], None))
            words = []
        elif tok == "{":
            assert words, "block without a directive"
            block: list = []
            stack[-1].append((words[0], words[1:], block))
            stack.append(block)
            words = []
        elif tok == "}":
            assert not words, f"missing ';' after {words}"
            stack.pop()
            assert stack, "unbalanced '}'"
        else:
            words.append(tok)
    assert not words and len(stack) == 1, "unterminated statement or block"
    return stack[0]


def find(tree: list, name: str) -> list:
    out = []
    for directive, args, block in tree:
        if directive == name:
            out.append((args, block))
        if block:
            out += find(block, name)
    return out


def test_prediction_pods_get_no_s3_keys_or_tracking_uri():
    docs = [d for d in yaml.safe_load_all((DEPLOY / "prediction-k8s.yaml").read_text()) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        names = [e["name"] for e in container.get("env", [])]
        assert not [n for n in names if n.startswith(("AWS_", "MLFLOW_", "MINIO_"))]


@pytest.mark.parametrize("conf", ["nginx-prediction.conf", "nginx-minio.conf"])
def test_nginx_configs_balance_to_defined_upstreams(conf: str):
    tree = parse_nginx((DEPLOY / conf).read_text())
    upstreams = {args[0]: block for args, block in find(tree, "upstream")}
    assert upstreams and all(find(block, "server") for block in upstreams.values())
    targets = {args[0].removeprefix("http://") for args, _ in find(tree, "proxy_pass")}
    assert targets and targets <= set(upstreams)
    assert find(tree, "listen")


@pytest.mark.parametrize("conf", ["nginx-prediction.conf", "nginx-minio.conf"])
def test_nginx_accepts_the_configs(conf: str, tmp_path: Path):
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    assert nginx, "nginx is not installed (.ci/setup installs Debian's nginx-light)"
    # Upstream hosts are compose service names; point them at the loopback so `nginx -t` resolves.
    text = re.sub(r"server (prediction|minio\d):", "server 127.0.0.1:", (DEPLOY / conf).read_text())
    (tmp_path / "logs").mkdir()
    path = tmp_path / conf
    path.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n{text}")
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------- issue 12: deploy files that work


def images() -> dict[str, str]:
    """Every image a deploy file names (compose defaults interpolated), by where it is."""
    found: dict[str, str] = {}
    for path in [REPO / "docker-compose.yml", *DEPLOY.glob("*.yml"), *DEPLOY.glob("*.yaml"), *DEPLOY.glob("*/MLproject")]:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            for i, (key, value) in enumerate(_items(doc)):
                if key == "image" and isinstance(value, str) and value != IMAGE_URI:
                    found[f"{path.name}#{i}"] = interpolate(value)
    for path in DEPLOY.glob("*Dockerfile"):
        for line in path.read_text().splitlines():
            if line.startswith("FROM "):
                found[path.name] = line.split()[1]
    return found


def _items(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _items(value)
    elif isinstance(node, list):
        for item in node:
            yield from _items(item)


def test_every_image_is_pinned():
    found = images()
    assert len(found) >= 8, found
    for where, image in found.items():
        name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        assert tag and tag != "latest", f"{where}: {image} is not pinned to a tag"


def test_locally_built_images_are_never_pulled(compose):
    services = compose["services"]
    assert services["mlflow"]["pull_policy"] == "build" and "build" in services["mlflow"]
    assert services["prediction"]["pull_policy"] == "never"  # made by `bentoml containerize`
    for name, service in services.items():
        if name not in ("mlflow", "prediction"):
            assert "pull_policy" not in service and "build" not in service, name


def test_compose_lb_balances_the_prediction_replicas(compose):
    lb, prediction = compose["services"]["lb"], compose["services"]["prediction"]
    assert lb["depends_on"] == {"prediction": {"condition": "service_healthy"}}
    source, target = lb["volumes"][0].split(":")[:2]
    assert (REPO / source).resolve() == (DEPLOY / "nginx-prediction.conf").resolve()
    assert target == "/etc/nginx/nginx.conf"
    tree = parse_nginx((DEPLOY / "nginx-prediction.conf").read_text())
    servers = [args[0] for args, _ in find(tree, "server") if args]
    assert "prediction:3000" in servers and [str(p) for p in prediction["expose"]] == ["3000"]
    assert [args for args, _ in find(tree, "listen")] == [["8080"]]
    assert "ports" not in prediction


def test_nginx_retries_predictions_on_another_replica():
    text = (DEPLOY / "nginx-prediction.conf").read_text()
    (args, _), = find(parse_nginx(text), "proxy_next_upstream")
    assert {"error", "timeout", "http_502", "http_503", "non_idempotent"} <= set(args)
    assert re.search(r"#.*idempotent|#.*harmless", text)  # says why retrying a POST is safe


def test_compose_services_get_only_the_env_they_use(compose):
    services = compose["services"]

    def env(name: str) -> dict[str, str]:
        return {k: interpolate(str(v)) for k, v in (services[name].get("environment") or {}).items()}

    prediction = env("prediction")
    assert not [k for k in prediction if k.startswith(("AWS_", "MLFLOW_", "MINIO_", "POSTGRES_"))]
    assert prediction["MINIAUTOML_API_KEYS_FILE"] == "/run/secrets/prediction-api-keys"
    assert services["prediction"]["secrets"] == ["prediction-api-keys"]
    assert "prediction-api-keys" in compose["secrets"]
    mlflow = env("mlflow")
    assert mlflow["MLFLOW_AUTH_ADMIN_PASSWORD"] == "<MLFLOW_TRACKING_PASSWORD>"  # required, no default
    assert mlflow["MLFLOW_FLASK_SERVER_SECRET_KEY"] == "<MLFLOW_FLASK_SERVER_SECRET_KEY>"
    assert mlflow["MLFLOW_AUTH_ADMIN_USERNAME"] == "admin"
    assert not [k for k in mlflow if k.startswith(("MINIO_", "POSTGRES_"))]  # its own store URI only
    assert not [k for k in env("minio-init") if k.startswith(("AWS_", "MLFLOW_", "POSTGRES_"))]
    assert not [k for k in env("postgres") if k.startswith(("AWS_", "MLFLOW_", "MINIO_"))]
    assert "environment" not in services["lb"]
    # the required secrets are really required: compose fails without them
    for key in REQUIRED:
        assert re.search(r"\$\{" + key + r":\?", (REPO / "docker-compose.yml").read_text()), key


def test_compose_mlflow_auth_config_has_no_password_and_a_volume_db(compose):
    import configparser

    mlflow = compose["services"]["mlflow"]
    mounts = dict(v.split(":")[:2] for v in mlflow["volumes"])
    path = mlflow["environment"]["MLFLOW_AUTH_CONFIG_PATH"]
    source = next(src for src, dst in mounts.items() if dst == path)
    config = configparser.ConfigParser()
    config.read(REPO / source)
    section = config["mlflow"]
    assert "admin_password" not in section and "admin_username" not in section  # from the environment
    assert section["default_permission"] in ("READ", "NO_PERMISSIONS")
    db = section["database_uri"]
    assert db.startswith("sqlite:////")
    volume_dir = next(dst for src, dst in mounts.items() if src in compose["volumes"])
    assert db[len("sqlite:///"):].startswith(volume_dir + "/")  # survives a container restart
    assert "mlflow[auth]" in (DEPLOY / "mlflow.Dockerfile").read_text()  # Flask-WTF for basic-auth


def test_kubernetes_secret_is_mounted_by_the_prediction_deployment():
    secret = load_yaml(DEPLOY / "prediction-secret.yaml")
    assert secret["kind"] == "Secret" and secret["apiVersion"] == "v1"
    docs = [d for d in yaml.safe_load_all((DEPLOY / "prediction-k8s.yaml").read_text()) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert secret["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    pod = deployment["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == secret["metadata"]["name"])
    container = pod["containers"][0]
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    key = next(iter(secret["stringData"]))
    assert env["MINIAUTOML_API_KEYS_FILE"] == f"{mount['mountPath']}/{key}"
    assert mount["readOnly"] is True


def test_minio_is_one_pinned_release_that_minio_image_replaces():
    """MinIO's community images are no longer updated: every compose file runs the same vetted
    release (one to watch), and MINIO_IMAGE swaps it for another image without editing the files."""
    defaults = {
        path.name: re.findall(r"image: \$\{MINIO_IMAGE:-([^}]+)\}", path.read_text())
        for path in (REPO / "docker-compose.yml", DEPLOY / "minio-distributed.compose.yml")
    }
    assert all(len(found) == 1 for found in defaults.values()), defaults
    [release] = {found[0] for found in defaults.values()}
    assert re.fullmatch(r"quay\.io/minio/minio:RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z", release), release

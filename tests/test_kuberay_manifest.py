"""docs/deploy/kuberay-cluster.yaml: a KubeRay RayCluster that parses, pins its images, keeps
secrets in a Secret and agrees with itself and the docs on ports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "docs" / "deploy" / "kuberay-cluster.yaml"
SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|TOKEN", re.IGNORECASE)


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return [d for d in yaml.safe_load_all(MANIFEST.read_text(encoding="utf-8")) if d]


@pytest.fixture(scope="module")
def cluster(docs) -> dict:
    return next(d for d in docs if d["kind"] == "RayCluster")


def _pod_specs(cluster: dict) -> list[dict]:
    spec = cluster["spec"]
    return [spec["headGroupSpec"]["template"]["spec"], *(g["template"]["spec"] for g in spec["workerGroupSpecs"])]


def _containers(cluster: dict) -> list[dict]:
    return [c for pod in _pod_specs(cluster) for c in pod["containers"]]


def test_kinds_are_kuberay_v1(docs):
    assert docs and all(d["apiVersion"] == "ray.io/v1" for d in docs)
    assert {d["kind"] for d in docs} <= {"RayCluster", "RayJob"} and "RayCluster" in {d["kind"] for d in docs}


def test_head_and_a_worker_group(cluster):
    spec = cluster["spec"]
    assert spec["headGroupSpec"]["template"]["spec"]["containers"]
    groups = spec["workerGroupSpecs"]
    assert groups and all(g["minReplicas"] <= g["replicas"] <= g["maxReplicas"] for g in groups)


def test_images_are_pinned_and_match_the_ray_version(cluster):
    images = [c["image"] for c in _containers(cluster)]
    assert all(":" in i.rsplit("/", 1)[-1] and not i.endswith(":latest") for i in images), images
    assert len(set(images)) == 1  # head and workers run the same code
    assert cluster["spec"]["rayVersion"] == "2.60.0"
    assert "rayproject/ray:2.60.0-py311" in MANIFEST.read_text(encoding="utf-8")  # what the image is built from


def test_no_inline_secrets(docs, cluster):
    assert all(d["kind"] != "Secret" for d in docs)
    for container in _containers(cluster):
        for var in container.get("env", []):
            assert not (SECRET_NAME.search(var["name"]) and "value" in var), var
        assert {"secretRef": {"name": "miniautoml-ray-env"}} in container["envFrom"]


def test_every_container_requests_resources(cluster):
    for container in _containers(cluster):
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), container["name"]


def test_ports_are_consistent(cluster):
    head = cluster["spec"]["headGroupSpec"]
    ports = {p["name"]: p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
    params = head["rayStartParams"]
    assert ports["gcs-server"] == int(params.get("port", 6379))
    assert ports["dashboard"] == int(params.get("dashboard-port", 8265))
    assert params["dashboard-host"] == "0.0.0.0"  # the Jobs API answers beyond the pod
    text = MANIFEST.read_text(encoding="utf-8")
    name = cluster["metadata"]["name"]
    assert f"http://{name}-head-svc.{cluster['metadata']['namespace']}:{ports['dashboard']}" in text
    assert f"MINIAUTOML_RAY_ADDRESS=http://127.0.0.1:{ports['dashboard']}" in text

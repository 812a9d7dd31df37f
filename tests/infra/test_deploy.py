"""The deployment files validate offline with the tools their fields use: hadolint on the
Dockerfile, `kubectl kustomize` + the Kubernetes OpenAPI schemas (kubernetes-validate,
strict) on the rendered manifests, python-hcl2 on the Terraform, plus what each must say
(non-root, the image built here, one namespace, IRSA roles Terraform makes). The tools
come with the `infra` extra (scripts/test installs it) and kubectl with the machine; a
missing tool fails, it is never skipped."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import hcl2
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
K8S = INFRA / "k8s"
TF = INFRA / "terraform"
#: The oldest Kubernetes minor EKS still supports and the newest the schemas know.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
_VERSION = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
assert _VERSION
VERSION = _VERSION.group(1)
IMAGE = "ghcr.io/snapcloud/snapcloud"
UID = 10001


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} is not installed (pip install -e '.[infra]'; kubectl: apt)"
    return found


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=120)


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_passes_hadolint() -> None:
    done = _run(_tool("hadolint"), "--no-color", str(INFRA / "Dockerfile"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_does_fail_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install curl\n")
    done = _run(_tool("hadolint"), "--no-color", str(bad))
    assert done.returncode != 0 and "DL3007" in done.stdout


def test_image_is_cpu_only_non_root_and_built_from_this_checkout() -> None:
    text = (INFRA / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms and all(f.startswith("${PYTHON_IMAGE}") for f in froms)
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.M)
    code = [line for line in text.lower().splitlines() if not line.startswith("#")]
    assert base and base.group(1).startswith("python:") and not [c for c in code if "cuda" in c]
    assert re.findall(r"^USER\s+(\S+)", text, re.M)[-1] == f"{UID}:{UID}"
    assert "COPY snapcloud ./snapcloud" in text and 'pip install --no-cache-dir "."' not in text
    assert re.search(r'pip install --no-cache-dir "\.\$\{SNAPCLOUD_EXTRAS', text)
    assert 'ENTRYPOINT ["snapcloud"]' in text and "NVIDIA_DRIVER_CAPABILITIES=utility" in text
    ignore = (INFRA / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") :][:4] == ["*", "!pyproject.toml", "!README.md", "!snapcloud/"]


# --------------------------------------------------------------------------- Kubernetes


def _kustomize(path: Path) -> list[dict[str, Any]]:
    done = _run(_tool("kubectl"), "kustomize", str(path))
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _with_query_server(tmp_path: Path) -> Path:
    """The example overlay plus the query-server component, as an operator's overlay
    would add it (with its own image tag; paths relative: kustomize refuses absolute)."""
    rel = os.path.relpath(K8S, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {rel}/overlays/example\n"
        f"components:\n  - {rel}/components/query-server\n"
        f"images:\n  - name: {IMAGE}\n    newTag: {VERSION}\n"
    )
    return tmp_path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    return {
        "base": _kustomize(K8S / "base"),
        "example": _kustomize(K8S / "overlays" / "example"),
        "query": _kustomize(_with_query_server(tmp_path_factory.mktemp("overlay"))),
    }


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", ["base", "example", "query"])
def test_rendered_manifests_match_the_kubernetes_schemas(
    rendered: dict[str, list[dict[str, Any]]], name: str, version: str
) -> None:
    for doc in rendered[name]:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_schema_check_does_fail_a_misspelt_field(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    [ds] = [d for d in rendered["base"] if d["kind"] == "DaemonSet"]
    ds["spec"]["template"]["spec"]["hostPid"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, K8S_VERSIONS[0], strict=True)


def _by_kind(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def _pod(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    pod: dict[str, Any] = (spec.get("jobTemplate", {}).get("spec") or spec)["template"]["spec"]
    return pod


def test_one_namespace_the_image_of_this_version_and_non_root_pods(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["query"]
    kinds = _by_kind(docs)
    assert [n["metadata"]["name"] for n in kinds["Namespace"]] == ["snapcloud"]
    assert all(d["metadata"]["namespace"] == "snapcloud" for d in docs if d["kind"] != "Namespace")
    [config] = kinds["ConfigMap"]
    assert config["data"]["SNAPCLOUD_STORE"].startswith("s3://")
    for workload in kinds["DaemonSet"] + kinds["CronJob"] + kinds["Deployment"]:
        pod = _pod(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == UID
        for c in pod["containers"]:
            assert c["image"] == f"{IMAGE}:{VERSION}"
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert c["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
        for c in pod.get("initContainers", []):  # the spool's chown: root, CHOWN only
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
            assert c["command"][0] == "chown" and c["command"][1] == f"{UID}:{UID}"


def test_recorder_daemonset_reads_gpus_without_reserving_them(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    [ds] = _by_kind(rendered["base"])["DaemonSet"]
    pod = _pod(ds)
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["runtimeClassName"] == "nvidia" and pod["hostPID"] and pod["hostNetwork"]
    [container] = pod["containers"]
    assert container["args"][0] == "record" and "--host=$(NODE_NAME)" in container["args"]
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all" and env["NVIDIA_DRIVER_CAPABILITIES"] == "utility"
    [state] = [v for v in pod["volumes"] if v["name"] == "state"]
    assert state["hostPath"]["path"] == "/var/lib/snapcloud"
    [cron] = _by_kind(rendered["base"])["CronJob"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert _pod(cron)["containers"][0]["args"][0] == "compact"


def test_query_server_listens_on_9090_and_is_off_by_default(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    assert "Deployment" not in _by_kind(rendered["base"])
    assert "Deployment" not in _by_kind(rendered["example"])
    kinds = _by_kind(rendered["query"])
    [svc], [dep] = kinds["Service"], kinds["Deployment"]
    assert svc["spec"]["ports"][0]["port"] == 9090
    [c] = _pod(dep)["containers"]
    assert c["args"] == ["serve", "--listen", "0.0.0.0:9090"]
    assert c["ports"] == [{"name": "http", "containerPort": 9090}]


def test_service_accounts_name_the_irsa_roles_terraform_makes(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """One ServiceAccount per component, and the example overlay's role ARNs follow the
    names iam.tf gives its IRSA roles (snapcloud-<component>-<bucket>)."""
    iam = hcl2.load((TF / "iam.tf").open())
    roles = iam["locals"][0]["irsa_roles"]
    assert "snapcloud-${each.key}-${var.bucket}" in str(iam["resource"])
    service_accounts = {
        name.strip('"'): spec["service_account"] for name, spec in _irsa_map(roles).items()
    }
    sas = {
        sa["metadata"]["name"]: sa["metadata"].get("annotations", {})
        for sa in _by_kind(rendered["query"])["ServiceAccount"]
    }
    assert set(sas) == set(service_accounts.values())
    for component, sa in service_accounts.items():
        arn = sas[sa].get("eks.amazonaws.com/role-arn")
        if component == "query":  # the component is not in the example overlay's patches
            continue
        assert arn and arn.endswith(f":role/snapcloud-{component}-my-snapcloud-bucket"), arn
    workloads = _by_kind(rendered["query"])
    used = {
        _pod(w)["serviceAccountName"]
        for k in ("DaemonSet", "CronJob", "Deployment")
        for w in workloads[k]
    }
    assert used == set(sas)


def _irsa_map(expr: Any) -> dict[str, dict[str, str]]:
    """The map literal of ``local.irsa_roles`` (the conditional's false branch)."""
    text = str(expr)
    out = {}
    for name, sa, policy in re.findall(
        r"(\w+)\s*=\s*\{service_account\s*=\s*\"([\w-]+)\",\s*policy\s*=\s*\"([\w-]+)\"\}",
        text,
    ):
        out[name] = {"service_account": sa, "policy": policy}
    assert out, text
    return out


# --------------------------------------------------------------------------- Terraform


def _terraform() -> dict[str, dict[str, Any]]:
    return {p.name: hcl2.load(p.open()) for p in sorted(TF.glob("*.tf"))}


def test_terraform_parses_and_uses_only_declared_variables() -> None:
    files = _terraform()
    assert set(files) >= {"bucket.tf", "iam.tf", "variables.tf", "outputs.tf", "versions.tf"}
    declared = {k.strip('"') for block in files["variables.tf"]["variable"] for k in block}
    used = set()
    for name in files:
        used |= set(re.findall(r"\bvar\.(\w+)", (TF / name).read_text()))
    assert used <= declared, used - declared
    assert {"recorder_role_names", "eks_oidc_provider_arn", "k8s_namespace"} <= declared


def test_every_policy_terraform_names_has_a_template_and_its_variables() -> None:
    iam_text = (TF / "iam.tf").read_text()
    iam = hcl2.load((TF / "iam.tf").open())
    policies = iam["locals"][0]["policies"]
    names = {k.strip('"') for k in policies}
    assert names == {"recorder", "host-writer", "fleet-reader", "compactor"}
    given = set(iam["locals"][0]["policy_vars"])
    for name in names:
        template = (TF / "policies" / f"{name}.json.tpl").read_text()
        wanted = set(re.findall(r"(?<!\$)\$\{(\w+)\}", template))
        assert wanted <= given, (name, wanted - given)
    for policy in _irsa_map(iam["locals"][0]["irsa_roles"]).values():
        assert policy["policy"] in names
    calls = re.findall(r'templatefile\("\$\{path\.module\}/policies/([\w.-]+)"', iam_text)
    bucket_tf = (TF / "bucket.tf").read_text()
    calls += re.findall(r'templatefile\("\$\{path\.module\}/policies/([\w.-]+)"', bucket_tf)
    for call in calls:
        assert call == "${each.key}.json.tpl" or (TF / "policies" / call).exists(), call


def test_terraform_fmt_where_terraform_is_installed() -> None:
    """Terraform is not on PyPI and its AWS provider cannot be fetched offline, so `fmt`
    runs only where a terraform binary is present; python-hcl2 above parses every file."""
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("no terraform binary: HCL checked by python-hcl2 only")
    done = _run(terraform, "fmt", "-check", "-recursive", str(TF))
    assert done.returncode == 0, done.stdout + done.stderr


# --------------------------------------------------------------------------- systemd, compose


def _unit(name: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in (INFRA / "systemd" / name).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def test_systemd_units_and_their_env_examples() -> None:
    rec = _unit("snapcloud-recorder.service")["Service"]
    assert re.match(r"\S*snapcloud record\b", rec["ExecStart"][0])
    assert rec["Restart"] == ["always"] and rec["StateDirectory"] == ["snapcloud"]
    comp = _unit("snapcloud-compact.service")["Service"]
    assert "snapcloud compact" in comp["ExecStart"][0] and comp["Type"] == ["oneshot"]
    assert _unit("snapcloud-compact.timer")["Timer"]["OnCalendar"] == ["hourly"]
    for unit, env in (
        (rec, "recorder.env.example"),
        (comp, "compactor.env.example"),
    ):
        [path] = unit["EnvironmentFile"]
        example = (INFRA / "systemd" / env).read_text()
        assert example.startswith(f"# {path} (mode 0600)")
        settings = dict(
            line.split("=", 1) for line in example.splitlines() if line and line[0] != "#"
        )
        assert settings["SNAPCLOUD_STORE"].startswith("s3://")
    readme = (INFRA / "README.md").read_text()
    for step in (
        "systemctl daemon-reload",
        "systemctl enable --now snapcloud-recorder",
        "systemctl enable --now snapcloud-compact.timer",
        "compactor.env",
    ):
        assert step in readme, step


def test_compose_runs_minio_with_the_lifecycle_rules() -> None:
    compose = yaml.safe_load((INFRA / "compose" / "docker-compose.yml").read_text())
    assert {"minio", "create-bucket"} <= set(compose["services"])

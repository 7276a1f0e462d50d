"""No traceback and no hang for any input (issue 22): odd files, odd output folders, version history, state modes.

Hangs are caught by running `python main.py` with a timeout; everything else runs main() in this process.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from planner import files
from planner.files import read_bounded
from planner.validate import k3s_upgrade_problems, previous_k3s_version, secure_state_folder
from tests.conftest import DESCRIPTION_CONFIG
from tests.helpers import ROOT, assert_refused, main_in_process, rel, seed_outdir, tree

TIMEOUT = 60


def python_main(env: dict[str, str], cwd: Path = ROOT, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    """`python main.py` with a timeout: a hang fails the test instead of stalling the suite."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("HELIX_", "CDKTF_OUTDIR"))}
    full.update(CHECKPOINT_DISABLE="1", DISABLE_VERSION_CHECK="1", **env)
    argv = [*(prefix or []), sys.executable, "-O", str(ROOT / "main.py")]
    return subprocess.run(argv, cwd=cwd, env=full, capture_output=True, text=True, timeout=TIMEOUT, check=False)


def one_line_refusal(proc: subprocess.CompletedProcess, fragment: str, status: int = 2) -> None:
    output = proc.stdout + proc.stderr
    assert proc.returncode == status, output
    assert "Traceback" not in output, output
    assert fragment in proc.stderr, output


# --- files that are not files -----------------------------------------------------------------------------


def test_fifo_config_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "helix.yaml"
    os.mkfifo(fifo)
    proc = python_main({"HELIX_CONFIG": str(fifo), "CDKTF_OUTDIR": str(tmp_path / "out")})
    one_line_refusal(proc, "is a FIFO, not a regular file")
    assert not (tmp_path / "out").exists()


def test_dev_zero_config_is_refused_without_reading_it(tmp_path):
    proc = python_main({"HELIX_CONFIG": "/dev/zero", "CDKTF_OUTDIR": str(tmp_path / "out")})
    one_line_refusal(proc, "/dev/zero: cannot read file: is a device, not a regular file")


def test_fifo_in_the_catalog_does_not_hang(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(ROOT / "config", data, ignore=shutil.ignore_patterns("helix.yaml"))
    os.mkfifo(data / "catalog" / "zz-fifo.yaml")
    proc = python_main(
        {"HELIX_CONFIG": str(DESCRIPTION_CONFIG), "HELIX_DATA_DIR": str(data), "CDKTF_OUTDIR": str(tmp_path / "out")}
    )
    one_line_refusal(proc, "zz-fifo.yaml: cannot read file: is a FIFO")


def test_symlink_loop_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    work = tmp_path / "work"
    work.mkdir()
    run = main_in_process(str(tmp_path / "a.yaml"), work, monkeypatch, capsys)
    assert_refused(run, str(tmp_path / "a.yaml"), "cannot read file: a symbolic link loop")


def test_path_through_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    # Root reads any mode, so an unreadable path is one that can't be opened at all (ENOTDIR).
    run = main_in_process("main.py/helix.yaml", tmp_path, monkeypatch, capsys)
    assert_refused(run, "main.py/helix.yaml", "cannot read file: Not a directory")


def _unprivileged_available() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "--user", "--map-user=1000", "true"], capture_output=True, check=False
    ).returncode == 0


@pytest.mark.skipif(not _unprivileged_available(), reason="needs an unprivileged user namespace")
def test_unreadable_config_is_one_line(tmp_path):
    """Mode 000 stops only a process without CAP_DAC_OVERRIDE: run as a plain user of a user namespace."""
    config = tmp_path / "helix.yaml"
    shutil.copy(DESCRIPTION_CONFIG, config)
    config.chmod(0)
    proc = python_main(
        {"HELIX_CONFIG": str(config), "CDKTF_OUTDIR": str(tmp_path / "out")},
        prefix=["unshare", "--user", "--map-user=1000"],
    )
    one_line_refusal(proc, f"{config}: cannot read file: Permission denied")
    assert not (tmp_path / "out").exists()


def test_reads_are_bounded(tmp_path, monkeypatch):
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)  # sparse: costs no disk
    read = []
    real_read = os.read

    def counting_read(fd, n):
        chunk = real_read(fd, n)
        read.append(len(chunk))
        return chunk

    monkeypatch.setattr(files.os, "read", counting_read)
    with pytest.raises(files.ConfigError, match="larger than"):
        files.read_yaml_mapping(big, "big.yaml")
    assert sum(read) == files.MAX_FILE_BYTES + 1
    assert len(read_bounded(big, 10)) == 11


# --- output folders that can't be written ------------------------------------------------------------------


def _unshare_available() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-rm", "true"], capture_output=True, check=False
    ).returncode == 0


needs_unshare = pytest.mark.skipif(not _unshare_available(), reason="needs unprivileged user and mount namespaces")


@needs_unshare
def test_read_only_output_folder_is_one_line(tmp_path):
    outdir = tmp_path / "ro" / "cdktf.out"
    before = seed_outdir(outdir)
    mount = f"mount --bind {tmp_path / 'ro'} {tmp_path / 'ro'} && mount -o remount,bind,ro {tmp_path / 'ro'} && exec \"$@\""
    proc = python_main(
        {"HELIX_CONFIG": str(DESCRIPTION_CONFIG), "CDKTF_OUTDIR": str(outdir)},
        prefix=["unshare", "-rm", "sh", "-c", mount, "sh"],
    )
    one_line_refusal(proc, "cannot write the output folder", status=1)
    assert "Read-only file system" in proc.stderr
    assert tree(outdir) == before and sorted(os.listdir(outdir.parent)) == ["cdktf.out"]


@pytest.mark.slow
@needs_unshare
def test_full_output_file_system_is_one_line(tmp_path):
    """A 256 KiB tmpfs: the probe fits, the synthesized stacks do not (ENOSPC inside jsii)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    script = (
        f"mount -t tmpfs -o size=256k tmpfs {disk} && mkdir -p {disk}/cdktf.out/stacks/nodes && "
        # A previous output (a bare cdktf one: stacks/outguard.py accepts it as an earlier synth's).
        f"printf '{{\"stacks\": {{}}}}' > {disk}/cdktf.out/manifest.json && \"$@\"; rc=$?; "
        f"find {disk} -printf '%P\\n' | sort > {tmp_path}/after; exit $rc"
    )
    proc = python_main(
        {"HELIX_CONFIG": str(DESCRIPTION_CONFIG), "CDKTF_OUTDIR": str(disk / "cdktf.out")},
        prefix=["unshare", "-rm", "sh", "-c", script, "sh"],
    )
    one_line_refusal(proc, "cannot write the output folder", status=1)
    assert "ENOSPC" in proc.stderr
    # The previous output is all there is: no staging folder left behind.
    assert (tmp_path / "after").read_text().split() == ["cdktf.out", "cdktf.out/manifest.json", "cdktf.out/stacks",
                                                         "cdktf.out/stacks/nodes"]


@pytest.mark.slow
def test_immutable_output_folder_is_one_line(tmp_path):
    outdir = tmp_path / "cdktf.out"
    before = seed_outdir(outdir)
    if subprocess.run(["chattr", "+i", str(outdir)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +i is not permitted here")
    try:
        proc = python_main({"HELIX_CONFIG": str(DESCRIPTION_CONFIG), "CDKTF_OUTDIR": str(outdir)})
    finally:
        subprocess.run(["chattr", "-i", str(outdir)], check=True)
    one_line_refusal(proc, "cannot write the output folder", status=1)
    assert tree(outdir) == before and sorted(os.listdir(tmp_path)) == ["cdktf.out"]


# --- k3s versions ------------------------------------------------------------------------------------------


def _previous_output(outdir: Path, version: str) -> None:
    seed_outdir(outdir)
    record = {"resource": {"terraform_data": {"k3s_join-version_46798283": {"input": version}}}}
    (outdir / "stacks" / "nodes" / "cdk.tf.json").write_text(__import__("json").dumps(record))


@pytest.mark.parametrize(
    "previous, fragment",
    [
        ("v1.36.0+k3s1", "is older than v1.36.0+k3s1, which the previous synth set up: k3s can't be downgraded"),
        ("v1.35.5+k3s2", "is older than v1.35.5+k3s2"),
        ("v1.33.4+k3s1", "skips a minor after v1.33.4+k3s1"),
    ],
)
def test_k3s_downgrade_and_skipped_minor_are_refused(previous, fragment, tmp_path, monkeypatch, capsys):
    """The description config pins v1.35.5+k3s1; the previous output recorded `previous`."""
    from stacks.app import main

    outdir = tmp_path / "cdktf.out"
    _previous_output(outdir, previous)
    before = tree(outdir)
    monkeypatch.setenv("HELIX_CONFIG", rel(DESCRIPTION_CONFIG))
    monkeypatch.setenv("CDKTF_OUTDIR", str(outdir))
    monkeypatch.chdir(ROOT)
    capsys.readouterr()
    assert main() == 2
    err = capsys.readouterr().err
    assert f"error: {rel(DESCRIPTION_CONFIG)}: cluster.k3s_version: v1.35.5+k3s1 {fragment}" in err, err
    assert tree(outdir) == before


def test_k3s_upgrades_one_minor_or_patch_pass():
    from planner.load import load_plan

    cfg = load_plan(DESCRIPTION_CONFIG).config
    for previous in ("v1.34.9+k3s1", "v1.35.1+k3s1", "v1.35.5+k3s1", None):
        assert k3s_upgrade_problems(cfg, previous) == [], previous


def test_previous_version_is_read_from_the_nodes_stack(tmp_path):
    assert previous_k3s_version(tmp_path) is None
    _previous_output(tmp_path, "v1.30.2+k3s1")
    assert previous_k3s_version(tmp_path) == "v1.30.2+k3s1"
    (tmp_path / "stacks" / "nodes" / "cdk.tf.json").write_text("{not json")
    assert previous_k3s_version(tmp_path) is None


# --- state folder and host keys -----------------------------------------------------------------------------


def test_state_folder_is_made_owner_only(tmp_path):
    state = tmp_path / "state"
    (state / "sub").mkdir(parents=True)
    (state / "foundation.tfstate").write_text("{}")
    (state / "foundation.tfstate.backup").write_text("{}")
    (state / "sub" / "x.tfstate").write_text("{}")
    (state / "README").write_text("not state")
    os.chmod(state, 0o755)
    for path in state.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    changes = secure_state_folder(state)
    assert len(changes) == 4 and "0755 -> 0700" in changes[0]
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "foundation.tfstate").stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "foundation.tfstate.backup").stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "sub" / "x.tfstate").stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "README").stat().st_mode) == 0o644  # not Terraform's: left alone
    assert secure_state_folder(state) == []  # checked every synth, reported only when changed
    assert secure_state_folder(tmp_path / "absent") == [] and not (tmp_path / "absent").exists()


def test_synth_checks_fix_state_modes_and_warn_about_host_keys_every_time(tmp_path, monkeypatch, capsys):
    """What main() runs between validation and synthesis, on the configured state.local.dir."""
    import planner.load
    from planner.load import load_plan
    from stacks.app import pre_synth_checks

    plan = load_plan(DESCRIPTION_CONFIG)
    state = tmp_path / plan.config.state.local.dir
    state.mkdir()
    (state / "nodes.tfstate").write_text("{}")
    os.chmod(state / "nodes.tfstate", 0o644)
    monkeypatch.setattr(planner.load, "PROJECT_ROOT", tmp_path)
    monkeypatch.setenv("HELIX_CONFIG", rel(DESCRIPTION_CONFIG))
    for _ in range(2):
        capsys.readouterr()
        assert pre_synth_checks(plan, tmp_path / "cdktf.out") is None
        err = capsys.readouterr().err
        assert "cluster.ssh.insecure_ignore_host_keys is true and 7 node(s) have no host_key" in err, err
    assert stat.S_IMODE((state / "nodes.tfstate").stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


# --- built-in namespaces ------------------------------------------------------------------------------------


def test_built_in_namespaces_are_never_created(tmp_path):
    """Placing a built-in namespace in a layer (or a component in it) creates no namespace resource for it."""
    import yaml

    from planner.load import load_plan

    data = yaml.safe_load(DESCRIPTION_CONFIG.read_text())
    layer = next(ns["layer"] for ns in data["namespaces"].values() if ns and ns.get("layer"))
    for name in ("default", "kube-public", "kube-node-lease"):
        data["namespaces"][name] = {"layer": layer, "protect": True}
    config = tmp_path / "helix.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    plan = load_plan(config)
    created = {ns.name for layer_plan in plan.layers for ns in layer_plan.namespaces}
    assert created and not created & {"default", "kube-public", "kube-node-lease", "kube-system"}, created


def test_library_matches_versions_and_paths_whole():
    """The construct library checks its own inputs the same way: a trailing newline is not a k3s release."""
    from constructs_lib.cloudflare_tunnel import MachinePath
    from constructs_lib.k3s import K3sClusterProps, K3sNode, SshAccess, _validate

    with pytest.raises(ValueError, match="must be an absolute path"):
        MachinePath("/api/v1/flags\n")
    node = K3sNode(name="s1", address="10.0.0.1", role="server")
    props = K3sClusterProps(
        version="v1.29.1+k3s2\n", nodes=[node], api_host="10.0.0.1", ssh=SshAccess(user="u", port=22, private_key="k"),
        embedded_etcd=False,
    )
    with pytest.raises(ValueError, match="is not a k3s release"):
        _validate(props)


def test_yaml_surprises_are_found_by_both_loaders():
    """libyaml (plain documents) and the pure-Python loader (documents with aliases) report the same surprises;
    quoted and block scalars are text, as written."""
    from planner.validate import yaml11_problems

    plain = "a: 06443\nb: on\nc: 1:30\nd: '06443'\ne: \"yes\"\nf: |\n  yes\ng: [No, 0o17, 010]\nTrue: 1\n"
    aliased = plain + "h: &x 1\ni: *x\n"
    found = [(p.path, p.message.split(" is read")[0]) for p in yaml11_problems(plain, "f.yaml")]
    assert found == [("a", "06443"), ("b", "on"), ("c", "1:30"), ("g[0]", "No"), ("g[2]", "010")], found
    assert [(p.path, p.message) for p in yaml11_problems(aliased, "f.yaml")] == [
        (p.path, p.message) for p in yaml11_problems(plain, "f.yaml")
    ]


def test_multi_document_files_read_the_same_through_libyaml_and_the_strict_loader(monkeypatch):
    """Manifest files (several documents) take libyaml's path when it changes nothing but the speed: a plain stream
    reads the same through both loaders, without the pure-Python one; a duplicate key and an alias bomb are still
    refused with the strict loader's words."""
    import yaml

    from planner import files

    plain = "a: 1\nb: [x, 'y']\n---\n---\nkind: Secret\nmetadata: {name: n}\nstringData:\n  k: |\n    v\n"
    expected = [d for d in yaml.load_all(plain, Loader=files._StrictLoader) if d is not None]
    assert len(expected) == 2
    with monkeypatch.context() as patched:
        patched.setattr(files, "_StrictLoader", None)  # the fast path must not need it
        assert files.load_yaml_documents(plain) == expected

    duplicate = "a: 1\n---\nb: 1\nb: 2\n"
    with pytest.raises(yaml.YAMLError, match="duplicate key 'b'"):
        files.load_yaml_documents(duplicate)
    bomb = "a: &a [x]\n" + "".join(f"k{i}: *a\n" for i in range(files.MAX_ALIASES + 1))
    with pytest.raises(yaml.YAMLError, match="refusing a possible alias bomb"):
        files.load_yaml_documents("x: 1\n---\n" + bomb)

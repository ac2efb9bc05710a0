"""Campaigns without a cluster: the file, the ledger, the attempt store, Slurm's states, the
sbatch line, and the status that folds Slurm and the results folders into one table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.campaign import control, slurm
from orchestrator.campaign.ledger import plan_units, up_argv
from orchestrator.campaign.spec import CampaignSpec, load_campaign
from orchestrator.campaign.store import (
    DONE_FILE,
    attempt_name,
    attempts,
    fail_attempt,
    finish_attempt,
    first_complete,
    record_job,
)
from orchestrator.config import Device, Profile
from orchestrator.errors import ConfigError
from tests.support.cli import run_cli

CAMPAIGN = """
[campaign]
name = "lab-a"
results = "{results}"
profile = "quick"
backends = ["reference", "dell-trt"]
scenarios = ["Offline", "SingleStream"]
[campaign.up]
count = 64

[slurm]
partition = "debug"
max_requeue = 1

[[system]]
id = "lab-a-node1"
node = "node1"
device = "cpu"
[system.up]
set = ["Offline.batch_size=4"]

[[system]]
node = "node2"
"""


def _write(tmp_path: Path, text: str = CAMPAIGN) -> Path:
    path = tmp_path / "campaign.toml"
    path.write_text(text.format(results=tmp_path / "shared"))
    return path


def _spec(tmp_path: Path, text: str = CAMPAIGN) -> CampaignSpec:
    return load_campaign(_write(tmp_path, text))


# --- the file -------------------------------------------------------------------------------


def test_the_file_is_read_with_its_defaults(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    assert spec.root == tmp_path / "shared" / "lab-a"
    assert [s.system_id for s in spec.system] == ["lab-a-node1", "node2"]
    assert spec.slurm.max_requeue == 1
    assert spec.campaign.profile is Profile.QUICK


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("partition", "partitoin"), r"unknown key 'slurm.partitoin'"),
        (('node = "node2"', 'node = "node2"\nrack = 3'), r"unknown key 'system.1.rack'"),
        (('node = "node2"', 'constraint = "h100"'), r"placed by constraint needs an id"),
        (('id = "lab-a-node1"\nnode = "node1"', 'node = "node2"'), r"node2 twice"),
        (('"dell-trt"]', '"tensorflow"]'), r"unknown backend 'tensorflow'"),
        (('"SingleStream"]', '"Streaming"]'), r"campaign.scenarios.1"),
        (('name = "lab-a"', 'name = "lab a"'), r"campaign.name"),
        (("count = 64", "count = 0"), r"campaign.up.count"),
        (("count = 64", 'calibration = "entropi"'), r"campaign.up.calibration"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_key(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    text = CAMPAIGN.replace(*edit, 1)
    with pytest.raises(ConfigError, match=message):
        _spec(tmp_path, text)


def test_the_cli_refuses_a_bad_file_with_exit_2(tmp_path: Path) -> None:
    path = _write(tmp_path, CAMPAIGN.replace("max_requeue", "max_reque"))
    done = run_cli("campaign", "plan", str(path))
    assert done.returncode == 2
    assert "unknown key 'slurm.max_reque'" in done.stderr
    assert "hint:" in done.stderr
    missing = run_cli("campaign", "status", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2
    assert "campaign file not found" in missing.stderr


# --- the ledger -----------------------------------------------------------------------------


def test_planning_twice_gives_the_same_ledger(tmp_path: Path) -> None:
    first, second = plan_units(_spec(tmp_path)), plan_units(_spec(tmp_path))
    assert [u.id for u in first] == [u.id for u in second]
    assert len(first) == 2 * 2 * 2  # systems × backends × scenarios
    assert len({u.id for u in first}) == len(first)
    assert {u.tree_id for u in first} == {
        "lab-a-node1-reference", "lab-a-node1-dell-trt", "node2-reference", "node2-dell-trt",
    }  # fmt: skip


def test_a_unit_id_changes_with_what_defines_it_only(tmp_path: Path) -> None:
    before = {(u.system, u.backend, u.scenario): u.id for u in plan_units(_spec(tmp_path))}
    text = CAMPAIGN.replace('set = ["Offline.batch_size=4"]', 'set = ["Offline.batch_size=8"]')
    after = {(u.system, u.backend, u.scenario): u.id for u in plan_units(_spec(tmp_path, text))}
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {key for key in before if key[0] == "lab-a-node1"}  # node1's options only


def test_a_unit_runs_as_one_up_with_the_merged_options(tmp_path: Path) -> None:
    unit = plan_units(_spec(tmp_path))[0]
    argv = up_argv(unit, Profile.QUICK, "/shared/x/runs")
    assert argv[:5] == ["reference", "--device", "cpu", "--scenario", "Offline"]
    assert argv.count("--mode") == 2
    assert "--quick" in argv
    assert "--no-compliance" in argv  # the quick profile runs no audits
    assert argv[argv.index("--system-id") + 1] == "lab-a-node1-reference"
    assert argv[argv.index("--count") + 1] == "64"  # the campaign's
    assert argv[argv.index("--set") + 1] == "Offline.batch_size=4"  # the system's
    full = plan_units(_spec(tmp_path, CAMPAIGN.replace('"quick"', '"full"')))[0]
    assert full.compliance
    assert "--compliance" in up_argv(full, Profile.FULL, "r")


def test_one_backend_keeps_the_system_id_as_the_tree_id(tmp_path: Path) -> None:
    spec = _spec(tmp_path, CAMPAIGN.replace('["reference", "dell-trt"]', '["reference"]'))
    assert {u.tree_id for u in plan_units(spec)} == {"lab-a-node1", "node2"}


# --- attempts -------------------------------------------------------------------------------


def _attempt(unit_dir: Path, job: str, restart: int = 0, finish: bool = True) -> Path:
    folder = unit_dir / attempt_name(job, restart)
    run = folder / "runs" / f"run-{job}"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text("{}")
    (folder / "up.log").write_text("ok\n")
    if finish:
        finish_attempt(folder, "u1", [f"run-{job}"], {"job": job})
    return folder


def test_the_first_complete_attempt_wins_and_damaged_ones_never_count(tmp_path: Path) -> None:
    unit_dir = tmp_path / "u1"
    _attempt(unit_dir, "7", finish=False)  # orphaned: its node died
    first = _attempt(unit_dir, "8")
    second = _attempt(unit_dir, "9")
    found = first_complete(unit_dir)
    assert found is not None
    assert found.folder == first
    assert found.run_dirs == [first / "runs" / "run-8"]
    (first / "runs" / "run-8" / "manifest.json").write_text('{"tampered": 1}')
    found = first_complete(unit_dir)
    assert found is not None
    assert found.folder == second  # a file changed after done.json: not complete any more
    assert [a.job for a in attempts(unit_dir)] == ["7", "8", "9"]
    assert [a.complete for a in attempts(unit_dir)] == [False, False, True]


def test_a_failed_attempt_says_why(tmp_path: Path) -> None:
    folder = _attempt(tmp_path / "u1", "5", finish=False)
    fail_attempt(folder, "u1", "mlorch up exited 6: error: ...", {"job": "5"})
    (attempt,) = attempts(tmp_path / "u1")
    assert not attempt.complete
    assert attempt.failed is not None
    assert attempt.failed["why"].startswith("mlorch up exited 6")
    assert not (folder / DONE_FILE).exists()


# --- Slurm ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "reason", "mapped"),
    [
        ("PENDING", "Resources", slurm.JobState.PENDING),
        ("PENDING", "JobHeldUser", slurm.JobState.HELD),
        ("REQUEUE_HOLD", "", slurm.JobState.HELD),
        ("RUNNING", "None", slurm.JobState.RUNNING),
        ("COMPLETING", "", slurm.JobState.RUNNING),
        ("COMPLETED", "", slurm.JobState.COMPLETED),
        ("CANCELLED by 0", "", slurm.JobState.CANCELLED),
        ("NODE_FAIL", "", slurm.JobState.NODE_FAIL),
        ("BOOT_FAIL", "", slurm.JobState.NODE_FAIL),
        ("TIMEOUT", "", slurm.JobState.TIMEOUT),
        ("OUT_OF_MEMORY", "", slurm.JobState.OUT_OF_MEMORY),
        ("REQUEUED", "", slurm.JobState.REQUEUED),
        ("FAILED", "NonZeroExitCode", slurm.JobState.FAILED),
        ("", "", slurm.JobState.GONE),
    ],
)
def test_slurm_states_map_onto_the_ledger(state: str, reason: str, mapped: slurm.JobState) -> None:
    assert slurm.map_state(state, reason) is mapped


def test_scontrol_one_line_records_parse() -> None:
    line = (
        "JobId=12 JobName=mlorch-lab-a-node2 UserId=root(0) JobState=PENDING Reason=BeginTime "
        "Requeue=1 Restarts=1 BatchFlag=1 NodeList=(null) Command=/s/job.sh"
    )
    fields = slurm.parse_scontrol(line)
    assert (fields["JobState"], fields["Reason"], fields["Restarts"]) == (
        "PENDING",
        "BeginTime",
        "1",
    )


def test_each_system_is_one_exclusive_job_on_its_node(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    args = control.sbatch_args(spec, spec.system[0], None)
    assert "--nodelist=node1" in args
    assert "--exclusive" in args
    assert "--requeue" in args
    assert "--partition=debug" in args
    assert args[args.index("--job-name") + 1] == "mlorch-lab-a-lab-a-node1"
    assert not any(a.startswith("--gres") for a in args)  # cpu
    gpu = spec.system[0].model_copy(update={"device": Device.CUDA})
    assert "--gres=gpu:8" in control.sbatch_args(spec, gpu, 8)
    script = control.job_script(spec, "node2")
    assert script.startswith("#!/bin/bash\n")
    assert "campaign worker" in script
    assert str(spec.root / "campaign.toml") in script
    assert script.rstrip().endswith("--system node2")


def test_status_folds_slurm_and_the_results_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(tmp_path, CAMPAIGN.replace('"Offline", "SingleStream"', '"Offline"'))
    units = {u.system: u for u in plan_units(spec) if u.backend == "reference"}
    # node1: its job ran the reference unit to completion, and now runs the dell-trt one
    record_job(spec.root, "lab-a-node1", {"job": "11"})
    _attempt(spec.root / "lab-a-node1" / units["lab-a-node1"].id, "11")
    # node2: two jobs died with their node (max_requeue = 1): excluded, units reported
    record_job(spec.root, "node2", {"job": "12"})
    record_job(spec.root, "node2", {"job": "13"})
    infos = {
        "11": slurm.JobInfo("11", slurm.JobState.RUNNING, "RUNNING", "None", "node1"),
        "12": slurm.JobInfo("12", slurm.JobState.NODE_FAIL, "NODE_FAIL", "", "node2"),
        "13": slurm.JobInfo("13", slurm.JobState.GONE, "", "", ""),
    }
    monkeypatch.setattr(slurm, "job_states", lambda names, jobs: {j: infos[j] for j in jobs})
    status = control.campaign_status(spec)
    by = {(s.unit.system, s.unit.backend): s for s in status.units}
    assert by["lab-a-node1", "reference"].state == "complete"
    assert by["lab-a-node1", "dell-trt"].state == "waiting"  # its job is on the unit before
    assert by["node2", "reference"].state == "excluded"
    assert status.excluded == ("node2",)
    assert not status.complete
    assert status.live
    assert json.loads(json.dumps([s.as_dict() for s in status.units]))[0]["state"] == "complete"


def test_plan_prints_the_ledger_and_its_json(tmp_path: Path) -> None:
    path = _write(tmp_path)
    shown = run_cli("campaign", "plan", str(path), columns=80)
    assert shown.returncode == 0, shown.stderr
    units = plan_units(load_campaign(path))
    for unit in units:
        assert unit.id in shown.stdout
    assert "8 units on 2 systems" in shown.stderr
    rows = json.loads(run_cli("campaign", "plan", str(path), "--json").stdout)
    assert [row["unit"] for row in rows] == [unit.id for unit in units]
    assert rows[0]["tree_id"] == "lab-a-node1-reference"


def test_a_slurm_failure_is_one_line_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from orchestrator.errors import SlurmError

    stderr = (
        "squeue: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host\n"
        "squeue: fatal: Could not establish a configuration source\n"
    )
    failed = subprocess.CompletedProcess(["squeue"], 1, "", stderr)
    monkeypatch.setattr(slurm, "_run", lambda argv, timeout_s=30.0: failed)
    with pytest.raises(SlurmError) as caught:
        slurm.squeue(["mlorch-lab-a-node1"])
    assert caught.value.message == (
        "squeue failed: squeue: fatal: Could not establish a configuration source"
    )
    assert caught.value.exit_code == 13
    assert "SLURM_CONF" in (caught.value.hint or "")


def test_ctrl_c_while_waiting_leaves_the_jobs_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path)

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(control, "submit", lambda spec, source: {"node2": "7"})
    monkeypatch.setattr(control, "wait", interrupted)
    done = run_cli("campaign", "run", str(path), "--wait")
    assert done.returncode == 130
    assert "stopped waiting; the campaign's jobs keep running under Slurm" in done.stderr
    assert "campaign.toml, or scancel them" in done.stderr
    assert "Traceback" not in done.stderr

"""`up --resume`: which runs can be resumed, what is kept (files that match their recorded
sha256), what runs again and why, and what must not have changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.results.files import folder_digests
from orchestrator.results.manifest import AuditRecord, ImageRecord, RunManifest, TestRecord
from orchestrator.running.resume import ResumeRefused, check_unchanged, prepare_resume
from tests.support.specs import run_spec


def _test(run_dir: Path, scenario: str, status: str = "ok") -> TestRecord:
    folder = run_dir / "reference" / scenario / "performance"
    folder.mkdir(parents=True)
    (folder / "mlperf_log_detail.txt").write_text(f"{scenario} log\n")
    (folder / "result.json").write_text("{}\n")
    return TestRecord(
        scenario=scenario, mode="PerformanceOnly", dir=f"reference/{scenario}/performance",
        status=status, result={"valid": True}, files=folder_digests(folder),  # type: ignore[arg-type]
    )  # fmt: skip


def _run(tmp_path: Path, status: str = "interrupted") -> RunManifest:
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    spec = json.loads(run_spec().model_dump_json())
    manifest = RunManifest(
        run_id="r1", run_dir=run_dir, mlorch_version="0.1.0", spec=spec, host={},
        status=status, wall_seconds=30.0, image={"id": "sha256:" + "a" * 64},
        assets={"synthetic": True, "model_md5": "m", "count": 64, "dataset_images": 64},
    )  # fmt: skip
    manifest.tests = [_test(run_dir, "SingleStream"), _test(run_dir, "Offline")]
    manifest.tests.append(_test(run_dir, "Server", status="interrupted"))
    manifest.compliance = [AuditRecord(scenario="Offline", test="TEST04", status="skipped")]
    manifest.write()
    return manifest


def test_finished_tests_are_kept_and_the_rest_run_again(tmp_path: Path) -> None:
    original = _run(tmp_path)
    changed = original.run_dir / "reference" / "Offline" / "performance" / "result.json"
    changed.write_text('{"edited": true}\n')
    resumption = prepare_resume(original.run_dir)
    manifest = resumption.manifest
    assert [t.scenario for t in manifest.tests] == ["SingleStream"]
    assert dict(resumption.dropped) == {
        "reference/Offline/performance": "result.json changed since it was recorded",
        "reference/Server/performance": "it did not finish",
    }
    assert manifest.status == "running"
    assert manifest.compliance == []  # skipped audits are planned again
    [attempt] = manifest.attempts
    assert (attempt.status, attempt.wall_seconds, attempt.tests_done) == ("interrupted", 30.0, 1)
    assert resumption.spec.runs_dir == tmp_path / "runs"
    assert resumption.original.tests == original.tests  # what is written back if refused


def test_a_run_killed_while_running_is_resumable_and_says_so(tmp_path: Path) -> None:
    manifest = _run(tmp_path, status="running")
    manifest.pid = 2**22 + 1  # no such process
    manifest.write()
    attempt = prepare_resume(manifest.run_dir).manifest.attempts[0]
    assert attempt.status == "interrupted"
    assert attempt.error is not None
    assert "killed" in attempt.error


def test_a_second_resume_adds_an_attempt_and_times_add_up(tmp_path: Path) -> None:
    manifest = _run(tmp_path)
    first = prepare_resume(manifest.run_dir).manifest
    first.status, first.wall_seconds = "failed", 50.0  # 30 s before, 20 s in the first resume
    first.write()
    second = prepare_resume(manifest.run_dir).manifest
    assert [a.wall_seconds for a in second.attempts] == [30.0, 20.0]


@pytest.mark.parametrize(
    ("status", "why"), [("complete", "it is complete"), ("running", "it is still running")]
)
def test_what_cannot_be_resumed_is_refused(tmp_path: Path, status: str, why: str) -> None:
    manifest = _run(tmp_path, status=status)  # 'running': this very process, alive
    with pytest.raises(ResumeRefused, match=why) as refused:
        prepare_resume(manifest.run_dir)
    assert refused.value.exit_code == 2


def test_a_changed_image_or_model_refuses_the_resume(tmp_path: Path) -> None:
    original = _run(tmp_path)
    same = original.model_copy(deep=True)
    check_unchanged(original, same)
    rebuilt = original.model_copy(update={"image": ImageRecord(id="sha256:" + "b" * 64)})
    with pytest.raises(ResumeRefused, match="the image is sha256:bbbb"):
        check_unchanged(original, rebuilt)
    other = original.model_copy(update={"assets": {**original.assets, "model_md5": "n"}})
    with pytest.raises(ResumeRefused, match="model_md5 is n, the run had m"):
        check_unchanged(original, other)


# --- the command line -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("up",), "error: name a backend to run"),
        (("up", "--resume", "r1", "--quick"), "--quick would change them"),
        (("up", "--resume", "r1", "-s", "Offline", "--threads", "2"), "--scenario, --threads"),
        (("up", "--resume", "nope"), "unknown run 'nope'"),
        (("up", "--resume", "r1"), "run r1 cannot be resumed: it is complete"),
        (("up", "dell-trt", "--resume", "r1", "--runs-dir", "runs"), "cannot be resumed"),
    ],
)
def test_resume_on_the_command_line_refuses_in_one_line(
    tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    from tests.support.cli import run_cli

    _run(tmp_path, status="complete")
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert said in errors[0]
    assert RunManifest.read(tmp_path / "runs" / "r1").status == "complete"  # left as it was


def test_resume_names_the_run_s_own_backend(tmp_path: Path) -> None:
    from tests.support.cli import run_cli

    _run(tmp_path)
    result = run_cli("up", "dell-trt", "--resume", "r1", cwd=tmp_path)
    assert result.returncode == 2
    assert "run r1 is a reference run, not dell-trt" in result.stderr
    assert RunManifest.read(tmp_path / "runs" / "r1").status == "interrupted"  # untouched


def test_a_tune_run_is_not_resumed(tmp_path: Path) -> None:
    manifest = _run(tmp_path)
    manifest.kind = "tune"
    manifest.write()
    with pytest.raises(ResumeRefused, match="it is a `mlorch tune` run"):
        prepare_resume(manifest.run_dir)
    older = json.loads((manifest.run_dir / "manifest.json").read_text())
    del older["kind"]
    older["run_id"] = "20261207-120000-reference-tune-ab12"  # as tune names its runs
    (manifest.run_dir / "manifest.json").write_text(json.dumps(older))
    with pytest.raises(ResumeRefused, match="tune"):
        prepare_resume(manifest.run_dir)


def test_digests_are_computed_once_per_file_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contract.digest
    from orchestrator.results.files import known_sha256

    computed: list[Path] = []
    real = contract.digest.file_sha256

    def counting(path: Path) -> str:
        computed.append(path)
        return real(path)

    monkeypatch.setattr(contract.digest, "file_sha256", counting)
    log = tmp_path / "log.txt"
    log.write_text("one\n")
    first = known_sha256(log)
    assert known_sha256(log) == first  # polled again: only stat
    assert len(computed) == 1
    log.write_text("two, longer\n")  # another version: computed again
    assert known_sha256(log) != first
    assert len(computed) == 2

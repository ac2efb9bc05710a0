"""`mlorch up`: spec → image → containers → logs → results, one LoadGen test per container."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from contract.layout import val_map_path
from contract.resnet50 import PERFORMANCE_SAMPLE_COUNT
from orchestrator import __version__
from orchestrator.assets import (
    ResolvedAssets,
    SyntheticRequest,
    plan_assets,
    planned_count,
    resolve_synthetic,
)
from orchestrator.assets.dataset import skipped_record
from orchestrator.assets.prepare import (
    PreparedRecipe,
    Preparer,
    ensure_preprocessed,
    ensure_recipe,
    ensure_synthetic,
    line_printer,
)
from orchestrator.config import Device, Mode, RunSpec, Scenario
from orchestrator.console import Terminal
from orchestrator.engine.client import DockerEngine
from orchestrator.engine.container import ContainerOutcome, ContainerSpec, run_to_completion
from orchestrator.engine.owner import remove_orphans
from orchestrator.errors import (
    EngineWentAway,
    InternalError,
    Interrupted,
    MlorchError,
    disk_full,
)
from orchestrator.harness_settings import settings_json
from orchestrator.host.driver import CudaPlan
from orchestrator.host.facts import check_disk, host_facts, nvml_gpus
from orchestrator.host.gpu import GpuAccess, engine_gpu_support, require_cuda
from orchestrator.images.build import BuiltImage, ensure_image
from orchestrator.images.catalog import CUDA_BASES, BackendDef, get_backend
from orchestrator.images.containers import AuditInputs, Identity, loadgen_spec
from orchestrator.paths import cache_dir
from orchestrator.results.accuracy import label_agreement, logged_labels, score_accuracy_log
from orchestrator.results.audits import (
    AUDIT_CONFIG,
    COMPLIANCE_DIR,
    AuditTest,
    plan_audits,
    render_audit_config,
)
from orchestrator.results.compliance import AUDIT_NOTICE, Verification, verify_audit
from orchestrator.results.files import folder_digests, read_json_object
from orchestrator.results.loadgen_log import ACCURACY_LOG, TestResult, result_from_logs
from orchestrator.results.manifest import (
    AuditRecord,
    ImageRecord,
    RunManifest,
    TestRecord,
    utc_now,
)
from orchestrator.results.validity import judge_run
from orchestrator.running.plan import estimate_seconds, human_duration
from orchestrator.running.resume import ResumeRefused, Resumption, check_unchanged
from orchestrator.running.sizing import RunSizing, SizingCache, TunedStore, sizing_key
from orchestrator.running.userconf import render_user_conf
from orchestrator.telemetry.figures import record_telemetry
from orchestrator.telemetry.sampler import NvmlSampler


@dataclass(frozen=True)
class AuditOutcome:
    """A compliance audit's LoadGen result and its verification."""

    result: TestResult
    verification: Verification


@dataclass(frozen=True)
class RunOutcome:
    manifest: RunManifest
    results: list[TestResult]
    compliance: list[AuditOutcome] = field(default_factory=list)


@dataclass(frozen=True)
class PlannedTest:
    """One LoadGen test of the run: a scenario's performance or accuracy run, or an audit
    (a performance run under a compliance audit.config)."""

    scenario: Scenario
    mode: Mode
    audit: AuditTest | None = None

    @property
    def name(self) -> str:
        return f"{self.scenario.value} {self.audit.value if self.audit else self.mode.value}"


@dataclass(frozen=True)
class RunContext:
    """Everything the tests of one run share, resolved before the first test starts."""

    engine: DockerEngine
    backend: BackendDef
    spec: RunSpec
    image: BuiltImage
    run_id: str
    run_dir: Path
    assets: ResolvedAssets
    cache: Path
    identity: Identity
    terminal: Terminal
    gpu_access: GpuAccess | None = None  # how GPUs reach containers on cuda
    recipe: PreparedRecipe | None = None  # dell-trt: prepared model, engines, settings
    nvml: Any = None  # the NVML API telemetry reads (None: nvidia-ml-py's pynvml)
    sizing: RunSizing | None = None  # each scenario's expected rate/latency and its source

    @property
    def sized_spec(self) -> RunSpec:
        """The spec with the tuning as sized so far (user.conf and estimates use it)."""
        return self.sizing.spec if self.sizing is not None else self.spec


def new_run_id(backend: str) -> str:
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{backend}-{secrets.token_hex(2)}"


def new_run(spec: RunSpec, name: str) -> RunManifest:
    """A new run folder under the spec's runs dir and its manifest (not yet written)."""
    run_id = new_run_id(name)
    run_dir = (spec.runs_dir / run_id).resolve()
    run_dir.mkdir(parents=True)
    return RunManifest(
        run_id=run_id,
        run_dir=run_dir,
        mlorch_version=__version__,
        spec=json.loads(spec.model_dump_json()),
        host=host_facts(),
    )


INTERRUPT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
TRACEBACK_FILE = "traceback.txt"
PROBES_DIR = "probes"  # `tune`'s LoadGen runs, one folder each
OUTRUN_DIR = "outrun"  # first tries of tests that ran faster than their sizing
UNFINISHED_DIR = "unfinished"  # what unfinished tests left, before `up --resume` ran them again


@contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP take the same clean-up path as Ctrl-C. A signal the process was started
    with ignored (`nohup mlorch up ...`) stays ignored: that is what the user asked for."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            _leave_closed_terminal()
        raise KeyboardInterrupt

    previous = {
        signum: signal.signal(signum, handler)
        for signum in INTERRUPT_SIGNALS
        if signal.getsignal(signum) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _leave_closed_terminal() -> None:
    """After a hang-up, writes to the terminal fail (EIO) and would break the clean-up: send
    what is still printed to /dev/null instead. Pipes and files stay as they are."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                fd = stream.fileno()
                if os.isatty(fd):
                    os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def up(
    spec: RunSpec,
    connect: Callable[[], DockerEngine],
    terminal: Terminal,
    on_run_dir: Callable[[Path], None] | None = None,
    resume: Resumption | None = None,
) -> RunOutcome:
    """Run every scenario × mode of `spec` and record it under runs/<run-id>/; with `resume`,
    finish that run in its own folder (its kept tests are not run again).

    Cheap checks (backend, disk, assets) come before the engine is contacted via `connect`.
    `on_run_dir` learns the run folder as soon as it exists (a failed run's results stay there).
    """
    backend = get_backend(spec.backend)
    check_disk(spec.runs_dir)
    check_disk(cache_dir())
    gpu_access, cuda_plan = None, None
    if spec.device is Device.CUDA:
        spec, gpu_access, cuda_plan = cuda_preflight(connect, backend, spec, terminal)
    manifest = _open_run(spec, backend, resume, cuda_plan, terminal)
    run_dir = manifest.run_dir
    if on_run_dir is not None:
        on_run_dir(run_dir)
    identity = Identity.current()
    started = time.monotonic()
    results: list[TestResult] = [_kept_result(test) for test in manifest.tests]
    audits: list[AuditOutcome] = []
    failing = True
    try:
        with signals_as_interrupt():
            ctx = prepare_run(
                spec, connect, terminal, manifest, identity, gpu_access,
                lambda count: _announce_plan(spec, count, terminal),
            )  # fmt: skip
            if resume is not None:
                check_unchanged(resume.original, manifest)
            _run_tests(ctx, manifest, results, audits)
        manifest.status = "complete"
        failing = False
    except KeyboardInterrupt:
        manifest.status = "interrupted"
        manifest.error = "interrupted by the user"
        raise Interrupted(
            "interrupted; containers removed, partial logs kept",
            hint=f"partial results are in {run_dir}",
        ) from None
    except ResumeRefused:
        assert resume is not None
        manifest = resume.original  # the run stays as it was
        raise
    except EngineWentAway as exc:  # the engine went away: what finished is kept
        manifest.status = "interrupted"
        manifest.error = exc.message
        raise
    except MlorchError as exc:
        manifest.status = "failed"
        manifest.error = exc.message
        raise
    except Exception as exc:
        # A crash is an error too: recorded in the manifest, traceback kept in the run folder.
        error = (
            disk_full(exc, run_dir) if isinstance(exc, OSError) else None
        ) or InternalError.wrap(exc, run_dir / TRACEBACK_FILE)
        manifest.status = "failed"
        manifest.error = error.message
        raise error from exc
    finally:
        if resume is None or manifest is not resume.original:  # a refused resume: as it was
            manifest.finished = utc_now()
            manifest.wall_seconds = round(time.monotonic() - started + manifest.earlier_seconds, 2)
            # While an error is on its way out, failing to record it must not replace it.
            with contextlib.suppress(*((Exception,) if failing else ())):
                _judge(manifest)
        with contextlib.suppress(*((OSError,) if failing else ())):
            manifest.write()
            manifest.release_reserve()
            identity.reclaim(run_dir)
    return RunOutcome(manifest, results, audits)


def _open_run(
    spec: RunSpec,
    backend: BackendDef,
    resume: Resumption | None,
    cuda_plan: CudaPlan | None,
    terminal: Terminal,
) -> RunManifest:
    """The run's manifest, written: a new run folder, or the resumed run's."""
    manifest = new_run(spec, backend.name) if resume is None else resume.manifest
    if cuda_plan is not None:
        manifest.cuda = cuda_plan.record()
    if spec.quick_run and resume is None:
        manifest.invalid_because.append("quick: --quick profile: shortened durations and counts")
    manifest.write()
    if resume is None:
        terminal.step(f"run {manifest.run_id} → {manifest.run_dir}")
    else:
        _announce_resume(resume, terminal)
    if spec.quick_run:
        terminal.warn("--quick: shortened durations and counts; results are NOT submission-valid")
    return manifest


def _announce_resume(resume: Resumption, terminal: Terminal) -> None:
    manifest = resume.manifest
    terminal.step(
        f"run {manifest.run_id} resumed (attempt {len(manifest.attempts) + 1}) → "
        f"{manifest.run_dir}: {resume.kept} finished tests kept"
    )
    for folder, why in resume.dropped:
        terminal.warn(f"{folder} runs again: {why}")


def _kept_result(test: TestRecord) -> TestResult:
    """A kept test's result as the results table shows it."""
    return TestResult.from_dict(test.result or {}, test.scenario, test.mode)


def prepare_run(
    spec: RunSpec,
    connect: Callable[[], DockerEngine],
    terminal: Terminal,
    manifest: RunManifest,
    identity: Identity,
    gpu_access: GpuAccess | None,
    announce: Callable[[int], None],
) -> RunContext:
    """Everything before the first test, recorded in `manifest` as it lands: the assets (their
    image count to `announce` before the long steps), the engine (orphans reaped), the image,
    synthetic data and preprocessing, dell-trt's recipe, and each scenario's sizing. `up` and
    `tune` share it."""
    backend = get_backend(spec.backend)
    run_id, run_dir = manifest.run_id, manifest.run_dir
    planned = plan_assets(spec, terminal)
    announce(planned_count(spec, planned))
    engine = connect()
    _reap_orphans(engine, terminal)
    image = ensure_image(
        engine, backend, spec.device, spec.base_image, spec.wheelhouse, terminal,
        build_timeout_s=spec.build_timeout_s,
    )  # fmt: skip
    manifest.image = _image_record(image)
    manifest.write()
    prep = Preparer(
        engine, backend, image.tag, run_id, identity, terminal,
        timeout_s=spec.test_timeout_s, mem_limit=spec.memory_bytes,
    )  # fmt: skip
    if isinstance(planned, SyntheticRequest):
        ensure_synthetic(prep, planned)
        assets = resolve_synthetic(spec, planned, terminal)
    else:
        assets = planned
    _record_assets(manifest, assets)
    assets, cache = ensure_preprocessed(prep, assets, skip_bad=spec.skip_bad)
    _record_assets(manifest, assets)
    prepared = None
    if spec.harness is not None:
        settings_file = run_dir / backend.name / "settings.json"
        settings_file.parent.mkdir(parents=True, exist_ok=True)
        settings_file.write_text(settings_json(spec.harness))
        prepared = ensure_recipe(prep, spec, assets, cache, settings_file, gpu_access)
        manifest.recipe = prepared.record()
        manifest.write()
    sizing = _run_sizing(spec, manifest, image, assets, prepared)
    for entry in sizing.by_scenario.values():
        terminal.info(f"sizing: {entry.describe()}")
    manifest.sizing = sizing.record()
    manifest.write()
    return RunContext(
        engine, backend, spec, image, run_id, run_dir, assets, cache, identity, terminal,
        gpu_access, prepared, sizing=sizing,
    )  # fmt: skip


def _run_sizing(
    spec: RunSpec,
    manifest: RunManifest,
    image: BuiltImage,
    assets: ResolvedAssets,
    prepared: PreparedRecipe | None,
) -> RunSizing:
    """Each scenario's sizing: the user's value, a cached measurement for exactly this host,
    image, model and settings, or the profile's guess until its first test measures."""
    model = assets.model.md5
    if prepared is not None:  # what runs is the recipe's model, made from that source
        model += ":" + str(prepared.record()["model"].get("sha256"))
    keys = {
        scenario: sizing_key(spec, scenario, manifest.host, image.image_id, model)
        for scenario in spec.scenarios
    }
    tuned = TunedStore(cache_dir()) if spec.use_tuned else None
    return RunSizing(spec, SizingCache(cache_dir()), keys, tuned)


def _judge(manifest: RunManifest) -> None:
    """Submission validity from the rules the run's folder shows met (closed division)."""
    verdict = judge_run(manifest.run_dir, manifest.to_dict(), "closed")
    manifest.submission_valid = verdict.valid
    manifest.invalid_because = verdict.reasons()


def cuda_preflight(
    connect: Callable[[], DockerEngine], backend: BackendDef, spec: RunSpec, terminal: Terminal
) -> tuple[RunSpec, GpuAccess, CudaPlan | None]:
    """GPUs, a driver that can run the image's CUDA and container GPU support, checked before
    anything starts. Where the default CUDA stack cannot run on this driver, the spec moves to
    the stack that can (announced); a base the user named is kept (or refused)."""
    gpus, driver, why = nvml_gpus()
    access, plan = require_cuda(
        gpus, driver, why, lambda: engine_gpu_support(connect()), spec.base_image
    )
    if plan is not None:
        terminal.info(plan.sentence())
        if spec.base_image is None and plan.base.ref != backend.default_base[Device.CUDA]:
            terminal.warn(
                f"the default CUDA {CUDA_BASES[backend.default_base[Device.CUDA]].cuda} stack "
                f"cannot run on driver {plan.driver}: building on {plan.base.ref} "
                f"(the {plan.stack} stack) instead"
            )
            spec = spec.model_copy(update={"base_image": plan.base.ref})
    return spec, access, plan


def _planned_tests(spec: RunSpec) -> list[PlannedTest]:
    """Per scenario: its modes, then its compliance audits (which compare with them)."""
    audits = plan_audits(spec).tests
    return [
        test
        for scenario in spec.scenarios
        for test in (
            *(PlannedTest(scenario, mode) for mode in spec.modes),
            *(PlannedTest(scenario, Mode.PERFORMANCE, audit) for audit in audits),
        )
    ]


def _announce_plan(spec: RunSpec, count: int, terminal: Terminal) -> None:
    """What the run will do, said before the long steps (build, assets, preprocessing)."""
    tests = _planned_tests(spec)
    total = sum(estimate_seconds(spec, t.scenario, t.mode, count) for t in tests)
    audit_plan = plan_audits(spec)
    audits = ""
    if audit_plan.tests:
        names = " and ".join(test.value for test in audit_plan.tests)
        audits = f" (incl. compliance {names} per scenario)"
    terminal.info(
        f"plan: {len(tests)} LoadGen tests{audits} on {count} images, "
        f"≈ {human_duration(total)} of LoadGen time at the tuning's expected rates"
    )
    if spec.compliance:  # audits the user asked for but cannot have
        for test, why in audit_plan.skipped:
            terminal.warn(f"compliance {test.value} not run: it {why}")


def _reap_orphans(engine: DockerEngine, terminal: Terminal) -> None:
    """Remove containers an mlorch that is gone (SIGKILL, crash, reboot) left behind."""
    found = remove_orphans(engine, include_unowned=False)
    for item in found.removable:
        terminal.warn(f"removed {item.name}, left behind: {item.why()}")


def _run_tests(
    ctx: RunContext,
    manifest: RunManifest,
    results: list[TestResult],
    audits: list[AuditOutcome],
) -> None:
    """Every scenario × mode and audit, one container each, recording each outcome as it lands."""
    spec = ctx.spec
    tests = _planned_tests(spec)
    done: set[tuple[str, str, str | None]] = {
        (t.scenario, t.mode, None) for t in manifest.tests if t.status == "ok"
    }
    done |= {(a.scenario, Mode.PERFORMANCE.value, a.test) for a in manifest.compliance}
    manifest.compliance = [
        *(audit for audit in manifest.compliance if audit.status == "verified"),
        *(
            _audit_entry(scenario, test, None, "skipped", [why])
            for scenario in spec.scenarios
            for test, why in plan_audits(spec).skipped
        ),
    ]
    manifest.write()
    for number, planned in enumerate(tests, 1):
        scenario, mode = planned.scenario, planned.mode
        audit_name = planned.audit.value if planned.audit is not None else None
        if (scenario.value, mode.value, audit_name) in done:
            continue  # kept from an earlier attempt (`up --resume`)
        name = f"[{number}/{len(tests)}] {planned.name}"
        # Re-estimated per test: a test that measured sizes the ones after it.
        estimate = estimate_seconds(ctx.sized_spec, scenario, mode, ctx.assets.count)
        try:
            with ctx.terminal.status(f"{name} (≈ {human_duration(estimate)})"):
                result, record = run_test(ctx, scenario, mode, planned.audit)
            if planned.audit is None and mode is Mode.PERFORMANCE:
                result, record = _again_if_outran(ctx, scenario, name, result, record)
        except (Exception, KeyboardInterrupt) as exc:
            stopped = isinstance(exc, KeyboardInterrupt | EngineWentAway)
            status: Literal["failed", "interrupted"] = "interrupted" if stopped else "failed"
            if planned.audit is not None:
                folder = _test_folder(ctx, scenario, mode, planned.audit)
                reason = f"the audit run {status}"
                manifest.compliance.append(
                    _audit_entry(scenario, planned.audit, folder, status, [reason])
                )
                raise
            folder = f"{ctx.backend.name}/{scenario.value}/{mode.short}"
            manifest.tests.append(
                TestRecord(scenario=scenario.value, mode=mode.value, dir=folder, status=status)
            )
            raise
        if ctx.sizing is not None:
            manifest.sizing = ctx.sizing.record()
        if planned.audit is not None:
            audits.append(_verify_audit(ctx, manifest, name, planned.audit, result, record))
            continue
        verdict = "" if result.valid is None else (" VALID" if result.valid else " INVALID")
        line = f"{name}: {result.metric} {result.display_value}{verdict}"
        if result.errors:
            count = len(result.errors)
            errors = "; ".join(result.errors)
            ctx.terminal.warn(f"{line}: LoadGen logged {count} error(s): {errors}")
        else:
            ctx.terminal.success(line)
        for warning in result.warnings:
            ctx.terminal.warn(f"{name}: {warning}")
        infeasible = _server_infeasible(ctx, result)
        if infeasible:
            ctx.terminal.warn(f"{name}: {infeasible}")
            record.sizing_note = infeasible
        results.append(result)
        manifest.tests.append(record)
        manifest.loadgen_version = manifest.loadgen_version or result.loadgen_version
        manifest.write()


def _again_if_outran(
    ctx: RunContext, scenario: Scenario, name: str, result: TestResult, record: TestRecord
) -> tuple[TestResult, TestRecord]:
    """A performance test that ran faster than its sizing (a cached or tuned value from a slower
    moment, a measuring pass that read low) runs once more, sized by what it measured itself;
    the first try is kept under outrun/ and later runs start from the new value."""
    entry = ctx.sizing.outran(scenario, result) if ctx.sizing is not None else None
    if entry is None:
        return result, record
    first = ctx.run_dir / record.dir
    kept = _set_aside(ctx.run_dir, first, OUTRUN_DIR)
    user_conf = first.parent / "user.conf"
    if user_conf.is_file():
        shutil.copy2(user_conf, kept / "user.conf")
    ctx.terminal.warn(
        f"{name}: {entry.outran}; kept in {kept.relative_to(ctx.run_dir)}, running it again"
    )
    ctx.terminal.info(f"sizing: {entry.describe()}")
    estimate = estimate_seconds(ctx.sized_spec, scenario, Mode.PERFORMANCE, ctx.assets.count)
    with ctx.terminal.status(f"{name} again (≈ {human_duration(estimate)})"):
        return run_test(ctx, scenario, Mode.PERFORMANCE)


def _server_infeasible(ctx: RunContext, result: TestResult) -> str | None:
    """For an INVALID Server run whose single sample is already over the latency bound: why no
    target QPS can be VALID here, in words (a bare INVALID would send the user tuning)."""
    if ctx.sizing is None or result.valid is not False:
        return None
    entry = ctx.sizing.by_scenario.get(Scenario.SERVER)
    if result.scenario != Scenario.SERVER.value or entry is None:
        return None
    return entry.server_infeasible()


def _verify_audit(
    ctx: RunContext,
    manifest: RunManifest,
    name: str,
    audit: AuditTest,
    result: TestResult,
    record: TestRecord,
) -> AuditOutcome:
    """Verify an audit against its scenario's runs; a FAIL is shown and recorded, never raised
    (the run goes on and exits 0)."""
    audit_dir = ctx.run_dir / record.dir
    verification = verify_audit(
        audit, result.scenario, audit_dir.parent.parent, audit_dir, ctx.backend.response_dtype
    )
    entry = _audit_entry(
        Scenario(result.scenario),
        audit,
        record.dir,
        "verified",
        list(verification.reasons),
        passed=verification.passed,
    ).model_copy(
        update={
            "checks": verification.checks,
            "container_seconds": record.container_seconds,
            "loadgen_seconds": record.loadgen_seconds,
            "harness": record.harness,
            "result": record.result,
            "files": folder_digests(audit_dir),
        }
    )
    manifest.compliance.append(entry)
    manifest.write()
    line = f"{name}: {result.metric} {result.display_value}"
    if verification.passed:
        ctx.terminal.success(f"{line} · compliance PASS")
    else:
        ctx.terminal.warn(f"{line} · compliance FAIL: {'; '.join(verification.reasons)}")
    for warning in result.warnings:
        if AUDIT_NOTICE not in warning:  # the notice is what an audit expects to see
            ctx.terminal.warn(f"{name}: {warning}")
    return AuditOutcome(result, verification)


def _audit_entry(
    scenario: Scenario,
    test: AuditTest,
    folder: str | None,
    status: str,
    reasons: list[str],
    *,
    passed: bool = False,
) -> AuditRecord:
    """The manifest's record of one audit (status: verified, skipped, failed, interrupted)."""
    return AuditRecord.model_validate(
        {"scenario": scenario.value, "test": test.value, "passed": passed, "dir": folder,
         "reasons": reasons, "status": status}
    )  # fmt: skip


def _test_folder(ctx: RunContext, scenario: Scenario, mode: Mode, audit: AuditTest | None) -> str:
    """A test's folder relative to the run folder: <backend>/<Scenario>/<mode> or, for an
    audit, <backend>/<Scenario>/compliance/<TEST>."""
    parts = [ctx.backend.name, scenario.value]
    parts += [COMPLIANCE_DIR, audit.value] if audit is not None else [mode.short]
    return "/".join(parts)


def _record_assets(manifest: RunManifest, assets: ResolvedAssets) -> None:
    """The assets in the manifest; skipped dataset entries make the run not submission-valid."""
    manifest.assets = {
        "synthetic": assets.synthetic,
        "model": str(assets.model.path),
        "model_md5": assets.model.md5,
        "model_official": assets.model.official,
        "model_opset": assets.model.opset,
        "dataset": str(assets.dataset),
        "dataset_images": assets.available,
        "count": assets.count,
        "val_map": str(val_map_path(assets.dataset, assets.val_map)),
    }
    if assets.skipped:
        manifest.assets["skipped"] = skipped_record(assets.skipped)
        manifest.submission_valid = False
        reason = f"dataset: --skip-bad: {len(assets.skipped)} damaged dataset entries left out"
        manifest.invalid_because = [
            *(r for r in manifest.invalid_because if not r.startswith("dataset: --skip-bad")),
            reason,
        ]
    manifest.write()


def _image_record(image: BuiltImage) -> ImageRecord:
    return ImageRecord(
        tag=image.tag, id=image.image_id, dockerfile_sha256=image.dockerfile_sha256,
        base_image=image.base.ref, base_image_id=image.base.image_id,
        base_image_digest=image.base.digest,
        base_image_repo_digests=list(image.base.repo_digests),
        base_local_bootstrap=image.base.bootstrapped, base_fallback=image.base.fallback,
        python=image.platform.python, built_now=image.built_now, pip_freeze=image.freeze,
    )  # fmt: skip


def run_test(
    ctx: RunContext,
    scenario: Scenario,
    mode: Mode,
    audit: AuditTest | None = None,
    probe: str | None = None,
) -> tuple[TestResult, TestRecord]:
    """One LoadGen test in one fresh container, then its logs parsed and scored. With `audit`,
    a compliance audit: the scenario's performance run under that audit's audit.config. With
    `probe` (a folder name under the run's `probes/`), one of `tune`'s runs: its user.conf and
    logs stay in that folder."""
    if probe is not None:
        test_dir = ctx.run_dir / PROBES_DIR / probe
        user_conf = test_dir / "user.conf"
    else:
        test_dir = ctx.run_dir / _test_folder(ctx, scenario, mode, audit)
        user_conf = ctx.run_dir / ctx.backend.name / scenario.value / "user.conf"
    if probe is None and test_dir.is_dir() and any(test_dir.iterdir()):
        _set_aside(ctx.run_dir, test_dir, UNFINISHED_DIR)  # an earlier try's (--resume)
    test_dir.mkdir(parents=True, exist_ok=True)
    user_conf.write_text(render_user_conf(ctx.sized_spec, scenario, ctx.assets.count))
    sizing = ctx.sizing.request(scenario, mode) if ctx.sizing is not None else None
    audit_inputs = None
    if audit is not None:
        audit_config = test_dir / AUDIT_CONFIG
        audit_config.write_text(render_audit_config(audit))
        audit_inputs = AuditInputs(audit.value, audit_config)
    what = audit.value if audit is not None else mode.short
    ctx.identity.lend(test_dir)
    container = loadgen_spec(
        ctx.backend, ctx.image.tag, ctx.run_id, scenario, mode, ctx.spec.device,
        model=ctx.assets.model.path, cache=ctx.cache, user_conf=user_conf, results=test_dir,
        user=ctx.identity.container_user, count=ctx.assets.count,
        performance_count=min(PERFORMANCE_SAMPLE_COUNT, ctx.assets.count),
        threads=ctx.spec.threads, max_batchsize=ctx.spec.max_batchsize,
        gpu_access=ctx.gpu_access, recipe=ctx.recipe.inputs if ctx.recipe else None,
        audit=audit_inputs, sizing=sizing,
    )  # fmt: skip
    outcome, telemetry = _run_sampled(
        ctx,
        replace(container, mem_limit=ctx.spec.memory_bytes),
        test_dir,
        prefix=f"{scenario.value}/{what}",
        what=f"{scenario.value} {audit.value if audit else mode.value} test",
        performance=mode is Mode.PERFORMANCE,
    )
    result, result_data = _scored_result(ctx, test_dir, scenario, mode)
    harness = read_json_object(test_dir / "harness.json")
    if sizing is not None and ctx.sizing is not None:
        _take_measurement(ctx, scenario, harness, user_conf)
    record = TestRecord(
        scenario=scenario.value,
        mode=mode.value,
        dir=str(test_dir.relative_to(ctx.run_dir)),
        status="ok",
        container_seconds=round(outcome.seconds, 2),
        loadgen_seconds=harness.get("test_seconds"),
        harness=harness,
        result=result_data,
        telemetry=telemetry,
        files=folder_digests(test_dir),
    )
    for problem in (telemetry or {}).get("problems", ()):
        ctx.terminal.warn(f"{scenario.value} {mode.value} telemetry: {problem}")
    return result, record


def _run_sampled(
    ctx: RunContext,
    container: ContainerSpec,
    test_dir: Path,
    *,
    prefix: str,
    what: str,
    performance: bool,
) -> tuple[ContainerOutcome, dict[str, Any] | None]:
    """Run the test's container to its end with NVML sampling around it; (outcome, telemetry
    record or None). The test folder goes back to the host user whatever happens."""
    hz = ctx.spec.telemetry_hz
    sampler = NvmlSampler(hz, ctx.nvml) if hz > 0 else None
    telemetry = None
    failing = True
    try:
        if sampler is not None:
            sampler.start()  # just before the container: a baseline, zeroed when it starts
        outcome = run_to_completion(
            ctx.engine,
            container,
            timeout_s=ctx.spec.test_timeout_s,
            log_file=test_dir / "container.log",
            on_line=line_printer(ctx.terminal, prefix),
            what=what,
            on_started=sampler.mark_zero if sampler is not None else None,
        )
        failing = False
    finally:
        recording = sampler.stop() if sampler is not None else None  # bounded
        ctx.identity.reclaim(test_dir)
        if recording is not None:
            # A failed, timed-out or interrupted test keeps what was sampled beside its logs;
            # failing to write it then must not replace the error on its way out.
            with contextlib.suppress(*((Exception,) if failing else ())):
                telemetry = record_telemetry(recording, test_dir, performance)
    return outcome, telemetry


def _scored_result(
    ctx: RunContext, test_dir: Path, scenario: Scenario, mode: Mode
) -> tuple[TestResult, dict[str, Any]]:
    """The test's LoadGen result (an accuracy run scored), also written to result.json."""
    result = result_from_logs(test_dir, scenario.value, mode.value)
    agreement = None
    if mode is Mode.ACCURACY:
        result, agreement = _score(ctx, result, test_dir)
    result_data = result.to_dict()
    if agreement is not None:
        result_data["fp32_agreement"] = agreement
    (test_dir / "result.json").write_text(json.dumps(result_data, indent=2) + "\n")
    return result, result_data


def _set_aside(run_dir: Path, test_dir: Path, into: str) -> Path:
    """Move a test's folder to the same place under `into` (outrun/, unfinished/; the newest
    try kept there), so the test runs again in a clean folder; where it went."""
    kept = run_dir / into / test_dir.relative_to(run_dir)
    shutil.rmtree(kept, ignore_errors=True)
    kept.parent.mkdir(parents=True, exist_ok=True)
    test_dir.rename(kept)
    return kept


def _take_measurement(
    ctx: RunContext, scenario: Scenario, harness: dict[str, Any], user_conf: Path
) -> None:
    """Cache what the test measured and sized itself to; user.conf then says what LoadGen used
    (the container set it in code after reading the guess)."""
    assert ctx.sizing is not None
    record = harness.get("sizing")
    if not isinstance(record, dict):
        raise InternalError(f"the {scenario.value} test was asked to size itself but did not")
    entry = ctx.sizing.measured(scenario, record)
    user_conf.write_text(render_user_conf(ctx.sized_spec, scenario, ctx.assets.count))
    ctx.terminal.info(f"sizing: {entry.describe()}")


def _score(
    ctx: RunContext, result: TestResult, test_dir: Path
) -> tuple[TestResult, dict[str, Any] | None]:
    """accuracy.txt in the official format; for a quantized recipe also the agreement of its
    answers with the FP32 model's on the guard samples."""
    from contract.layout import labels, read_val_map

    dtype = ctx.backend.response_dtype
    assets = ctx.assets
    # The list the cache was made from: accuracy is over the images the run really used.
    expected = labels(read_val_map(assets.dataset, assets.val_map)[: assets.count])
    accuracy = score_accuracy_log(test_dir / ACCURACY_LOG, expected, dtype)
    (test_dir / "accuracy.txt").write_text(accuracy.line() + "\n")
    agreement = None
    if ctx.recipe is not None:
        found = label_agreement(
            logged_labels(test_dir / ACCURACY_LOG, dtype), ctx.recipe.fp32_labels
        )
        agreement = {"agree": found.agree, "total": found.total, "percent": round(found.percent, 3)}
        ctx.terminal.info(
            f"FP32 agreement: {found.percent:.2f} % of {found.total} images (accuracy "
            f"{accuracy.percent:.3f} %)"
        )
    return replace(result, value=round(accuracy.percent, 3)), agreement

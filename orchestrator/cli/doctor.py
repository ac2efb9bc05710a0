from __future__ import annotations

import typer

from orchestrator.cli.application import Application


def doctor(ctx: typer.Context) -> None:
    """Check the docker engine, NVIDIA runtime, GPUs (NVML), free disk and base images."""
    from orchestrator.cli.tables import doctor_list, doctor_table
    from orchestrator.host.doctor import run_checks

    app: Application = ctx.obj
    checks = run_checks()
    app.terminal.table(doctor_table(checks), narrow=doctor_list(checks))
    if any(check.verdict == "fail" for check in checks):
        raise typer.Exit(1)

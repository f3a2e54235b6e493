"""``raisim simulate``: one patient through a protocol, written and summarised."""

from __future__ import annotations

import sys

from ..io.errors import InputError


def cmd_simulate(args) -> int:
    """``raisim simulate``: one patient → timecourse.csv, outcome.json, timecourse.png (and a PK report); exit code."""
    from ..engine.plan import plan_cell
    from ..io.store import check_out_dir
    from ..protocol.schema import load_protocol
    from .outputs import dry_run_done, writing

    protocol = load_protocol(args.config)  # validate everything before touching the output directory
    if args.pk_report < 0 or args.pk_report == 1:
        raise InputError(
            "<command line>", "--pk-report", "a number of virtual patients >= 2 (0 = no report)", got=args.pk_report
        )
    if args.patient < 0:
        raise InputError("<command line>", "--patient", "a patient number >= 0", got=args.patient)
    if args.draw is not None and args.parameters == "typical":
        raise InputError(
            "<command line>", "--draw", "a posterior draw, so not with --parameters typical", got=args.draw
        )
    from ..io.parameter_draws import parameter_set

    params = parameter_set(args.draw if args.draw is not None else args.parameters)
    if args.out is not None:
        check_out_dir(args.out, force=args.force)
    plan = plan_cell(protocol)  # every course on the output grid: what the solve will need
    if args.dry_run:
        return dry_run_done(
            "simulate", f"{args.config}: protocol '{protocol.name}', {len(plan.courses)} course(s); {params.describe()}"
        )
    with writing(args.out, force=args.force) as out:
        return _simulate_into(out, args, protocol, params)


def _simulate_into(out, args, protocol, params) -> int:
    """Simulate and write every output into the locked directory ``out``, the completion marker last."""
    from ..engine.simulate import simulate
    from ..io.store import atomic_savefig, manifest, mark_complete, write_csv, write_json
    from .outputs import compilation_record
    from .plots import timecourse_figure

    print(
        f"raisim simulate: {protocol.name} ({protocol.patient.genotype}, "
        f"{len(protocol.patient.lesions)} lesions), seed {args.seed}, patient {args.patient}; "
        f"parameters: {params.describe()}",
        file=sys.stderr,
    )
    result = simulate(
        protocol, seed=args.seed, parameters=params.draw if params.draw is not None else "typical", patient=args.patient
    )
    outcome = result.outcome.to_dict()
    write_csv(out / "timecourse.csv", result.timecourse)
    write_json(out / "outcome.json", outcome)
    import matplotlib.pyplot as plt

    course = result.course.course
    fig = timecourse_figure(
        result.timecourse,
        outcome,
        (protocol.treatment.start_day, course.tki_last_day),
        f"{protocol.name} — {protocol.patient.genotype} — {course.describe()}",
    )
    atomic_savefig(fig, out / "timecourse.png", dpi=110)
    plt.close(fig)
    outputs = ["timecourse.csv", "outcome.json", "timecourse.png", "manifest.json"]
    if args.pk_report:
        from ..protocol.schedule import build_doses, enumerate_courses
        from .pk_report import pk_report, pk_report_figure

        # the exposure the protocol plans on the followed course (not this patient's missed doses or stop)
        planned = enumerate_courses(protocol)[int(result.record.course)]
        doses = build_doses(protocol, planned)
        report = pk_report(protocol, doses, args.pk_report, args.seed, planned.tki_last_day + 7)
        write_csv(out / "pk_report.csv", report)
        title = f"{protocol.name}: PK, {protocol.patient.sex}, {protocol.patient.weight_kg:g} kg"
        fig = pk_report_figure(report, args.pk_report, title)
        atomic_savefig(fig, out / "pk_report.png", dpi=110)
        plt.close(fig)
        outputs += ["pk_report.csv", "pk_report.png"]
    write_json(
        out / "manifest.json",
        manifest(
            "simulate",
            protocol.model_dump(mode="json"),
            args.seed,
            args.config,
            outputs=outputs,
            pk_report_patients=args.pk_report,
            patient=args.patient,
            parameters={"source": params.source, "draw": params.draw, "posterior": params.path},
        ),
    )
    mark_complete(out, "simulate", outputs, compilation=compilation_record())
    if outcome["solver"]["ok"]:
        _print_summary(outcome)
    else:
        print(
            f"warning: solver failed on {len(outcome['solver']['failed_courses'])} course(s) of 1 patient; "
            "see outcome.json 'solver'",
            file=sys.stderr,
        )
    print(f"wrote {out}/: {', '.join(outputs)}", file=sys.stderr)
    return 0


def _print_summary(o: dict) -> None:
    lines = [f"course: {o['course']}"]
    for s in o["scans"]:
        if s["p_success"] is not None:
            lines.append(
                f"scan {s['name']} (day {s['day']}, {s['isotope']}, {s['readout']}): "
                f"P(success) = {s['p_success']:.3f}, drawn: {'success' if s['success'] else 'failure'}"
            )
    r = o["rai"]
    if r["treated"]:
        lines.append(f"RAI day {r['day']}: {r['activity_gbq']:.2f} GBq ({r['policy']}; {r['reason']})")
    else:
        lines.append(f"no RAI ({r['reason']})")
    for les in o["lesions"]:
        lines.append(
            f"  {les['name']:<10} {les['mass_g']:.3g} g: {les['absorbed_dose_gy']:.1f} Gy, BED {les['bed_gy']:.1f} Gy"
        )
    lines.append(
        "RECIST: "
        + ", ".join(f"{r['month']:g} mo {r['category']} ({r['change_from_baseline_pct']:+.0f} %)" for r in o["recist"])
    )
    lines.append(f"P(grade >= 3 AE) = {o['toxicity']['p_grade3_ae']:.3f}")
    print("\n".join(lines))

# Report: curves from result files -> robust fits -> tables and figures, each its own target.
# Everything here reads result files only, so `snakemake reports/tables/table4.md` builds exactly
# what Table 4 needs and nothing else.

REPORT_MODEL = CFG.report.model or models_in_use()[0]
REPORT = f"{R}/report/{REPORT_MODEL}"


def _curve_args(w, input):
    m = REPORT_MODEL
    args = [f"--base-eval {shlex.quote(f'{R}/{m}/eval/base/scores')}"]
    for run in sft_runs():
        if run.model != m:
            continue
        args.append(f"--sft-run {shlex.quote(f'{run.data}={R}/{m}/sft/{run.data}')}")
        args += [f"--sft-eval {shlex.quote(f'{run.data}:{s}={R}/{m}/eval/sft/{run.data}/{s}/scores')}"
                 for s in run.save_steps]
    args += [f"--rl {shlex.quote(d)}" for d in rl_dirs() if d.startswith(f"{R}/{m}/")]
    return " ".join(args)


def _curve_inputs(w):
    m = REPORT_MODEL
    runs = [r for r in sft_runs() if r.model == m]
    return ([f"{R}/{m}/eval/base/scores"]
            + [f"{R}/{m}/sft/{r.data}" for r in runs]
            + [f"{R}/{m}/eval/sft/{r.data}/{s}/scores" for r in runs for s in r.save_steps]
            + [d for d in rl_dirs() if d.startswith(f"{R}/{m}/")])


if CFG.report.import_curves:
    rule curves:
        """Curves imported from elsewhere (e.g. the study's published curves), rendered unchanged."""
        input:
            CFG.report.import_curves,
        output:
            csv=f"{REPORT}/curves.csv",
        log:
            log("report/curves"),
        shell:
            "{STAGE} curves --import {input:q} --out {output.csv:q} > {log:q} 2>&1"
else:
    rule curves:
        """Collect SFT evaluations, validation losses and RL curves into one curves CSV."""
        input:
            _curve_inputs,
            code=code("plasticity.analysis.curves"),
        output:
            csv=f"{REPORT}/curves.csv",
        params:
            args=_curve_args,
        log:
            log("report/curves"),
        conda:
            "../envs/report.yaml"
        shell:
            "{STAGE} curves {params.args} --out {output.csv:q} > {log:q} 2>&1"


rule fits:
    input:
        cfg=stage_config("report"),
        curves=rules.curves.output.csv,
        code=code("plasticity.analysis.fit"),
    output:
        f"{REPORT}/fits.csv",
    log:
        log("report/fits"),
    conda:
        "../envs/report.yaml"
    shell:
        "{STAGE} fit --config {input.cfg:q} --curves {input.curves:q} --out {output:q} > {log:q} 2>&1"


rule table4:
    """Table 4: per-branch Plasticity-Ceiling fits (markdown, LaTeX, csv)."""
    input:
        fits=rules.fits.output[0],
        code=code("plasticity.analysis.tables"),
    output:
        md=report(f"{REPORTS}/tables/table4.md", category="Tables", caption="../report/table4.rst"),
        tex=f"{REPORTS}/tables/table4.tex",
        csv=f"{REPORTS}/tables/table4.csv",
    params:
        prefix=f"{REPORTS}/tables/table4",
    log:
        log("report/table4"),
    conda:
        "../envs/report.yaml"
    shell:
        "{STAGE} table --name table4 --fits {input.fits:q} --out-prefix {params.prefix:q} > {log:q} 2>&1"


def _val_loss_args(w):
    runs = [r for r in sft_runs() if r.model == REPORT_MODEL]
    return " ".join(f"--val-loss {shlex.quote(f'{r.data}={R}/{REPORT_MODEL}/sft/{r.data}/val_loss.json')}"
                    for r in runs)


rule figure3:
    """Figure 3: RL curves per SFT set with fitted sigmoids and regime shading."""
    input:
        curves=rules.curves.output.csv,
        fits=rules.fits.output[0],
        sft=[f"{R}/{r.model}/sft/{r.data}" for r in sft_runs() if r.model == REPORT_MODEL],
        code=code("plasticity.analysis.figures"),
    output:
        report(f"{REPORTS}/figures/figure3.png", category="Figures", caption="../report/figure3.rst"),
    params:
        val_loss=_val_loss_args,
    log:
        log("report/figure3"),
    conda:
        "../envs/report.yaml"
    shell:
        "{STAGE} figure --name figure3 --curves {input.curves:q} --fits {input.fits:q} {params.val_loss}"
        " --out {output:q} > {log:q} 2>&1"


rule metrics:
    """reports/metrics.json: the headline numbers (DVC metrics)."""
    input:
        curves=rules.curves.output.csv,
        fits=rules.fits.output[0],
        code=code("plasticity.analysis.metrics"),
    output:
        f"{REPORTS}/metrics.json",
    log:
        log("report/metrics"),
    conda:
        "../envs/report.yaml"
    shell:
        "{STAGE} metrics --curves {input.curves:q} --fits {input.fits:q} --out {output:q} > {log:q} 2>&1"


rule report:
    """Target: every table and figure."""
    input:
        rules.table4.output,
        rules.figure3.output,
        rules.metrics.output,
    localrule: True

# Report: curves from result files -> robust fits -> tables and figures, each its own target.
# Everything here reads result files only, so `snakemake reports/tables/table4.md` builds exactly
# what Table 4 needs and nothing else.


if CFG.report.import_curves:
    rule curves:
        """Curves imported from elsewhere (e.g. the study's published curves), rendered unchanged."""
        input:
            CFG.report.import_curves,
        output:
            csv=f"{REPORT}/curves.csv",
        resources:
            **job_request("curves"),
        log:
            log("report/curves"),
        shell:
            "python -m plasticity curves --import {input:q} --out {output.csv:q} > {log:q} 2>&1"
else:
    rule curves:
        """Collect SFT evaluations, validation losses and RL curves into one curves CSV."""
        input:
            _curve_inputs,
            code=code("plasticity.analysis.curves"),
        output:
            csv=f"{REPORT}/curves.csv",
            # written beside the CSV, read by fits (fit_side_args) and by Table 1 / Figure 2 (the
            # paradigm comparison's branches): declared so they are versioned too
            weights=f"{REPORT}/weights.json",
            branches=f"{REPORT}/branches.csv",
            paradigms=f"{REPORT}/paradigms.csv",
        params:
            args=_curve_args,
        resources:
            **job_request("curves"),
        log:
            log("report/curves"),
        conda:
            "../envs/report.yaml"
        shell:
            "python -m plasticity curves {params.args} --out {output.csv:q} > {log:q} 2>&1"


rule fits:
    input:
        curves=rules.curves.output.csv,
        hparams=CFG.report.import_hparams or [],
        code=code("plasticity.analysis.fit"),
    output:
        f"{REPORT}/fits.csv",
    params:
        tau=CFG.report.fit.outlier_tau,
        alpha=CFG.report.fit.lts_alpha,
        eps=CFG.report.fit.eps,
        # curves writes weights.json (suite sizes) and branches.csv (branch points) beside the CSV
        side=lambda w, input: fit_side_args(input.curves),
    resources:
        **job_request("fits"),
    log:
        log("report/fits"),
    conda:
        "../envs/report.yaml"
    shell:
        "python -m plasticity fit --curves {input.curves:q} {params.side} --tau {params.tau:q}"
        " --alpha {params.alpha:q} --eps {params.eps:q} --out {output:q} > {log:q} 2>&1"


rule table:
    """One of the study's tables (markdown, LaTeX, csv), built from result files only."""
    input:
        unpack(table_inputs),
        code=code("plasticity.analysis.tables"),
    output:
        md=report(f"{REPORTS}/tables/{{table}}.md", category="Tables", caption="../report/tables.rst"),
        tex=f"{REPORTS}/tables/{{table}}.tex",
        csv=f"{REPORTS}/tables/{{table}}.csv",
    params:
        args=lambda w: report_args(w.table),
        prefix=lambda w, output: output.md.removesuffix(".md"),
    resources:
        **job_request("table"),
    log:
        log("report/{table}"),
    conda:
        "../envs/report.yaml"
    shell:
        "python -m plasticity table --name {wildcards.table} {params.args} --out-prefix {params.prefix:q}"
        " > {log:q} 2>&1"


rule figure:
    """One of the study's figures (png), built from result files only."""
    input:
        unpack(figure_inputs),
        code=code("plasticity.analysis.figures"),
    output:
        report(f"{REPORTS}/figures/{{figure}}.png", category="Figures", caption="../report/figures.rst"),
    params:
        args=lambda w: report_args(w.figure),
    resources:
        **job_request("figure"),
    log:
        log("report/{figure}"),
    conda:
        "../envs/report.yaml"
    shell:
        "python -m plasticity figure --name {wildcards.figure} {params.args} --out {output:q} > {log:q} 2>&1"


rule metrics:
    """reports/metrics.json: the headline numbers (DVC metrics)."""
    input:
        curves=rules.curves.output.csv,
        fits=rules.fits.output[0],
        code=code("plasticity.analysis.metrics"),
    output:
        f"{REPORTS}/metrics.json",
    resources:
        **job_request("metrics"),
    log:
        log("report/metrics"),
    conda:
        "../envs/report.yaml"
    shell:
        "python -m plasticity metrics --curves {input.curves:q} --fits {input.fits:q} --out {output:q} > {log:q} 2>&1"


rule report:
    """Target: every table and figure, and the metrics."""
    input:
        report_targets(),
        rules.metrics.output,
    localrule: True

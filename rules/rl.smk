# RL branches: from an SFT checkpoint (step or switch rule) or from the base (sft_data `none`).

from plasticity.methods import METHODS


rule rl:
    input:
        cfg=stage_config("rl", "{model}/{sft_data}@{switch}/{method}"),
        start=_rl_start,
        sets=rules.subsets.output[0],
        benchmarks=eval_suite,
        code=code("plasticity.train.rl"),
    output:
        directory(f"{R}/{{model}}/rl/{{sft_data}}@{{switch}}/{{method}}"),
    params:
        launcher=lambda w: launcher(rl_settings(w).launch, rl_budget_of(w).timing.grace_s),
        prompts=lambda w, input: f"{input.sets}/{rl_settings(w).prompts}.parquet",
        # synchronized SFT+RL methods also read the expert trajectories of their (MIX-kind) prompt set
        experts=lambda w, input: (f"--experts {shlex.quote(f'{input.sets}/{rl_settings(w).prompts}.parquet')}"
                                  if METHODS[w.method].sync else ""),
        suite=eval_suite_dir,
    threads: lambda w: threads_per_node(rl_settings(w).launch)
    # a job longer than its time limit runs as several segments, each a retry resuming the last
    retries: rule_retries(list(RL_BUDGETS.values()))
    resources:
        **training_resources(rl_settings, rl_budget_of),
    log:
        log("{model}/rl/{sft_data}@{switch}/{method}"),
    conda:
        "../envs/train.yaml"
    # exec: as in rules/sft.smk, the stage itself gets the scheduler's SIGTERM (and saves a checkpoint)
    shell:
        "exec {params.launcher} rl --config {input.cfg:q} --start-from {input.start:q} --prompts {params.prompts:q}"
        " --benchmarks {params.suite:q} {params.experts} --out {output:q} --threads {threads} > {log:q} 2>&1"


rule rl_all:
    """Target: every configured RL branch."""
    input:
        rl_dirs(),
    localrule: True

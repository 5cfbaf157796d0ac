# plasticity: the study's DAG. Thin on purpose: config, phases and targets live in rules/*.smk.
#
#   snakemake --profile profiles/local                # the embedded default study, ending with the report
#   snakemake --profile profiles/slurm --configfile configs/paper-qwen2.5-7b.yaml
#   snakemake --profile profiles/local reports/tables/table4.md   # one table and only what it needs

include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/sft.smk"
include: "rules/eval.smk"
include: "rules/rl.smk"
include: "rules/report.smk"


# Every phase's outputs are targets, not only the report: Snakemake does not rebuild a deleted
# intermediate output whose consumers are up to date, and a deleted RL branch must be rebuilt.
rule all:
    input:
        rules.data.input,
        rules.models.input,
        rules.sft_all.input,
        rules.eval_all.input,
        rules.rl_all.input,
        rules.report.input,
    default_target: True
    localrule: True

# Models and SFT: tokenizer -> base model -> SFT run (checkpoints, validation loss, regimes).


rule download_model:
    """A hub model's pinned snapshot (weights, config, tokenizer), fetched on the submit host."""
    output:
        directory(f"{R}/downloads/models/{{model}}"),
    params:
        args=lambda w: download_args(CFG.models[w.model], MODEL_PATTERNS),
    log:
        log("{model}/download"),
    localrule: True
    conda:
        "../envs/train.yaml"
    shell:
        "python -m plasticity download {params.args} --out {output:q} > {log:q} 2>&1"


rule tokenizer:
    input:
        cfg=stage_config("tokenizer", "{model}"),
        snapshot=model_snapshot,
        code=code("plasticity.models"),
    output:
        directory(f"{R}/{{model}}/tokenizer"),
    params:
        snapshot=snapshot_arg,
    resources:
        **job_request("tokenizer"),
    log:
        log("{model}/tokenizer"),
    conda:
        "../envs/train.yaml"
    shell:
        "python -m plasticity tokenizer --config {input.cfg:q} {params.snapshot} --out {output:q} > {log:q} 2>&1"


rule base:
    input:
        cfg=stage_config("base", "{model}"),
        tokenizer=rules.tokenizer.output[0],
        benchmarks=rules.benchmarks.output[0],
        snapshot=model_snapshot,
        code=code("plasticity.train.pretrain"),
    output:
        directory(f"{R}/{{model}}/base"),
    params:
        # benchmark problems are kept out of the tiny base's pretraining draws
        exclude=lambda w, input: [f"{input.benchmarks}/{b}.parquet" for b in CFG.eval.benchmarks],
        snapshot=snapshot_arg,
    threads: 1
    resources:
        **job_request("base"),
    log:
        log("{model}/base"),
    conda:
        "../envs/train.yaml"
    shell:
        "python -m plasticity base --config {input.cfg:q} --tokenizer {input.tokenizer:q} {params.snapshot}"
        " --out {output:q} --exclude {params.exclude:q} --threads {threads} > {log:q} 2>&1"


rule tokenize:
    """One set tokenized once per model and max length (memory-mapped shards every SFT rank opens)."""
    input:
        cfg=stage_config("tokenize", "{model}/{tok_set}/{max_length}"),
        tokenizer=rules.tokenizer.output[0],
        sets=rules.subsets.output[0],
        code=code("plasticity.train.tokens"),
    output:
        directory(f"{R}/{{model}}/tokens/{{tok_set}}/{{max_length}}"),
    params:
        data=lambda w, input: f"{input.sets}/{w.tok_set}.parquet",
    threads: CFG.sft.tokenize.workers or 1
    resources:
        **job_request("tokenize"),
    log:
        log("{model}/tokens/{tok_set}/{max_length}"),
    conda:
        "../envs/train.yaml"
    shell:
        "python -m plasticity tokenize --config {input.cfg:q} --tokenizer {input.tokenizer:q} --data {params.data:q}"
        " --out {output:q} --threads {threads} > {log:q} 2>&1"


rule sft:
    input:
        cfg=stage_config("sft", "{model}/{sft_data}"),
        base=rules.base.output[0],
        train=lambda w: tokens_dir(w.model, w.sft_data, sft_settings(w).max_length),
        val=lambda w: tokens_dir(w.model, VAL_SET, sft_settings(w).max_length),
        code=code("plasticity.train.sft"),
    output:
        directory(f"{R}/{{model}}/sft/{{sft_data}}"),
    params:
        launcher=lambda w: launcher(sft_settings(w).launch, sft_budget_of(w).timing.grace_s),
    threads: lambda w: threads_per_node(sft_settings(w).launch)
    # a job longer than its time limit runs as several segments, each a retry resuming the last
    retries: rule_retries(list(SFT_BUDGETS.values()))
    resources:
        **training_resources(sft_settings, sft_budget_of),
    log:
        log("{model}/sft/{sft_data}"),
    conda:
        "../envs/train.yaml"
    # exec: the stage replaces the shell, so the scheduler's SIGTERM (sent to every process of the job
    # step) finds no shell to kill first, and the stage saves and exits itself
    shell:
        "exec {params.launcher} sft --config {input.cfg:q} --base {input.base:q} --train {input.train:q}"
        " --val {input.val:q} --out {output:q} --threads {threads} > {log:q} 2>&1"


rule sft_all:
    """Target: every configured SFT run."""
    input:
        [f"{R}/{run.model}/sft/{run.data}" for run in sft_runs()],
    localrule: True


rule models:
    """Target: every model's base weights."""
    input:
        [f"{R}/{m}/base" for m in models_in_use()],
    localrule: True

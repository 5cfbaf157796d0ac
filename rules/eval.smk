# Evaluation: generate (GPU with vLLM, or CPU) and grade (CPU) are separate rules with separate
# config sections, so a grader change regrades without regenerating.


rule generate:
    input:
        cfg=stage_config("generate", "{model}"),
        model=_eval_model,
        benchmarks=eval_suite,
        code=code("plasticity.eval.generate"),
    output:
        directory(f"{R}/{{model}}/eval/{{run}}/generations"),
    params:
        weights=_eval_weights,
        suite=eval_suite_dir,
    # vLLM: an engine process, a tokenizer and detokenizer per GPU; transformers on CPU: one thread
    # (the miniature's sampling is pinned to one thread for bytes that do not depend on the machine)
    threads: VLLM_CPUS_PER_GPU * CFG.eval.tensor_parallel_size if CFG.eval.backend == "vllm" else 1
    resources:
        **job_request("generate"),
        gpu=CFG.eval.tensor_parallel_size if CFG.eval.backend == "vllm" else 0,
    log:
        log("{model}/eval/{run}/generate"),
    conda:
        "../envs/eval.yaml"
    shell:
        "python -m plasticity generate --config {input.cfg:q} --model {params.weights:q} --benchmarks {params.suite:q}"
        " --out {output:q} --threads {threads} > {log:q} 2>&1"


rule grade:
    input:
        cfg=stage_config("grade"),
        generations=rules.generate.output[0],
        benchmarks=eval_suite,
        code=code("plasticity.eval.score"),
    output:
        directory(f"{R}/{{model}}/eval/{{run}}/scores"),
    params:
        suite=eval_suite_dir,
    threads: CFG.eval.grader.workers
    resources:
        **job_request("grade"),
    log:
        log("{model}/eval/{run}/grade"),
    conda:
        "../envs/eval.yaml"
    shell:
        "python -m plasticity grade --config {input.cfg:q} --generations {input.generations:q}"
        " --benchmarks {params.suite:q} --out {output:q} > {log:q} 2>&1"


rule eval_all:
    """Target: every evaluated checkpoint (bases and every SFT save step)."""
    input:
        base_eval_dirs() + sft_eval_dirs(),
    localrule: True

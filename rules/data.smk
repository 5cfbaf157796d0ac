# Data phase: simulated teacher -> ingest -> filter -> decontaminate -> difficulty -> named sets.
# Each rule is one `python -m plasticity <stage>`; outputs are directories finished by manifest.json.

DATA = f"{R}/data"


rule stage_config:
    """Write one stage's resolved config section; reruns (and so reruns the stage) when it changes."""
    output:
        f"{R}/configs/{{stage}}/{{key}}.json",
    params:
        section=lambda w: section(w.stage, w.key),
    log:
        log("configs/{stage}/{key}"),
    localrule: True
    run:
        write_section(output[0], params.section)


rule download_source:
    """A hub data source's pinned snapshot, fetched on the submit host (plasticity.download)."""
    output:
        directory(f"{DATA}/downloads/{{source}}"),
    params:
        args=lambda w: download_args(HUB_SOURCES[w.source]),
    log:
        log("data/downloads/{source}"),
    localrule: True
    conda:
        "../envs/data.yaml"
    shell:
        "python -m plasticity download {params.args} --out {output:q} > {log:q} 2>&1"


rule benchmarks:
    """The benchmark suites: fetched from the hub where the registry says so, hence on the submit host."""
    input:
        cfg=stage_config("benchmarks"),
        code=code("plasticity.eval.registry"),
    output:
        directory(f"{R}/benchmarks"),
    localrule: True
    log:
        log("benchmarks"),
    conda:
        "../envs/eval.yaml"
    shell:
        "python -m plasticity benchmarks --config {input.cfg:q} --out {output:q} > {log:q} 2>&1"


rule teacher:
    input:
        cfg=stage_config("teacher"),
        benchmarks=rules.benchmarks.output[0],
        code=code("plasticity.data.teacher"),
    output:
        directory(f"{DATA}/raw"),
    resources:
        **job_request("teacher"),
    log:
        log("data/teacher"),
    conda:
        "../envs/data.yaml"
    shell:
        "python -m plasticity teacher --config {input.cfg:q} --benchmarks {input.benchmarks:q} --out {output:q} > {log:q} 2>&1"


rule ingest:
    input:
        cfg=stage_config("ingest"),
        raw=_raw_input,
        downloads=[f"{DATA}/downloads/{name}" for name in HUB_SOURCES],
        code=code("plasticity.data.ingest"),
    output:
        directory(f"{DATA}/ingested"),
    params:
        raw=f"{DATA}/raw",
        downloads=f"{DATA}/downloads",
    resources:
        **job_request("ingest"),
    log:
        log("data/ingest"),
    conda:
        "../envs/data.yaml"
    shell:
        "python -m plasticity ingest --config {input.cfg:q} --raw {params.raw:q} --downloads {params.downloads:q}"
        " --out {output:q} > {log:q} 2>&1"


rule filter:
    input:
        cfg=stage_config("filter"),
        ingested=rules.ingest.output[0],
        tokenizer=f"{R}/{CFG.tokenizer_model()}/tokenizer",
        code=code("plasticity.data.filters"),
    output:
        directory(f"{DATA}/filtered"),
    threads: CFG.data.filter.workers or 1
    resources:
        **job_request("filter"),
    log:
        log("data/filter"),
    conda:
        "../envs/data.yaml"
    shell:
        "python -m plasticity filter --config {input.cfg:q} --ingested {input.ingested:q} --tokenizer {input.tokenizer:q}"
        " --out {output:q} --threads {threads} > {log:q} 2>&1"


rule decontaminate:
    input:
        cfg=stage_config("decontaminate"),
        filtered=rules.filter.output[0],
        benchmarks=rules.benchmarks.output[0],
        code=code("plasticity.data.decontaminate"),
    output:
        directory(f"{DATA}/decontaminated"),
    threads: CFG.data.decontaminate.workers or 1
    resources:
        **job_request("decontaminate"),
        gpu=1 if CFG.data.decontaminate.benchmark_side else 0,   # the embedding model
    log:
        log("data/decontaminate"),
    conda:
        "../envs/data.yaml"
    shell:
        "python -m plasticity decontaminate --config {input.cfg:q} --filtered {input.filtered:q}"
        " --benchmarks {input.benchmarks:q} --out {output:q} --threads {threads} > {log:q} 2>&1"


rule difficulty:
    input:
        cfg=stage_config("difficulty"),
        decontaminated=rules.decontaminate.output[0],
        reference=difficulty_model,
        code=code("plasticity.data.difficulty"),
    output:
        directory(f"{DATA}/difficulty"),
    params:
        model=lambda w, input: f"--model {shlex.quote(input.reference)}" if input.reference else "",
    threads: workflow.cores if CFG.data.difficulty.source == "sample" else 1   # grading the samples
    resources:
        **job_request("difficulty"),
    log:
        log("data/difficulty"),
    conda:
        "../envs/data.yaml"
    shell:
        "python -m plasticity difficulty --config {input.cfg:q} --in {input.decontaminated:q} --out {output:q}"
        " {params.model} --threads {threads} > {log:q} 2>&1"


rule subsets:
    input:
        cfg=stage_config("subsets"),
        difficulty=rules.difficulty.output[0],
        code=code("plasticity.data.subsets"),
    output:
        directory(f"{DATA}/sets"),
    resources:
        **job_request("subsets"),
    log:
        log("data/subsets"),
    conda:
        "../envs/data.yaml"
    shell:
        "python -m plasticity subsets --config {input.cfg:q} --in {input.difficulty:q} --out {output:q} > {log:q} 2>&1"


rule data:
    """Target: the benchmarks, every named data set and every model's tokenizer."""
    input:
        rules.subsets.output[0],
        [f"{R}/{m}/tokenizer" for m in models_in_use()],
    localrule: True

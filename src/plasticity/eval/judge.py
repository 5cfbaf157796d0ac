"""Optional LLM judge for the items where the strict and lenient graders disagree (PAPER.md section 3).

The study's second stage: a judge model reads the question, the reference and the student's
answer with a teacher-grading prompt and answers ``Grade: True`` or ``Grade: False``. Here it
talks to any OpenAI-compatible chat-completions endpoint (a vLLM server on a cluster) with the
standard library only. Off by default: it runs only when the eval section has ``judge:
{base_url, model, api_key_env?}``. Requests are bounded (``max_requests``), each has a timeout and
a few retries; an item the judge cannot decide keeps the strict verdict.
"""
from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

JUDGE_PROMPT = """You are a teacher grading a quiz.
You are given a question, the reference answer, and a student's answer. Judge only whether the
student's final answer is mathematically equivalent to the reference answer; ignore differences
in formatting, units written or omitted, and the work shown.

Question:
{question}

Reference answer:
{reference}

Student answer:
{response}

End your reply with exactly one line: "Grade: True" if the student's answer is correct, or
"Grade: False" if it is not."""

_GRADE = re.compile(r"Grade\s*:\s*\**\s*(True|False)", re.IGNORECASE)


@dataclass(frozen=True)
class JudgeConfig:
    base_url: str                     # e.g. http://127.0.0.1:8000/v1
    model: str
    api_key_env: str | None = None    # name of the environment variable holding the key, if any
    temperature: float = 0.6          # the study's judge setting (DeepSeek-V3 at 0.6 / top-p 0.95)
    top_p: float = 0.95
    max_tokens: int = 1024
    timeout_s: float = 60.0
    retries: int = 2
    concurrency: int = 4
    max_requests: int = 10_000        # hard bound on calls per run

    @classmethod
    def from_dict(cls, d: dict) -> "JudgeConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def parse_grade(text: str) -> bool | None:
    """The last ``Grade: True/False`` in a reply, or None when there is none."""
    found = _GRADE.findall(text or "")
    return None if not found else found[-1].lower() == "true"


def _request(cfg: JudgeConfig, prompt: str) -> str:
    body = json.dumps({"model": cfg.model, "messages": [{"role": "user", "content": prompt}],
                       "temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.max_tokens}).encode()
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(cfg.base_url.rstrip("/") + "/chat/completions", data=body, headers=headers,
                                 method="POST")
    with urllib.request.urlopen(req, timeout=cfg.timeout_s) as resp:
        payload = json.loads(resp.read().decode("utf-8"))
    return payload["choices"][0]["message"]["content"] or ""


def judge_one(cfg: JudgeConfig, question: str, reference: str, response: str) -> bool | None:
    """The judge's verdict for one answer; None when it failed or gave no grade after the retries."""
    prompt = JUDGE_PROMPT.format(question=question, reference=reference, response=response)
    for attempt in range(cfg.retries + 1):
        try:
            verdict = parse_grade(_request(cfg, prompt))
            if verdict is not None:
                return verdict
        except urllib.error.HTTPError as exc:
            if exc.code < 500 and exc.code != 429:   # a client error will not fix itself
                return None
        except (urllib.error.URLError, TimeoutError, OSError, KeyError, IndexError, ValueError):
            pass
        if attempt < cfg.retries:
            time.sleep(min(2.0 ** attempt * 0.5, 8.0))
    return None


def judge_many(cfg: JudgeConfig, items: Sequence[tuple[str, str, str]]) -> list[bool | None]:
    """Verdicts for (question, reference, response) items; beyond ``max_requests`` items get None."""
    todo = list(items)[: cfg.max_requests]
    with ThreadPoolExecutor(max_workers=max(1, cfg.concurrency)) as pool:
        verdicts = list(pool.map(lambda it: judge_one(cfg, *it), todo))
    return verdicts + [None] * (len(items) - len(todo))

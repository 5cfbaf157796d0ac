"""The LLM judge's protocol against a local OpenAI-compatible server (http.server on 127.0.0.1)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from plasticity.eval.judge import JUDGE_PROMPT, JudgeConfig, judge_many, judge_one, parse_grade


class _Handler(BaseHTTPRequestHandler):
    requests: list = []
    fail_first = 0

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.path, dict(self.headers), body))
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        prompt = body["messages"][0]["content"]
        student = prompt.split("Student answer:\n", 1)[1].split("\n\n", 1)[0]
        content = "Reasoning...\nGrade: True" if student.strip() in {"1/2", "0.5"} else "Grade: False"
        payload = {"id": "x", "object": "chat.completion", "model": body["model"],
                   "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": content}}]}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    _Handler.requests = []
    _Handler.fail_first = 0
    httpd = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_protocol(server, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "secret")
    cfg = JudgeConfig(base_url=server, model="judge-model", api_key_env="JUDGE_KEY", timeout_s=5, retries=0)
    assert judge_one(cfg, "What is 1/2?", "\\frac{1}{2}", "0.5") is True
    assert judge_one(cfg, "What is 1/2?", "\\frac{1}{2}", "3") is False
    path, headers, body = _Handler.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer secret"
    assert body["model"] == "judge-model" and body["messages"][0]["role"] == "user"
    assert body["messages"][0]["content"].startswith("You are a teacher grading")
    assert "Grade: True" in JUDGE_PROMPT


def test_retries_bounds_and_failures(server):
    _Handler.fail_first = 1
    cfg = JudgeConfig(base_url=server, model="m", timeout_s=5, retries=1, max_requests=2, concurrency=2)
    out = judge_many(cfg, [("q", "r", "0.5"), ("q", "r", "7"), ("q", "r", "0.5")])
    assert out == [True, False, None]                  # the third is beyond max_requests
    assert len(_Handler.requests) == 3                 # one 503 retried, then two answers
    dead = JudgeConfig(base_url="http://127.0.0.1:9/v1", model="m", timeout_s=1, retries=0)
    assert judge_one(dead, "q", "r", "a") is None     # unreachable: undecided, never raises


def test_parse_grade():
    assert parse_grade("Grade: True") is True
    assert parse_grade("grade: false") is False
    assert parse_grade("Grade: False ... on reflection Grade: **True**") is True
    assert parse_grade("I think it is right") is None

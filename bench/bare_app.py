"""The reference app of the accept and board benchmarks: bare Flask returning a small JSON
body, served by the same gunicorn settings (web/gunicorn_conf.py) as the real app."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.post("/api/score/update")
def update():
    return jsonify(job_id="0" * 32, status_url="/api/score/jobs/" + "0" * 32, state="queued"), 202


@app.get("/api/scoreboard")
def board():
    return jsonify(entries=[], version=1, generated_at=0)


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")

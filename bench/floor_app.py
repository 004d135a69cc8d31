"""The accept benchmark's floor: the submit route's libraries with nothing to do.

The same route as ``web/scores`` (``POST /api/score/update``) behind the same layers, set up
as ``create_app`` sets them up (flask-jwt-extended through our token-caching manager,
Flask-Limiter counting the benchmark's two windows in the same Redis, flask-smorest parsing
the body with the same schema and parser, documenting the same 202), but nothing of ours:
no blocklist, ban, action token, signature, accept script or queue; the view returns a
constant. What it serves per second is the most the real route could serve on these
libraries if all of our own work were free.

``FLOOR_LAYERS`` (default ``smorest,jwt,limiter``) picks the layers, to see what each costs;
``FLOOR_LIMITER_STORAGE`` (default: ``REDIS_URL``) can be ``memory://``.
"""

from __future__ import annotations

import os

from flask import Flask
from flask_jwt_extended import jwt_required
from flask_limiter import Limiter

from scoreboard.settings import Settings
from web import schemas
from web.extensions import Blueprint, NoCookieSession, ScoreboardApi, rate_limit_key
from web.verified_tokens import CachingJWTManager

LAYERS = set(os.environ.get("FLOOR_LAYERS", "smorest,jwt,limiter").split(","))
LIMITS = os.environ.get("RATE_LIMIT_SUBMIT", "1000000 per second;60000000 per minute")

app = Flask(__name__, static_folder=None)
app.session_interface = NoCookieSession()
settings = Settings.from_env(os.environ)
app.config.update(JWT_SECRET_KEY=settings.jwt_secret_key, JWT_ALGORITHM="HS256",
                  JWT_DECODE_ALGORITHMS=["HS256"], JWT_TOKEN_LOCATION=["headers"], API_TITLE="floor",
                  API_VERSION="1", OPENAPI_VERSION="3.0.3")
jwt = CachingJWTManager(app)
limiter = Limiter(key_func=rate_limit_key, headers_enabled=False, strategy="fixed-window",
                  storage_uri=os.environ.get("FLOOR_LIMITER_STORAGE") or settings.redis.url,
                  key_prefix=f"{settings.redis_prefix}floor:", app=app)
api = ScoreboardApi(app)
blp = Blueprint("scores", __name__, url_prefix="/api/score")
ACCEPTED = {"job_id": "0" * 32, "status_url": "/api/score/jobs/" + "0" * 32, "state": "queued"}


def submit(body=None):
    return ACCEPTED


view = submit
if "smorest" in LAYERS:
    view = blp.arguments(schemas.SubmissionRequest())(blp.response(202, schemas.Accepted)(view))
if "limiter" in LAYERS:
    view = limiter.limit(LIMITS)(view)
if "jwt" in LAYERS:
    view = jwt_required()(view)
if "smorest" in LAYERS:
    blp.route("/update", methods=["POST"])(view)
    api.register_blueprint(blp)
else:
    app.post("/api/score/update")(lambda: (view(), 202))


@app.get("/healthz")
def healthz():
    return {"status": "ok"}

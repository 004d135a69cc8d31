"""The gunicorn entry point of the stream process: ``web.stream_wsgi:app``."""

from scoreboard import logs
from scoreboard.settings import Settings

from web.stream import create_stream_app

settings = Settings.from_env()
logs.configure(settings.log_level, "stream")
app = create_stream_app(settings)

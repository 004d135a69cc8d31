"""The gunicorn entry point: ``web.wsgi:app``. Settings are read here, once."""

from scoreboard import logs
from scoreboard.settings import Settings

from web.app import create_app

settings = Settings.from_env()
logs.configure(settings.log_level, "web")
app = create_app(settings)

"""The HTTP side: the API application (``web.app.create_app``), its blueprints, and the
live stream (``web.stream``), which runs as its own process.

Importing this package loads nothing: each entry point (``web.wsgi``, ``web.stream_wsgi``)
imports what it runs, so the stream process never loads the API's libraries.
"""

"""`corral serve`: an OpenAI-compatible API over the library, the templates and the engine.

    Server(ServeConfig(host=, port=, model=, api_key=, cors=, max_queue=, max_body=, threads=),
           library=None).serve_forever() | .start() / .stop()   # .url, .port, .worker
    create_app(config, library=, worker=) -> the Starlette app

Modules: app (routes, the Guard middleware, streaming), schema (OpenAI request/response
shapes), worker (the engine thread and its bounded queue; each request is a turn of the turn
pipeline, app.core.turns, on its LocalBackend), errors (OpenAI-shaped errors), run (uvicorn).
No Qt here.
"""

from app.core.server.app import ServeConfig, create_app, find_model
from app.core.server.run import Server

__all__ = ["ServeConfig", "Server", "create_app", "find_model"]

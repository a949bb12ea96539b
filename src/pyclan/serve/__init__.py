"""`pyclan serve`: the API registry over HTTP, with long calls as tasks, and the web UI.

One server serves one clan (`-C DIR`). Every request needs the token printed at start;
the server binds the loopback interface unless told otherwise. `app.create_app` builds the
Starlette application (tests use it directly), `server.serve` runs it with uvicorn.
"""

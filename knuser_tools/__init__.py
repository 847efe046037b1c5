"""The application's tooling: what drives and checks knuser (functions/) from outside.

`knlocal` (the local runtime) knows nothing of the application; what knows both lives here:
the burst driver behind `knlocal burst` (a command this package adds to `knlocal` through the
`knlocal.commands` entry points of pyproject.toml), and a runtime process with the user API's
calls, for tests and benchmarks.
"""

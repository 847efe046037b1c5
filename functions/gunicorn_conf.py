"""gunicorn settings for every function: `gunicorn -c python:functions.gunicorn_conf …`.

One worker process with as many threads as the Knative Service's `containerConcurrency`
(passed as CONTAINER_CONCURRENCY), so the platform's hard limit and the server's agree; the
worker is gthread with fewer hand-offs between threads (`functions/gunicorn_worker.py`). No
gunicorn timeout: Knative's `timeoutSeconds` bounds requests (knative/docs' Python sample).
"""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}"
workers = 1
worker_class = "functions.gunicorn_worker.ThreadWorker"
_concurrency = int(os.environ.get("CONTAINER_CONCURRENCY") or "0")
# containerConcurrency 0 means unlimited in Knative; 16 threads then serve a light handler well.
threads = _concurrency if _concurrency > 0 else 16
timeout = 0
keepalive = 75
graceful_timeout = 10
accesslog = None
# gunicorn ≥ 23's control socket is one fixed path per user: instances would fight over it.
control_socket_disable = True

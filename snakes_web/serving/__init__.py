"""How gunicorn runs the app: the threaded worker, the inference gate, the stop flag and the sizing.

``worker`` paces slow connections; ``gate`` (on ``semaphores``) shares the inference slots between
workers and turns overload into a fast 503; ``shutdown`` drains on SIGTERM; ``sizing`` picks workers
and threads from the cores and memory the process may use. No Flask; ``gunicorn.conf.py`` wires it up.
"""

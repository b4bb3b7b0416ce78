"""`snakes-web bench`: ``learn.predict`` against our server, measured in one run into docs/benchmarks.md.

``command`` runs it (what is measured, and in which order, is its docstring); each part lives in
its own module: ``scenarios`` (names and result records), ``images`` (what is classified),
``baseline`` (``learn.predict``, its own process), ``servers`` (our gunicorn per scenario),
``client`` (the load generator, its own process), ``processes`` (memory and CPU from /proc),
``slow_clients`` (slow uploads and URLs held open), ``in_process`` (int8 agreement, batching, where a
request's time goes), ``explain`` (what heatmaps cost) and ``report`` (the Markdown).
"""

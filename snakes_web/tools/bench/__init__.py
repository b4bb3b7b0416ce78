"""`snakes-web bench`: ``learn.predict`` against our server, measured in one run into docs/benchmarks.md."""

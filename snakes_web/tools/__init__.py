"""The command line, ``snakes-web``: train, predict, export, bench and the feedback owner's commands.

The top layer: it may use every other one (the bench starts the app through ``create_app``), and
nothing imports it.
"""

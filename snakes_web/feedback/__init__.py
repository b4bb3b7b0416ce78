"""What users answer to "Is this right?": signed tokens, the database, its quota and rate limits.

``tokens`` signs the photo a prediction was made on into its feedback token; ``database`` opens
SQLite or PostgreSQL and applies ``migrations``; ``store`` writes and reads answers within a quota;
``ratelimit`` keeps Flask-Limiter's counts in the same database. No HTTP: the routes live in
``snakes_web.web.feedback`` and the owner's commands in ``snakes_web.tools.feedback``.
"""

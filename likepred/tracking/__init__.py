"""MLflow tracking, in rooms that import only downward:

keys (names, config hash) -> store (URI, experiment) -> report (sweep tables) -> sweep (parent
run, jobs, resume) -> run (a job's run) -> callback (Hydra's hooks). One run per job, a child
of the sweep's parent run in a multirun; the experiment is created before jobs start.
"""

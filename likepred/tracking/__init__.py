"""MLflow tracking, in rooms that import only downward:

keys (names, config hash) and alive (which process owns a run) -> store (URI, experiment, the
store's lock, killed runs closed) -> report (sweep tables) -> sweep (parent run, jobs, resume) ->
run (a job's run) -> callback (Hydra's hooks). One run per job, a child of the sweep's parent run
in a multirun; the experiment is created before jobs start.
"""

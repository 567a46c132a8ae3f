"""One experiment, top to bottom: data, split, features, model, fit, calibrate, evaluate, log."""

from __future__ import annotations

import logging
import threading
import time

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("likepred")


def train(cfg: DictConfig, run=None, keep: dict | None = None) -> dict:
    """Run one experiment (its config already checked: likepred.checks.check) in `run`, the job's
    MLflow run that the runner opened (likepred.tracking.run.open_run; None: open one here, for
    scripts and tests); return its metrics. Results (config.yaml, predictions.csv, plots,
    skipped.csv, features/) are written into `run.folder` and logged once.
    `keep`: a dict that gets the test rows' predictions table (predictions.csv) as "table"."""
    if run is None:
        from likepred.tracking.run import open_run

        with open_run(cfg) as run:
            return train(cfg, run, keep)
    beat = Heartbeat()
    try:
        return _flow(cfg, run, keep, beat)
    finally:
        beat.stop()


class Heartbeat:
    """Long runs show progress: while a stage (`beat("features and target")`) runs longer than
    EVERY_S without a new stage, a daemon thread says so every EVERY_S seconds; `beat(None)`
    between stages that print their own progress (training: epochs, gbm rounds)."""

    EVERY_S = 20.0

    def __init__(self):
        self.what, self.since, self.said = None, time.monotonic(), time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="likepred-heartbeat", daemon=True)
        self._thread.start()

    def __call__(self, what: str | None):
        self.what, self.since = what, time.monotonic()
        self.said = self.since

    def _run(self):
        while not self._stop.wait(min(1.0, self.EVERY_S / 4)):
            what, now = self.what, time.monotonic()
            if what is not None and now - self.said > self.EVERY_S:
                self.said = now
                log.info("%s: still running (%.0f s)", what, now - self.since)

    def stop(self):
        self._stop.set()
        self._thread.join()


def _flow(cfg: DictConfig, run, keep, beat) -> dict:
    from likepred.backend import use_backend
    from likepred.data import load_dataset, release_unused
    from likepred.evaluation import BASELINES, evaluate
    from likepred.evaluation.importance import permutation_importance, write_importance
    from likepred.evaluation.metrics import mape
    from likepred.evaluation.plots import predicted_vs_actual
    from likepred.evaluation.summary import format_summary
    from likepred.features import FeatureContext, build_features
    from likepred.images.grid import error_grid
    from likepred.models import build_model
    from likepred.pipeline import ModelData, Pipeline
    from likepred.serving.predictor import feature_groups
    from likepred.split import make_split
    from likepred.targets import build_target
    from likepred.tracking.keys import DATASET_HASH, run_name
    from likepred.stores import store_source
    from likepred.tracking.lineage import log_datasets
    from likepred.tracking.trial import trial_reporter

    use_backend(cfg.backend)
    data = load_dataset(cfg.data, cfg.images.dir, cfg.paths.labels)
    beat("split")
    started = time.monotonic()
    split = make_split(data.posts, cfg.split)
    log.info("split: %s (%.1f s)", ", ".join(f"{k} {v} rows" for k, v in split.sizes().items()),
             time.monotonic() - started)
    beat("features and target")
    started = time.monotonic()
    features = build_features(cfg.features, FeatureContext.of(data))
    if features.needs_images:
        data.ensure_images()
    if features.needs_labels:
        data.ensure_labels()
    pipeline = Pipeline(features, build_target(cfg.target), cfg.split.get("train_as_unseen", False))
    train_d, val_d, test_d = pipeline.prepare(data.posts, split)
    width = sum(x.shape[1] if x.ndim == 2 else 1 for x in train_d.inputs.values())
    log.info("features and target: %d columns in %.1f s", width, time.monotonic() - started)
    model = build_model(cfg)
    beat("MLflow: the run's tags and data sets")
    started = time.monotonic()

    tags = {"leaky": str(features.leaky).lower(), "data_source": data.source,
            DATASET_HASH: data.fingerprint(), "target": cfg.target.name}
    run.set_tags(tags)
    out = run.folder
    if run.run_id:  # lineage: which rows it saw (likepred.tracking.lineage)
        log_datasets({"train": train_d.posts, "validation": val_d.posts, "test": test_d.posts}, cfg.data, data.source,
                     data.posts)
    # every row now lives in train_d, val_d or test_d: the full table goes (GBs at 10 M posts)
    data.posts = data.posts.iloc[:0]
    features.forget_posts()
    release_unused()
    if time.monotonic() - started > 5:  # digests of every row: long on large data
        log.info("MLflow: the run's tags and data sets in %.1f s", time.monotonic() - started)
    log.info("training %s on %d rows x %d features", cfg.model.name, len(train_d), width)
    beat(None)  # training shows its own progress (epochs, rounds)
    started = time.monotonic()
    model.fit(train_d, val_d, on_epoch=trial_reporter(run.log_epoch))  # Optuna trials: pruning
    log.info("trained in %.1f s", time.monotonic() - started)
    beat("evaluation")
    started = time.monotonic()
    metrics = {}
    boot = {"bootstrap": cfg.evaluate.get("bootstrap", 0), "seed": cfg.evaluate.get("seed", 0)}
    if len(val_d):  # selection metrics: before calibration, which is fitted on these rows
        val_pred = pipeline.predict_likes(model, val_d, calibrated=False)
        metrics, _ = evaluate(val_d.posts, {"model": val_pred}, data.scrape_date, cfg.evaluate.mature_days, "val",
                              **boot)
        if cfg.evaluate.calibrate:
            scale = pipeline.calibrate(val_pred, val_d.posts["likes"])
            log.info("calibrated on val rows: predictions x %.3f", scale)
            metrics["val_mape_calibrated"] = mape(val_d.posts["likes"].to_numpy(float), val_pred * scale)
            metrics["calibration_scale"] = scale
        # what drives the predictions on these rows (not for models reading image files: each shuffle re-reads them)
        if run.run_id and cfg.evaluate.importance_repeats and not any(e.paths for e in features.extractors):
            rows = val_d.sample(cfg.evaluate.get("importance_max_rows"), cfg.seed)  # large data: a sample

            def shuffled(x):
                return pipeline.predict_likes(model, ModelData(x, rows.y, rows.posts), calibrated=False)
            began = time.monotonic()
            imp = permutation_importance(shuffled, rows.inputs, rows.posts["likes"], feature_groups(pipeline.names),
                                         cfg.evaluate.importance_repeats, cfg.seed)
            log.info("permutation importance: %d features x %d shuffles of %d val rows in %.1f s", len(imp),
                     cfg.evaluate.importance_repeats, len(rows), time.monotonic() - began)
            write_importance(imp, _sub(out, "features"))
    preds = {"model": pipeline.predict_likes(model, test_d)}
    for name in BASELINES:  # the same registry, fitted on the same train rows
        baseline = build_model(cfg, name)
        baseline.fit(train_d)
        preds[name] = pipeline.predict_likes(baseline, test_d, calibrated=False)
    log.info("predicted the test rows (model and %d baselines)", len(BASELINES))
    test_metrics, table = evaluate(test_d.posts, preds, data.scrape_date, cfg.evaluate.mature_days, **boot)
    log.info("evaluated val and test rows in %.1f s%s", time.monotonic() - started,
             f" (intervals: {boot['bootstrap']} resamples of users)" if boot["bootstrap"] else "")
    metrics.update(test_metrics)
    beat("writing and logging results")
    if keep is not None:
        keep["table"] = table
    run.log_metrics(metrics | features.reports(train=train_d.posts, test=test_d.posts) | data.skips.metrics())
    if out is not None:
        (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        table.to_csv(out / "predictions.csv", index=False)
        predicted_vs_actual(table, out / "predicted_vs_actual.png")
        data.skips.write_csv(out)  # skipped.csv: each bad file or post dropped, and why
        features.write_artifacts(_sub(out, "features"))
        grid = error_grid(features, test_d.posts, table)  # image runs: the worst-predicted test images
        if grid is not None:
            grid(_sub(out, "features"))
        _prune(out / "features")
        run.log_folder()
    if run.run_id and cfg.tracking.log_model:
        beat("packaging and logging the model")
        _log_model(run, cfg, model, pipeline, train_d, val_d, metrics)
    beat(None)
    title = f"likepred {run_name(cfg)}" + (" [LEAKY: study reproduction]" if features.leaky else "")
    print(format_summary(title, metrics, split.sizes(), run.run_id, cfg.tracking.uri), flush=True)
    if run.run_id:
        print(f"  (the store: {store_source(cfg.tracking.uri)})", flush=True)
    return metrics


def _sub(folder, name: str):
    (folder / name).mkdir(exist_ok=True)
    return folder / name


def _prune(folder) -> None:
    """An empty features/ folder is not kept (nothing to log there)."""
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _log_model(run, cfg, model, pipeline, train_d, val_d, metrics):
    """The model with its fitted pipeline, packaged as an MLflow pyfunc (likepred.serving) and
    logged as the run's logged model `model`."""
    import tempfile
    from pathlib import Path

    from likepred.serving.pyfunc import package, saving

    with tempfile.TemporaryDirectory() as tmp, saving():
        started = time.monotonic()
        _, kwargs = package(Path(tmp), model, pipeline, train_d, val_d, cfg)
        log.info("packaged the model in %.1f s", time.monotonic() - started)
        score = metrics.get(cfg.optimized_metric)
        run.log_model(kwargs, cfg.tracking.get("register"),
                      {cfg.optimized_metric: str(score)} if score is not None else None)

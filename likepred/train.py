"""One experiment, top to bottom: data, split, features, model, fit, calibrate, evaluate, log."""

from __future__ import annotations

import logging

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
    from likepred.backend import use_backend
    from likepred.data import load_dataset
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
    split = make_split(data.posts, cfg.split)
    features = build_features(cfg.features, FeatureContext.of(data))
    if features.needs_images:
        data.ensure_images()
    if features.needs_labels:
        data.ensure_labels()
    pipeline = Pipeline(features, build_target(cfg.target), cfg.split.get("train_as_unseen", False))
    train_d, val_d, test_d = pipeline.prepare(data.posts, split)
    model = build_model(cfg)

    tags = {"leaky": str(features.leaky).lower(), "data_source": data.source,
            DATASET_HASH: data.fingerprint(), "target": cfg.target.name}
    run.set_tags(tags)
    out = run.folder
    if run.run_id:  # lineage: which rows it saw (likepred.tracking.lineage)
        log_datasets({"train": train_d.posts, "validation": val_d.posts, "test": test_d.posts}, cfg.data, data.source,
                     data.posts)
    model.fit(train_d, val_d, on_epoch=trial_reporter(run.log_epoch))  # Optuna trials: pruning
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
            def shuffled(x):
                return pipeline.predict_likes(model, ModelData(x, val_d.y, val_d.posts), calibrated=False)
            imp = permutation_importance(shuffled, val_d.inputs, val_d.posts["likes"], feature_groups(pipeline.names),
                                         cfg.evaluate.importance_repeats, cfg.seed)
            write_importance(imp, _sub(out, "features"))
    preds = {"model": pipeline.predict_likes(model, test_d)}
    for name in BASELINES:  # the same registry, fitted on the same train rows
        baseline = build_model(cfg, name)
        baseline.fit(train_d)
        preds[name] = pipeline.predict_likes(baseline, test_d, calibrated=False)
    test_metrics, table = evaluate(test_d.posts, preds, data.scrape_date, cfg.evaluate.mature_days, **boot)
    metrics.update(test_metrics)
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
        _log_model(run, cfg, model, pipeline, train_d, val_d, metrics)
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
        _, kwargs = package(Path(tmp), model, pipeline, train_d, val_d, cfg)
        score = metrics.get(cfg.optimized_metric)
        run.log_model(kwargs, cfg.tracking.get("register"),
                      {cfg.optimized_metric: str(score)} if score is not None else None)

"""Serving: the predictor (a fitted pipeline and model answering planned posts), its explanation, its data-only state and the MLflow pyfunc wrapper; `locate` finds a logged model."""

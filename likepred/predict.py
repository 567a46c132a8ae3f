"""`python -m likepred.predict`: the predict command (likepred/serving/predict.py)."""

from likepred.serving.predict import main

if __name__ == "__main__":
    raise SystemExit(main())

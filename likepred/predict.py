"""`python -m likepred.predict`: the old spelling of `likepred predict` (likepred/commands/predict.py)."""

from likepred.commands.predict import main

if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m likepred.labels annotate ...`: the old spelling of `likepred annotate`
(likepred/commands/annotate.py). A thin shim: the one import above this room it makes."""

import sys


def main(argv=None, client=None) -> int:
    from likepred.commands.annotate import main as annotate

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        return annotate(["--help"])
    if args[0] != "annotate":
        print(f"likepred.labels: error: unknown command {args[0]!r}; the command is: annotate (see --help)",
              file=sys.stderr)
        return 2
    return annotate(args[1:], client)


if __name__ == "__main__":
    sys.exit(main())

"""`python -m likepred.images download [KEY=VALUE ...]`: the old spelling of `likepred download`
(likepred/commands/download.py). A thin shim: the one import above this room it makes."""

import sys


def main(argv=None) -> int:
    from likepred.commands.download import USAGE
    from likepred.commands.download import main as download

    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if argv[0] != "download":
        print(f"unknown command {argv[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    return download(argv[1:])


if __name__ == "__main__":
    sys.exit(main())

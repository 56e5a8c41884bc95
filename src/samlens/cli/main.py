"""Entry point of the ``samlens`` console script."""

from __future__ import annotations

import argparse
import difflib
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
        _remember_parser(p)
    return parser


def _remember_parser(parser: argparse.ArgumentParser) -> None:
    """Each (sub-)sub-command records its own parser, so usage errors name its options."""
    parser.set_defaults(_parser=parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _remember_parser(child)


def unknown_arguments_message(parser: argparse.ArgumentParser, extra: Sequence[str]) -> str:
    """One line naming the unknown arguments, the closest valid option and the valid choices.

    Config keys are many, so for ``--section.key`` only that section's keys are listed, and
    otherwise the plain options plus one ``--section.*`` entry per section.
    """
    options = sorted({o for a in parser._actions for o in a.option_strings if o.startswith("--")})
    flags = [e.split("=", 1)[0] for e in extra if e.startswith("-")]
    message = f"unrecognized arguments: {' '.join(extra)}"
    if not flags:
        return message
    key = flags[0]
    close = difflib.get_close_matches(key, options, n=1)
    if close:
        message += f"; did you mean {close[0]}?"
    section = key.split(".", 1)[0] + "." if "." in key else None
    choices = [o for o in options if section and o.startswith(section)]
    if not choices:
        sections = sorted({o.split(".", 1)[0] + ".*" for o in options if "." in o})
        choices = [o for o in options if "." not in o] + sections
    return message + f"; valid options: {', '.join(choices)}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        args._parser.error(unknown_arguments_message(args._parser, extra))
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

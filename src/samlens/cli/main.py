"""Entry point of the ``samlens`` console script.

Sub-commands are found without importing them: each module's ``COMMAND`` and ``HELP`` are read
from its source, and only the command being run is imported (its imports reach torch, and
through the stages sklearn, pandas or matplotlib, which take seconds), so ``samlens --help``
starts at once.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib
import importlib.util
import os
import pkgutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import samlens
import samlens.cli as cli_pkg
from samlens.errors import Preempted, SamlensError


@dataclass(frozen=True)
class CommandSpec:
    module: str
    help: str


def _literal_constants(path: Path, names: Iterable[str]) -> dict[str, str]:
    """Module-level ``NAME = "string"`` assignments in ``path``."""
    wanted = set(names)
    found: dict[str, str] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in wanted and isinstance(node.value.value, str):
                    found[target.id] = node.value.value
    return found


def _command_specs() -> dict[str, CommandSpec]:
    specs: dict[str, CommandSpec] = {}
    for info in pkgutil.iter_modules(cli_pkg.__path__):
        if info.name.startswith("_") or info.name == "main":
            continue
        name = f"{cli_pkg.__name__}.{info.name}"
        spec = importlib.util.find_spec(name)
        constants = {}
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            constants = _literal_constants(Path(spec.origin), ("COMMAND", "HELP"))
        if "COMMAND" not in constants or "HELP" not in constants:
            # Not plain string literals (or no source): fall back to importing the module.
            module = importlib.import_module(name)
            if not getattr(module, "COMMAND", None):
                continue
            constants = {"COMMAND": module.COMMAND, "HELP": module.HELP}
        specs[constants["COMMAND"]] = CommandSpec(name, constants["HELP"])
    return dict(sorted(specs.items()))


class _Parser(argparse.ArgumentParser):
    """argparse exits with status 2 on usage errors already; keep messages to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The ``samlens`` parser. Every sub-command is listed; only those in ``commands`` (default:
    all) are imported and get their arguments, which is all that parsing one command line needs."""
    specs = _command_specs()
    load = set(specs) if commands is None else set(commands)
    parser = _Parser(prog="samlens", description="SAM as a feature-learning tool.")
    parser.add_argument("--version", action="version", version=f"samlens {samlens.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, spec in specs.items():
        p = sub.add_parser(name, help=spec.help, description=spec.help)
        if name in load:
            module = importlib.import_module(spec.module)
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
        _remember_parser(p)
    return parser


def _selected_command(argv: Sequence[str]) -> str | None:
    # The top-level parser has no option that takes a value, so the first positional is the command.
    return next((a for a in argv if not a.startswith("-")), None)


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
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _selected_command(argv)
    try:
        parser = build_parser([] if command is None else [command])
    except SamlensError as err:  # e.g. the command needs an extra that is not installed
        print(f"samlens {command}: error: {err}", file=sys.stderr)
        return 2
    args, extra = parser.parse_known_args(argv)
    if extra:
        args._parser.error(unknown_arguments_message(args._parser, extra))
    try:
        return int(args._run(args) or 0)
    except Preempted as err:  # not an error: the run is checkpointed and resumes
        print(f"samlens {args.command}: {err}", file=sys.stderr)
        return 128 + err.signum
    except SamlensError as err:
        print(f"samlens {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("samlens: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The ``samlens`` command: :func:`main`, then exit with its status.

    A process of a torchrun world leaves with ``os._exit`` once its output is flushed: its run
    has closed every file and rank 0 has written ``done``, and interpreter finalisation with
    gloo's threads still alive can abort a finished process (SIGABRT, seen on rank 1)."""
    try:
        code = main()
    except BrokenPipeError:
        # The reader of the output went away (`samlens ... | head`): leave quietly, as a shell tool
        # does, instead of a traceback; Python's flush at exit must not hit the closed pipe again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 128 + 13
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()

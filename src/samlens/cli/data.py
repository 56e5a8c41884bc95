"""``samlens data``: list the datasets, or describe one (sizes, group counts, correlation, examples)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import yaml

from samlens.errors import ConfigError

COMMAND = "data"
HELP = "List datasets or describe one: split sizes, group counts, correlation, example images."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", parser_class=type(parser))
    sub.required = True
    sub.add_parser("list", help="List the registered datasets and their options.")
    describe = sub.add_parser("describe", help="Describe one dataset; with --out also save a PNG grid.")
    describe.add_argument("name", help="dataset name (see `samlens data list`)")
    describe.add_argument("--root", default=None, help="folder with the dataset's files")
    describe.add_argument("--seed", type=int, default=0)
    describe.add_argument(
        "--option", "-o", action="append", default=[], metavar="KEY=VALUE",
        help="dataset option (YAML value, e.g. correlation=0.9 or mnist_classes=[3,5]); repeatable",
    )  # fmt: skip
    describe.add_argument("--out", default=None, help="folder for summary.txt and examples.png")
    describe.add_argument("--split", default="train", help="split shown in the example grid")
    describe.add_argument("--per-group", type=int, default=8, help="examples per group in the grid")


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` → dict; values are parsed as YAML (numbers, lists, booleans, null)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option expects KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--option {key}: cannot parse value {value!r}") from None
    return options


def _list() -> int:
    from samlens.data import list_datasets
    from samlens.data.registry import dataset_options, describe_factory

    for name in list_datasets():
        print(f"{name}: {describe_factory(name)}")
        opts = ", ".join(f"{k}={v!r}" for k, v in dataset_options(name).items())
        print(f"    options: {opts or '(none)'}")
    return 0


def _describe(args: argparse.Namespace) -> int:
    from samlens.data import get_dataset
    from samlens.data.inspect import example_grid, summary_text
    from samlens.rundir import atomic_save, atomic_write_text

    ds = get_dataset(args.name, root=args.root, seed=args.seed, **parse_options(args.option))
    if args.split not in ds.splits:
        raise ConfigError(
            f"dataset {ds.name!r} has no split {args.split!r}; valid splits: {', '.join(ds.splits)}"
        )
    if args.per_group < 1:
        raise ConfigError(f"--per-group must be >= 1, got {args.per_group}")
    text = summary_text(ds)
    if args.out is None:
        print(text, end="")
        return 0
    out = Path(args.out)
    # Render into a scratch folder before printing or writing anything: an image that does not
    # decode must end the command with one error line and no output.
    with tempfile.TemporaryDirectory() as scratch:
        example_grid(ds, Path(scratch) / "examples.png", split=args.split, per_group=args.per_group)
        png = (Path(scratch) / "examples.png").read_bytes()
    print(text, end="")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "summary.txt", text)
    atomic_save(out / "examples.png", lambda fh: fh.write(png))
    print(f"wrote {out / 'summary.txt'} and {out / 'examples.png'}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.data_command == "list":
        return _list()
    return _describe(args)

"""The `samlens` entry point imports only the command being run."""

import subprocess
import sys

HEAVY = ("matplotlib", "pandas", "jsonargparse", "sklearn", "torch")


def loaded_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_importing_the_entry_point_loads_no_heavy_package():
    assert not loaded_after("import samlens.cli.main") & set(HEAVY)


def test_top_level_help_loads_no_heavy_package():
    code = (
        "from samlens.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
    )
    assert not loaded_after(code) & set(HEAVY)


def test_help_lists_every_command_and_command_help_works(capsys):
    from samlens.cli.main import _command_specs, main

    try:
        main(["--help"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    specs = _command_specs()
    assert set(specs) >= {"data", "demo", "probe", "report", "reproduce", "run", "sweep", "toy"}
    for name in specs:
        assert f"    {name}" in out
    try:
        main(["toy", "--help"])
    except SystemExit as e:
        assert e.code == 0
    assert "usage: samlens toy" in capsys.readouterr().out


def test_a_closed_output_pipe_is_a_quiet_exit_not_a_traceback():
    """``samlens ... | head``: the reader leaves; the command exits 141 without a traceback."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # every write now fails with EPIPE, as after `head` has exited
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "samlens", "reproduce", "--list"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert proc.returncode == 141 and proc.stderr == ""

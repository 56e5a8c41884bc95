from samlens.cli.main import entry

entry()

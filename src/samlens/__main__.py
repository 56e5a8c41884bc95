import sys

from samlens.cli.main import main

sys.exit(main())

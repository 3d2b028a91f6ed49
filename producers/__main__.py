import sys

from producers.cli import main

sys.exit(main())

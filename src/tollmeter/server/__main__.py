"""`python -m tollmeter.server serve|keys|db|reprice` (the same as `tollmeter serve ...`)."""

import sys

from .commands import main

sys.exit(main())

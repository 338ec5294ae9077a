"""``python -m npgan.bench``: the benchmark command, and its worker processes (``--worker SPEC``)."""

import sys

from npgan.bench.suite import main

sys.exit(main())

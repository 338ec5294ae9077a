"""Throughput benchmarks of npgan against PyTorch: the configurations of benchmarks/CONFIGS.md.

    python benchmarks/throughput.py --threads 2 --json results.jsonl     (the same as ``npgan bench ...``)
    python benchmarks/throughput.py --configs dcgan-32 --profile         (where a step's time goes)
    python benchmarks/throughput.py --backend cupy                       (GPU: CuPy against PyTorch CUDA)

The code lives in ``npgan/bench/`` (installed with npgan); see benchmarks/README.md and REFERENCE.md.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from npgan import bench  # noqa: E402

if __name__ == "__main__":
    sys.exit(bench.main())

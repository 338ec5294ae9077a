"""The run's metrics log (``OUT/metrics.jsonl``): one JSON row of floats per logged step."""

from __future__ import annotations

import json
import os

import npgan
from npgan import backend
from npgan.gan.resume import OutputWriteError


def row_floats(row):
    """A step's logged values as Python floats, copied off the device in one transfer (one sync, not one each)."""
    keys = [k for k in row if k != "step"]
    values = [row[k].data if isinstance(row[k], npgan.Tensor) else row[k] for k in keys]
    arrays = [v for v in values if backend.is_array(v)]
    if arrays:
        xp = backend.get_array_module(*arrays)
        dtype = backend.result_dtype(*(a.dtype for a in arrays))  # float32 stays float32: the same floats
        stacked = backend.asnumpy(xp.stack([xp.reshape(a, ()).astype(dtype, copy=False) for a in arrays]))
        on_host = iter(stacked.tolist())
        values = [next(on_host) if backend.is_array(v) else float(v) for v in values]
    floats = {k: float(v) for k, v in zip(keys, values)}
    return {"step": row["step"], **floats} if "step" in row else floats



def append(path: str, row: dict, checkpoint_step: int | None) -> None:
    """One row more in the log; a failure (disk full, unwritable file) stops the run with a message saying what
    is kept."""
    try:
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")
    except OSError as err:
        kept = (f"the last checkpoint (step {checkpoint_step}) is kept" if checkpoint_step is not None
                else "no checkpoint was written yet")
        raise OutputWriteError(
            f"could not add step {row['step']} to the metrics log {path}: {err.strerror or err}; {kept}. "
            "Training stopped: free space (or fix the file's permissions) and resume.") from err


def trim(path: str, step: int) -> None:
    """On resume, drop logged rows past the checkpoint's ``step`` (they will be logged again)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        rows = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= step]
    with open(path, "w") as f:
        f.writelines(rows)

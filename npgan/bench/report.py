"""The report: rows as Markdown tables, the machine and versions, the reference-run block of a file."""

from __future__ import annotations

import os
import platform

from npgan.bench.profile import PROFILE_CATEGORIES

FIELDS = (
    "config", "phase", "library", "backend", "device", "threads", "batch_size", "steps", "warmup",
    "ms_median", "ms_min", "ms_max", "images_per_s", "gflop_per_step", "gflop_per_s", "matmul_peak_gflop_per_s",
    "peak_fraction", "peak_mem_mb", "mem_method", "ratio_vs_torch", "blas", "versions", "machine", "date",
    "profile",
)


def _versions(library_set):
    import numpy  # noqa: PLC0415

    versions = {"python": platform.python_version(), "numpy": numpy.__version__}
    from npgan import __version__ as npgan_version  # noqa: PLC0415

    versions["npgan"] = npgan_version
    if "torch" in library_set:
        try:
            import torch  # noqa: PLC0415

            versions["torch"] = torch.__version__
        except ImportError:
            pass
    try:
        import cupy  # noqa: PLC0415

        versions["cupy"] = cupy.__version__
    except Exception:
        pass
    return versions


def _machine():
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def _median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])


def _torch_available(device):
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return False, "PyTorch is not installed: npgan rows only (pip install torch to compare)"
    if device == "cuda" and not torch.cuda.is_available():
        return False, "PyTorch sees no CUDA device: npgan rows only"
    return True, None


def markdown_table(rows) -> str:
    header = ("| config | library | threads | ms/step median (min-max) | images/s | GFLOP/step | GFLOP/s "
              "| % of matmul peak | peak MB | npgan/PyTorch |")
    lines = [header, "|" + "---|" * 10]
    for r in rows:
        name = r["config"] if r["phase"] == "step" else f"{r['config']} {r['phase']}"
        ratio = "" if r["ratio_vs_torch"] is None else f"{r['ratio_vs_torch']:.2f}"
        lines.append(
            f"| {name} | {r['library']}-{r['backend']} | {r['threads']} | {r['ms_median']:.1f} "
            f"({r['ms_min']:.1f}-{r['ms_max']:.1f}) | {r['images_per_s']:.0f} | {r['gflop_per_step']:.2f} "
            f"| {r['gflop_per_s']:.0f} | {100 * r['peak_fraction']:.0f}% | {r['peak_mem_mb']:.0f} | {ratio} |"
        )
    return "\n".join(lines)


def profile_table(rows) -> str:
    lines = ["| config | " + " | ".join(PROFILE_CATEGORIES) + " | total ms |",
             "|" + "---|" * (len(PROFILE_CATEGORIES) + 2)]
    for r in rows:
        if not r.get("profile"):
            continue
        p = r["profile"]
        name = r["config"] if r["phase"] == "step" else f"{r['config']} {r['phase']}"
        cells = " | ".join(f"{p[c]:.1f} ({100 * p[c] / p['total']:.0f}%)" for c in PROFILE_CATEGORIES)
        lines.append(f"| {name} | {cells} | {p['total']:.1f} |")
    return "\n".join(lines)


def report(rows, args, argv) -> str:
    """The run as Markdown: machine, versions, BLAS kernel, the command, the table (and the profile)."""
    first = rows[0]
    pools = first["blas"] if isinstance(first["blas"], list) else []
    kernel = ", ".join(f"OpenBLAS {b['version']} ({b['architecture']} kernel, {b['num_threads']} threads)"
                       for b in pools if b.get("internal_api") == "openblas")
    lines = [
        f"Measured {first['date']} on {first['machine']}; "
        + ", ".join(f"{k} {v}" for k, v in first["versions"].items())
        + (f"; NumPy's BLAS: {kernel}" if kernel else "") + ".",
        "",
        f"Command: `npgan bench {' '.join(argv)}` ({args.steps} timed steps per row after {args.warmup} warm-up "
        f"steps, in {args.rounds} alternating rounds; "
        + (f"batch {args.batch_size}" if args.batch_size else "batch 64, 256 for the 2-D toys") + "; float32). "
        f"float32 matmul peak ({first['threads']} thread{'s' if first['threads'] > 1 else ''}): "
        f"{first['matmul_peak_gflop_per_s']:.0f} GFLOP/s.",
        "",
        markdown_table(rows),
    ]
    if any(r.get("profile") for r in rows):
        lines += ["", "npgan's time per step by op category, ms (share of the step), from extra profiled steps:", "",
                  profile_table(rows)]
    return "\n".join(lines)


REPORT_START, REPORT_END = "<!-- reference-run:start -->", "<!-- reference-run:end -->"


def update_report(path, text) -> None:
    """Put ``text`` between the reference-run markers of the Markdown file ``path`` (appended if missing)."""
    old = open(path).read() if os.path.exists(path) else ""
    block = f"{REPORT_START}\n{text}\n{REPORT_END}"
    if REPORT_START in old and REPORT_END in old:
        head, rest = old.split(REPORT_START, 1)
        new = head + block + rest.split(REPORT_END, 1)[1]
    else:
        new = old + ("\n" if old and not old.endswith("\n") else "") + block + "\n"
    with open(path, "w") as f:
        f.write(new)

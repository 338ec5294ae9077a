"""The report: rows as Markdown tables, the machine and versions, the reference-run block of a file."""

from __future__ import annotations

import os
import platform

from npgan.bench.models import TOY_CONFIGS
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


def torch_available(device) -> tuple[bool, str | None]:
    """(True, None) when PyTorch can run on ``device`` (cpu or cuda), else (False, why)."""
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
    both = len({r["device"] for r in rows}) > 1
    lines = ["| config | " + " | ".join(PROFILE_CATEGORIES) + " | total ms |",
             "|" + "---|" * (len(PROFILE_CATEGORIES) + 2)]
    for r in rows:
        if not r.get("profile"):
            continue
        p = r["profile"]
        name = r["config"] if r["phase"] == "step" else f"{r['config']} {r['phase']}"
        name += f" ({r['backend']})" if both else ""
        cells = " | ".join(f"{p[c]:.1f} ({100 * p[c] / p['total']:.0f}%)" for c in PROFILE_CATEGORIES)
        lines.append(f"| {name} | {cells} | {p['total']:.1f} |")
    return "\n".join(lines)


def cpu_gpu_rows(rows) -> list[dict]:
    """One row per (configuration, phase) measured on both devices: npgan (and PyTorch) on the CPU and on the GPU.

    ``gpu_speedup`` is npgan's CPU median over its GPU median (above 1: the GPU is faster); each
    ``*_peak_fraction`` is npgan's GFLOP/s over the matmul peak measured on that device.
    """
    by_key = {(r["config"], r["phase"], r["library"], r["device"]): r for r in rows}
    combined = []
    for r in rows:
        if r["library"] != "npgan" or r["device"] != "cpu" or (r["config"], r["phase"], "npgan", "cuda") not in by_key:
            continue
        cpu, gpu = r, by_key[(r["config"], r["phase"], "npgan", "cuda")]
        torch_ms = {d: by_key[(r["config"], r["phase"], "torch", d)]["ms_median"]
                    if (r["config"], r["phase"], "torch", d) in by_key else None for d in ("cpu", "cuda")}
        combined.append(dict(
            table="cpu_vs_gpu", config=r["config"], phase=r["phase"], batch_size=r["batch_size"],
            threads=r["threads"], npgan_cpu_ms=cpu["ms_median"], npgan_gpu_ms=gpu["ms_median"],
            gpu_speedup=cpu["ms_median"] / gpu["ms_median"],
            cpu_peak_fraction=cpu["peak_fraction"], gpu_peak_fraction=gpu["peak_fraction"],
            cpu_matmul_peak_gflop_per_s=cpu["matmul_peak_gflop_per_s"],
            gpu_matmul_peak_gflop_per_s=gpu["matmul_peak_gflop_per_s"],
            torch_cpu_ms=torch_ms["cpu"], torch_gpu_ms=torch_ms["cuda"], date=r["date"],
        ))
    return combined


def cpu_gpu_table(combined) -> str:
    """``cpu_gpu_rows`` as Markdown; the PyTorch columns only when PyTorch ran on either device."""
    with_torch = any(c["torch_cpu_ms"] is not None or c["torch_gpu_ms"] is not None for c in combined)
    header = ("| config | phase | npgan CPU ms | npgan GPU ms | GPU speed-up | CPU % of its peak | GPU % of its peak |"
              + (" PyTorch CPU ms | PyTorch GPU ms |" if with_torch else ""))
    lines = [header, "|" + "---|" * (9 if with_torch else 7)]
    for c in combined:
        line = (f"| {c['config']} | {c['phase']} | {c['npgan_cpu_ms']:.2f} | {c['npgan_gpu_ms']:.2f} "
                f"| {c['gpu_speedup']:.2f} | {100 * c['cpu_peak_fraction']:.1f}% "
                f"| {100 * c['gpu_peak_fraction']:.1f}% |")
        if with_torch:
            line += "".join(" |" if ms is None else f" {ms:.2f} |" for ms in (c["torch_cpu_ms"], c["torch_gpu_ms"]))
        lines.append(line)
    return "\n".join(lines)


def _peaks(rows) -> str:
    """The float32 matmul peak of each device in the rows, as the report's sentence says it."""
    peaks = {}
    for r in rows:
        peaks.setdefault(r["device"], r["matmul_peak_gflop_per_s"])
    threads = rows[0]["threads"]
    if len(peaks) == 1:
        return (f"float32 matmul peak ({threads} thread{'s' if threads > 1 else ''}): "
                f"{next(iter(peaks.values())):.0f} GFLOP/s.")
    return ("float32 matmul peak, measured on each device: " + ", ".join(
        f"{'CPU' if d == 'cpu' else 'GPU'} {p:.0f} GFLOP/s" + (f" ({threads} thread{'s' if threads > 1 else ''})"
                                                             if d == "cpu" else "")
        for d, p in peaks.items()) + ".")


def _steps_text(rows) -> str:
    """The timed steps per row as the rows ran them: "20 timed steps per row", or with the toys' own count."""
    toys = sorted({r["steps"] for r in rows if r["config"] in TOY_CONFIGS})
    others = sorted({r["steps"] for r in rows if r["config"] not in TOY_CONFIGS})
    if not toys or not others or toys == others:
        return f"{'/'.join(map(str, others or toys))} timed steps per row"
    return f"{'/'.join(map(str, others))} timed steps per row, {'/'.join(map(str, toys))} for the 2-D toys,"


def report(rows, args, argv) -> str:
    """The run as Markdown: machine, versions, BLAS kernel, the command, the table (the CPU against GPU
    table when both devices ran, and the profile)."""
    first = rows[0]
    pools = first["blas"] if isinstance(first["blas"], list) else []
    kernel = ", ".join(f"OpenBLAS {b['version']} ({b['architecture']} kernel, {b['num_threads']} threads)"
                       for b in pools if b.get("internal_api") == "openblas")
    lines = [
        f"Measured {first['date']} on {first['machine']}; "
        + ", ".join(f"{k} {v}" for k, v in first["versions"].items())
        + (f"; NumPy's BLAS: {kernel}" if kernel else "") + ".",
        "",
        f"Command: `npgan bench {' '.join(argv)}` ({_steps_text(rows)} after {args.warmup} warm-up "
        f"steps, in {args.rounds} alternating rounds; "
        + (f"batch {args.batch_size}" if args.batch_size else "batch 64, 256 for the 2-D toys") + "; float32). "
        + _peaks(rows),
        "",
        markdown_table(rows),
    ]
    combined = cpu_gpu_rows(rows)
    if combined:
        lines += ["", "CPU against GPU: npgan's median ms per step on each device, the GPU's speed-up (CPU ms / "
                  "GPU ms) and each device's GFLOP/s as a share of its own matmul peak:", "", cpu_gpu_table(combined)]
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

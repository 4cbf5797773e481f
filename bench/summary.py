"""Scaling curve and ratios over every pipeline size measured: ``bench/results/SUMMARY.md`` and ``scaling.png``.

Reads ``bench/results/pipeline_<n>k.json`` (written by ``python -m bench
pipeline``), and reports, each figure from one run at one size:

- time per job and in total against voters, with the fitted exponent of
  ``seconds = a · voters^b`` (least squares on logs; linear is 1.0);
- each job's ratio to its floor;
- votelake against its single-node peers on the same landing files: time,
  peak memory and turnout AUC, as ratios; the largest size each completed,
  and the size at which each one's peak memory, extrapolated linearly,
  would reach this machine's memory.

Run: ``python -m bench summary`` (``--notes FILE`` appends a Markdown section).
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SIZE_FILE = re.compile(r"^pipeline_(\d+)k\.json$")
# votelake's share of the peers' work: ingest to scores (the peers generate nothing).
COMPARED_JOBS = ("ingest", "build", "train", "score")


def load(results: Path = RESULTS) -> list[dict]:
    """Every size's pipeline result, smallest first."""
    found = [(int(m.group(1)), p) for p in results.glob("pipeline_*k.json") if (m := SIZE_FILE.match(p.name))]
    return [json.loads(p.read_text()) for _, p in sorted(found)]


def exponent(voters: list[int], seconds: list[float | None]) -> float | None:
    """The least-squares slope of log(seconds) on log(voters) (sizes without a time left out); None below two."""
    points = [(math.log(v), math.log(s)) for v, s in zip(voters, seconds) if s and s > 0]
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else None


def all_jobs(results: list[dict]) -> list[str]:
    """Every job measured at some size, in pipeline order (a size that stopped part-way lacks the later ones)."""
    longest = max((r["jobs"] for r in results), key=len)
    return [*longest, *(j for r in results for j in r["jobs"] if j not in longest)]


def has_total(result: dict) -> bool:
    """Whether a size's total means the whole pipeline: not when its run stopped before the last job."""
    return not result.get("stopped") or all(job in result["jobs"] for job in ("synth", *COMPARED_JOBS))


def job_median(result: dict, job: str, figure: str = "seconds") -> float | None:
    """A job's median figure at one size, or None when that size did not reach it (or has no such figure)."""
    return (result["medians"].get(job) or {}).get(figure)


def compared_seconds(result: dict) -> float:
    """votelake's median seconds from landing files to scores (the jobs the peers also do)."""
    return sum(result["medians"][j]["seconds"] for j in COMPARED_JOBS if j in result["medians"])


def peak_gib(result: dict) -> float:
    """votelake's highest resident memory over the jobs: driver JVM (with local executors) plus Python driver."""
    m = result["medians"]
    return max((m[j]["peak_driver_jvm_gib"] or 0) + (m[j]["peak_python_gib"] or 0) for j in result["jobs"])


def memory_limit_voters(sizes: list[tuple[int, float]], memory_gib: float) -> int | None:
    """Voters at which peak memory, linear in voters through the measured sizes, reaches ``memory_gib``."""
    if len(sizes) < 2:
        return None
    (v0, m0), (v1, m1) = sizes[-2], sizes[-1]
    slope = (m1 - m0) / (v1 - v0)
    return int(v1 + (memory_gib - m1) / slope) if slope > 0 else None


def plot(results: list[dict], out: Path) -> None:
    """Time against voters on log-log axes, per job and in total."""
    voters = [r["voters"] for r in results]
    fig, ax = plt.subplots(figsize=(7, 5))
    for job in all_jobs(results):
        points = [(r["voters"], s) for r in results if (s := job_median(r, job))]
        ax.plot(*zip(*points), marker="o", label=job)
    complete = [r for r in results if has_total(r)]
    ax.plot([r["voters"] for r in complete], [r["medians"]["total"]["seconds"] for r in complete], marker="s",
            color="black", label="total")
    peers = sorted({e for r in results for e in r.get("peers", {})})
    for engine in peers:
        points = [(r["voters"], r["peers"][engine]["seconds"]) for r in results
                  if "seconds" in r.get("peers", {}).get(engine, {})]
        if points:
            ax.plot(*zip(*points), linestyle="--", marker="x", label=f"peer: {engine}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("voters")
    ax.set_ylabel("seconds (median)")
    ax.set_title("votelake pipeline: time against state size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def markdown(results: list[dict], notes: str = "") -> str:
    """The summary over every size."""
    voters = [r["voters"] for r in results]
    jobs = all_jobs(results)
    memory = results[-1]["machine"].get("memory_gb") or 0
    lines = ["# votelake at state scale: summary", "",
             "Every figure below comes from one `python -m bench pipeline` run per size on this machine "
             f"({results[-1]['machine'].get('nproc')} cores, {memory} GB); medians over the repetitions of each "
             "size. Per-size details: `pipeline_<n>k.md`.", "",
             "![time against voters](scaling.png)", "",
             "## Time per job (seconds) and the fitted exponent", "",
             "The exponent over every size carries the small sizes' fixed costs; the one between the two "
             "largest sizes with a time is the slope where those costs are amortised.", "",
             "| job | " + " | ".join(f"{v:,}" for v in voters) + " | exponent | exponent, two largest |",
             "|---|" + "---:|" * (len(voters) + 2)]
    for job in [*jobs, "total"]:
        # A size that stopped part-way has no total, and no time for the jobs it did not reach.
        seconds = [None if job == "total" and not has_total(r) else job_median(r, job) for r in results]
        timed = [(v, s) for v, s in zip(voters, seconds) if s]
        slopes = [exponent(voters, seconds), exponent(*zip(*timed[-2:])) if len(timed) >= 2 else None]
        lines.append(f"| {job} | " + " | ".join("—" if s is None else f"{s:,.1f}" for s in seconds) + " | "
                     + " | ".join("—" if b is None else f"{b:.2f}" for b in slopes) + " |")
    lines += ["", "Repetitions per size: " + ", ".join(f"{r['voters']:,}: {r['reps']}" for r in results) + ".", "",
              *[f"Stopped part-way at {r['voters']:,} voters: {r['stopped']}" for r in results if r.get("stopped")],
              "",
              "## Each job against its floor (job seconds / floor seconds)", "",
              "| job | " + " | ".join(f"{v:,}" for v in voters) + " |", "|---|" + "---:|" * len(voters)]
    for job in jobs:
        lines.append(f"| {job} | " + " | ".join(
            "—" if (ratio := job_median(r, job, "floor_ratio")) is None else f"{ratio}" for r in results) + " |")
    lines += ["", "## votelake against single-node peers (same landing files, cores and memory)", "",
              "votelake time is ingest + build + train + score: it also resolves identities, checks every table, "
              "trains three model types and publishes under contracts; the peers fit one turnout model.", "",
              "| voters | votelake s | peer | peer s | votelake / peer time | votelake peak GiB | peer peak GiB | "
              "memory ratio | votelake turnout AUC | peer AUC |",
              "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        ours, our_peak = compared_seconds(r), peak_gib(r)
        auc = (r["runs"][-1].get("turnout") or {}).get("auc")
        for engine, p in r.get("peers", {}).items():
            if "failed" in p:
                lines.append(f"| {r['voters']:,} | {ours:,.0f} | {engine} | failed: {p['failed']} | | {our_peak} | | | "
                             f"{auc} | |")
                continue
            lines.append(f"| {r['voters']:,} | {ours:,.0f} | {engine} | {p['seconds']:,.1f} | {ours / p['seconds']:.1f} | "
                         f"{our_peak} | {p['peak_rss_gib']} | {our_peak / p['peak_rss_gib']:.1f} | {auc} | {p['auc']} |")
    engines = sorted({e for r in results for e in r.get("peers", {})})
    if engines:
        lines += ["", "| peer | largest size completed | first size failed | memory reaches "
                  f"{memory} GB at (linear extrapolation) |", "|---|---:|---:|---:|"]
        for engine in engines:
            ok = [(r["voters"], r["peers"][engine]["peak_rss_gib"]) for r in results
                  if "peak_rss_gib" in r.get("peers", {}).get(engine, {})]
            failed = [r["voters"] for r in results if "failed" in r.get("peers", {}).get(engine, {})]
            limit = memory_limit_voters(ok, memory)
            lines.append(f"| {engine} | {max(v for v, _ in ok):,} | " if ok else f"| {engine} | — | ")
            lines[-1] += (f"{min(failed):,} | " if failed else "— | ") + (f"~{limit:,} voters |" if limit else "— |")
    if notes:
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    """Write ``SUMMARY.md`` and ``scaling.png`` from the pipeline results present."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--notes", type=Path, default=None, help="a Markdown file appended to the summary")
    args = parser.parse_args(argv)
    results = load(args.results)
    if not results:
        raise SystemExit(f"no pipeline_<n>k.json in {args.results}: run `python -m bench pipeline` first")
    plot(results, args.results / "scaling.png")
    text = markdown(results, args.notes.read_text() if args.notes else "")
    (args.results / "SUMMARY.md").write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()

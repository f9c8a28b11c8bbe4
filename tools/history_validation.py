"""Validate ``loopbench history`` on real runs with known, injected step changes.

A developer tool (docs/results/2026-12-07-history-heldout.md holds its record). It makes
a store of real runs, one after another, each with the extra work that
``LOOPBENCH_INJECT_SLOWDOWN`` asks of a loop from a chosen run on, files every run under
its own commit of a scratch git repository (so history's commit order is the run order),
runs ``loopbench history`` over the store, and scores what history names against what was
injected: each injected step found at its commit (a hit), one commit off (misplaced), or
not at all (missed); every other change point is a false one.

History's method is whatever the installed ``tf_loopbench`` has: the tool never changes it,
so a store made here is held out from the choices that method made on other stores.

    python tools/history_validation.py --work /tmp/hist-heldout --runs 8 \\
        --inject 5:xla=0.15 --inject 3:eager=0.20 \\
        --loopbench /path/to/venv/bin/loopbench

``--inject FROM[-TO]:LOOP=FRACTION`` slows LOOP by FRACTION in runs FROM to TO (to the
last run without TO). Runs already saved in the store are kept (an interrupted series
resumes); ``--score-only`` scores an existing store. Arguments after ``--`` replace the
runs' default ``--workload mlp --quick --device cpu``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# tools/ is not installed: `python tools/NAME.py` from a checkout imports the project from it
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import argparse
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import NoReturn

import numpy as np
from tf_loopbench.benchmarks.config import INJECT_SLOWDOWN_ENV
from tf_loopbench.reports.history import (
    RATIO,
    STEP_TIME,
    History,
    load_history,
    noise_sigma,
    segment_ratio,
)
from tf_loopbench.reports.rundir import atomic_write_text

DEFAULT_RUN_ARGS = ("--workload", "mlp", "--quick", "--device", "cpu")
INJECT_FORM = re.compile(r"(\d+)(?:-(\d+))?:([A-Za-z_][\w]*)=([0-9.]+)")


@dataclass(frozen=True)
class Injection:
    """LOOP does FRACTION more work in runs first..last (1-based, inclusive)."""

    first: int
    last: int | None
    loop: str
    fraction: float

    def active(self, run: int) -> bool:
        return self.first <= run and (self.last is None or run <= self.last)

    def expected(self, runs: int) -> list[tuple[str, int, bool]]:
        """[(loop, 1-based run after the step, up)]: the steps history should name."""
        steps = [(self.loop, self.first, True)]
        if self.last is not None and self.last < runs:
            steps.append((self.loop, self.last + 1, False))
        return steps


def parse_injection(text: str) -> Injection:
    """``5:xla=0.15`` or ``3-6:eager=0.2``."""
    match = INJECT_FORM.fullmatch(text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not FROM[-TO]:LOOP=FRACTION, e.g. 5:xla=0.15"
        )
    first, last, loop, fraction = match.groups()
    return Injection(int(first), int(last) if last else None, loop, float(fraction))


def spec_for(run: int, injections: list[Injection]) -> str:
    """The LOOPBENCH_INJECT_SLOWDOWN value of run ``run`` ("" for none)."""
    return ",".join(f"{i.loop}={i.fraction}" for i in injections if i.active(run))


def fail(message: str) -> NoReturn:
    print(f"history_validation: {message}", file=sys.stderr)
    sys.exit(2)


def git(repo: Path, *args: str, env: dict | None = None) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True
    )
    return result.stdout.strip()


def scratch_commits(repo: Path, runs: int) -> list[str]:
    """``runs`` empty commits in a scratch repository (made once), one a minute apart."""
    if not (repo / ".git").is_dir():
        repo.mkdir(parents=True, exist_ok=True)
        git(repo, "init", "-q", "-b", "main")
    shas = git(repo, "rev-list", "--reverse", "HEAD").split() if _has_head(repo) else []
    for index in range(len(shas), runs):
        stamp = f"2026-01-01T00:{index:02d}:00+00:00"
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "history validation",
            "GIT_AUTHOR_EMAIL": "none@example.invalid",
            "GIT_COMMITTER_NAME": "history validation",
            "GIT_COMMITTER_EMAIL": "none@example.invalid",
            "GIT_AUTHOR_DATE": stamp,
            "GIT_COMMITTER_DATE": stamp,
        }
        git(repo, "commit", "-q", "--allow-empty", "-m", f"run {index + 1}", env=env)
        shas.append(git(repo, "rev-parse", "HEAD"))
    return shas[:runs]


def _has_head(repo: Path) -> bool:
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "-q", "--verify", "HEAD"],
                          capture_output=True).returncode == 0  # fmt: skip


def refile(run_dir: Path, commit: str) -> None:
    """File the run under the scratch ``commit``; the commit it measured stays beside it."""
    path = run_dir / "metadata.json"
    metadata = json.loads(path.read_text())
    soft = metadata["soft"]
    soft["measured_at_commit"], soft["measured_dirty"] = (
        soft.get("git_commit"),
        soft.get("git_dirty"),
    )
    soft["git_commit"], soft["git_dirty"] = commit, False
    atomic_write_text(path, json.dumps(metadata, indent=2, sort_keys=True) + "\n")


def make_run(args, index: int, spec: str, commit: str, log: Path) -> None:
    """Run ``loopbench run`` once (run ``index``), refile it, save it as a baseline."""
    out = args.work / "runs" / f"{index:02d}"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop(INJECT_SLOWDOWN_ENV, None)
    if spec:
        env[INJECT_SLOWDOWN_ENV] = spec
    run_args = args.run_args or [*DEFAULT_RUN_ARGS, "--processes", str(args.processes)]
    command = [args.loopbench, "run", *run_args, "--no-report", "--out", str(out)]
    load_before, started = os.getloadavg(), time.time()
    print(f"run {index}: {INJECT_SLOWDOWN_ENV}={spec or '(unset)'}", flush=True)
    result = subprocess.run(command, env=env)
    wall, load_after = time.time() - started, os.getloadavg()
    if result.returncode not in (0,):
        fail(f"run {index}: loopbench run exited {result.returncode}")
    run_dir = sorted(out.glob("*/metadata.json"))[-1].parent
    refile(run_dir, commit)
    name = f"run-{index:02d}"
    save = [args.loopbench, "baseline", "save", str(run_dir), "--name", name, "--store"]
    subprocess.run([*save, str(args.work / "store"), "--force"], check=True, env=env)
    record = {
        "run": index,
        "baseline": name,
        "inject": spec,
        "wall_s": round(wall, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "run_dir": str(run_dir),
    }
    with log.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def score(history: History, injections: list[Injection], runs: int) -> dict:
    """Hits (each cell of the injected loop stepping at its run, the right way), misplaced
    (one run off), missed, and false change points (all the others)."""
    position = {entry.name: i + 1 for i, entry in enumerate(history.entries)}
    expected = [step for injection in injections for step in injection.expected(runs)]
    found = [
        (change, change.cell.loop, position[change.after.name], change.main.ratio > 1)
        for change in history.changes
    ]
    hits, misplaced, used = [], [], set()
    for loop, run, up in expected:  # every cell of the loop that stepped there counts
        for distance, kind in ((0, hits), (1, misplaced)):
            matches = [
                f
                for f in found
                if (f[1], f[3]) == (loop, up)
                and abs(f[2] - run) == distance
                and id(f[0]) not in used
            ]
            if matches:
                used.update(id(f[0]) for f in matches)
                kind.extend((loop, run, f[0]) for f in matches)
                break
    missed = [
        (loop, run)
        for loop, run, _ in expected
        if not any((h[0], h[1]) == (loop, run) for h in (*hits, *misplaced))
    ]
    false = [f[0] for f in found if id(f[0]) not in used]
    return {"hits": hits, "misplaced": misplaced, "missed": missed, "false": false}


def at_known_steps(history: History, injections: list[Injection]) -> list[str]:
    """Each injected step measured where it is known to be, as history sizes a step it has
    found (geometric means after / before over the whole segments, Welch 95% interval with
    the series' own noise): what the search would have had to see."""
    lines = []
    runs = len(history.entries)
    for injection in injections:
        for loop, run, _ in injection.expected(runs):
            steps = [s for i in injections if i.loop == loop for _, s, _ in i.expected(runs)]
            bounds = sorted({1, runs + 1, *steps})
            first = bounds[bounds.index(run) - 1]
            last = bounds[bounds.index(run) + 1]
            of_loop = history.series[history.series["loop"] == loop]
            for (cell, name), rows in of_loop.groupby(["cell", "series"], sort=False):
                values = np.log(rows["value"].to_numpy())
                positions = rows["position"].to_numpy() + 1
                sigma = noise_sigma(values, rows["ci_low"].to_numpy(), rows["ci_high"].to_numpy())
                before = values[(positions >= first) & (positions < run)]
                after = values[(positions >= run) & (positions < last)]
                ratio, low, high = segment_ratio(before, after, sigma)
                lines.append(
                    f"- {cell.name} at run {run}, {name}: {ratio - 1:+.1%} (95% CI "
                    f"{low - 1:+.1%} to {high - 1:+.1%}) over runs {first}-{run - 1} against "
                    f"{run}-{last - 1}; the series' noise sigma {sigma:.3f} (log)"
                )
    return lines


def series_table(history: History, log: list[dict]) -> str:
    """Markdown: per run, each loop's median step (ms) [95% CI] and ratio to the reference."""
    frame = history.series
    loops = list(dict.fromkeys(frame["loop"]))
    by_name = {record["baseline"]: record for record in log}
    head = ["run", "inject", "load 1m after", "wall s"]
    head += [f"{loop} ms [95% CI]" for loop in loops]
    head += [f"{loop}/{history.reference}" for loop in loops if loop != history.reference]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for position, entry in enumerate(history.entries):
        rows = frame[frame["position"] == position]
        record = by_name.get(entry.name, {})
        cells = [str(position + 1), record.get("inject") or "—"]
        cells += [str(record.get("load_after", ["?"])[0]), str(record.get("wall_s", "?"))]
        for loop in loops:
            step = rows[(rows["loop"] == loop) & (rows["series"] == STEP_TIME)]
            cells.append(
                f"{step['value'].iloc[0] * 1e3:.2f} [{step['ci_low'].iloc[0] * 1e3:.2f}-"
                f"{step['ci_high'].iloc[0] * 1e3:.2f}]"
                if len(step)
                else "—"
            )
        for loop in loops:
            if loop == history.reference:
                continue
            ratio = rows[(rows["loop"] == loop) & (rows["series"] == RATIO)]
            cells.append(f"{ratio['value'].iloc[0]:.3f}" if len(ratio) else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(args, injections: list[Injection]) -> str:
    history = load_history(args.work / "store", repo=args.work / "repo")
    history_out = args.work / "history"
    subprocess.run(
        [args.loopbench, "history", "--store", str(args.work / "store"), "--repo",
         str(args.work / "repo"), "--out", str(history_out)],
        check=True,
    )  # fmt: skip
    log_path = args.work / "runs.jsonl"
    log = (
        [json.loads(line) for line in log_path.read_text().splitlines()]
        if log_path.exists()
        else []
    )
    result = score(history, injections, len(history.entries))
    position = {entry.name: i + 1 for i, entry in enumerate(history.entries)}
    injected = {injection.loop for injection in injections}

    def said(change) -> str:
        where = f"runs {position[change.before.name]}->{position[change.after.name]}"
        return f"{change.cell.name} {where}: {change.describe(history.reference)}"

    lines = [
        f"# History validation: {len(history.entries)} runs in {args.work}",
        "",
        "Injected: "
        + (
            ", ".join(
                f"{i.loop} +{i.fraction:.0%} from run {i.first}"
                + (f" to {i.last}" if i.last else "")
                for i in injections
            )
            or "nothing"
        ),  # fmt: skip
        "",
        "## Scored",
        "",
        *(f"- hit: {loop} at run {run}: {said(change)}" for loop, run, change in result["hits"]),
        *(f"- misplaced: {loop} at run {run}: {said(c)}" for loop, run, c in result["misplaced"]),
        *(f"- missed: {loop} at run {run}" for loop, run in result["missed"]),
        *(f"- false change point: {said(change)}" for change in result["false"]),
        *(["- no false change point"] if not result["false"] else []),
        *(
            f"- creeping trend flagged ({'an injected loop' if t.cell.loop in injected else 'false'}):"
            f" {t.cell.name} {t.series}, {t.per_run:+.2%} a run (95% CI {t.low:+.2%} to "
            f"{t.high:+.2%}), {t.total:+.1%} over {t.runs} runs"
            + "".join(
                f"; or a step of {step.size} from run {after + 1}"
                for after, step in getattr(t, "instead_of", ())  # history before 2026-12-07: none
            )
            for t in history.trends
            if t.flagged(history.min_change)
        ),
        "",
        "## The injected steps where they are known to be",
        "",
        *at_known_steps(history, injections),
        "",
        "## Series (median step time of the run, ratio of least disturbed windows)",
        "",
        series_table(history, log),
        "",
        f"History rendered at {history_out / 'history.md'}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    run_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--work", type=Path, required=True, help="scratch folder (repo, runs, store)"
    )
    parser.add_argument("--runs", type=int, default=8, help="how many runs (default 8)")
    parser.add_argument("--inject", type=parse_injection, action="append", default=[])
    parser.add_argument("--processes", type=int, default=5, help="processes a cell (default 5)")
    beside = Path(sys.executable).with_name("loopbench")  # this interpreter's, else PATH's
    default = str(beside) if beside.exists() else shutil.which("loopbench") or "loopbench"
    parser.add_argument("--loopbench", default=default, help=f"default {default}")
    parser.add_argument("--score-only", action="store_true", help="score the store as it is")
    args = parser.parse_args(argv)
    args.run_args = run_args
    if args.runs < 4:
        fail("--runs must be 4 or more (history needs two runs on each side of a step)")
    for injection in args.inject:
        if not 1 <= injection.first <= args.runs:
            fail(f"injection {injection} starts outside runs 1..{args.runs}")
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.score_only:
        commits = scratch_commits(args.work / "repo", args.runs)
        for index in range(1, args.runs + 1):
            if (args.work / "store" / f"run-{index:02d}" / "metadata.json").exists():
                continue  # resume: made already
            spec = spec_for(index, args.inject)
            make_run(args, index, spec, commits[index - 1], args.work / "runs.jsonl")
    text = report(args, args.inject)
    atomic_write_text(args.work / "validation.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

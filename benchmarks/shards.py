"""Shards: one run's matrix spread over several machines, and merged back into one run.

    loopbench run ... --shard I/N          # run shard I of N (1 <= I <= N) of the matrix
    loopbench merge RUN... --out DIR       # the N shard run directories -> one run directory

A job is one worker process of one cell (a statistical sample). ``--shard I/N`` runs a
deterministic 1/N share of the jobs, chosen from the same arguments on every machine, so
N machines given the same command and I = 1..N cover the matrix once. The unit that is
dealt out is a *block*: one process number of one group of cells that differ only in the
loop style (same workload, device, batch size, width). A block holds every loop style of
its group, so each shard sees every loop style, and every within-run comparison a report
or the gate draws (a loop against the reference, process k with process k) stays inside
one shard, on one machine. Blocks go round-robin to the shards, process 0's first, the
groups rotated by one for each process number, so a shard gets a mix of groups and
process numbers. With fewer blocks than shards, single jobs are dealt instead (a shard
then lacks some loop styles); with fewer jobs than shards, ``--shard`` is refused.

A shard's metadata.json records ``shard``: its index and count, the full matrix (cells
and processes per cell), how jobs were dealt, and its own jobs. Process numbers are the
full matrix's, so the shards' samples fit together as one run's.

``merge`` checks that the runs belong together: every one a shard, the same shard count,
matrix, measurement settings, loop ladder and software (TensorFlow, Keras, code hash);
the same machine (hard metadata keys) unless ``allow_different_machines``; no shard or
job twice; every shard and every job present with a result. Otherwise it raises
:class:`ShardError` with one line naming what differs, is missing or is duplicated.
It then writes one run directory (staged beside ``out`` and renamed into place, so it
appears whole or not at all): the samples of every shard (each row marked with its
``shard``), summary.csv recomputed over the full matrix, and metadata.json with
``machines`` (each machine's hard keys, hostname and shards) and ``merged``.
``loopbench report`` and ``loopbench compare`` read it as one run. Machines that differ
leave the merged run's differing hard keys as ``"A | B"``, so it compares with a
one-machine run only through within-run ratios (``--allow-different-machines``).

This module never imports TensorFlow. Example::

    from tf_loopbench.benchmarks.shards import merge
    merge(["shards/run-1of2", "shards/run-2of2"], "results/merged")
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tf_loopbench.reports.rundir import (
    CellKey,
    Run,
    RunDirError,
    load_run,
    reference_loop,
    write_metadata,
    write_samples,
    write_summary,
)

#: metadata.json's key for a shard's description
SHARD_KEY = "shard"
#: metadata.json's key for the machines a merged run came from
MACHINES_KEY = "machines"
MERGED_KEY = "merged"

#: config keys that change what a job measures: shards must agree on them to merge
SETTINGS = (
    "steps",
    "windows",
    "window_s",
    "warmup_steps",
    "seed",
    "data_size",
    "profile",
    "intra_op_threads",
    "inter_op_threads",
)
#: soft keys naming the software that ran: shards must agree on them to merge
SOFTWARE = ("tensorflow", "keras", "code_hash")

_SHARD_TEXT = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class ShardError(Exception):
    """Shards that cannot be run or merged as asked; the message is one line."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def suffix(self) -> str:
        """For run directory names: ``shard2of4``."""
        return f"shard{self.index}of{self.count}"


def parse_shard(text: str) -> Shard:
    """``"2/4"`` -> Shard(2, 4); ValueError (one line) for anything else.

    >>> parse_shard("2/4")
    Shard(index=2, count=4)
    >>> parse_shard("0/4")
    Traceback (most recent call last):
    ...
    ValueError: shard 0/4 is out of range: I must be between 1 and 4
    """
    match = _SHARD_TEXT.match(text)
    if not match:
        raise ValueError(f"{text!r} is not I/N (shard I of N, e.g. 1/4)")
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise ValueError(f"shard {index}/{count}: N must be at least 1")
    if not 1 <= index <= count:
        raise ValueError(f"shard {index}/{count} is out of range: I must be between 1 and {count}")
    return Shard(index, count)


# ----------------------------------------------------------------------------- dealing


Job = tuple[int, int]  # (index of the cell in the matrix, process number)


#: the keys that describe the loop style itself rather than the setting it runs in
#: (reports.rundir.CELL_KEYS: fit's jit_compile is a key of fit's cells only)
LOOP_KEYS = ("loop", "fit_jit")


def _group(cell: CellKey) -> tuple:
    """The cells that differ only in the loop style form one group."""
    return tuple(value for key, value in cell._asdict().items() if key not in LOOP_KEYS)


def deal(cells: Sequence[CellKey], processes: int, count: int) -> tuple[str, list[list[Job]]]:
    """(how, jobs of each shard): every (cell index, process) of the matrix dealt to
    ``count`` shards; each shard's jobs in the interleaved schedule's order (process 0
    of every cell, then process 1, ...). ``how`` is ``"blocks"`` (a block: every loop
    style of a group for one process number) or ``"jobs"`` (fewer blocks than shards).

    >>> cells = [CellKey("mlp", loop, "cpu", 64, 128) for loop in ("a", "b")]
    >>> deal(cells, 2, 2)
    ('blocks', [[(0, 0), (1, 0)], [(0, 1), (1, 1)]])
    """
    n_jobs = len(cells) * processes
    if n_jobs < count:
        raise ShardError(
            f"{count} shards for a matrix of {n_jobs} jobs ({len(cells)} cells x "
            f"{processes} processes): use at most {n_jobs} shards"
        )
    groups = list(dict.fromkeys(_group(cell) for cell in cells))
    owner: dict[Job, int] = {}
    if len(groups) * processes >= count:
        how = "blocks"
        members = {g: [i for i, c in enumerate(cells) if _group(c) == g] for g in groups}
        block = 0
        for process in range(processes):
            rotation = process % len(groups)
            for group in groups[rotation:] + groups[:rotation]:
                for index in members[group]:
                    owner[(index, process)] = block % count
                block += 1
    else:
        how = "jobs"
        for position, job in enumerate(
            (index, process) for process in range(processes) for index in range(len(cells))
        ):
            owner[job] = position % count
    shards: list[list[Job]] = [[] for _ in range(count)]
    for process in range(processes):
        for index in range(len(cells)):
            shards[owner[(index, process)]].append((index, process))
    return how, shards


def describe(cells: Sequence[Mapping[str, Any]], processes: int, shard: Shard) -> dict[str, Any]:
    """metadata.json's ``shard`` for shard ``shard`` of the matrix ``cells`` x ``processes``
    (cells as the rows of metadata hold them)."""
    keys = [CellKey.of(cell) for cell in cells]
    how, dealt = deal(keys, processes, shard.count)
    return {
        "index": shard.index,
        "count": shard.count,
        "processes": processes,
        "matrix": [key._asdict() for key in keys],
        "dealt": how,
        "jobs": [list(job) for job in dealt[shard.index - 1]],
    }


def shard_jobs(description: Mapping[str, Any]) -> set[tuple[CellKey, int]]:
    """The (cell, process) jobs a shard description holds."""
    matrix = [CellKey.of(cell) for cell in description["matrix"]]
    return {(matrix[index], process) for index, process in description["jobs"]}


def job_name(cell: CellKey, process: int) -> str:
    return f"{cell.name} process {process}"


# ----------------------------------------------------------------------------- merging


def _description(run: Run) -> dict[str, Any]:
    description = run.metadata.get(SHARD_KEY)
    if not isinstance(description, Mapping):
        raise ShardError(
            f"{run.path} is not a shard (made without --shard); merge takes the shards of one matrix"
        )
    try:
        Shard(int(description["index"]), int(description["count"]))
        [CellKey.of(cell) for cell in description["matrix"]]
        [(int(i), int(p)) for i, p in description["jobs"]]
    except (KeyError, TypeError, ValueError):
        raise ShardError(f"{run.path}: corrupted shard metadata") from None
    return dict(description)


def _label(run: Run) -> str:
    description = run.metadata[SHARD_KEY]
    return f"shard {description['index']}/{description['count']} ({run.path})"


def _first_difference(runs: Sequence[Run], value: Any, what: str) -> None:
    """Raise naming the first run whose ``value(run)`` differs from the first run's."""
    first = value(runs[0])
    for run in runs[1:]:
        other = value(run)
        if other == first:
            continue
        if isinstance(first, Mapping) and isinstance(other, Mapping):
            detail = "; ".join(_hard_differences(other, first)[:3])
        else:
            detail = f"{_short(other)} vs {_short(first)}"
        raise ShardError(
            f"{_label(run)} and {_label(runs[0])} are not shards of one run: {what} ({detail})"
        )


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def _flat(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _hard_differences(first: Mapping[str, Any], other: Mapping[str, Any]) -> list[str]:
    """``key: first's vs other's`` for each (flattened) key that differs."""
    a, b = _flat(first), _flat(other)
    return [
        f"{key}: {_short(a.get(key), 30)} vs {_short(b.get(key), 30)}"
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]


def _listing(items: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check(runs: Sequence[Run], allow_different_machines: bool = False) -> list[dict[str, Any]]:
    """Raise ShardError (one line) unless ``runs`` are the complete, disjoint shards of one
    matrix on one machine (any machines with ``allow_different_machines``); returns their
    shard descriptions in the order of ``runs``."""
    if not runs:
        raise ShardError("nothing to merge: give the shards' run directories")
    descriptions = [_description(run) for run in runs]
    _first_difference(runs, lambda r: r.metadata[SHARD_KEY]["count"], "shard counts differ")
    _first_difference(
        runs,
        lambda r: (r.metadata[SHARD_KEY]["matrix"], r.metadata[SHARD_KEY]["processes"]),
        "their matrices (cells x processes) differ",
    )
    _first_difference(
        runs,
        lambda r: {k: r.metadata.get("config", {}).get(k) for k in SETTINGS},
        "measurement settings differ",
    )
    _first_difference(runs, lambda r: r.metadata.get("ladder"), "loop ladders differ")
    _first_difference(
        runs,
        lambda r: {k: r.metadata.get("soft", {}).get(k) for k in SOFTWARE},
        "software differs",
    )
    if not allow_different_machines:
        first_hard = runs[0].metadata.get("hard", {})
        for run in runs[1:]:
            differences = _hard_differences(first_hard, run.metadata.get("hard", {}))
            if differences:
                raise ShardError(
                    f"{_label(run)} ran on a different machine than {_label(runs[0])} "
                    f"({'; '.join(differences[:3])}); pass --allow-different-machines to merge anyway"
                )

    count = int(descriptions[0]["count"])
    by_index: dict[int, list[Run]] = {}
    for run, description in zip(runs, descriptions, strict=True):
        by_index.setdefault(int(description["index"]), []).append(run)
    twice = {index: found for index, found in sorted(by_index.items()) if len(found) > 1}
    if twice:
        index, found = next(iter(twice.items()))
        raise ShardError(
            f"duplicated: shard {index}/{count} given {len(found)} times "
            f"({', '.join(str(run.path) for run in found)})"
        )
    absent = [f"{index}/{count}" for index in range(1, count + 1) if index not in by_index]
    if absent:
        raise ShardError(f"missing: shard {_listing(absent)} of the matrix (give all {count})")

    matrix = [CellKey.of(cell) for cell in descriptions[0]["matrix"]]
    processes = int(descriptions[0]["processes"])
    owners: dict[tuple[CellKey, int], list[Run]] = {}
    for run, description in zip(runs, descriptions, strict=True):
        for job in shard_jobs(description):
            owners.setdefault(job, []).append(run)
    overlap = sorted(job for job, found in owners.items() if len(found) > 1)
    if overlap:
        cell, process = overlap[0]
        raise ShardError(
            f"duplicated: {job_name(cell, process)} is in "
            f"{' and '.join(_label(run) for run in owners[overlap[0]])}"
        )
    expected = [(cell, process) for process in range(processes) for cell in matrix]
    uncovered = [job_name(*job) for job in expected if job not in owners]
    if uncovered:
        raise ShardError(f"missing: no shard holds {_listing(uncovered)}")

    for run, description in zip(runs, descriptions, strict=True):
        done, own = _finished_jobs(run), shard_jobs(description)
        foreign = [job_name(*job) for job in sorted(done - own)]
        if foreign:
            raise ShardError(
                f"{_label(run)} holds results of jobs that are not its own ({_listing(foreign, 2)})"
            )
        unfinished = [job_name(*job) for job in sorted(own) if job not in done]
        if unfinished:
            raise ShardError(
                f"missing: {_label(run)} has no result for {len(unfinished)} of its "
                f"{len(description['jobs'])} jobs ({_listing(unfinished, 2)}); run that shard again"
            )
    return descriptions


def _finished_jobs(run: Run) -> set[tuple[CellKey, int]]:
    """(cell, process) of every process row, whatever its status (failed is a result)."""
    samples = run.samples
    if samples.empty or "process" not in samples.columns:
        return set()
    rows = samples[samples["kind"] == "process"]
    return {(CellKey.of(row), int(row["process"])) for row in rows.to_dict("records")}


def _raw_rows(run: Run) -> list[dict[str, Any]]:
    """samples.jsonl as written (not through pandas, which would turn nulls into NaN)."""
    path = run.path / "samples.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _machines(runs: Sequence[Run]) -> list[dict[str, Any]]:
    machines: list[dict[str, Any]] = []
    for run in sorted(runs, key=lambda r: r.metadata[SHARD_KEY]["index"]):
        hard = run.metadata.get("hard", {})
        hostname = run.metadata.get("soft", {}).get("hostname")
        index = run.metadata[SHARD_KEY]["index"]
        for machine in machines:
            if machine["hard"] == hard and machine["hostname"] == hostname:
                machine["shards"].append(index)
                break
        else:
            machines.append({"hostname": hostname, "hard": hard, "shards": [index]})
    return machines


def _merged_hard(runs: Sequence[Run]) -> dict[str, Any]:
    """The shards' hard keys; a key that differs becomes ``"A | B"`` (so the merged run
    never passes for any one of the machines)."""
    hards = [run.metadata.get("hard", {}) for run in runs]
    merged: dict[str, Any] = {}
    for key in dict.fromkeys(k for hard in hards for k in hard):
        values = [hard.get(key) for hard in hards]
        distinct = list(dict.fromkeys(json.dumps(v, sort_keys=True) for v in values))
        merged[key] = values[0] if len(distinct) == 1 else " | ".join(distinct)
    return merged


def merged_metadata(runs: Sequence[Run], run_id: str) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r.metadata[SHARD_KEY]["index"])
    metadata = copy.deepcopy(ordered[0].metadata)
    description = metadata.pop(SHARD_KEY)
    metadata["run_id"] = run_id
    metadata["complete"] = True
    metadata["interrupted"] = False
    metadata["hard"] = _merged_hard(ordered)
    machines = _machines(ordered)
    metadata[MACHINES_KEY] = machines
    metadata[MERGED_KEY] = {
        "from": "shards",
        "count": description["count"],
        "dealt": description["dealt"],
        "shards": [
            {
                "index": run.metadata[SHARD_KEY]["index"],
                "run_id": run.run_id,
                "hostname": run.metadata.get("soft", {}).get("hostname"),
                "started_at": run.metadata.get("soft", {}).get("started_at"),
                "ended_at": run.metadata.get("soft", {}).get("ended_at"),
            }
            for run in ordered
        ],
    }
    soft = metadata.setdefault("soft", {})
    soft["merged_from"] = [run.run_id for run in ordered]
    hostnames = list(dict.fromkeys(str(m["hostname"]) for m in machines))
    soft["hostname"] = ", ".join(hostnames)
    for key, pick in (("started_at", min), ("ended_at", max)):
        values = [run.metadata.get("soft", {}).get(key) for run in ordered]
        if all(isinstance(value, str) for value in values):
            soft[key] = pick(values)
    config = metadata.setdefault("config", {})
    config["cells"] = description["matrix"]
    config["shard"] = None
    return metadata


def merged_rows(runs: Sequence[Run], matrix: Sequence[CellKey]) -> list[dict[str, Any]]:
    """Every shard's rows, marked with their shard; ``order`` becomes the position in the
    full matrix's interleaved schedule (the shard's own in ``shard_order``)."""
    position = {cell: index for index, cell in enumerate(matrix)}
    rows = []
    for run in runs:
        index = run.metadata[SHARD_KEY]["index"]
        for row in _raw_rows(run):
            row["shard"] = index
            if "order" in row:
                row["shard_order"] = row["order"]
            cell = CellKey.of(row)
            if cell in position and isinstance(row.get("process"), int):
                row["order"] = row["process"] * len(matrix) + position[cell]
            rows.append(row)
    kinds = {"process": 0, "window": 1}
    rows.sort(key=lambda r: (r.get("order", 0), kinds.get(r.get("kind"), 2), r.get("window") or 0))
    return rows


def write_run_dir(
    out: str | os.PathLike[str],
    metadata: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    cell_order: Sequence[Mapping[str, Any]],
) -> Path:
    """Write a run directory at ``out`` whole or not at all: staged in a hidden sibling
    directory, then renamed to ``out`` (which must not exist, or be empty)."""
    from tf_loopbench.benchmarks.stats import summarize

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ShardError(f"{out} exists and is not empty; merge writes a new run directory")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise ShardError(f"cannot write to {out.parent}: {exc.strerror or exc}") from None
    try:
        write_samples(staging, rows)
        summary = summarize(rows, list(cell_order), reference_loop(metadata))
        write_summary(staging, summary)
        write_metadata(staging, metadata)
        if out.exists():
            out.rmdir()
        os.rename(staging, out)
    except OSError as exc:
        raise ShardError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out


def merge(
    run_dirs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    allow_different_machines: bool = False,
    run_id: str | None = None,
) -> Path:
    """Merge the shards of one matrix into one run directory at ``out``; returns it.

    Raises ShardError or RunDirError (one-line messages) when they do not belong together.
    """
    runs = [load_run(path) for path in run_dirs]
    check(runs, allow_different_machines)
    metadata = merged_metadata(runs, run_id or Path(out).name)
    matrix = [CellKey.of(cell) for cell in metadata["config"]["cells"]]
    rows = merged_rows(runs, matrix)
    return write_run_dir(out, metadata, rows, metadata["config"]["cells"])


def command(
    run_dirs: Sequence[str],
    out: str,
    allow_different_machines: bool = False,
    run_id: str | None = None,
) -> int:
    """``loopbench merge RUN... --out DIR``: 0 merged; 2 (one line on stderr) otherwise."""
    import sys

    try:
        path = merge(run_dirs, out, allow_different_machines, run_id)
    except (ShardError, RunDirError) as exc:
        print(f"loopbench: error: {exc}", file=sys.stderr)
        return 2
    print(f"merged {len(run_dirs)} shards: {path}")
    return 0

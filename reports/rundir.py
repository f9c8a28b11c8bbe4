"""The run directory, the results contract between ``benchmarks`` and ``reports``
(shared/DESIGN.md): metadata.json, samples.jsonl and summary.csv, each written atomically,
read with pandas and without TensorFlow, through one loader::

    run = load_run("results/20261121-170000-cpu")
    reference_loop(run)    # e.g. "fit", from the ladder: reports name no loop themselves
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from tf_loopbench.reports.compare import CELL_KEY_DEFAULTS, CELL_KEYS, SETTING_KEYS
from tf_loopbench.reports.compare import LOOP_KEYS as LOOP_KEYS

SCHEMA_VERSION = 1

METADATA_FILE = "metadata.json"
SAMPLES_FILE = "samples.jsonl"
SUMMARY_FILE = "summary.csv"
RUN_FILES = (METADATA_FILE, SAMPLES_FILE, SUMMARY_FILE)

#: soft metadata the same-job A/B leaves on both sides: {"interleaved": true, "partner": id}
AB_MARK = "ab"


class CellKey(NamedTuple):
    """The key of one cell, in the order of CELL_KEYS (the comparison core's key schema).
    :meth:`of` builds it from a CSV or JSON row (``2.0`` -> ``2``, a missing width -> 0).

    >>> CellKey.of({"workload": "mlp", "loop": "a", "device": "cpu", "batch_size": 64.0,
    ...             "width": float("nan")})  # doctest: +NORMALIZE_WHITESPACE
    CellKey(workload='mlp', loop='a', device='cpu', batch_size=64, width=0, steps_per_call=1,
            precision='float32', fit_jit='none', strategy='none')
    """

    workload: str
    loop: str
    device: str
    batch_size: int
    width: int = 0  # hidden width; 0 for workloads without one
    steps_per_call: int = 1
    precision: str = "float32"
    fit_jit: str = "none"
    strategy: str = "none"

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> CellKey:
        return cls(*(_key_value(key, row.get(key)) for key in CELL_KEYS))

    @property
    def setting(self) -> tuple:
        """Its SETTING_KEYS' values: the cells of one setting differ only in the loop."""
        return tuple(getattr(self, key) for key in SETTING_KEYS)

    @property
    def name(self) -> str:
        """A short name, e.g. ``mlp/xla/cpu/bs64/w256/k8/jit=off``: a part for each key
        only where it is not its default."""
        optional = [
            (f"w{self.width}", self.width != CELL_KEY_DEFAULTS["width"]),
            (f"k{self.steps_per_call}", self.steps_per_call != CELL_KEY_DEFAULTS["steps_per_call"]),
            (str(self.precision), self.precision != CELL_KEY_DEFAULTS["precision"]),
            (f"jit={self.fit_jit}", self.fit_jit in ("off", "on")),
            (str(self.strategy), self.strategy != CELL_KEY_DEFAULTS["strategy"]),
        ]
        parts = [self.workload, self.loop, self.device, f"bs{self.batch_size}"]
        return "/".join(map(str, parts + [part for part, differs in optional if differs]))

    @property
    def setting_name(self) -> str:
        """Its setting's short name, e.g. ``mlp/cpu/bs64/w256/k8``: :attr:`name` without the
        loop and fit's compiler."""
        return self._replace(loop="-", fit_jit="none").name.replace("/-/", "/", 1)


def _key_value(key: str, value: Any) -> Any:
    if key in CELL_KEY_DEFAULTS and (
        value is None or (isinstance(value, float) and math.isnan(value))
    ):
        return CELL_KEY_DEFAULTS[key]
    if isinstance(value, np.integer) or (isinstance(value, float) and value.is_integer()):
        return int(value)
    return value


#: The contract of summary.csv (shared/DESIGN.md). Renaming one is a breaking change;
#: more columns may follow these.
SUMMARY_COLUMNS = (
    "workload",
    "loop",
    "device",
    "batch_size",
    "status",  # ok | failed | skipped
    "step_time_median_s",
    "step_time_ci_low_s",
    "step_time_ci_high_s",
    "step_time_iqr_s",
    "examples_per_s",
    "compile_s",
    "final_loss",
    "retraces",
    "peak_rss_bytes",
    "n_processes",
    "noisy",
    "speedup_vs_fit",
)

#: Written right after SUMMARY_COLUMNS (empty in a run made before them): the equal-work
#: check against the equivalence reference, the step time over whole epochs, steady ratios.
FAIR_READING_COLUMNS = (
    "equal_work_steps",
    "equal_work_loss",
    "equivalent",
    "amortized_step_time_s",
    "steady_speedup_vs_fit",
    "amortized_step_time_ci_low_s",
    "amortized_step_time_ci_high_s",
)

#: Where a cell's epoch-end spans come from (summary.csv ``epoch_end_basis``): every epoch
#: end after the first that its processes timed, or, in a run made before those were
#: recorded, each process's ``epoch_end_s`` (the median of its first epoch ends, which
#: cost more than later ones: docs/methodology.md).
LATER_EPOCH_ENDS = "later epoch ends"
FIRST_EPOCH_ENDS = "first epoch ends, one a process (a run before later ones were timed)"


def epoch_end_spans(process: Mapping[str, Any]) -> tuple[list[float], str | None]:
    """One process row's epoch-end spans (s) and their basis (LATER_EPOCH_ENDS or
    FIRST_EPOCH_ENDS); ([], None) for a loop without epochs or a process that timed none.

    >>> epoch_end_spans({"epoch_end_spans_s": [0.12, 0.15], "epoch_end_s": 0.135})
    ([0.12, 0.15], 'later epoch ends')
    >>> epoch_end_spans({"epoch_end_s": 0.7})[0]
    [0.7]
    """
    spans = process.get("epoch_end_spans_s")
    if isinstance(spans, list | tuple | np.ndarray):
        return [float(s) for s in spans], (LATER_EPOCH_ENDS if len(spans) else None)
    end = process.get("epoch_end_s")  # (a row that records spans has it only with spans)
    return ([], None) if _missing(end) else ([float(end)], FIRST_EPOCH_ENDS)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


STATUSES = ("ok", "failed", "skipped")

#: the report's "time to train E epochs" (``loopbench run/report --epochs``)
DEFAULT_EPOCHS = 1

NUMERIC_SUMMARY_COLUMNS = tuple(
    c for c in SUMMARY_COLUMNS if c not in ("workload", "loop", "device", "status", "noisy")
)

#: Optional summary columns that are numbers when present.
OPTIONAL_NUMERIC_COLUMNS = (
    *(c for c in FAIR_READING_COLUMNS if c != "equivalent"),
    "steps_per_call",
    "width",
    "model_flops_per_step",
    "step_time_cv",
    "first_step_s",
    "build_s",
    "fit_setup_s",
    "profile_op_time_s",
    "profile_input_wait_s",
    "profile_overhead_fraction",
)


class RunDirError(Exception):
    """A run directory that cannot be read; the message is one line fit to show as is."""


LADDER_KEY = "ladder"


@dataclass(frozen=True)
class Rung:
    """One loop style on the ladder, as its class declares it (loops/base.py)."""

    loop: str
    #: the rung this one differs from in one thing; None: compared with the reference only
    compares_with: str | None
    #: one line: what this rung changes against ``compares_with`` (the reference: what it is)
    changes: str
    reference: bool = False
    #: its one change is the XLA compiler (None: a ladder from before this was declared)
    compiler: bool | None = None


@dataclass(frozen=True)
class Ladder:
    """The loop ladder of a run (metadata.json's ``ladder``): the reference loop, and
    which rung each loop compares with.

    >>> ladder = Ladder.from_json({"reference": "a", "rungs": [
    ...     {"loop": "a", "compares_with": None, "changes": "the baseline", "reference": True},
    ...     {"loop": "b", "compares_with": None, "changes": "first", "reference": False},
    ...     {"loop": "c", "compares_with": "b", "changes": "one thing", "reference": False}]})
    >>> ladder.neighbours()
    [('c', 'b')]
    """

    reference: str
    rungs: tuple[Rung, ...]

    @classmethod
    def from_json(cls, data: Any) -> Ladder:
        """Read the JSON form; raise ValueError naming what is wrong."""
        if not isinstance(data, Mapping) or not isinstance(data.get("rungs"), list):
            raise ValueError("not an object with a list of rungs")
        rungs = []
        for rung in data["rungs"]:
            if not isinstance(rung, Mapping) or not isinstance(rung.get("loop"), str):
                raise ValueError(f"a rung without a loop name: {rung!r}")
            compares_with = rung.get("compares_with")
            if compares_with is not None and not isinstance(compares_with, str):
                raise ValueError(f"{rung['loop']}: compares_with is not a loop name")
            changes = str(rung.get("changes") or "")
            compiler = bool(rung["compiler"]) if "compiler" in rung else None
            rungs.append(
                Rung(rung["loop"], compares_with, changes, bool(rung.get("reference")), compiler)
            )
        loops = [rung.loop for rung in rungs]
        reference = data.get("reference")
        if reference not in loops:
            raise ValueError(f"the reference {reference!r} is not one of its rungs")
        if len(set(loops)) < len(loops):
            raise ValueError("a loop is on it twice")
        unknown = [r.compares_with for r in rungs if r.compares_with not in (None, *loops)]
        if unknown:
            raise ValueError(f"a rung compares with {unknown[0]!r}, which is not on it")
        return cls(reference=reference, rungs=tuple(rungs))

    @property
    def loops(self) -> tuple[str, ...]:
        return tuple(rung.loop for rung in self.rungs)

    def neighbours(self) -> list[tuple[str, str]]:
        """(loop, the rung it compares with) for every rung that compares with one."""
        return [(rung.loop, rung.compares_with) for rung in self.rungs if rung.compares_with]

    def order(self, loops: Iterable[str]) -> list[str]:
        """``loops`` in ladder order, loops not on the ladder after them by name."""
        present = set(loops)
        return [loop for loop in self.loops if loop in present] + sorted(present - set(self.loops))


@dataclass(frozen=True)
class Run:
    """One run directory, loaded."""

    path: Path
    metadata: dict[str, Any]
    summary: pd.DataFrame
    samples: pd.DataFrame

    @property
    def run_id(self) -> str:
        return str(self.metadata.get("run_id", self.path.name))

    @property
    def ladder(self) -> Ladder | None:
        """The loop ladder its metadata declares; None for a run made before ladders."""
        data = self.metadata.get(LADDER_KEY)
        return Ladder.from_json(data) if data is not None else None

    def process_samples(self) -> pd.DataFrame:
        """One row per worker process (the statistical samples), status ok only."""
        ok = self.samples.get("status", "ok") == "ok"  # a run without failures: no status
        return self.samples[(self.samples["kind"] == "process") & ok].reset_index(drop=True)


def reference_loop(*runs: Run | Mapping[str, Any], must_agree: bool = False) -> str | None:
    """The reference loop, the one place the suite decides it: the one the ladder of the
    last of ``runs`` (Runs or their metadata, oldest first) that declares a ladder
    names; None when none does. ``must_agree``: raise ValueError when they differ.
    """
    named = []
    for run in runs:
        data = (run.metadata if isinstance(run, Run) else run).get(LADDER_KEY)
        if data is not None:
            named.append(Ladder.from_json(data).reference)
    if must_agree and len(set(named)) > 1:
        raise ValueError(
            f"the runs' ladders name different reference loops ({', '.join(sorted(set(named)))})"
        )
    return named[-1] if named else None


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` so that readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _json_default(value: Any) -> Any:
    """numpy scalars and other number-likes as numbers; anything else as text."""
    if hasattr(value, "dtype"):
        with contextlib.suppress(AttributeError, ValueError):
            return value.item()
    for cast in (int, float):
        with contextlib.suppress(TypeError, ValueError):
            return cast(value)
    return str(value)


def _clean(value: Any) -> Any:
    """NaN and inf are not JSON: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def dumps(obj: Any, **kwargs: Any) -> str:
    return json.dumps(_clean(obj), default=_json_default, allow_nan=False, **kwargs)


def write_metadata(run_dir: str | os.PathLike[str], metadata: Mapping[str, Any]) -> None:
    meta = {"schema_version": SCHEMA_VERSION, **metadata}
    atomic_write_text(Path(run_dir) / METADATA_FILE, dumps(meta, indent=2, sort_keys=True) + "\n")


def write_samples(run_dir: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Rewrite samples.jsonl whole (atomically) from ``rows``."""
    text = "".join(dumps(row, sort_keys=True) + "\n" for row in rows)
    atomic_write_text(Path(run_dir) / SAMPLES_FILE, text)


def write_summary(run_dir: str | os.PathLike[str], summary: pd.DataFrame) -> None:
    missing = [c for c in SUMMARY_COLUMNS if c not in summary.columns]
    if missing:
        raise ValueError(f"summary lacks contract columns: {missing}")
    first = list(SUMMARY_COLUMNS) + [c for c in FAIR_READING_COLUMNS if c in summary.columns]
    ordered = first + [c for c in summary.columns if c not in first]
    atomic_write_text(Path(run_dir) / SUMMARY_FILE, summary[ordered].to_csv(index=False))


def read_metadata(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    run_dir = Path(run_dir)
    path = run_dir / METADATA_FILE
    if not run_dir.exists():
        raise RunDirError(f"{run_dir}: no such run directory")
    if not path.exists():
        raise RunDirError(f"{run_dir}: not a run directory (no {METADATA_FILE})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path}: unreadable or corrupted metadata ({exc})") from None
    version = meta.get("schema_version") if isinstance(meta, dict) else None
    if not isinstance(version, int) or version < 1:
        raise RunDirError(f"{path}: corrupted metadata (no schema_version of 1 or more)")
    if version > SCHEMA_VERSION:
        raise RunDirError(
            f"{path}: written by a newer tf-loopbench (schema {version}; this one reads "
            f"up to {SCHEMA_VERSION}); upgrade tf-loopbench to read it"
        )
    if meta.get(LADDER_KEY) is not None:
        try:
            Ladder.from_json(meta[LADDER_KEY])
        except ValueError as exc:
            raise RunDirError(f"{path}: corrupted metadata (ladder: {exc})") from None
    return meta


def read_samples(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    path = Path(run_dir) / SAMPLES_FILE
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: unreadable ({exc})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise RunDirError(f"{path}:{number}: corrupted or cut-off line") from None
        if not isinstance(row, dict) or "kind" not in row:
            raise RunDirError(f"{path}:{number}: not a sample row")
        rows.append(row)
    if text and not text.endswith("\n"):
        raise RunDirError(f"{path}: cut off in the middle (no final newline)")
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["kind", *CELL_KEYS])


def read_summary(run_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """summary.csv, checked: contract columns, known statuses, numbers where numbers
    belong, at least one row, not cut off."""
    path = Path(run_dir) / SUMMARY_FILE
    if not path.exists():
        raise RunDirError(f"{Path(run_dir)}: empty run directory (no {SUMMARY_FILE})")
    try:
        raw = path.read_bytes()
        frame = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise RunDirError(f"{path}: unreadable or corrupted ({str(exc).splitlines()[0]})") from None
    missing = [c for c in SUMMARY_COLUMNS if c not in frame.columns]
    if missing:
        raise RunDirError(f"{path}: corrupted summary (missing columns {', '.join(missing)})")
    bad_status = set(frame["status"].dropna()) - set(STATUSES)
    if bad_status:
        raise RunDirError(f"{path}: corrupted summary (unknown status {sorted(bad_status)})")
    if raw and not raw.endswith(b"\n"):
        raise RunDirError(f"{path}: cut off in the middle (no final newline)")
    if frame.empty:
        raise RunDirError(f"{path}: no cells (the run wrote a header only)")
    for column in NUMERIC_SUMMARY_COLUMNS + OPTIONAL_NUMERIC_COLUMNS:
        if column in frame.columns:
            frame[column] = _numbers(frame, column, f"{path}: corrupted summary (column ")
    fill_cell_keys(frame)
    if frame["batch_size"].isna().any():
        raise RunDirError(f"{path}: corrupted summary (a row without batch_size)")
    frame["batch_size"] = frame["batch_size"].astype(int)
    frame["noisy"] = frame["noisy"].map(lambda v: optional_bool(v, False))
    for column in FAIR_READING_COLUMNS:
        if column not in frame.columns:
            frame[column] = None if column == "equivalent" else math.nan
    # True / False, or None where the run could not check (no reference cell)
    frame["equivalent"] = frame["equivalent"].map(optional_bool).astype(object)
    return frame


def fill_cell_keys(frame: pd.DataFrame, summary: pd.DataFrame | None = None) -> None:
    """Give rows of a run made before a cell key that key's default, in place; a fit row
    without fit_jit gets "auto:on"/"auto:off" from its ``keras_jit_compile``, or that
    of its cell in ``summary`` (a frame already filled)."""
    for key, default in CELL_KEY_DEFAULTS.items():
        if key not in frame.columns:
            frame[key] = None
        if key in ("width", "steps_per_call"):  # whole numbers
            frame[key] = _numbers(frame, key, "corrupted cell key (").fillna(default).astype(int)
            continue
        missing = frame[key].isna()
        if key == "fit_jit" and missing.any():
            frame.loc[missing, key] = _fit_jit_before_the_key(frame[missing], summary)
            missing = frame[key].isna()
        frame.loc[missing, key] = default


def _numbers(frame: pd.DataFrame, column: str, what: str) -> pd.Series:
    """``column`` as numbers; a value that is none is a corrupted run (RunDirError)."""
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = frame.loc[values.isna() & frame[column].notna(), column]
    if len(bad):
        raise RunDirError(f"{what}{column} holds {bad.iloc[0]!r}, not a number)")
    return values


def _fit_jit_before_the_key(rows: pd.DataFrame, summary: pd.DataFrame | None) -> list[Any]:
    """fit_jit of rows without one: from keras_jit_compile, else from ``summary``."""
    known: dict[tuple, Any] = {}
    if summary is not None and "fit_jit" in summary.columns:
        older = [k for k in CELL_KEYS if k != "fit_jit" and k in summary.columns]
        for _, row in summary.iterrows():
            if str(row["fit_jit"]).startswith("auto:"):
                known[tuple(row[k] for k in older)] = row["fit_jit"]
    older = [k for k in CELL_KEYS if k != "fit_jit" and k in rows.columns]
    values = []
    for _, row in rows.iterrows():
        jit = row.get("keras_jit_compile")
        if jit is not None and not (isinstance(jit, float) and math.isnan(jit)):
            values.append("auto:on" if optional_bool(jit) else "auto:off")
        else:
            values.append(known.get(tuple(row[k] for k in older)))
    return values


def optional_bool(value: Any, missing: bool | None = None) -> bool | None:
    """A CSV or JSON truth value (bool, "True", 1.0); ``missing`` for None, NaN or ""."""
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"} if value.strip() else missing
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return missing
    return bool(value)


def load_run(run_dir: str | os.PathLike[str]) -> Run:
    """Load and validate one run directory; raise RunDirError with a one-line reason
    (missing, empty, corrupted, cut off, of a newer schema)."""
    run_dir = Path(run_dir)
    metadata = read_metadata(run_dir)
    summary, samples = read_summary(run_dir), read_samples(run_dir)
    if not samples.empty:
        try:
            fill_cell_keys(samples, summary)
        except RunDirError as exc:
            raise RunDirError(f"{run_dir / SAMPLES_FILE}: {exc}") from None
    return Run(path=run_dir, metadata=metadata, summary=summary, samples=samples)


def load_runs(run_dirs: Iterable[str | os.PathLike[str]]) -> list[Run]:
    """Load several run directories; the first unreadable one raises RunDirError."""
    return [load_run(run_dir) for run_dir in run_dirs]

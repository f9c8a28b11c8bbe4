"""The run matrix: a request resolved into a frozen RunConfig, and the cells it runs.

``make_config`` fills a RunRequest's defaults (the preset, every registered workload
and loop style) for the devices found and the users' models inspected;
``make_cells`` takes the product of the axes (workload x width x batch size x device
x strategy x steps per call x precision x loop, fit's jit only where the style has
it) and checks each against the data; ``count_jobs`` says how many worker processes
this run (or its shard) starts. Bad input raises UsageError with one line.

Example::

    config = make_config(make_request(workload="linear", loop="fit,xla", quick=True))
    [cell.label for cell in make_cells(config)]  # ['linear-fit-cpu-b32', 'linear-xla-cpu-b32']

The registries hold what was imported: import ``tf_loopbench.loops.styles`` and
``tf_loopbench.loops.workloads`` (which import TensorFlow) first.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from typing import Any

from tf_loopbench.benchmarks.config import (
    DEFAULT,
    DEFAULT_FIT_JIT,
    DEFAULT_PRECISION,
    DEFAULT_STEPS_PER_CALL,
    DEFAULT_STRATEGY,
    QUICK,
    Cell,
    RunConfig,
    RunRequest,
    UsageError,
)
from tf_loopbench.benchmarks.runner import schedule
from tf_loopbench.benchmarks.shards import ShardError
from tf_loopbench.loops.base import LOOPS, WORKLOADS, WorkloadConfig
from tf_loopbench.loops.data import DataError
from tf_loopbench.loops.distribute import parse as parse_strategy
from tf_loopbench.loops.knobs import FIT_JIT_NONE, fit_jit_key
from tf_loopbench.loops.model_spec import ModelSpec
from tf_loopbench.loops.registry import UnknownNameError


def registered(names: Sequence[str], registry: Any) -> tuple[str, ...]:
    """``names`` checked against ``registry`` (UsageError listing its choices); none
    given: every registered name, in registration order."""
    for name in names:
        try:
            registry.get(name)
        except UnknownNameError as exc:
            raise UsageError(str(exc)) from None
    return tuple(dict.fromkeys(names)) or tuple(registry.names())


def make_config(
    request: RunRequest,
    devices: Sequence[str] = ("cpu",),
    present: Sequence[str] = ("cpu",),
    models: Sequence[ModelSpec] = (),
) -> RunConfig:
    """The RunConfig of ``request`` on ``devices`` (of those ``present``), with the
    users' ``models`` (inspected; each a workload of the run)."""
    preset = QUICK if request.quick else DEFAULT
    if request.steps and request.window_ms:
        raise UsageError(
            "give --steps (a fixed step count) or --window-ms (windows by duration), not both"
        )
    steps = request.steps
    windows = request.windows or preset.windows
    if steps:
        windows = min(windows, steps)
    window_ms = None if steps else request.window_ms or preset.window_ms
    warmup = preset.warmup_steps if request.warmup_steps is None else request.warmup_steps
    if warmup < 0:
        raise UsageError(f"--warmup-steps {warmup}: must be 0 or more")
    models = tuple(models)
    workloads = registered(request.workload, WORKLOADS) if request.workload or not models else ()
    workloads += tuple(m.name for m in models if m.name not in workloads)
    return RunConfig(
        workloads=workloads,
        loops=registered(request.loop, LOOPS),
        devices=tuple(devices),
        devices_present=tuple(present),
        batch_sizes=request.batch_size or (None,),
        widths=request.width or (None,),
        steps=steps,
        window_s=window_ms / 1000 if window_ms else None,
        windows=windows,
        warmup_steps=warmup,
        processes=request.processes or preset.processes,
        seed=request.seed,
        data_size=request.data_size,
        data_path=request.data,
        intra_op_threads=request.threads or 0,
        quick=request.quick,
        profile=request.profile,
        timeout_s=request.timeout,
        start_method=request.start_method,
        out=request.out,
        command=tuple(sys.argv),
        models=models,
        shard=request.shard,
        steps_per_call=request.steps_per_call or (DEFAULT_STEPS_PER_CALL,),
        precisions=request.precision or (DEFAULT_PRECISION,),
        fit_jit=request.fit_jit or (DEFAULT_FIT_JIT,),
        strategies=request.strategy or (DEFAULT_STRATEGY,),
    )


def make_cells(config: RunConfig) -> list[Cell]:
    """The product of the axes, validated (batch size against the data size). The
    fit-jit axis multiplies only the loop style whose compiler is that setting
    (``LoopStyle.jit_setting``); the others get one cell."""
    cells = []
    for workload_name in config.workloads:
        workload_class = WORKLOADS.get(workload_name)
        for width in config.widths:
            workload = workload_class(
                WorkloadConfig(config.seed, config.data_size, width, config.data_path)
            )
            try:
                n_examples = workload.n_examples()
            except DataError as exc:
                raise UsageError(str(exc)) from None
            width_option = width if workload.width else None  # linear has no width
            for batch_size in config.batch_sizes:
                batch = batch_size or workload_class.default_batch_size
                check_batch(config, workload_name, batch, n_examples)
                for device, strategy in itertools.product(config.devices, config.strategies):
                    for k in config.steps_per_call:
                        for precision in config.precisions:
                            for loop in config.loops:
                                jit_keys = (
                                    [
                                        fit_jit_key(j, device, strategy, config.devices_present)
                                        for j in config.fit_jit
                                    ]
                                    if LOOPS.get(loop).jit_setting
                                    else [FIT_JIT_NONE]
                                )
                                for jit in jit_keys:
                                    cell = Cell(
                                        workload_name,
                                        loop,
                                        device,
                                        batch,
                                        workload.width,
                                        width_option,
                                        k,
                                        precision,
                                        jit,
                                        strategy,
                                    )
                                    if cell not in cells:
                                        cells.append(cell)
    return cells


def check_batch(config: RunConfig, workload: str, batch: int, n_examples: int) -> None:
    """UsageError unless ``batch`` fits the workload's data whole calls at a time and
    splits over every strategy's replicas."""
    if batch > n_examples:
        raise UsageError(
            f"batch size {batch} is larger than the {workload} data "
            f"({n_examples} examples); use a smaller --batch-size or a larger --data-size"
        )
    if batch * config.call_multiple > n_examples:
        raise UsageError(
            f"{config.call_multiple} steps per call at batch size {batch} need "
            f"{batch * config.call_multiple} examples; the {workload} data has "
            f"{n_examples} (use a larger --data-size or fewer --steps-per-call)"
        )
    for strategy in config.strategies:
        replicas = parse_strategy(strategy).replicas
        if batch % replicas:
            raise UsageError(
                f"batch size {batch} does not split over the {replicas} replicas "
                f"of {strategy} (--batch-size is the global batch)"
            )


def count_jobs(cells: list[Cell], config: RunConfig) -> int:
    """How many jobs this run runs (its shard's share with --shard); UsageError when
    the matrix has fewer jobs than shards."""
    try:
        return len(schedule(cells, config, None))
    except ShardError as exc:
        raise UsageError(f"--shard: {exc}") from None

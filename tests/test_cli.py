"""Bad input gets one clear line and exit status 2, never a traceback."""

from __future__ import annotations

import shlex
from types import SimpleNamespace

import pytest


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("loopbench:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def main_in_process(args, capsys) -> SimpleNamespace:
    """``loopbench ARGS`` in this process (TF imported once), as a CompletedProcess-like."""
    from tf_loopbench.benchmarks.cli import main

    try:
        status = main(args)
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    captured = capsys.readouterr()
    return SimpleNamespace(returncode=status, stdout=captured.out, stderr=captured.err)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", "--workload", "resnet"], ["unknown workload 'resnet'", "linear, mlp, gan"]),
        (["run", "--loop", "jax"], ["unknown loop 'jax'", "fit, eager, tf_function, tf_data, xla"]),
        (["run", "--device", "tpu"], ["unknown device 'tpu'", "cpu, gpu, all"]),
        (["run", "--batch-size", "0"], ["--batch-size", "not a positive integer"]),
        (["run", "--batch-size", "32,-1"], ["--batch-size", "not a positive integer"]),
        (["run", "--steps", "0"], ["--steps", "not a positive integer"]),
        (["run", "--window-ms", "0"], ["--window-ms", "not a positive number"]),
        (["run", "--window-ms", "nan"], ["--window-ms", "not a positive number"]),
        (["run", "--steps", "100", "--window-ms", "20"], ["--steps", "--window-ms", "not both"]),
        (["run", "--width", "abc"], ["--width", "'abc' is not a positive integer"]),
        (
            ["run", "--workload", "linear", "--data-size", "100", "--batch-size", "128"],
            ["batch size 128 is larger than the linear data (100 examples)"],
        ),
        (["run", "--workload", "mlp", "--data", "/nonexistent/mnist.npz"], ["no such data file"]),
        (["frobnicate"], ["invalid choice"]),
        (["ab"], ["the following arguments are required: BASE_REF"]),
        (["ab", "main", "--processes", "0"], ["--processes", "0 is not a positive integer"]),
        (["ab", "main", "--time-budget-min", "-1"], ["--time-budget-min", "not a positive number"]),
        (["ab", "main", "--samples", "5"], ["unrecognized arguments: --samples 5"]),
    ],
)
def test_bad_run_arguments(args, fragments, capsys):
    # in-process; the subprocess tests below cover the real entry point
    assert_one_line_error(main_in_process(args, capsys), *fragments)


def test_bad_input_through_the_console_entry_point(cli):
    assert_one_line_error(cli("run", "--loop", "jax"), "unknown loop 'jax'")


def test_gpu_requested_without_gpu(cli, tmp_path):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    result = cli("run", "--device", "gpu", "--quick", "--out", str(tmp_path))
    assert_one_line_error(result, "--device gpu: no GPU present", "devices present: cpu")
    assert not list(tmp_path.iterdir()), "nothing may be written for bad input"


def test_unwritable_output_directory(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = cli(
        "run",
        "--workload",
        "linear",
        "--loop",
        "eager",
        "--quick",
        "--out",
        str(blocker / "results"),
    )
    assert_one_line_error(result, "cannot write to output directory")


def test_list_names_every_registered_item_and_devices(cli):
    result = cli("list")
    assert result.returncode == 0, result.stderr
    for name in ("linear", "mlp", "gan", "fit", "eager", "tf_function", "tf_data", "xla", "cpu"):
        assert name in result.stdout
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        assert "skipped: no GPU" in result.stdout


def test_a_bad_name_prints_only_the_error_line(cli):
    """TensorFlow's import chatter (oneDNN, CUDA driver notes) is held back, from the
    parent and from the fork server started before the names are checked."""
    result = cli("run", "--workload", "nope")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "loopbench: error: unknown workload 'nope'; choose from: linear, mlp, gan"
    ]


def test_every_default_comes_from_the_config_module():
    from tf_loopbench.benchmarks import config
    from tf_loopbench.benchmarks.cli import build_parser, run_request
    from tf_loopbench.reports.gate.judge import DEFAULT_ALPHA, DEFAULT_THRESHOLD

    # `loopbench run` gives nothing of its own: the request's defaults are config's
    run = run_request(build_parser().parse_args(["run"]))
    assert run == config.RunRequest()
    assert (run.seed, run.timeout, run.start_method, run.out) == (
        config.SEED,
        config.TIMEOUT_S,
        config.START_METHOD,
        config.OUT_DIR,
    )
    ab = build_parser().parse_args(["ab", "origin/main"])
    assert (ab.processes, ab.time_budget_min, ab.out) == (
        config.AB_PROCESSES,
        config.AB_TIME_BUDGET_MIN,
        config.AB_OUT_DIR,
    )
    for gate in (ab, build_parser().parse_args(["compare", "A", "B"])):
        assert (gate.threshold, gate.alpha) == (DEFAULT_THRESHOLD, DEFAULT_ALPHA)


def test_the_command_line_and_the_api_build_the_same_request():
    """One RunRequest per run: `loopbench run ARGS` and `tf_loopbench.run(**options)`
    (benchmarks/options.py make_request) agree option by option."""
    from tf_loopbench.benchmarks.cli import build_parser, run_request
    from tf_loopbench.benchmarks.options import make_request

    argv = shlex.split(
        "run --workload linear,mlp --workload gan --loop fit --model a.py:make --device cpu "
        "--batch-size 32,64 --width 8 --steps-per-call 1,4 --precision mixed_bfloat16 "
        "--fit-jit on --strategy none,mirrored:2 --steps 40 --windows 4 --warmup-steps 0 "
        "--processes 3 --quick --profile --data-size 512 --data m.npz --seed 7 --threads 2 "
        "--timeout 60 --start-method spawn --out o --shard 1/2 --no-report --epochs 3 --wide "
        "--take-turns 5"
    )
    from_argv = run_request(build_parser().parse_args(argv))
    from_api = make_request(
        workload=["linear", "mlp", "gan"],
        loop="fit",
        model=["a.py:make"],
        device="cpu",
        batch_size=[32, 64],
        width=8,
        steps_per_call=(1, 4),
        precision="mixed_bfloat16",
        fit_jit="on",
        strategy=["none", "mirrored:2"],
        steps=40,
        windows=4,
        warmup_steps=0,
        processes=3,
        quick=True,
        profile=True,
        data_size=512,
        data="m.npz",
        seed=7,
        threads=2,
        timeout=60,
        start_method="spawn",
        out="o",
        shard="1/2",
        report=False,
        epochs=3,
        wide=True,
        take_turns=5,
    )
    assert from_argv == from_api
    assert from_api.batch_size == (32, 64) and from_api.shard == (1, 2)


def test_every_run_option_is_a_request_field_and_the_reverse():
    import dataclasses

    from tf_loopbench.benchmarks.cli import commands
    from tf_loopbench.benchmarks.config import RunRequest
    from tf_loopbench.benchmarks.options import RUN_OPTIONS

    run = commands()["loopbench run"]
    dests = {action.dest for action in run if action.dest != "help"}
    fields = {field.name for field in dataclasses.fields(RunRequest)}
    assert set(RUN_OPTIONS) == fields
    assert dests == (fields - {"report"}) | {"no_report"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, "argument --batch-size: 0 is not a positive integer"),
        ({"batch_size": [32, -1]}, "argument --batch-size: -1 is not a positive integer"),
        ({"frobnicate": 1}, "unrecognized arguments: --frobnicate 1"),
        ({"steps": True}, "argument --steps: expected one argument"),
        ({"precision": "int8"}, "argument --precision: unknown precision 'int8'"),
        ({"device": "tpu"}, "argument --device: unknown device 'tpu'; choose from: cpu, gpu, all"),
        ({"shard": "5/4"}, "argument --shard: shard 5/4 is out of range"),
    ],
)
def test_the_api_says_what_the_command_line_says(options, message, capsys):
    from tf_loopbench.benchmarks.config import UsageError
    from tf_loopbench.benchmarks.options import flag_of, make_request, text_of

    with pytest.raises(UsageError) as raised:
        make_request(**options)
    assert str(raised.value).startswith(message)
    ((key, value),) = options.items()
    argv = ["run", flag_of(key)] + ([] if value is True else [text_of(value)])
    result = main_in_process(argv, capsys)
    assert_one_line_error(result, str(raised.value))

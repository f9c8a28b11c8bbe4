"""The scheduler examples in examples/ci/ are checked, not run: each file parses as YAML,
has the structure its scheduler needs (a shard matrix or an Indexed Job that covers
shards 1..N once, a merge after them, the report as the job summary, baselines and
history on pushes to main only), and every loopbench command in it, expanded by a real
shell as the scheduler would (matrix values, JOB_COMPLETION_INDEX, $(...)), parses with
loopbench's own argument parser.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from tf_loopbench.benchmarks.cli import build_parser
from tf_loopbench.reports.gate.baseline import check_name

from tests.conftest import ROOT

CI = ROOT / "examples" / "ci"
WORKFLOW = CI / "github-actions.yml"
K8S_SHARDS = CI / "k8s" / "shards.yaml"
K8S_MERGE = CI / "k8s" / "merge.yaml"

#: a shell function in place of the command: prints each argument NUL-terminated, then
#: a record separator
FAKE = 'loopbench() { printf "%s\\0" "$@"; printf "\\036"; }\n'
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def loopbench_calls(script: str, env: dict[str, str], shell: str = "sh") -> list[list[str]]:
    """argv of every loopbench call in a shell script, as a real shell expands it
    (variables set before it, $((...)), $(...), quotes), without running anything else:
    only its assignments and loopbench lines run, loopbench being a function that prints.
    ``shell``: ``sh`` (POSIX: a container's ``sh -c``) or ``bash`` (a GitHub ``run:`` step)."""
    lines = [line.strip() for line in script.replace("\\\n", " ").splitlines()]
    kept = [line for line in lines if ASSIGNMENT.match(line) or line.startswith("loopbench ")]
    result = subprocess.run(
        [shell, "-c", FAKE + "\n".join(kept)],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
    )
    assert result.returncode == 0, result.stderr
    records = result.stdout.decode().split("\036")[:-1]
    return [record.split("\0")[:-1] for record in records]


def parse(argv: list[str]):
    """loopbench's parser on ``argv``; an error fails the test with its message."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:  # the parser's one-line error and exit 2
        raise AssertionError(f"loopbench {' '.join(argv)} does not parse") from exc


def github_expressions(text: str, values: dict[str, str]) -> str:
    """Replace ${{ expr }} by ``values[expr]``; an unknown expression fails the test."""

    def value(match: re.Match) -> str:
        expression = match[1].strip()
        assert expression in values, f"unexpected expression ${{{{ {expression} }}}}"
        return values[expression]

    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


# ----------------------------------------------------------------------------- GitHub Actions


@pytest.fixture(scope="module")
def workflow():
    data = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as True
    data["on"] = data.pop(True, data.get("on"))
    return data


def steps_running(job: dict, command: str) -> list[dict]:
    return [step for step in job["steps"] if command in step.get("run", "")]


def test_workflow_shards_cover_the_matrix_once(workflow):
    shard_job = workflow["jobs"]["shard"]
    values = shard_job["strategy"]["matrix"]["shard"]
    (step,) = steps_running(shard_job, "loopbench run")
    seen = []
    for shard in values:
        script = github_expressions(step["run"], {"matrix.shard": str(shard)})
        (argv,) = loopbench_calls(script, {}, "bash")
        args = parse(argv)
        assert args.command == "run" and args.no_report
        seen.append(args.shard)
    count = seen[0][1]
    assert sorted(seen) == [(i, count) for i in range(1, count + 1)]  # 1..N, once each
    assert shard_job["strategy"]["fail-fast"] is False  # one failed shard keeps the others


def merge_step_calls(workflow):
    (step,) = steps_running(workflow["jobs"]["merge"], "loopbench merge")
    return [parse(argv) for argv in loopbench_calls(step["run"], {}, "bash")]


def test_workflow_merges_and_publishes_the_report(workflow):
    merge = workflow["jobs"]["merge"]
    assert merge["needs"] == "shard"
    download = next(s for s in merge["steps"] if "download-artifact" in s.get("uses", ""))
    upload = next(
        s for s in workflow["jobs"]["shard"]["steps"] if "upload-artifact" in s.get("uses", "")
    )
    assert download["with"]["pattern"].rstrip("*") in upload["with"]["name"]
    merge_args, report_args = merge_step_calls(workflow)
    assert merge_args.command == "merge" and report_args.command == "report"
    assert merge_args.runs[0].startswith(download["with"]["path"])
    assert report_args.runs == [merge_args.out]
    summary = steps_running(merge, "GITHUB_STEP_SUMMARY")
    assert f"{merge_args.out}/report.md" in summary[0]["run"]
    assert "if" not in summary[0]  # on pull requests too


def test_workflow_saves_a_baseline_and_renders_history_on_main_only(workflow):
    assert workflow["on"]["push"]["branches"] == ["main"]
    (step,) = steps_running(workflow["jobs"]["merge"], "loopbench history")
    assert "github.event_name == 'push'" in step["if"] and "refs/heads/main" in step["if"]
    env = {"GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567"}
    save, history = (parse(argv) for argv in loopbench_calls(step["run"], env, "bash"))
    assert (save.command, save.action) == ("baseline", "save")
    assert check_name(save.name).endswith(env["GITHUB_SHA"][:12])
    assert save.run == merge_step_calls(workflow)[0].out
    assert history.command == "history" and history.store == save.store
    assert f"{history.out}/history.md" in step["run"]


def test_every_loopbench_command_in_the_workflow_parses(workflow):
    calls = [
        argv
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if "loopbench " in step.get("run", "")
        for argv in loopbench_calls(
            github_expressions(step["run"], {"matrix.shard": "1"}), {"GITHUB_SHA": "f" * 40}, "bash"
        )
    ]
    assert [argv[0] for argv in calls] == ["run", "merge", "report", "baseline", "history"]
    for argv in calls:
        parse(argv)


# ----------------------------------------------------------------------------- Kubernetes


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def container_script(job: dict) -> str:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["sh", "-c"]
    return container["args"][0]


def claim_of(job: dict) -> tuple[str, str]:
    """(claim name, mount path) of the job's one volume."""
    spec = job["spec"]["template"]["spec"]
    (volume,) = spec["volumes"]
    (mount,) = spec["containers"][0]["volumeMounts"]
    assert mount["name"] == volume["name"]
    return volume["persistentVolumeClaim"]["claimName"], mount["mountPath"]


def test_indexed_job_pods_run_shards_1_to_n_one_per_node():
    claim, job = documents(K8S_SHARDS)
    assert claim["kind"] == "PersistentVolumeClaim"
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
    completions = job["spec"]["completions"]
    assert job["spec"]["parallelism"] == completions
    seen, outs = [], set()
    for index in range(completions):
        (argv,) = loopbench_calls(container_script(job), {"JOB_COMPLETION_INDEX": str(index)})
        args = parse(argv)
        seen.append(args.shard)
        outs.add(args.out)
    assert seen == [(i + 1, completions) for i in range(completions)]
    assert len(outs) == completions  # each pod its own directory (a retry replaces it)
    pod = job["spec"]["template"]
    affinity = pod["spec"]["affinity"]["podAntiAffinity"]
    (term,) = affinity["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert claim_of(job)[0] == claim["metadata"]["name"]
    assert pod["spec"]["restartPolicy"] == "Never"


def test_merge_job_reads_the_shards_from_the_shared_volume():
    (_, shards_job) = documents(K8S_SHARDS)
    (merge_job,) = documents(K8S_MERGE)
    assert claim_of(merge_job) == claim_of(shards_job)
    (run_argv,) = loopbench_calls(container_script(shards_job), {"JOB_COMPLETION_INDEX": "0"})
    shard_out = Path(parse(run_argv).out)
    # the glob finds nothing here and stays as written: the shards' run directories
    merge_args, report_args = (parse(a) for a in loopbench_calls(container_script(merge_job), {}))
    assert merge_args.command == "merge"
    assert Path(merge_args.runs[0]).parent.parent == shard_out.parent
    assert report_args.runs == [merge_args.out]

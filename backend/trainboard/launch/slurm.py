"""Keep Slurm jobs while runs wait: each job is one remote worker that trains one run and exits.

Every few seconds the launcher compares the server's queue with its own jobs in `squeue` and
submits with `sbatch` while both hold:

    pending + running jobs < --max-jobs
    jobs yet to claim a run < queued runs      (no second job for a run a job already covers)

A job "yet to claim" is pending, or running for less than STARTING_SECONDS: its worker is still
starting. The launcher cancels no job: one that Slurm kills (time limit, preemption, `scancel`)
leaves its run to the server's lease, which queues it again to resume from its last checkpoint.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

JOB_NAME = "trainboard-worker"
# Seconds between two looks at the queue; TRAINBOARD_LAUNCH_POLL_SECONDS overrides (tests).
POLL_SECONDS = 5.0
# A job running for less than this may not have claimed its run yet (a worker imports torch and
# registers first): it still counts as covering a queued run. Too short: a second job for the
# same run, idle on the cluster; too long: a later run waits up to this long for its job.
STARTING_SECONDS = 30.0
# Not passed on to a job: a remote worker needs no database, and holds no token but --token.
WITHHELD = ("TRAINBOARD_DATABASE_URL", "TRAINBOARD_TOKEN", "TRAINBOARD_WORKER_TOKEN")


class LaunchError(Exception):
    """A failure the launcher reports in one line and retries after a pause."""


@dataclass(frozen=True)
class Jobs:
    """The launcher's jobs in `squeue`, by what they mean for the queue."""

    pending: int = 0
    starting: int = 0
    running: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.running


def poll_seconds() -> float:
    """POLL_SECONDS, or TRAINBOARD_LAUNCH_POLL_SECONDS when set."""
    return float(os.environ.get("TRAINBOARD_LAUNCH_POLL_SECONDS") or POLL_SECONDS)


def queued_runs(http: httpx.Client) -> int:
    """How many runs wait in the server's queue."""
    try:
        response = http.get("/api/remote/queue")
    except httpx.HTTPError as exc:
        raise LaunchError(f"cannot reach the server at {http.base_url}: {exc}") from exc
    if response.status_code == 401:
        raise LaunchError(f"the server at {http.base_url} refused the token (401)")
    if response.status_code != 200:
        raise LaunchError(f"the server at {http.base_url} answered {response.status_code}")
    try:
        return int(response.json()["queued"])
    except (ValueError, KeyError, TypeError) as exc:
        raise LaunchError(f"the server at {http.base_url} sent no run count: {exc!r}") from exc


def slurm(*command: str, env: dict[str, str] | None = None) -> str:
    """Run a Slurm command; its stdout, or a LaunchError with its first line of stderr."""
    try:
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LaunchError(f"{command[0]} failed: {exc}") from exc
    if result.returncode != 0:
        reason = (result.stderr.strip() or f"exit status {result.returncode}").splitlines()[0]
        raise LaunchError(f"{command[0]} failed: {reason}")
    return result.stdout


def elapsed_seconds(text: str) -> float:
    """squeue's elapsed time (`%M`: `S`, `M:SS`, `H:MM:SS` or `D-HH:MM:SS`) in seconds."""
    days, _, clock = text.rpartition("-")
    seconds = 0.0
    for part in clock.split(":"):
        seconds = seconds * 60 + int(part)
    return seconds + int(days or 0) * 86400


def own_jobs() -> Jobs:
    """This user's launcher jobs that are waiting, starting or training."""
    out = slurm(
        "squeue",
        "--noheader",
        "--me",
        f"--name={JOB_NAME}",
        "--states=PENDING,CONFIGURING,RUNNING",
        "--format=%T %M",
    )
    pending = starting = running = 0
    for line in out.splitlines():
        state, _, elapsed = line.strip().partition(" ")
        if state in ("PENDING", "CONFIGURING"):
            pending += 1
        elif state == "RUNNING":
            running += 1
            starting += elapsed_seconds(elapsed) < STARTING_SECONDS
    return Jobs(pending=pending, starting=starting, running=running)


def jobs_to_submit(queued: int, jobs: Jobs, max_jobs: int) -> int:
    """How many jobs to submit now: one per queued run no job covers, up to --max-jobs."""
    uncovered = queued - jobs.pending - jobs.starting
    return max(0, min(uncovered, max_jobs - jobs.total))


def worker_command(server: str) -> str:
    """The job's shell command: this Python's trainboard, as a remote worker for one run, with
    a scratch folder of the job's own in the node's TMPDIR (which many clusters give each job
    and clean after it)."""
    command = [sys.executable, "-m", "trainboard", "worker", "--server", server, "--max-runs", "1"]
    return shlex.join(command) + ' --home "${TMPDIR:-/tmp}/trainboard-job-$SLURM_JOB_ID"'


def output_folder() -> Path:
    """Where the jobs' output files go: `slurm/` in TRAINBOARD_HOME, else in the current folder
    (Slurm does not create it, and the nodes must see it: a shared file system on a cluster)."""
    return (Path(os.environ.get("TRAINBOARD_HOME") or ".") / "slurm").resolve()


def submit_job(server: str, token: str | None, sbatch_args: list[str]) -> str:
    """Submit one worker job; its Slurm job id. The token travels in the job's environment
    (`--export=ALL` of sbatch's own), never on a command line; --sbatch-arg comes last, so that
    it may override the output file or the export."""
    folder = output_folder()
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in WITHHELD}
    if token:
        env["TRAINBOARD_WORKER_TOKEN"] = token
    out = slurm(
        "sbatch",
        "--parsable",
        f"--job-name={JOB_NAME}",
        f"--output={folder / f'{JOB_NAME}-%j.out'}",
        "--export=ALL",
        *sbatch_args,
        "--wrap",
        worker_command(server),
        env=env,
    )
    # --parsable prints `id` or `id;cluster`.
    return out.strip().split(";")[0]


def launch_once(http: httpx.Client, args: argparse.Namespace) -> list[str]:
    """One look at the queue and the jobs, and the submissions it calls for; the new job ids."""
    queued = queued_runs(http)
    jobs = own_jobs()
    submitted = []
    for _ in range(jobs_to_submit(queued, jobs, args.max_jobs)):
        job = submit_job(args.server, args.token, args.sbatch_arg)
        submitted.append(job)
        print(
            f"submitted Slurm job {job} ({queued} queued runs; before it: {jobs.pending} "
            f"pending and {jobs.running} running jobs)",
            flush=True,
        )
    return submitted


def run_launcher(args: argparse.Namespace) -> int:
    """Keep jobs until SIGTERM or Ctrl-C; errors are reported in one line and retried."""
    if not args.server:
        print("trainboard launch slurm: --server (or TRAINBOARD_SERVER) is needed", file=sys.stderr)
        return 2
    stopping = threading.Event()

    def stop(_signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    print(
        f"launching up to {args.max_jobs} Slurm jobs for {args.server}; "
        f"job output in {output_folder()}",
        flush=True,
    )
    with httpx.Client(base_url=args.server.rstrip("/"), headers=headers, timeout=30) as http:
        while not stopping.is_set():
            try:
                launch_once(http, args)
            except LaunchError as exc:
                print(f"trainboard launch slurm: {exc}; retrying", file=sys.stderr, flush=True)
            stopping.wait(poll_seconds())
    return 0

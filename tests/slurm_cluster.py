"""A single-node Slurm cluster for tests: munged, slurmctld and slurmd started as root from one
temporary folder (its own munge key and socket, its own ports, config, spool, state and logs), and
everything it started or made removed at the end. Clients reach it through `env` (SLURM_CONF)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import free_port, wait_until

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo")
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def binary(name: str) -> str | None:
    """The path of a Slurm or munge program (daemons live in /usr/sbin, off some PATHs)."""
    return shutil.which(name, path=SEARCH_PATH)


def unavailable_reason() -> str | None:
    """Why this machine cannot bring the cluster up, or None when it can."""
    if os.geteuid() != 0:
        return "needs root to start munged, slurmctld and slurmd"
    missing = [name for name in DAEMONS + CLIENTS if binary(name) is None]
    if missing:
        return (
            f"Slurm is not installed ({', '.join(missing)} missing); "
            "`bash scripts/setup.sh --test` installs Debian's slurm-wlm and munge"
        )
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "no `munge` user (Debian's munge package makes it)"
    return None


def memory_mb() -> int:
    """Half the machine's memory in MB: a RealMemory that slurmd always finds (CR_CPU does not
    schedule memory, so the figure only has to be no more than what the node has)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 // 2
    return 1024


def slurm_conf(folder: Path, node: str, munge_socket: Path) -> str:
    """A minimal slurm.conf: root runs everything, no cgroups, one node with every CPU."""
    return f"""\
ClusterName=trainboard-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=5
MpiDefault=none
MailProg=/bin/true
StateSaveLocation={folder / "state"}
SlurmdSpoolDir={folder / "spool"}
SlurmctldPidFile={folder / "slurmctld.pid"}
SlurmdPidFile={folder / "slurmd.pid"}
SlurmctldLogFile={folder / "log" / "slurmctld.log"}
SlurmdLogFile={folder / "log" / "slurmd.log"}
NodeName={node} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} RealMemory={memory_mb()} State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class SlurmCluster:
    """A running cluster: its folder, the environment its clients need, and its daemons."""

    folder: Path
    node: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    daemons: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.folder / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """What a Slurm client's environment needs to talk to this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *command: str, check: bool = True) -> str:
        """A Slurm client command against this cluster; its stdout."""
        result = subprocess.run(
            [binary(command[0]) or command[0], *command[1:]],
            env=os.environ | self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed: {result.stderr.strip()}")
        return result.stdout

    def jobs(self, name: str | None = None) -> dict[str, str]:
        """Job id → state of the cluster's jobs (only those named `name` when given)."""
        which = [f"--name={name}"] if name else []
        out = self.run("squeue", "--noheader", "--format=%i %T", *which)
        return dict(line.split() for line in out.splitlines() if line.strip())

    def job_pids(self) -> list[int]:
        """The processes of the node's jobs, as slurmd tracks them."""
        out = self.run("scontrol", "listpids", check=False)
        return [int(line.split()[0]) for line in out.splitlines()[1:] if line.strip()]

    def cancel_jobs(self) -> None:
        """Cancel every job of the cluster (all are the test's) and wait until their processes
        are gone: Slurm sends SIGTERM, then SIGKILL after KillWait."""
        if jobs := self.jobs():
            self.run("scancel", *jobs, check=False)
        wait_until(
            lambda: not self.jobs() and not self.job_pids(),
            timeout=60,
            interval=0.2,
            what="the cancelled jobs' processes to end",
        )

    def log(self) -> str:
        """The tail of the daemons' logs, for a failure message."""
        tails = []
        paths = [*sorted((self.folder / "log").iterdir()), self.folder / "munge" / "munged.log"]
        for path in (path for path in paths if path.exists()):
            tails.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(tails)

    def _start(self, name: str, *args: str, user: str | None = None) -> None:
        log = (self.folder / "log" / f"{name}.out").open("ab")
        process = subprocess.Popen(
            [binary(name) or name, *args],
            env=os.environ | self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=user,
            group=user,
            cwd=self.folder,
        )
        log.close()
        self.daemons.append(process)

    def _check_alive(self) -> None:
        for process in self.daemons:
            if process.poll() is not None:
                name = Path(str(process.args[0])).name  # type: ignore[index]
                raise AssertionError(f"{name} exited with {process.returncode}:\n{self.log()}")

    def start(self) -> SlurmCluster:
        """munged as the munge user, then slurmctld and slurmd in the foreground (so that they
        stay this process's children); returns once the node is idle."""
        munge = pwd.getpwnam("munge")
        # munged, as the munge user, needs every folder up to its socket searchable by all and
        # writable by none but their owners.
        self.folder.chmod(0o755)
        for name in ("state", "spool", "log"):
            (self.folder / name).mkdir(mode=0o755)
        munge_dir = self.folder / "munge"
        munge_dir.mkdir(mode=0o755)
        key = munge_dir / "munge.key"
        subprocess.run([binary("mungekey") or "mungekey", "-c", "-k", str(key)], check=True)
        for path in (munge_dir, key):
            os.chown(path, munge.pw_uid, munge.pw_gid)
        munge_socket = munge_dir / "munge.socket"
        self.conf.write_text(slurm_conf(self.folder, self.node, munge_socket))

        self._start(
            "munged",
            "--foreground",
            f"--key-file={key}",
            f"--socket={munge_socket}",
            f"--pid-file={munge_dir / 'munged.pid'}",
            f"--log-file={munge_dir / 'munged.log'}",
            f"--seed-file={munge_dir / 'munged.seed'}",
            user="munge",
        )
        wait_until(
            lambda: self._check_alive() or munge_socket.exists(),
            timeout=30,
            what="munged's socket",
        )
        self._start("slurmctld", "-D", "-f", str(self.conf))
        self._start("slurmd", "-D", "-f", str(self.conf), "-N", self.node)

        def node_idle() -> bool:
            self._check_alive()
            return self.run("sinfo", "--noheader", "--format=%T", check=False).strip() == "idle"

        wait_until(node_idle, timeout=60, interval=0.2, what="the Slurm node to be idle")
        return self

    def stop(self) -> None:
        """Cancel every job and wait for its processes to end (killing any that outlive that),
        then stop the daemons, slurmd first."""
        if len(self.daemons) == 3 and all(process.poll() is None for process in self.daemons):
            try:
                self.cancel_jobs()
            except (AssertionError, subprocess.SubprocessError):
                for pid in self.job_pids():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        for process in reversed(self.daemons):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in reversed(self.daemons):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.daemons.clear()


@contextmanager
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A started cluster, stopped and its folder removed at the end, whatever happened."""
    cluster = SlurmCluster(Path(tempfile.mkdtemp(prefix="trainboard-slurm-")))
    try:
        yield cluster.start()
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(cluster.folder, ignore_errors=True)

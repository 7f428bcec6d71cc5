"""Settings: the one place that reads the environment (prefix ``TRAINBOARD_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def default_frontend_dir() -> Path:
    """The repository's ``frontend/`` folder, next to ``backend/``."""
    return Path(__file__).resolve().parents[2] / "frontend"


class Settings(BaseSettings):
    """Everything a trainboard process is configured by, built once and passed down."""

    model_config = SettingsConfigDict(env_prefix="TRAINBOARD_", extra="ignore")

    home: Path = Field(default=Path("./trainboard-data"))
    # None means SQLite inside `home`; any SQLAlchemy URL otherwise.
    database_url: str | None = None
    token: str | None = None
    # A second token that remote workers use: it opens only their routes (/api/remote).
    worker_token: str | None = None
    # Host names accepted in the Host header (DNS-rebinding guard); empty = derive from the bind.
    allowed_hosts: list[str] = Field(default_factory=list)
    # CORS is off unless origins are listed.
    cors_origins: list[str] = Field(default_factory=list)
    frontend_dir: Path = Field(default_factory=default_frontend_dir)
    # A worker that misses heartbeats for this long loses its run to another worker.
    lease_seconds: float = 30.0
    # An external run (a user's own script) silent for this long ends `failed`: its process
    # died without finishing it. Its client sends something at least every 15 s.
    external_timeout: float = Field(default=600.0, gt=0)
    # Idle workers look for queued runs this often; a submit starts within about this long.
    poll_seconds: float = 0.2
    # JSON bodies and uploads are refused with 413 above these sizes.
    max_body_bytes: int = 16 * 1024 * 1024
    max_upload_bytes: int = 64 * 1024 * 1024
    # Files a remote worker sends (checkpoints, report batches: application/octet-stream).
    max_checkpoint_bytes: int = 8 * 1024 * 1024 * 1024
    max_upload_columns: int = 500
    # Rows one predict request may carry (422 beyond), and checkpoints whose models a server
    # keeps loaded for predictions (least recently used dropped first; a digits MLP is ~0.1 MB,
    # a large transformer hundreds of MB).
    predict_max_rows: int = Field(default=1024, ge=1)
    predict_cache_models: int = Field(default=8, ge=1)
    # Models above this many parameters are refused at submit (422) and by load_model. 100M is
    # about 1.6 GB to train in float32 with Adam (weights, gradients, two moments): far above
    # what the built-in models on the built-in data need, far below what takes a machine down.
    max_model_parameters: int = Field(default=100_000_000, ge=1)
    # Torch intra-op threads in a run's process; 0: see runner.torch_threads.
    torch_threads: int = 0
    # A client must send its request line and headers within this many seconds of connecting
    # (or of starting its next request), else the connection is closed: half-sent requests
    # cannot pile up. Browsers and scripts send theirs in one packet.
    header_timeout_seconds: float = 10.0
    # A request body must be all in this long after the server starts reading it, else 408 and
    # the connection closes. The largest upload (64 MiB) then needs about 1.1 MB/s.
    body_timeout_seconds: float = 60.0
    # Connections beyond this many (open pages hold a live-events stream each) get 503; far above
    # ordinary bursts, low enough that a flood cannot run the process out of file descriptors.
    max_connections: int = 1000
    # Reads (GET, HEAD) in the app at once until their responses start; more wait their turn
    # in arrival order (see admission.py). On 2 cores past a few they only slow one another,
    # and whatever the burst of reads, writes go in at once.
    concurrent_reads: int = Field(default=4, ge=1, le=1000)

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def uploads_dir(self) -> Path:
        return self.home / "uploads"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'trainboard.db').resolve()}"

    def run_dir(self, run_id: int) -> Path:
        return self.runs_dir / str(int(run_id))

    def ensure_dirs(self) -> None:
        for folder in (self.home, self.runs_dir, self.uploads_dir):
            folder.mkdir(parents=True, exist_ok=True)

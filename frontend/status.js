// Run statuses, named as the server's RunStatus names them (backend/trainboard/models.py);
// tests/e2e/test_page.py checks that the two lists agree.

export const Status = Object.freeze({
  queued: "queued", // waiting for a worker
  running: "running", // a worker (or an external script) is training it
  completed: "completed", // all epochs done, or early-stopped
  failed: "failed",
  diverged: "diverged", // loss or gradients became NaN/Inf
  cancelled: "cancelled", // a person stopped it
  pruned: "pruned", // a sweep stopped it
});

export const STATUSES = Object.values(Status);

// A run in one of these never changes again: no Cancel button, and its live events end.
export const FINAL_STATUSES = new Set([
  Status.completed,
  Status.failed,
  Status.diverged,
  Status.cancelled,
  Status.pruned,
]);

// A job in one of these can be resumed from its last checkpoint.
export const RESUMABLE_STATUSES = new Set([Status.failed, Status.cancelled, Status.diverged]);

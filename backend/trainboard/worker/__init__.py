"""The worker side: what happens to a run between the queue and its final status.

    claim      worker.Worker.run_once: recover lost runs, claim the next queued run (store.queue)
      ↓        and hold its lease on a thread while it trains
    job        job.Job: the attempt as the worker hands it over (spec, folder, resume point)
      ↓
    child      child: a warm process that trains the job through job.run_job (the shared loop)
      ↓        and imports nothing of the database
    channel    channel: reports cross a pipe (ChannelSink → Inbox → Recorder)
      ↓
    recording  recording: the port (Recordings) and its local adapter: database rows,
      ↓        TensorBoard files, checkpoint files
    end        recording.Recordings.end: the status the run's end calls for

`foreground` is the same path in one process (`trainboard train`); `pool` starts the workers of
`trainboard serve`; `stop` turns signals into the loop's stop requests. A run on several
devices trains in the child as rank 0, which starts the other ranks (`ranks`, `rank`).

This package's `__init__` imports nothing: a child imports `stop` before torch.
"""

"""The workers' live counters in shared memory: a lock-free shared array in which each
worker writes only its own slots, read by the coordinator for progress, outage tracking
and the observe-after rule."""

from __future__ import annotations


class WorkerBoard:
    """Live per-worker counters in shared memory, read by the coordinator for progress,
    outage tracking and the observe-after rule. Slots per worker: see FIELDS."""

    # ready: started and past its first connect attempt, waiting for the go;
    # draining: the worker sends no more ops and is handing its records to the recorder
    FIELDS = ("ok", "failed", "indeterminate", "last_ok", "last_bad", "connected", "draining",
              "ended", "connects", "ready")

    def __init__(self, array, workers: int) -> None:
        self.array = array
        self.workers = workers
        self.width = len(self.FIELDS)

    @classmethod
    def create(cls, ctx, workers: int) -> WorkerBoard:
        return cls(ctx.Array("d", workers * len(cls.FIELDS), lock=False), workers)

    def get(self, worker: int, field: str) -> float:
        return self.array[self.slot(worker, field)]

    def set(self, worker: int, field: str, value: float) -> None:
        self.array[self.slot(worker, field)] = value

    def slot(self, worker: int, field: str) -> int:
        """The array index of one worker's field (a worker keeps its hot ones)."""
        return worker * self.width + self.FIELDS.index(field)

    def total(self, field: str) -> float:
        """One field summed over the workers."""
        offset = self.FIELDS.index(field)
        return sum(self.array[w * self.width + offset] for w in range(self.workers))

    def snapshot(self) -> list[dict]:
        values = list(self.array)
        return [dict(zip(self.FIELDS, values[w * self.width:(w + 1) * self.width]))
                for w in range(self.workers)]

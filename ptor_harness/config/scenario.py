"""The Scenario: one drill's whole, validated description, grouped into sections.

Each part of ptor receives the section it needs (the connection, the load, the faults,
the thresholds, the outputs), and each worker process an even smaller `WorkerSpec`, so a
reader sees at the call what a part can depend on. Frozen: nothing changes it once the
command line, env vars and scenario file have been read (parse.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..redact import dsn_secrets, redact
from .options import OPTIONS


@dataclass(frozen=True)
class Connection:
    """Where the cluster and the repo are, and how long ptor waits for them."""

    primary_pgdsn: str
    repo_pgdsn: Optional[str]
    rto_conn_timeout: float
    statement_timeout: float
    schema: str


@dataclass(frozen=True)
class Load:
    """The write load: how many workers, for how long, which mix of ops."""

    parallel_workers: int
    warmup_duration: float
    duration: float
    rate: float  # ops per second over all workers; 0: no target (a closed loop)
    background_load: tuple  # the user's own commands beside the load (drill/background.py)
    ops_per_worker: int
    ops_per_transaction: int  # ops between BEGIN and COMMIT (1: each op its own)
    observe_after: float
    insert_percent: int
    update_percent: int
    delete_percent: int
    async_repo_mode: bool
    payload_bytes: int
    seed: Optional[int]


@dataclass(frozen=True)
class Preparation:
    """What ptor does before and after the load besides the drill itself."""

    init: bool
    reset: bool
    full_data_validation: bool
    check_primary_latency: bool
    latency_samples: int


@dataclass(frozen=True)
class Faults:
    """What causes the failover: a command of the user's, or built-in lab faults."""

    failover_command: Optional[str]
    failover_after: float
    failover_timeout: float
    fault: tuple  # ((action, seconds after warmup), ...), in time order
    lab_dir: Optional[str]

    def last_planned(self) -> Optional[tuple[str, float]]:
        """The injection planned last, as (what, seconds after the warmup): a deadline
        before it leaves the drill without its fault. None: nothing is planned."""
        planned = [(f"the fault {name}", at) for name, at in self.fault]
        if self.failover_command:
            planned.append(("the failover command", self.failover_after))
        return max(planned, key=lambda item: item[1]) if planned else None


@dataclass(frozen=True)
class Observer:
    """The node observer: which nodes it watches, how often."""

    node_dsn: tuple  # DSNs given with --node-dsn, in order
    observe_interval: float


@dataclass(frozen=True)
class Cdc:
    """--cdc-slot: the change-data-capture consumer beside the load, and its threshold."""

    cdc_slot: Optional[str]  # None: no consumer
    cdc_plugin: str
    cdc_publication: Optional[str]  # pgoutput's; set from the schema when not given
    cdc_create_slot: bool
    max_cdc_missed: int


@dataclass(frozen=True)
class Thresholds:
    """What the verdict holds the drill to."""

    expect: str
    max_outage: float
    max_write_rto: Optional[float]
    max_lost_acknowledged: int
    max_detection_time: Optional[float]
    brownout_threshold: float
    standby_lag_threshold: int  # bytes; 0: none
    max_run_seconds: Optional[float]


@dataclass(frozen=True)
class Outputs:
    """Where the run's report and exports go, and what the terminal shows."""

    report_json: Optional[str]
    report_dir: str
    prometheus_file: Optional[str]
    junit_xml: Optional[str]
    progress: Optional[bool]
    quiet: bool


@dataclass(frozen=True)
class Campaign:
    """`ptor campaign`: how many drills, over which matrix of scenarios, judged how."""

    rounds: int
    vary: tuple[str, ...]
    settle_timeout: float
    max_write_rto_p95: Optional[float]
    max_lost_acknowledged_total: Optional[int]
    max_failed_rounds: int


# What a run is judged and described by (beyond its figures): a later check of the run
# (`ptor reconcile`) takes these from the run's own scenario unless given again, so a
# drill held to --expect no-failover is not re-judged by the default expectation.
JUDGED_BY = ("expect", "max_write_rto", "max_lost_acknowledged", "max_detection_time",
             "brownout_threshold", "standby_lag_threshold", "max_cdc_missed")

SECTION_TYPES = {"connection": Connection, "load": Load, "preparation": Preparation,
                 "faults": Faults, "observer": Observer, "cdc": Cdc, "thresholds": Thresholds,
                 "outputs": Outputs, "campaign": Campaign}


@dataclass(frozen=True)
class Scenario:
    """The whole, validated description of one drill. Immutable; passed to every process
    as the sections each needs."""

    connection: Connection
    load: Load
    preparation: Preparation
    faults: Faults
    observer: Observer
    cdc: Cdc
    thresholds: Thresholds
    outputs: Outputs
    campaign: Campaign
    config_file: Optional[str] = None

    @classmethod
    def from_values(cls, values: dict, config_file: Optional[str] = None) -> Scenario:
        """Sections from a flat {dest: value} of every option (values already checked)."""
        sections = {name: kind(**{o.dest: values[o.dest] for o in OPTIONS
                                  if o.section == name})
                    for name, kind in SECTION_TYPES.items()}
        return cls(config_file=config_file, **sections)

    def values(self) -> dict:
        """Every option's value by its dest name, flat, in the option table's order."""
        return {o.dest: getattr(getattr(self, o.section), o.dest) for o in OPTIONS}

    def replace(self, **changes) -> Scenario:
        """A copy with some options changed, by dest name."""
        values = self.values()
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"no such options: {sorted(unknown)}")
        values.update(changes)
        return Scenario.from_values(values, self.config_file)

    def last_fault_due(self) -> Optional[tuple[str, float]]:
        """The injection planned last, as (what, seconds from the run's start: the warmup,
        then its time); None: nothing is planned. A deadline at or before it leaves the
        drill without its fault."""
        last = self.faults.last_planned()
        return None if last is None else (last[0], self.load.warmup_duration + last[1])

    @property
    def secrets(self) -> tuple[str, ...]:
        """Passwords carried by the DSNs, masked wherever text leaves ptor."""
        found = dsn_secrets(self.connection.primary_pgdsn) + \
            dsn_secrets(self.connection.repo_pgdsn)
        for dsn in self.observer.node_dsn:
            found += dsn_secrets(dsn)
        return found

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def as_public_dict(self) -> dict:
        """The scenario as reports store it: every value flat, passwords masked."""
        def public(value):
            if isinstance(value, str):
                return self.redact(value)
            if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
                return tuple(self.redact(v) for v in value)  # node DSNs, commands
            return value

        out = {name: public(value) for name, value in self.values().items()}
        out["config_file"] = self.redact(self.config_file) if self.config_file else None
        return out


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker process needs to know, and nothing more."""

    worker: int
    run_tag: str
    primary_pgdsn: str
    table: str  # fully quoted "schema"."worker_N"
    insert_percent: int
    update_percent: int
    delete_percent: int
    seed: int
    payload_bytes: int
    rto_conn_timeout: float
    statement_timeout: float
    sync_ledger: bool
    ops_limit: int = 0  # 0: until told to stop
    rate: float = 0.0  # this worker's share of --rate; 0: as fast as it can
    ops_per_transaction: int = 1


def worker_specs(scenario: Scenario, run_tag: str, seed: int) -> list[WorkerSpec]:
    """One WorkerSpec per worker, with its own table and a seed derived from the run's."""
    from ..schema import worker_table

    conn, load = scenario.connection, scenario.load
    return [
        WorkerSpec(
            worker=w,
            run_tag=run_tag,
            primary_pgdsn=conn.primary_pgdsn,
            table=worker_table(conn.schema, w),
            insert_percent=load.insert_percent,
            update_percent=load.update_percent,
            delete_percent=load.delete_percent,
            seed=seed * 1_000_003 + w,
            payload_bytes=load.payload_bytes,
            rto_conn_timeout=conn.rto_conn_timeout,
            statement_timeout=conn.statement_timeout,
            sync_ledger=not load.async_repo_mode,
            ops_limit=load.ops_per_worker,
            rate=load.rate / load.parallel_workers,
            ops_per_transaction=load.ops_per_transaction,
        )
        for w in range(load.parallel_workers)
    ]


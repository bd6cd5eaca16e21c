"""What a training run reports: one `Record` per log point, and a `RunOutcome` at the end."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Record:
    step: int  # time steps done (characters read per stream)
    updates: int  # weight updates done
    wall_s: float  # wall-clock seconds of training so far (compilation and evaluation excluded)
    train_bpc: float  # mean online (prequential) loss since the previous record, bits per character
    val_bpc: float | None = None  # validation loss at this point, bits per character, when evaluated
    eval_s: float = 0.0  # seconds spent evaluating so far (not part of wall_s)
    k2: int | None = None  # the truncation in force at this point, for schemes that choose it (adaptive)
    cpu_s: float = 0.0  # the training thread's CPU seconds so far, over the same stretches as wall_s

    def time_s(self, clock: str) -> float:
        """Training time on `clock` (TrainConfig.clock): what budgets and time axes count."""
        return self.cpu_s if clock == "cpu" else self.wall_s

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunOutcome:
    """How one (scheme, seed) ended; filled in by the training loop as it goes."""

    status: str = "running"  # running, complete, diverged
    steps: int = 0
    updates: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    eval_s: float = 0.0
    compile_s: float = 0.0
    diverged_at_step: int | None = None
    final_train_bpc: float | None = None
    final_val_bpc: float | None = None
    resident_bytes: int | None = None  # every array the scheme keeps (Scheme.resident_bytes)

    def time_s(self, clock: str) -> float:
        return self.cpu_s if clock == "cpu" else self.wall_s

    def to_dict(self) -> dict:
        return asdict(self)

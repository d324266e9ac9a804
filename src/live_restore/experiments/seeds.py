"""Which simulated pairs a benchmark may report on: never those its settings were chosen on.

A benchmark that reports on the frames its settings were tuned on overstates them. Each
benchmark therefore names two kinds of :class:`SeedSet`: the sets on which settings were chosen
(and models trained), and the set it reports on, and :func:`check_disjoint` refuses a report
set that shares a single pair with any of the others. Pairs are compared by the simulator's
per-pair seed (:func:`live_restore.sim.tasks.pair_seed`), so two dataset seeds whose pairs happened
to coincide would be caught too.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from live_restore.sim.tasks import pair_seed

__all__ = ["SeedSet", "check_disjoint"]


class SeedSet(BaseModel):
    """``sim.make_pairs(task, pairs, seed, ...)``: the first ``pairs`` pairs of a dataset seed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(description="dataset seed passed to sim.make_pairs")
    pairs: int = Field(ge=1, description="pairs drawn from it")
    use: str = Field(description="what these pairs were or are used for")

    def pair_seeds(self) -> set[int]:
        """The per-pair seeds of these pairs."""
        return {pair_seed(self.seed, i) for i in range(self.pairs)}


def check_disjoint(report: SeedSet, others: Iterable[SeedSet]) -> None:
    """``ValueError`` naming the first set in ``others`` that shares a pair with ``report``."""
    reported = report.pair_seeds()
    for other in others:
        shared = reported & other.pair_seeds()
        if shared:
            raise ValueError(
                f"report seed {report.seed} shares {len(shared)} pair(s) with seed {other.seed} "
                f"({other.use}); report on a seed whose pairs were never used to choose or train"
            )

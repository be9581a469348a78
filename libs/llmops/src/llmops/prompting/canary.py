"""Canary splits: a label may send a share of traffic to a candidate version, stickily."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, Field, model_validator

BUCKETS = 10_000


class SplitArm(BaseModel):
    version: int = Field(ge=1)
    weight: float = Field(gt=0, le=100, description="Percent of traffic.")


class Split(BaseModel):
    """Weighted versions behind one label, e.g. production: 90% v7, 10% v8."""

    arms: list[SplitArm] = Field(min_length=1, max_length=10)

    @model_validator(mode="after")
    def _weights_sum_to_100(self) -> Split:
        total = sum(arm.weight for arm in self.arms)
        if abs(total - 100) > 1e-6:
            msg = f"weights must add up to 100, not {total:g}"
            raise ValueError(msg)
        if len({arm.version for arm in self.arms}) != len(self.arms):
            msg = "a version may appear once in a split"
            raise ValueError(msg)
        return self

    def choose(self, sticky_key: str | None, *, salt: str) -> int:
        """The version for this user or session: the same key always gets the same arm.

        Without a key (anonymous traffic) the first arm, the stable version, serves.
        """
        if sticky_key is None or len(self.arms) == 1:
            return self.arms[0].version
        digest = hashlib.sha256(f"{salt}\x00{sticky_key}".encode()).digest()
        bucket = int.from_bytes(digest[:8], "big") % BUCKETS
        threshold = 0.0
        for arm in self.arms:
            threshold += arm.weight * BUCKETS / 100
            if bucket < threshold:
                return arm.version
        return self.arms[-1].version

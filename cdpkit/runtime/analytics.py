"""Workers Analytics Engine: ``env.METRICS.write_data_point({...})`` collected for a DataFrame."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import LimitError

if TYPE_CHECKING:
    from .runtime import Runtime

MAX_BLOBS = 20
MAX_DOUBLES = 20
MAX_INDEX_BYTES = 96


class AnalyticsDataset:
    """An Analytics Engine dataset binding; points land in ``rt.data_points``."""

    def __init__(self, runtime: Runtime, binding: str, dataset: str) -> None:
        self.runtime, self.binding, self.dataset = runtime, binding, dataset
        self.points: list[dict[str, Any]] = []

    def write_data_point(self, point: dict | None = None) -> None:
        point = point or {}
        unknown = set(point) - {"blobs", "doubles", "indexes"}
        if unknown:
            raise LimitError(f"{self.binding}.write_data_point: unknown keys {sorted(unknown)}; "
                             "allowed: 'blobs', 'doubles', 'indexes'")
        blobs, doubles, indexes = (list(point.get(k) or []) for k in ("blobs", "doubles", "indexes"))
        if len(blobs) > MAX_BLOBS or len(doubles) > MAX_DOUBLES:
            raise LimitError(f"{self.binding}.write_data_point: {len(blobs)} blobs / {len(doubles)} doubles; "
                             f"allowed: at most {MAX_BLOBS} of each")
        if len(indexes) > 1 or (indexes and len(str(indexes[0]).encode()) > MAX_INDEX_BYTES):
            raise LimitError(f"{self.binding}.write_data_point: indexes={indexes!r:.60}; allowed: at most "
                             f"one index of at most {MAX_INDEX_BYTES} bytes")
        row: dict[str, Any] = {"time": self.runtime.clock.now, "dataset": self.dataset,
                               "index1": indexes[0] if indexes else None}
        row.update({f"blob{i + 1}": b for i, b in enumerate(blobs)})
        row.update({f"double{i + 1}": d for i, d in enumerate(doubles)})
        self.points.append(row)

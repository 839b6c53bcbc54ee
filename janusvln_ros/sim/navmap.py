"""Navigable space and geodesic distances of a house.

The occupancy grid is built with the robot's own collision test (:meth:`SimEnv.in_collision`)
at every cell centre, so "free" means "the robot's base fits here". Geodesic distances are a
Dijkstra over the free cells with 16 neighbours (the 8 king moves plus 8 knight moves, which
keeps the error against the true Euclidean shortest path under about 3 %).

Grid layout: ``free[j, i]`` is the cell with centre ``((i + 0.5) * res, (j + 0.5) * res)``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from janusvln_ros.sim.env import SimEnv


_OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1), (1, 2), (2, 1), (1, -2), (2, -1))
_KNIGHT_MIDDLE = {(1, 2): ((0, 1), (1, 1)), (2, 1): ((1, 0), (1, 1)),
                  (1, -2): ((0, -1), (1, -1)), (2, -1): ((1, 0), (1, -1))}


class NavMap:
    """Occupancy grid plus geodesic queries.

    Args:
        free: ``(ny, nx)`` bool grid, True where the robot fits.
        resolution: Cell side in metres.
    """

    def __init__(self, free: np.ndarray, resolution: float) -> None:
        self.free = free
        self.resolution = resolution
        ny, nx = free.shape
        self._index = -np.ones(free.shape, np.int64)
        self._index[free] = np.arange(int(free.sum()))
        self._cells = np.argwhere(free)  # (n, 2) rows of (j, i)
        rows, cols, weights = [], [], []
        for dj, di in _OFFSETS:
            a = self._index[0:ny - dj, max(0, -di):nx - max(0, di)]
            b = self._index[dj:ny, max(0, di):nx - max(0, -di)]
            ok = (a >= 0) & (b >= 0)
            for sj, si in _KNIGHT_MIDDLE.get((dj, di), ()):  # cells a knight move cuts through
                ok &= free[sj:ny - dj + sj, max(0, -di) + si:nx - max(0, di) + si]
            rows.append(a[ok])
            cols.append(b[ok])
            weights.append(np.full(int(ok.sum()), math.hypot(dj, di) * resolution))
        n = len(self._cells)
        self._graph = coo_matrix((np.concatenate(weights),
                                  (np.concatenate(rows), np.concatenate(cols))),
                                 shape=(n, n)).tocsr()

    @classmethod
    def from_env(cls, env: SimEnv, resolution: float = 0.05) -> NavMap:
        """Build the grid over the house with the robot's collision test.

        Args:
            env: The environment (its robot is moved around and put back).
            resolution: Cell side in metres.
        """
        pose = env.pose
        nx = int(round(env.house.width / resolution))
        ny = int(round(env.house.height / resolution))
        free = np.zeros((ny, nx), bool)
        for j in range(ny):
            y = (j + 0.5) * resolution
            for i in range(nx):
                free[j, i] = not env.in_collision((i + 0.5) * resolution, y)
        env._commit(pose)
        return cls(free, resolution)

    # -- cells ---------------------------------------------------------------------------------
    def cell_of(self, x: float, y: float) -> tuple[int, int]:
        """``(j, i)`` of the cell holding ``(x, y)`` (may be outside the grid)."""
        return int(math.floor(y / self.resolution)), int(math.floor(x / self.resolution))

    def centre_of(self, j: int, i: int) -> tuple[float, float]:
        """World coordinates of a cell centre."""
        return ((i + 0.5) * self.resolution, (j + 0.5) * self.resolution)

    def nearest_free(self, x: float, y: float) -> tuple[int, int]:
        """The free cell whose centre is nearest to ``(x, y)``."""
        centres = (self._cells[:, ::-1] + 0.5) * self.resolution
        k = int(np.argmin(((centres - (x, y)) ** 2).sum(axis=1)))
        return int(self._cells[k, 0]), int(self._cells[k, 1])

    def is_free(self, x: float, y: float) -> bool:
        """Whether the cell holding ``(x, y)`` is free."""
        j, i = self.cell_of(x, y)
        ny, nx = self.free.shape
        return 0 <= j < ny and 0 <= i < nx and bool(self.free[j, i])

    # -- geodesics -----------------------------------------------------------------------------
    def distance_field(self, goal_xy: tuple[float, float]) -> GeodesicField:
        """Geodesic distance from every free cell to ``goal_xy`` (snapped to a free cell)."""
        j, i = self.nearest_free(*goal_xy)
        source = int(self._index[j, i])
        dist, pred = dijkstra(self._graph, directed=False, indices=source,
                              return_predecessors=True)
        field = np.full(self.free.shape, np.inf)
        field[self.free] = dist
        return GeodesicField(self, field, pred, (j, i), goal_xy)


class GeodesicField:
    """Distances to one goal over a :class:`NavMap`, with shortest-path extraction."""

    def __init__(self, navmap: NavMap, field: np.ndarray, predecessors: np.ndarray,
                 goal_cell: tuple[int, int], goal_xy: tuple[float, float]) -> None:
        self.navmap = navmap
        self.field = field
        self._pred = predecessors
        self.goal_cell = goal_cell
        self.goal_xy = goal_xy

    def distance(self, x: float, y: float, snap_cells: int = 4) -> float:
        """Geodesic distance in metres from ``(x, y)`` to the goal.

        The robot may stand where the cell centre is blocked (it only needs its own position
        free), so a blocked or off-grid query snaps to the nearest finite cell within
        ``snap_cells``, adding the straight distance to it.

        Returns:
            The distance, or ``inf`` if nothing finite is near.
        """
        j, i = self.navmap.cell_of(x, y)
        ny, nx = self.field.shape
        if 0 <= j < ny and 0 <= i < nx and np.isfinite(self.field[j, i]):
            return float(self.field[j, i])
        best = math.inf
        for dj in range(-snap_cells, snap_cells + 1):
            for di in range(-snap_cells, snap_cells + 1):
                jj, ii = j + dj, i + di
                if 0 <= jj < ny and 0 <= ii < nx and np.isfinite(self.field[jj, ii]):
                    cx, cy = self.navmap.centre_of(jj, ii)
                    best = min(best, float(self.field[jj, ii]) + math.hypot(cx - x, cy - y))
        return best

    def cell_path(self, x: float, y: float) -> list[tuple[int, int]]:
        """Shortest cell path from the free cell nearest ``(x, y)`` to the goal cell."""
        j, i = self.navmap.nearest_free(x, y)
        node = int(self.navmap._index[j, i])
        path = []
        while node >= 0:
            jj, ii = self.navmap._cells[node]
            path.append((int(jj), int(ii)))
            node = int(self._pred[node])
        if path[-1] != self.goal_cell:
            raise ValueError(f'({x:.2f}, {y:.2f}) is not connected to the goal')
        return path

    def shortest_path(self, x: float, y: float) -> np.ndarray:
        """Taut shortest path from ``(x, y)`` to the goal.

        The Dijkstra cell path, shortened by line-of-sight shortcuts over the free grid
        (string pulling).

        Returns:
            ``(k, 2)`` float64 waypoints in metres, from ``(x, y)`` to the goal cell centre.
        """
        cells = self.cell_path(x, y)
        points = [(x, y)] + [self.navmap.centre_of(j, i) for j, i in cells]
        out = [points[0]]
        anchor = 0
        k = 1
        while k < len(points):
            # Extend the straight segment from the anchor as far as it stays in free space.
            if k + 1 < len(points) and self._line_free(points[anchor], points[k + 1]):
                k += 1
                continue
            out.append(points[k])
            anchor = k
            k += 1
        return np.asarray(out, dtype=np.float64)

    def _line_free(self, a: tuple[float, float], b: tuple[float, float]) -> bool:
        length = math.hypot(b[0] - a[0], b[1] - a[1])
        n = max(2, int(length / (self.navmap.resolution * 0.5)) + 1)
        for t in np.linspace(0.0, 1.0, n):
            if not self.navmap.is_free(a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])):
                return False
        return True


def resample_path(points: np.ndarray, spacing: float = 0.25) -> np.ndarray:
    """Points every ``spacing`` metres along a polyline, keeping both ends.

    Args:
        points: ``(k, 2)`` polyline vertices.
        spacing: Distance between consecutive output points in metres.

    Returns:
        ``(m, 2)`` float64 points.
    """
    points = np.asarray(points, dtype=np.float64)
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    total = float(seg.sum())
    if total == 0.0:
        return points[:1].copy()
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    stations = np.append(np.arange(0.0, total, spacing), total)
    return np.stack([np.interp(stations, cum, points[:, 0]),
                     np.interp(stations, cum, points[:, 1])], axis=1)

"""Per-image anchor layouts, vectorised over images, from the generator's geometry only.

:class:`ImageLayouts` holds, for every image row and pyramid level, the grid size, the index of
the level's first anchor, anchors per location and the grid step, all read from
:func:`~imbalance_cli.anchors.generator.level_layout` and
:func:`~imbalance_cli.anchors.generator.level_shape_params` once per distinct padded size (so a
stride rule that depends on the padded size is followed). :class:`ShapeTable` flattens the base
shapes of every level. Engines and statistics decode an anchor index into (level, row, column,
base shape) with :meth:`ImageLayouts.decode` and get coordinates from
:func:`~imbalance_cli.anchors.generator.anchor_coords`: no stride arithmetic outside the generator.
"""

from __future__ import annotations

import numpy as np

from imbalance_cli.anchors.generator import F32, anchor_coords, level_layout, level_shape_params
from imbalance_cli.anchors.presets import AnchorPreset


class ImageLayouts:
    """Level geometry of many images: ``grid_h``, ``grid_w``, ``offset``, ``counts``, ``step_x``,
    ``step_y`` are (n_images, L) arrays; ``per_loc`` (L,) anchors per grid location."""

    def __init__(self, preset: AnchorPreset, padded_h: np.ndarray, padded_w: np.ndarray):
        ph = np.asarray(padded_h, np.int64).reshape(-1)
        pw = np.asarray(padded_w, np.int64).reshape(-1)
        L = preset.num_levels
        n = len(ph)
        if n:
            sizes, inv = np.unique(np.stack([ph, pw], 1), axis=0, return_inverse=True)
            inv = inv.reshape(-1)
        else:
            sizes, inv = np.zeros((0, 2), np.int64), np.zeros(0, np.int64)
        S = len(sizes)
        gh = np.zeros((S, L), np.int64)
        gw = np.zeros((S, L), np.int64)
        off = np.zeros((S, L), np.int64)
        sx = np.zeros((S, L), np.float64)
        sy = np.zeros((S, L), np.float64)
        per_loc = np.array([preset.anchors_per_location(lv) for lv in range(L)], np.int64)
        for s, (h, w) in enumerate(sizes):
            for lv, lay in enumerate(level_layout(preset, int(h), int(w))):
                gh[s, lv], gw[s, lv], off[s, lv] = lay.grid_h, lay.grid_w, lay.offset
                p = level_shape_params(preset, lv, int(h), int(w))
                sx[s, lv], sy[s, lv] = p[4], p[5]
        self.sizes, self.size_id = sizes, inv
        self._size_grid_h, self._size_grid_w = gh, gw
        self._tables = None
        self.grid_h, self.grid_w, self.offset = gh[inv], gw[inv], off[inv]
        self.step_x, self.step_y = sx[inv], sy[inv]
        self.per_loc = per_loc
        self.counts = self.grid_h * self.grid_w * per_loc[None, :]
        self.padded_h, self.padded_w = ph, pw

    # short names the engines use
    @property
    def gh(self) -> np.ndarray:
        """Alias of ``grid_h``."""
        return self.grid_h

    @property
    def gw(self) -> np.ndarray:
        """Alias of ``grid_w``."""
        return self.grid_w

    def level_of(self, img: np.ndarray, anchor: np.ndarray) -> np.ndarray:
        """Level of anchor index ``anchor`` (within its image) of image rows ``img``."""
        off = self.offset[img]
        return (anchor[:, None] >= off).sum(axis=1) - 1

    def decode(self, img: np.ndarray, anchor: np.ndarray, level: np.ndarray | None = None):
        """(level, base shape k, row i, column j) of anchor indices within their images."""
        lvl = self.level_of(img, anchor) if level is None else np.asarray(level, np.int64)
        within = anchor - self.offset[img, lvl]
        cell, k = np.divmod(within, self.per_loc[lvl])
        i, j = np.divmod(cell, self.grid_w[img, lvl])
        return lvl, k, i, j

    def axis_tables(self, preset: AnchorPreset, shapes: "ShapeTable") -> None:
        """Build (once) the y extent of every (padded size, base shape, grid row) and the x extent of
        every (padded size, base shape, grid column), each from one :func:`anchor_coords` call per
        level and size (anchors are axis-aligned: y depends on the row only, x on the column)."""
        if self._tables is not None:
            return
        S = len(shapes.level)
        ybase = np.zeros((len(self.sizes), S), np.int64)
        xbase = np.zeros((len(self.sizes), S), np.int64)
        ys, xs, ycur, xcur = [], [], 0, 0
        for u, (h, w) in enumerate(self.sizes):
            for lv in range(preset.num_levels):
                idx = np.flatnonzero(shapes.level == lv)
                K = len(idx)
                gh, gw = int(self._size_grid_h[u, lv]), int(self._size_grid_w[u, lv])
                kk = shapes.k[idx]
                r = anchor_coords(
                    preset, lv, np.repeat(kk, gh), np.tile(np.arange(gh), K), np.zeros(K * gh, np.int64), int(h), int(w)
                )
                c = anchor_coords(
                    preset, lv, np.repeat(kk, gw), np.zeros(K * gw, np.int64), np.tile(np.arange(gw), K), int(h), int(w)
                )
                ys.append(np.asarray(r, F32)[:, [1, 3]])
                xs.append(np.asarray(c, F32)[:, [0, 2]])
                ybase[u, idx] = ycur + np.arange(K) * gh
                xbase[u, idx] = xcur + np.arange(K) * gw
                ycur += K * gh
                xcur += K * gw
        ytab = np.concatenate(ys) if ys else np.zeros((0, 2), F32)
        xtab = np.concatenate(xs) if xs else np.zeros((0, 2), F32)
        self._tables = (
            ybase,
            xbase,
            np.ascontiguousarray(ytab[:, 0]),
            np.ascontiguousarray(ytab[:, 1]),
            np.ascontiguousarray(xtab[:, 0]),
            np.ascontiguousarray(xtab[:, 1]),
        )

    def row_extent(self, img: np.ndarray, shape: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(y1, y2) float32 of anchors of base shape ``shape`` (ShapeTable row) in grid row ``i`` of image ``img``."""
        ybase, _, y1, y2, _, _ = self._tables
        at = ybase[self.size_id[img], shape] + i
        return y1[at], y2[at]

    def col_extent(self, img: np.ndarray, shape: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x1, x2) float32 of anchors of base shape ``shape`` in grid column ``j`` of image ``img``."""
        _, xbase, _, _, x1, x2 = self._tables
        at = xbase[self.size_id[img], shape] + j
        return x1[at], x2[at]

    def coords(
        self, preset: AnchorPreset, img: np.ndarray, anchor: np.ndarray, level: np.ndarray | None = None
    ) -> np.ndarray:
        """Exact float32 coordinates (N, 4) of anchors given by image row and index."""
        lvl, k, i, j = self.decode(img, anchor, level)
        return level_coords(preset, lvl, k, i, j, self.padded_h[img], self.padded_w[img])


def level_coords(preset: AnchorPreset, level, k, i, j, ph, pw) -> np.ndarray:
    """:func:`anchor_coords` for anchors of mixed levels (float32 (N, 4)).

    Elements are grouped by level with one stable counting sort, so each element is gathered and
    scattered once whatever the number of levels.
    """
    level = np.asarray(level)
    out = np.empty((len(level), 4), dtype=F32)
    if len(level) == 0:
        return out
    cnt = np.bincount(level)
    present = np.flatnonzero(cnt)
    if len(present) == 1:
        return np.asarray(anchor_coords(preset, int(present[0]), k, i, j, ph, pw), F32).reshape(-1, 4)
    o = np.argsort(level.astype(np.uint8 if len(cnt) <= 256 else np.int64), kind="stable")  # radix sort
    ends = np.cumsum(cnt)
    for lvl in present:
        sel = o[ends[lvl] - cnt[lvl] : ends[lvl]]
        out[sel] = anchor_coords(
            preset, int(lvl), k[sel], i[sel], j[sel], ph[sel] if np.ndim(ph) else ph, pw[sel] if np.ndim(pw) else pw
        )
    return out


class ShapeTable:
    """Flattened (level, base shape) table of a preset: ``level``, ``k``, offsets ``ox``/``oy`` of
    the anchor's top-left corner from its grid position, sizes ``wa``/``ha`` and ``area`` (float64),
    read from :func:`level_shape_params` for one padded size (base shapes of grid presets do not
    depend on it; SSD presets have one fixed size)."""

    def __init__(self, preset: AnchorPreset, ph: int, pw: int):
        lv, kk, ox, oy, wa, ha = [], [], [], [], [], []
        for lvl in range(preset.num_levels):
            p = level_shape_params(preset, lvl, ph, pw)
            n = len(p[2])
            lv.append(np.full(n, lvl))
            kk.append(np.arange(n))
            ox.append(p[0])
            oy.append(p[1])
            wa.append(p[2])
            ha.append(p[3])
        cat = np.concatenate
        self.level, self.k = cat(lv).astype(np.int64), cat(kk).astype(np.int64)
        self.ox, self.oy = cat(ox).astype(np.float64), cat(oy).astype(np.float64)
        self.wa, self.ha = cat(wa).astype(np.float64), cat(ha).astype(np.float64)
        self.area = self.wa * self.ha
        # conservative margin of the culling bounds: grid coordinates are exact, SSD's are float32 of a product
        self.slack = 1e-2 if preset.kind == "ssd" else 1e-6

"""The bounded-memory, multi-core anchor pass: images in chunks, chunks on worker processes.

A dataset's images are cut into chunks of ``spec.chunk_images`` consecutive images
(:func:`chunk_bounds`). Each chunk travels to a worker as a :class:`Chunk` (numpy arrays of that
chunk only: scaled boxes, image rows, padded sizes, and any per-box or per-image arrays the task
needs) and a *task* function ``task(spec, chunk) -> partial`` labels it (:func:`match_chunk`) and
reduces it to a small partial result; the parent *folds* partial results into fixed-size
accumulators as they arrive, in chunk order. At most ``2 * workers`` chunks are in flight, so peak
memory is the inputs (O(boxes)) plus O(workers x chunk), whatever the number of images.

Labels are computed per image, so every statistic is identical whatever the chunk size and the
worker count. Workers are processes (``concurrent.futures.ProcessPoolExecutor``) started with
``fork`` where the platform has it (the parent's arrays are not copied up front; each chunk's
arrays are pickled as raw buffers); where it has not, the pass runs in the calling process.

Dispatch (the assigner contract, see :mod:`imbalance_cli.anchors.rules`): a preset whose
``assigner`` attribute is absent or ``"max_iou"`` is labelled by the culled engine (CPU) or the
dense engine (``spec.engine``); any other name is looked up in
:data:`imbalance_cli.anchors.rules.ASSIGNERS` and called as ``fn(preset, boxes, box_image,
padded_h, padded_w, *, semantics=spec.semantics, images=None) -> MatchOutput``.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from imbalance_cli import progress
from imbalance_cli.anchors import phases, rules
from imbalance_cli.anchors.culled import culled_match_dataset
from imbalance_cli.anchors.rules import MatchOutput


@dataclass
class Chunk:
    """One chunk of consecutive images: ``image_start``/``box_start`` locate it in the dataset;
    ``boxes`` float32 (n, 4) resized-image boxes, ``box_image`` (n,) image rows *within the chunk*
    (sorted), ``padded_h``/``padded_w`` (images,) int64; ``extra`` holds task-specific arrays."""

    index: int
    image_start: int
    box_start: int
    boxes: np.ndarray
    box_image: np.ndarray
    padded_h: np.ndarray
    padded_w: np.ndarray
    extra: dict = field(default_factory=dict)

    @property
    def num_images(self) -> int:
        """Images in the chunk."""
        return len(self.padded_h)


def match_chunk(spec, chunk: Chunk) -> MatchOutput:
    """Label one chunk with the spec's assigner and engine; indices in the result are chunk-local."""
    assigner = getattr(spec.preset, "assigner", "max_iou")
    if assigner != "max_iou":
        fn = rules.get_assigner(assigner)
        return fn(
            spec.preset,
            chunk.boxes,
            chunk.box_image,
            chunk.padded_h,
            chunk.padded_w,
            semantics=spec.semantics,
            images=None,
        )
    if spec.engine == "culled":
        return culled_match_dataset(
            spec.preset,
            chunk.boxes,
            chunk.box_image,
            chunk.padded_h,
            chunk.padded_w,
            semantics=spec.semantics,
            threads=1,
        )
    from imbalance_cli.anchors.dense import dense_match_dataset

    res, _, _ = dense_match_dataset(
        spec.preset,
        chunk.boxes,
        chunk.box_image,
        chunk.padded_h,
        chunk.padded_w,
        semantics=spec.semantics,
        device=spec.device,
        progress_description=None,
    )
    return res


def chunk_bounds(num_images: int, chunk_images: int | None) -> list[tuple[int, int]]:
    """``[(first image, end image), ...]`` covering ``range(num_images)`` in chunks of ``chunk_images``."""
    if num_images == 0:
        return []
    step = num_images if chunk_images is None else max(1, int(chunk_images))
    return [(i, min(num_images, i + step)) for i in range(0, num_images, step)]


def make_chunks(
    bounds: list[tuple[int, int]],
    box_start: np.ndarray,
    boxes: np.ndarray,
    box_image: np.ndarray,
    padded_h: np.ndarray,
    padded_w: np.ndarray,
    per_box: dict | None = None,
    per_image: dict | None = None,
) -> Iterator[Chunk]:
    """Chunks (lazily) from dataset-wide arrays; ``box_start`` (n_images + 1,) is each image's first box.

    ``per_box``/``per_image`` arrays are sliced into ``chunk.extra`` under the same names.
    """
    for c, (i0, i1) in enumerate(bounds):
        b0, b1 = int(box_start[i0]), int(box_start[i1])
        extra = {k: v[b0:b1] for k, v in (per_box or {}).items()}
        extra.update({k: v[i0:i1] for k, v in (per_image or {}).items()})
        yield Chunk(c, i0, b0, boxes[b0:b1], box_image[b0:b1] - i0, padded_h[i0:i1], padded_w[i0:i1], extra)


#: a pool worker's anchor spec and task, set once by :func:`_init_worker`
_SPEC = None
_TASK = None


def _init_worker(spec, task) -> None:
    global _SPEC, _TASK
    _SPEC, _TASK = spec, task
    # one thread per worker, without importing torch here: the culled engine does not need it, and importing
    # it in every worker cost 1.3-2.5 s each on the bundled sample (the parent does not import it on a CPU either);
    # a worker that does import it later (the dense fallback) reads OMP_NUM_THREADS then
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    else:
        os.environ["OMP_NUM_THREADS"] = "1"


def _run_task(chunk: Chunk):
    return chunk.index, chunk.image_start, chunk.box_start, chunk.num_images, _TASK(_SPEC, chunk)


def _fork_context():
    if sys.platform.startswith("linux") or sys.platform == "darwin":
        if "fork" in multiprocessing.get_all_start_methods():
            return multiprocessing.get_context("fork")
    return None


def _warm(spec) -> None:
    """The culled engine's compiled pass loaded here once, before the workers fork (they inherit it)."""
    if getattr(spec, "engine", None) == "culled" and getattr(spec.preset, "assigner", "max_iou") == "max_iou":
        from imbalance_cli.anchors.culled import warm_kernel

        warm_kernel(spec.preset)


def run_chunks(
    spec,
    chunks: Iterator[Chunk],
    task: Callable[[Any, Chunk], Any],
    fold: Callable[[Chunk | None, int, int, Any], None],
    *,
    num_chunks: int,
    num_images: int,
    description: str = "anchors",
) -> None:
    """Run ``task(spec, chunk)`` on every chunk and call ``fold(image_start, box_start, partial)`` in chunk order.

    Uses ``min(spec.workers, num_chunks)`` processes (in this process when that is 1 or the
    platform cannot fork). ``task`` must be a module-level function (it is sent to the workers by
    name). A progress bar over images is shown on a terminal only.
    """
    workers = max(1, min(int(spec.workers), num_chunks))
    ctx = _fork_context() if workers > 1 else None
    with progress.counter(num_images, description) as bar:
        if ctx is None:
            prev = phases.switch("set-up")  # making a chunk (its scaled boxes)
            for ch in chunks:
                phases.switch("labelling")
                part = task(spec, ch)
                phases.switch("accumulators")
                fold(ch.image_start, ch.box_start, part)
                bar.advance(ch.num_images)
                phases.switch("set-up")
            phases.switch(prev)
            return
        _warm(spec)
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(spec, task)) as pool:
            pending: dict[int, Any] = {}
            done: dict[int, Any] = {}
            nxt = 0
            it = iter(chunks)
            exhausted = False
            while True:
                while not exhausted and len(pending) + len(done) < 2 * workers:
                    ch = next(it, None)
                    if ch is None:
                        exhausted = True
                        break
                    pending[ch.index] = pool.submit(_run_task, ch)
                if not pending and not done:
                    break
                if nxt in pending:
                    r = pending.pop(nxt).result()  # raises the worker's exception here
                    done[nxt] = r
                while nxt in done:
                    _, i0, b0, n, part = done.pop(nxt)
                    fold(i0, b0, part)
                    bar.advance(n)
                    nxt += 1

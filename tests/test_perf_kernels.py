"""The fast array kernels behind the statistics give exactly what the plain numpy calls give.

References are computed independently in the tests: ``sorted(set(...))``, a Python dict lookup and
``np.searchsorted`` (numpy's histogram convention), on random data including the edges themselves,
their float neighbours, values outside the range, NaN and infinities.
"""

from __future__ import annotations

import numpy as np
import pytest

from imbalance_cli.data.arrays import BITMAP_KEYS, DistinctInts, index_of, unique_ints
from imbalance_cli.data.dataset import Dataset, LazyStrings
from imbalance_cli.stats.geometry import bin_index


def test_unique_ints_matches_sorted_set():
    rng = np.random.default_rng(0)
    for n, hi in ((0, 5), (1, 5), (2, 1), (1000, 10), (100_000, 10**12)):
        x = rng.integers(-hi, hi, n)
        assert unique_ints(x).tolist() == sorted(set(x.tolist()))


def test_unique_ints_with_a_bound_matches_sorted_set():
    """The byte-map path (a bound up to BITMAP_KEYS) and the sorting path above it give the same sorted set."""
    rng = np.random.default_rng(2)
    for n, hi in ((0, 5), (1, 5), (1000, 1), (1000, 10), (100_000, 9_500_000)):
        x = rng.integers(0, hi, n)
        assert unique_ints(x, bound=hi).tolist() == sorted(set(x.tolist()))
    blocks = [rng.integers(0, 50, 300) for _ in range(4)] + [np.zeros(0, np.int64)]
    for bound in (50, BITMAP_KEYS + 1):  # byte map, then sort per block (the bound is too large for a map)
        acc = DistinctInts(bound)
        for b in blocks:
            acc.add(b)
        assert acc.values().tolist() == sorted(set(np.concatenate(blocks).tolist()))
    assert DistinctInts(BITMAP_KEYS + 1).values().tolist() == []


def test_index_of_dense_and_sparse_ids():
    rng = np.random.default_rng(1)
    for ids in (
        np.arange(1, 5001),
        rng.permutation(np.arange(7, 3007)),
        rng.choice(10**12, 3000, replace=False),
        np.array([5]),
    ):
        row = {int(v): i for i, v in enumerate(ids)}
        refs = rng.choice(ids, 20_000)
        idx, ok = index_of(ids, refs)
        assert ok is None
        assert idx.tolist() == [row[int(r)] for r in refs]
        bad = np.concatenate([refs, [int(ids.max()) + 1, int(ids.min()) - 1]])
        idx, ok = index_of(ids, bad)
        assert ok is not None and ok.tolist() == [int(r) in row for r in bad]
        assert [int(i) for i, o in zip(idx, ok) if o] == [row[int(r)] for r in bad if int(r) in row]


def test_bin_index_equals_binary_search():
    rng = np.random.default_rng(2)
    cases = [np.linspace(0, 1, b + 1) for b in (1, 2, 3, 7, 20, 50, 1000)]
    cases += [np.linspace(-3, 7, 11), np.array([0.0, 0.1, 0.5, 1.0])]
    for e in cases:
        v = np.concatenate(
            [
                rng.random(150_000) * (e[-1] - e[0]) * 1.4 + e[0] - 0.2 * (e[-1] - e[0]),
                e,
                np.nextafter(e, np.inf),
                np.nextafter(e, -np.inf),
                np.arange(3 * (len(e) - 1) + 1) / (3 * (len(e) - 1)),
                [np.nan, np.inf, -np.inf, -0.0],
            ]
        )
        v = rng.permutation(v)
        ref = np.clip(np.searchsorted(e, v, side="right") - 1, 0, len(e) - 2)
        assert np.array_equal(bin_index(v, e), ref)


def test_lazy_file_names_read_like_an_array():
    names = ["a.jpg", "dir/ü.png", "", "x" * 300]
    enc = [s.encode() for s in names]
    off = np.cumsum([0] + [len(b) for b in enc]).astype(np.int64)
    blob = np.frombuffer(b"".join(enc), dtype=np.uint8)
    d = Dataset(
        image_ids=[1, 2, 3, 4],
        widths=[9] * 4,
        heights=[9] * 4,
        boxes=np.zeros((0, 4)),
        box_image=[],
        box_category=[],
        category_ids=[1],
        category_names=["c"],
        file_names=LazyStrings(blob, off),
    )
    plain = Dataset(
        image_ids=[1, 2, 3, 4],
        widths=[9] * 4,
        heights=[9] * 4,
        boxes=np.zeros((0, 4)),
        box_image=[],
        box_category=[],
        category_ids=[1],
        category_names=["c"],
        file_names=names,
    )
    assert d.file_names.dtype == object and d.file_names.tolist() == names
    assert plain.file_names.tolist() == names
    assert d.subset_images(np.array([3, 1])).file_names.tolist() == ["x" * 300, "dir/ü.png"]


@pytest.mark.slow
def test_speculative_chunk_cuts_give_the_records_in_order(tmp_path):
    """Cuts guessed at '}, {' and checked by parsing: every record once, in order, whatever the traps.

    Records hold '},{' inside strings and nested lists of objects (wrong guesses that must be
    rejected), escapes, and pretty-printed whitespace; the reference is ``json.loads`` of the file.
    """
    import io
    import json

    from imbalance_cli.data.jsonscan import Chunk, scan

    anns = []
    for i in range(200):
        rec = {"id": i + 1, "image_id": 1, "category_id": 1, "bbox": [i, 0, 1, 1]}
        if i % 3 == 0:
            rec["note"] = 'x},{"id": 9}, {y \\" }, {'
        if i % 5 == 0:
            rec["parts"] = [{"a": 1}, {"b": [{"c": 2}, {"d": 3}]}]
        anns.append(rec)
    doc = {
        "images": [{"id": 1, "width": 9, "height": 9}],
        "annotations": anns,
        "categories": [{"id": 1, "name": "c"}, {"id": 2, "name": "},{"}],
    }
    for indent in (None, 1):
        data = json.dumps(doc, indent=indent).encode()
        for chunk, block in ((40, 7), (300, 64), (5000, 333), (10**6, 1 << 16)):
            for speculate in (True, False):
                got = []
                for item in scan(io.BytesIO(data), "t.json", chunk_bytes=chunk, block=block, speculate=speculate):
                    if isinstance(item, Chunk) and item.key == "annotations":
                        got.extend(json.loads(item.text("t.json")[0]))
                assert got == anns, (indent, chunk, block, speculate)


def test_a_rejected_guess_at_an_array_end_is_rejected_once(monkeypatch):
    """A speculative stretch that holds the end of ``images`` fails its check once; the scan then stays exact
    past that stretch (it used to guess again at the same place until it gave up speculating for the rest
    of the file). At most one rejection per array end; every record once, in order (``json.loads``)."""
    import io
    import json

    from imbalance_cli.data import jsonscan

    images = [
        {"height": 480, "id": i + 1, "license": 1, "width": 640, "file_name": f"p/{i:08d}.jpg", "url": ""}
        for i in range(400)
    ]
    anns = [
        {"id": i + 1, "iscrowd": 0, "area": 1.5, "bbox": [i, 0, 1, 1.5], "image_id": 1 + i % 400, "category_id": 1}
        for i in range(2000)
    ]
    data = json.dumps({"images": images, "annotations": anns, "categories": [{"name": "c", "id": 1}]}).encode()
    rejected = []
    real = jsonscan._verified

    def counting(chunk, path):
        ok = real(chunk, path)
        rejected.extend([chunk.offset] * (not ok))
        return ok

    monkeypatch.setattr(jsonscan, "_verified", counting)
    monkeypatch.setattr(jsonscan, "EXACT_BLOCK", 64)
    got = {"images": [], "annotations": []}
    for item in jsonscan.scan(io.BytesIO(data), "t.json", chunk_bytes=4000, block=1024, verify=False):
        if isinstance(item, jsonscan.Chunk):
            got[item.key].extend(json.loads(item.text("t.json")[0]))
    assert got == {"images": images, "annotations": anns}
    assert 1 <= len(rejected) <= 2 and len(set(rejected)) == len(rejected)


def test_unchecked_cuts_scan_only_the_last_records_of_an_array_exactly(tmp_path, monkeypatch):
    """The loader's first pass (``verify=False``, records read from the file): a stretch holding an array's end is cut
    at the last record boundary before it, so only the records after that boundary (and the bytes between arrays)
    are scanned exactly, not up to a whole chunk; the file's last records come in halves while larger than a quarter
    chunk. Every record once, in order (``json.loads``)."""
    import json

    from imbalance_cli.data import jsonscan

    images = [{"id": i + 1, "width": 640, "height": 480, "file_name": f"{i:012d}.jpg"} for i in range(300)]
    anns = [
        {"area": 1.5, "iscrowd": 0, "image_id": 1 + i % 300, "bbox": [i, 0.5, 1, 2], "category_id": 1, "id": i + 1}
        for i in range(3000)
    ]
    data = json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "c"}]}).encode()
    path = tmp_path / "t.json"
    path.write_bytes(data)
    exact = []
    real = jsonscan._Scanner._exact

    def counting(self, buf):
        exact.append(len(buf))
        return (yield from real(self, buf))

    monkeypatch.setattr(jsonscan._Scanner, "_exact", counting)
    monkeypatch.setattr(jsonscan, "EXACT_BLOCK", 64)
    ann_bytes = len(data) - data.index(b'"annotations"')
    chunk_bytes = int(ann_bytes / 4.6)  # four whole chunks of annotations, then ~0.6 of a chunk
    got, sizes = {"images": [], "annotations": []}, []
    with open(path, "rb") as f:
        for item in jsonscan.scan(f, str(path), chunk_bytes=chunk_bytes, block=4096, verify=False, direct=True):
            if isinstance(item, jsonscan.Chunk):
                body = data[item.offset : item.offset + item.size] if item.body is None else bytes(item.body)
                body = body.lstrip()[1:] if item.cont else body  # (a continuing chunk starts with its comma)
                got[item.key].extend(json.loads(b"[" + body + b"]"))
                sizes.append((item.key, len(body)))
    assert got == {"images": images, "annotations": anns}
    record = max(len(json.dumps(r)) for r in images + anns)
    # the document's head, two array ends and the bytes between them; a chunk's worth before the cut
    assert sum(exact) <= len(data[: data.index(b"[")]) + 3 * (2 * record + 4 * 64)
    tail = [n for key, n in sizes if key == "annotations"][4:]
    assert len(tail) >= 3 and max(tail) <= chunk_bytes // 2 + record


def test_a_growing_column_holds_the_pieces_in_order():
    """The loader's column (one mapping grown by ``mremap`` as chunks arrive) equals ``np.concatenate`` of the
    pieces, for row shapes and dtypes the loader uses, across several growths and with empty pieces."""
    from imbalance_cli.data.stream import _Column

    rng = np.random.default_rng(5)
    for dtype, row in ((np.float64, (4,)), (np.int64, ()), (np.bool_, ())):
        pieces = [rng.normal(size=(int(n),) + row).astype(dtype) for n in rng.integers(0, 60_000, 12)]
        pieces[3] = pieces[3][:0]
        col = _Column(np.dtype(dtype), row)
        for p in pieces:
            col.append(np.ascontiguousarray(p).reshape(-1).view(np.uint8), len(p))
        got = col.array()
        want = np.concatenate(pieces)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want)
    assert _Column(np.dtype(np.int64), ()).array().shape == (0,)

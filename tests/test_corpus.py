"""The corpus pipeline on tiny real inputs: clang, llvm-extract and csmith, no mocks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from passlm.corpus import sources as srcmod
from passlm.corpus.build import build_corpus, deduplicate
from passlm.corpus.filters import SizeLimits
from passlm.corpus.recipe import Recipe, SourceEntry, load_recipe, make_recipe
from passlm.corpus.report import info_lines
from passlm.corpus.splits import SplitRatios, assign_split
from passlm.corpus.store import CorpusFunction, read_corpus, read_metadata, write_corpus
from passlm.errors import InputError
from passlm.llvm import ir as irmod
from passlm.llvm.toolchain import default_toolchain

from .conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[1]

SHARED = "int shared(int x) { return x * 3 + 1; }\n"


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def build(tmp_path: Path, *entries: SourceEntry, **kw):
    recipe = Recipe(sources=tuple(entries), **kw)
    return build_corpus(recipe, default_toolchain(), jobs=2, cache=tmp_path / "cache", command=[])


@pytest.fixture
def small_tree(tmp_path: Path) -> Path:
    """Two files sharing one function, a file that does not compile, and sample.c."""
    return write_tree(
        tmp_path / "lib",
        {
            "a.c": SHARED + "int only_a(int y) { return y - 7; }\n",
            "sub/b.c": SHARED + '#include "b.h"\nint only_b(int z) { return B(z); }\n',
            "sub/b.h": "#define B(z) ((z) << 2)\n",
            "broken.c": (FIXTURES / "broken.c").read_text(),
            "sample.c": (FIXTURES / "sample.c").read_text(),
            "notes.txt": "not C\n",
        },
    )


# --------------------------------------------------------------------------- specs


def test_spec_parsing(tmp_path):
    spec = srcmod.parse_source_spec("pypi:lz4==4.4.5")
    assert (spec.kind, spec.package) == ("pypi", ("lz4", "4.4.5"))
    assert srcmod.parse_source_spec("pypi:argon2-cffi-bindings").package == (
        "argon2-cffi-bindings",
        None,
    )
    assert srcmod.parse_source_spec("csmith:3").count == 3
    assert srcmod.parse_source_spec(str(tmp_path)).kind == "dir"
    assert srcmod.parse_source_spec("archive:x.tar.gz").kind == "archive"
    assert spec.matches("pypi:lz4==4.4.5") and spec.matches("lz4") and not spec.matches("zstd")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("foo:bar", "unknown source spec"),
        ("/no/such/dir", "no such directory or archive"),
        ("csmith:0", "positive number"),
        ("csmith:many", "positive number"),
        ("pypi:", "nothing after"),
        ("pypi:lz4>=4", "pypi:NAME==VERSION"),
        ("archive:x.rar", "not an archive"),
    ],
)
def test_bad_specs_are_one_line_errors(text, message):
    with pytest.raises(InputError, match=message) as err:
        srcmod.parse_source_spec(text)
    assert "\n" not in str(err.value)


def make_sdist(path: Path, name: str, version: str, files: dict[str, str]) -> Path:
    top = path.parent / f"{name}-{version}"
    write_tree(
        top,
        {
            "PKG-INFO": f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n"
            "License-Expression: MIT\n",
            **files,
        },
    )
    with tarfile.open(path, "w:gz") as tf:
        tf.add(top, arcname=top.name)
    return path


def test_local_sdist_unpacks_and_resolves_as_pypi_from_cache(tmp_path):
    archive = make_sdist(tmp_path / "my_lib-1.0.tar.gz", "my_lib", "1.0", {"src/a.c": SHARED})
    assert srcmod.sdist_version(archive.name, "my-lib") == "1.0"
    with pytest.raises(InputError, match="not an sdist of other"):
        srcmod.sdist_version(archive.name, "other")
    cache = tmp_path / "cache"
    root = srcmod.unpack_local_sdist(archive, cache)
    assert root.name == "my_lib-1.0" and (root / "src/a.c").is_file()
    assert srcmod.sdist_licence(root) == "MIT"
    assert srcmod.unpack_local_sdist(archive, cache) == root  # unpacked once, then reused
    assert not [p for p in root.parent.parent.iterdir() if p.name.endswith(".tmp")]
    # a pinned pypi: source already in the cache is used without any download
    srcmod.unpack_archive(archive, cache / "pypi" / "my-lib-1.0" / "tree")
    src = srcmod.resolve_source(srcmod.parse_source_spec("pypi:my_lib==1.0"), cache=cache)
    assert (src.name, src.files, src.licence) == ("pypi:my_lib==1.0", ("src/a.c",), "MIT")


def test_unsafe_archive_is_refused(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    (tmp_path / "x.c").write_text(SHARED)
    with tarfile.open(evil, "w:gz") as tf:
        tf.add(tmp_path / "x.c", arcname="../escape.c")
    with pytest.raises(InputError, match="cannot unpack"):
        srcmod.unpack_local_sdist(evil, tmp_path / "cache")
    assert not (tmp_path / "cache" / "escape.c").exists()


# --------------------------------------------------------------------------- build


def test_build_dedups_filters_and_skips_broken_files(tmp_path, small_tree):
    result = build(tmp_path, SourceEntry(spec=str(small_tree), licence="MIT"))
    rows, summary = result.rows, result.summary
    (stats,) = summary.sources
    assert stats.name == "dir:lib"
    assert (stats.files, stats.files_ok, stats.files_failed) == (4, 3, 1)
    assert stats.failure_examples[0].startswith("broken.c: ")
    names = sorted(r.function for r in rows)
    assert names.count("shared") == 1 and "only_a" in names and "only_b" in names
    assert summary.drops["duplicate"] == 1
    assert len({r.hash for r in rows}) == len(rows) == stats.kept == summary.functions_kept
    for r in rows:
        assert r.hash == irmod.content_hash(r.ir)
        assert r.instcount == irmod.count_instructions(r.ir) and r.chars == len(r.ir)
        assert irmod.normalize(r.ir) == r.ir
    assert [r.sort_key() for r in rows] == sorted(r.sort_key() for r in rows)
    # the modules are exactly what ir.split_functions gives for the file
    tc = default_toolchain()
    expected = irmod.split_functions(irmod.compile_source(small_tree / "sample.c", tc), tc)
    assert {r.function: r.ir for r in rows if r.file == "sample.c"} == expected


def test_size_filter(tmp_path, small_tree):
    full = build(tmp_path, SourceEntry(spec=str(small_tree)))
    cut = sorted(r.chars for r in full.rows)[len(full.rows) // 2]
    small = build(
        tmp_path,
        SourceEntry(spec=str(small_tree)),
        limits=SizeLimits(max_chars=cut, max_instructions=20, min_instructions=2),
    )
    assert small.rows and all(2 <= r.instcount <= 20 and r.chars <= cut for r in small.rows)
    drops = small.summary.drops
    assert drops["too_large_chars"] > 0
    assert len(small.rows) + sum(v for k, v in drops.items() if k != "duplicate") == len(
        full.rows
    ) + sum(v for k, v in full.summary.drops.items() if k != "duplicate")
    assert small.meta["limits"] == {"max_chars": cut, "max_instructions": 20, "min_instructions": 2}


def test_train_wins_duplicates_and_holdout_is_whole(tmp_path):
    held = write_tree(tmp_path / "held", {"h.c": SHARED + "int h(int a) { return a / 3; }\n"})
    many = {f"f{i}.c": f"int fn{i}(int a) {{ return a * {i + 2} + {i}; }}\n" for i in range(12)}
    copies = {f"s{i}.c": SHARED for i in range(4)}
    train = write_tree(tmp_path / "train", {**many, **copies})
    ratios = SplitRatios(train=0.5, val=0.25, test=0.25)
    result = build(
        tmp_path,
        SourceEntry(spec=str(held)),
        SourceEntry(spec=str(train)),
        holdout=("dir:held",),
        splits=ratios,
    )
    by_name = {r.function: r for r in result.rows}
    # the held-out copy of `shared` loses to a copy in the other code base's earliest split
    splits = {
        f: assign_split("dir:train", f, seed=0, ratios=ratios, holdout={"dir:held"}) for f in copies
    }
    assert "train" in splits.values()
    assert (by_name["shared"].source, by_name["shared"].split) == ("dir:train", "train")
    assert by_name["h"].split == "heldout"
    assert {r.split for r in result.rows if r.source == "dir:held"} == {"heldout"}
    assert "heldout" not in {r.split for r in result.rows if r.source == "dir:train"}
    assert result.meta["holdout"] == "dir:held"
    files: dict[tuple[str, str], set[str]] = {}
    for r in result.rows:
        files.setdefault((r.source, r.file), set()).add(r.split)
    assert all(len(s) == 1 for s in files.values())  # no file in two splits
    assert {r.split for r in result.rows if r.source == "dir:train"} == {"train", "val", "test"}


def test_several_holdouts_and_an_excluded_corpus(tmp_path):
    """A held-out corpus built on its own: every code base held out, training functions gone."""
    train = write_tree(tmp_path / "train", {"t.c": SHARED + "int t(int a) { return a - 9; }\n"})
    first = write_tree(tmp_path / "one", {"o.c": SHARED + "int o(int a) { return a / 3; }\n"})
    second = write_tree(tmp_path / "two", {"w.c": "int w(int a) { return a * 5 + 1; }\n"})
    trained = build(tmp_path, SourceEntry(spec=str(train)))
    corpus = tmp_path / "train.parquet"
    write_corpus(trained.rows, corpus, trained.meta)
    result = build(
        tmp_path,
        SourceEntry(spec=str(first)),
        SourceEntry(spec=str(second)),
        holdout=("dir:one", "dir:two"),
        exclude_corpora=(str(corpus),),
    )
    assert {(r.function, r.split) for r in result.rows} == {("o", "heldout"), ("w", "heldout")}
    assert result.summary.drops["in_excluded_corpus"] == 1  # `shared`, a training function
    assert result.meta["holdout"] == ["dir:one", "dir:two"]
    assert result.meta["exclude_corpora"] == [str(corpus)]
    assert f"without the functions of {corpus}" in info_lines(result.meta)
    with pytest.raises(InputError, match="no such corpus to exclude"):
        build(tmp_path, SourceEntry(spec=str(first)), exclude_corpora=(str(tmp_path / "x.pq"),))
    no_hash = tmp_path / "no_hash.parquet"
    pq.write_table(pa.table({"x": [1]}), no_hash)
    for bad in (no_hash, first / "o.c"):
        with pytest.raises(InputError, match="not a corpus with a hash column") as err:
            build(tmp_path, SourceEntry(spec=str(first)), exclude_corpora=(str(bad),))
        assert "\n" not in str(err.value)
    with pytest.raises(TypeError, match="not one string"):
        Recipe(sources=(SourceEntry(spec=str(first)),), holdout="dir:one")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        assign_split("dir:one", "o.c", seed=0, ratios=SplitRatios(), holdout="dir:one")


def test_deduplicate_prefers_train_then_order():
    def row(split, file):
        return CorpusFunction("h", "ir\n", "f", "dir:x", file, split, 1, 3)

    kept, dropped = deduplicate([row("heldout", "a.c"), row("test", "b.c"), row("train", "z.c")])
    assert dropped == 2 and kept[0].split == "train" and kept[0].file == "z.c"
    kept, _ = deduplicate([row("test", "b.c"), row("val", "c.c"), row("val", "a.c")])
    assert (kept[0].split, kept[0].file) == ("val", "a.c")


def test_archive_source(tmp_path):
    archive = make_sdist(tmp_path / "pkg-2.0.tar.gz", "pkg", "2.0", {"c/x.c": SHARED})
    result = build(tmp_path, SourceEntry(spec=str(archive)))
    assert [(r.source, r.file, r.function) for r in result.rows] == [
        ("archive:pkg-2.0", "c/x.c", "shared")
    ]
    assert result.summary.sources[0].licence == "MIT"


def test_csmith_is_seeded_and_deterministic(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = build(tmp_path / "one", SourceEntry(spec="csmith:2", seed=7))
    again = build(tmp_path / "two", SourceEntry(spec="csmith:2", seed=7))
    assert first.rows and [r.hash for r in first.rows] == [r.hash for r in again.rows]
    assert {r.file for r in first.rows} <= {"csmith-7.c", "csmith-8.c"}
    assert {r.source for r in first.rows} == {"csmith"}
    assert first.meta["csmith_version"]
    other = build(tmp_path / "three", SourceEntry(spec="csmith:2", seed=9))
    assert {r.hash for r in other.rows} != {r.hash for r in first.rows}
    assert not (tmp_path / "platform.info").exists()  # csmith's side file stays in the cache


# --------------------------------------------------------------------------- store


def test_parquet_round_trip(tmp_path, small_tree):
    result = build(tmp_path, SourceEntry(spec=str(small_tree), licence="MIT"))
    path = tmp_path / "c.parquet"
    write_corpus(reversed(result.rows), path, result.meta)
    rows, meta = read_corpus(path)
    assert rows == result.rows
    assert meta == {**json.loads(json.dumps(result.meta)), "kind": "corpus"}
    assert meta["llvm_version"].startswith("19.") and meta["ir_recipe"] == irmod.IR_RECIPE
    assert meta["recipe"]["sources"][0]["licence"] == "MIT"
    assert read_metadata(path) == meta
    schema = pq.read_schema(path)
    assert schema.field("instcount").type == pa.int32() and schema.field("chars").type == pa.int32()
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_bad_corpus_files_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_corpus(tmp_path / "missing.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError, match="not a Parquet file") as err:
        read_corpus(bad)
    assert "\n" not in str(err.value)
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), other)
    with pytest.raises(InputError, match="not a passlm corpus"):
        read_corpus(other)


# --------------------------------------------------------------------------- recipe


def test_default_recipe_parses():
    recipe = load_recipe(ROOT / "corpus" / "recipe.toml")
    kinds = [s.parsed.kind for s in recipe.sources]
    assert kinds.count("pypi") >= 8 and "csmith" in kinds
    assert all(s.licence for s in recipe.sources)
    assert all(s.parsed.package[1] for s in recipe.sources if s.parsed.kind == "pypi")
    assert [e.parsed.kind for e in recipe.holdout_entries] == ["pypi"]


def test_unseen_recipe_holds_out_every_source():
    recipe = load_recipe(ROOT / "corpus" / "unseen.toml")
    assert len(recipe.holdout_entries) == len(recipe.sources) >= 20
    assert all(s.licence for s in recipe.sources)
    assert recipe.exclude_corpora == ("data/corpus.parquet",)
    main = {s.spec for s in load_recipe(ROOT / "corpus" / "recipe.toml").sources}
    assert main.isdisjoint(s.spec for s in recipe.sources)


def test_committed_unseen_set_shares_no_function_with_the_corpus():
    """data/unseen.parquet: built from corpus/unseen.toml, all held out, none seen in training."""
    unseen = pq.read_table(ROOT / "data" / "unseen.parquet", columns=["hash", "split", "source"])
    corpus = pq.read_table(ROOT / "data" / "corpus.parquet", columns=["hash"])
    hashes = unseen.column("hash").to_pylist()
    assert len(hashes) == len(set(hashes)) > 5000
    assert set(hashes).isdisjoint(corpus.column("hash").to_pylist())
    assert set(unseen.column("split").to_pylist()) == {"heldout"}
    recipe = load_recipe(ROOT / "corpus" / "unseen.toml")
    assert set(unseen.column("source").to_pylist()) == {s.spec for s in recipe.sources}


def test_extra_training_set_is_apart_from_the_corpus_and_the_unseen_set():
    """corpus/extra.toml and data/extra.parquet (its tuned functions): new code bases for
    training, none of them a source of the corpus or of the unseen set, and no function of
    either in it."""
    recipe = load_recipe(ROOT / "corpus" / "extra.toml")
    assert all(s.licence for s in recipe.sources) and not recipe.holdout_entries
    assert set(recipe.exclude_corpora) == {"data/corpus.parquet", "data/unseen.parquet"}
    specs = {s.spec for s in recipe.sources}
    for other in ("recipe.toml", "unseen.toml"):
        assert specs.isdisjoint(s.spec for s in load_recipe(ROOT / "corpus" / other).sources)
    extra = pq.read_table(ROOT / "data" / "extra.parquet", columns=["hash", "source"])
    hashes = set(extra.column("hash").to_pylist())
    assert len(hashes) == extra.num_rows > 10_000
    assert set(extra.column("source").to_pylist()) <= specs
    for other in ("corpus.parquet", "unseen.parquet"):
        theirs = pq.read_table(ROOT / "data" / other, columns=["hash"]).column("hash")
        assert hashes.isdisjoint(theirs.to_pylist())


def test_bad_recipes(tmp_path):
    bad = tmp_path / "r.toml"
    for text, message in [
        ('[[sources]]\nspec = "foo:bar"\n', "unknown source spec"),
        ('holdout = "x"\n[[sources]]\nspec = "csmith:1"\n', "holdout 'x' matches no source"),
        ("holdout = 3\n[[sources]]\nspec = 'csmith:1'\n", "holdout must be a string or a list"),
        (
            "holdout = ['csmith', 'csmith:1']\n[[sources]]\nspec = 'csmith:1'\n",
            "holdout names one source twice",
        ),
        ('[splits]\ntrain = 0.5\n[[sources]]\nspec = "csmith:1"\n', "sum to 1"),
        ('colour = 1\n[[sources]]\nspec = "csmith:1"\n', "unknown key 'colour'"),
        ("sources = [", "not valid TOML"),
    ]:
        bad.write_text(text)
        with pytest.raises(InputError, match=message) as err:
            load_recipe(bad)
        assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="nothing to build"):
        make_recipe(None, [])


# --------------------------------------------------------------------------- CLI


def passlm(*args: str, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "passlm.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PASSLM_CACHE": str(cache), "COLUMNS": "200"},
    )


def test_cli_build_and_info(tmp_path, small_tree):
    out = tmp_path / "out" / "corpus.parquet"
    res = passlm(
        "corpus",
        "build",
        str(small_tree),
        "-o",
        str(out),
        "--max-chars",
        "4000",
        "-j",
        "2",
        cache=tmp_path / "cache",
    )
    assert res.returncode == 0, res.stderr
    assert "duplicate" in res.stderr and "dir:lib" in res.stderr
    rows, meta = read_corpus(out)
    assert rows and meta["limits"]["max_chars"] == 4000
    assert meta["command"][:3] == ["passlm", "corpus", "build"]
    info = passlm("corpus", "info", str(out), cache=tmp_path / "cache")
    assert info.returncode == 0, info.stderr
    assert "LLVM 19" in info.stdout and "train" in info.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["corpus", "build", "foo:bar", "-o", "x.parquet"], "unknown source spec"),
        (["corpus", "build", "/no/such/dir", "-o", "x.parquet"], "no such directory"),
        (["corpus", "info", "/no/such.parquet"], "no such file"),
    ],
)
def test_cli_bad_inputs_are_one_line(tmp_path, args, message):
    res = passlm(*args, cache=tmp_path / "cache")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_interrupted_build_leaves_no_partial_output(tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "out" / "c.parquet"
    proc = subprocess.Popen(
        [sys.executable, "-m", "passlm.cli", "corpus", "build", "csmith:12", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PASSLM_CACHE": str(cache)},
        # A shell runs background jobs with SIGINT ignored, and Python then installs no Ctrl-C
        # handler: give the child the default disposition whatever this test was started from.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        for line in proc.stderr:  # type: ignore[union-attr]
            # "compiled 1/12 files": compiling has begun and most files are still to come.
            # (The "compiling" progress bar is only rendered at the end when stderr is a pipe.)
            if line.startswith("compiled "):
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted; run the same command again" in err
    assert out.parent.is_dir() and list(out.parent.iterdir()) == []
    assert not list(cache.rglob("*.tmp"))

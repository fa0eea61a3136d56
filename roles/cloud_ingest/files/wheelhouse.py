# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of the cloud_ingest install: the source digest and a wheelhouse cached by it.

``digest`` hashes exactly the files the three wheels are built from (pyproject.toml, README, LICENSE and src/
without build leftovers), so it is cheap, needs no build and no network, and changes exactly when the wheels
would. The role records it on the host after an install; check mode compares the two and never builds.

``build`` fills ``<wheelhouse>/<digest>/`` (the three wheels, and with ``--target`` the dependencies
downloaded for each host Python/architecture under ``deps-<python>-<arch>/``) unless that directory is
already complete: a re-run with unchanged sources builds and downloads nothing. It builds into a temporary
sibling and renames it into place, so an interrupted build is never taken for a complete one, and removes the
wheelhouses of other digests (they hold wheels of sources that no longer exist).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The distributions of the ingest, relative to the repository root (the order is part of the digest).
DISTRIBUTIONS = ("libs/contract", "libs/service", "cloud_ingest")
# Top-level files of a distribution that end up in its wheel's metadata.
TOP_FILES = ("pyproject.toml", "setup.cfg", "setup.py", "README.md", "LICENSE")
# Build and cache leftovers under src/ that are not part of a wheel.
SKIP_DIRS = {"__pycache__", "build", "dist"}
SKIP_SUFFIXES = (".pyc", ".pyo")
COMPLETE = ".complete"
# Reproducible zip timestamps: the same sources give byte-identical wheels.
SOURCE_DATE_EPOCH = "315532800"


def source_files(root: Path) -> list[Path]:
    """The files the wheels are built from, in a stable order."""
    files: list[Path] = []
    for dist in DISTRIBUTIONS:
        base = root / dist
        if not (base / "pyproject.toml").is_file():
            raise SystemExit(
                f"wheelhouse: {base} is not a distribution (no pyproject.toml); check cloud_ingest_source_dir"
            )
        files.extend(base / name for name in TOP_FILES if (base / name).is_file())
        for dirpath, dirnames, filenames in os.walk(base / "src"):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info"))
            files.extend(Path(dirpath) / f for f in sorted(filenames) if not f.endswith(SKIP_SUFFIXES))
    return files


def digest(root: Path) -> str:
    """SHA-256 over every source file's path (relative to root) and content."""
    h = hashlib.sha256()
    for path in source_files(root):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def run(argv: list[str]) -> None:
    env = dict(os.environ, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH)
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(
            f"wheelhouse: {' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


def build(root: Path, wheelhouse: Path, version: str, targets: list[str]) -> dict[str, object]:
    """Make <wheelhouse>/<digest> complete for the targets; report what was done."""
    key = digest(root)
    final = wheelhouse / key
    wanted = {f"deps-{t}" for t in targets}
    have = {p.name for p in final.iterdir() if p.is_dir()} if (final / COMPLETE).is_file() else set()
    built = False
    if not wanted <= have or not (final / COMPLETE).is_file():
        wheelhouse.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=wheelhouse))
        try:
            python = sys.executable
            run(
                [
                    python,
                    "-m",
                    "pip",
                    "wheel",
                    "--no-deps",
                    "--wheel-dir",
                    str(work),
                    *(str(root / d) for d in DISTRIBUTIONS),
                ]
            )
            ours = sorted(str(p) for p in work.glob("*.whl"))
            # Our three wheels are named as files, so pip takes them from here and never from an index.
            for target in sorted(wanted | have):
                python_version, _, arch = target.removeprefix("deps-").partition("-")
                platforms = ["--platform", f"manylinux2014_{arch}", "--platform", f"manylinux_2_17_{arch}"]
                versions = ["--python-version", python_version]
                run(
                    [
                        python,
                        "-m",
                        "pip",
                        "download",
                        "--only-binary=:all:",
                        *platforms,
                        *versions,
                        "--dest",
                        str(work / target),
                        *ours,
                    ]
                )
                # pip download also copies our wheels there; the host gets them from the top level once.
                for name in (Path(p).name for p in ours):
                    (work / target / name).unlink(missing_ok=True)
            (work / COMPLETE).write_text(json.dumps({"digest": key, "version": version}) + "\n")
            shutil.rmtree(final, ignore_errors=True)
            work.rename(final)
            built = True
        finally:
            shutil.rmtree(work, ignore_errors=True)
    for stale in wheelhouse.iterdir():
        if stale.is_dir() and stale.name != key and not stale.name.startswith("."):
            shutil.rmtree(stale)
    return {"digest": key, "path": str(final), "built": built}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_digest = sub.add_parser("digest", help="print the source digest")
    p_digest.add_argument("--source-dir", type=Path, required=True)
    p_build = sub.add_parser("build", help="build the wheelhouse of the current sources unless it is cached")
    p_build.add_argument("--source-dir", type=Path, required=True)
    p_build.add_argument("--wheelhouse", type=Path, required=True)
    p_build.add_argument("--version", required=True)
    p_build.add_argument(
        "--target", action="append", default=[], help="PYTHON-ARCH, e.g. 3.11-x86_64 (repeatable)"
    )
    args = parser.parse_args(argv)
    root = args.source_dir.resolve()
    if args.command == "digest":
        print(digest(root))
    else:
        print(json.dumps(build(root, args.wheelhouse.resolve(), args.version, args.target)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

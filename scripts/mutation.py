"""Mutation testing of the core logic with mutmut: per module, with only the tests that cover it,
and a report of scores and every surviving mutant (killed by a test since, or explained).

    python scripts/mutation.py                      # every module (long: run it niced, alone)
    python scripts/mutation.py --module metrics     # one module
    python scripts/mutation.py --changed origin/main --sample 3   # the fast path CI can afford
    python scripts/mutation.py --module fusion --rerun  # its survivors again, after new tests

Each module runs in its own scratch copy under ``.cache/mutation/`` (so the working tree never
gets a ``mutants/`` folder), with a ``[tool.mutmut]`` section naming the module and its test
files. Lines that only build an error or log message are not mutated: the condition that
raises is, the wording is not a number a leaderboard shows. ``--sample D`` runs the mutants
whose number ends in the digit D (a tenth of them); ``--jobs 2`` checks two at once (mutants
run at ``nice 15``). Survivors that cannot change behaviour are
listed with the reason in ``scripts/mutation_equivalent/<module>.yaml``; the report marks them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / ".cache" / "mutation"
REPORT = ROOT / "docs" / "mutation.md"
EQUIVALENT = Path(__file__).with_name("mutation_equivalent")
"""One YAML file per module:
``{module: [{mutant: <mutated line>, why: <reason>, in: <function, optional>}]}``."""
RESULTS = Path(__file__).with_name("mutation_results")
"""Each module's latest verdict counts and survivors (kept in the repository, so the report
always has a row per module, whichever modules a run covered)."""
NOTES = Path(__file__).with_name("mutation_notes.md")
"""Hand-written notes on the latest runs (what a partial run covered), appended to the report."""

# module -> the test files that cover it (and run in seconds); the scope of issue 24.
MODULES: dict[str, tuple[str, ...]] = {
    "bench/eval/metrics.py": ("tests/test_metrics.py", "tests/test_metrics_cases.py",
                              "tests/test_qvh_parity.py"),
    "bench/retrievers/bm25_text.py": ("tests/test_bm25_text.py", "tests/test_bm25_text_cases.py",
                                      "tests/test_corpus_pruning.py"),
    "bench/retrievers/dense_text.py": ("tests/test_dense_text.py", "tests/test_dense_text_cases.py",
                                       "tests/test_corpus_pruning.py"),
    "bench/index/corpus.py": ("tests/test_embedding_corpus.py", "tests/test_vector_index.py"),
    "bench/retrievers/fusion.py": ("tests/test_fusion.py", "tests/test_fusion_cases.py",
                                   "tests/test_workspace.py"),
    "bench/store/catalog.py": ("tests/test_store.py", "tests/test_store_status.py",
                               "tests/test_store_resume.py", "tests/test_store_cases.py",
                               "tests/test_store_location.py"),
    "bench/store/location.py": ("tests/test_store_location.py", "tests/test_store_cases.py",
                                "tests/test_store.py"),
    "bench/eval/results.py": ("tests/test_results.py", "tests/test_results_cases.py"),
    "bench/engine/proposals.py": ("tests/test_proposals.py", "tests/test_proposals_cases.py"),
    "bench/engine/search.py": ("tests/test_engine.py", "tests/test_engine_cases.py"),
}
TIMEOUT_CONSTANT_S: dict[str, float] = {"bench/retrievers/dense_text.py": 20.0}
"""mutmut stops a mutant after (test time + this) x 30 CPU seconds (default 1 s); the dense
tests load a sentence model in each forked run, which a short limit mistakes for a hang."""
COPIED = ("bench", "tests", "models", "datasets")
NOT_MUTATED = [r"^\s*raise ", r"\blog\.(debug|info|warning|error|exception)\(", r"\bwarnings\.warn\("]
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout",
          None: "not checked"}


@dataclass
class ModuleResult:
    module: str
    tests: tuple[str, ...]
    counts: Counter[str] = field(default_factory=Counter)
    survivors: list[tuple[str, str, str | None]] = field(default_factory=list)  # name, diff, why
    seconds: float = 0.0
    error: str | None = None
    command: str = ""

    @property
    def score(self) -> float | None:
        """Killed (timeouts count as killed) over every checked mutant; equivalents left out."""
        caught = self.counts["killed"] + self.counts["timeout"]
        equivalent = sum(1 for *_, why in self.survivors if why)
        checked = caught + self.counts["survived"] + self.counts["no tests"] + self.counts["suspicious"]
        checked -= equivalent
        return caught / checked if checked else None


def slug(module: str) -> str:
    return module.removeprefix("bench/").removesuffix(".py").replace("/", "-")


def prepare(module: str, tests: tuple[str, ...]) -> Path:
    """A fresh scratch copy of the repository with a mutmut section for ``module``."""
    work = SCRATCH / slug(module)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "artifacts", ".pytest_cache")
    for name in COPIED:
        shutil.copytree(ROOT / name, work / name, ignore=ignore)
    write_config(work, module, tests)
    # Tests look for ../shared beside the checkout; mutmut runs them from work/mutants.
    shared = ROOT.parent / "shared"
    if shared.is_dir():
        (work / "shared").symlink_to(shared)
    return work


def write_config(work: Path, module: str, tests: tuple[str, ...]) -> None:
    """The repository's pyproject.toml plus a mutmut section for ``module`` and its tests."""
    config = {"source_paths": ["bench"], "only_mutate": [module], "also_copy": ["models", "datasets"],
              "pytest_add_cli_args_test_selection": list(tests),
              "pytest_add_cli_args": ["-q", "-p", "no:cacheprovider", "-m", "not slow and not browser"],
              "do_not_mutate_patterns": NOT_MUTATED,
              "timeout_constant": TIMEOUT_CONSTANT_S.get(module, 1.0)}
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    text += "\n[tool.mutmut]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items())
    (work / "pyproject.toml").write_text(text, encoding="utf-8")


def equivalents() -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for path in sorted(EQUIVALENT.glob("*.yaml")):
        for module, entries in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).items():
            out.setdefault(module, []).extend(entries or [])
    return out


def _changed_line(diff: str) -> str:
    added = [line[1:].strip() for line in diff.splitlines()
             if line.startswith("+") and not line.startswith("+++")]
    return " | ".join(added)


def why_equivalent(module: str, diff: str, known: dict[str, list[dict[str, str]]],
                   name: str = "") -> str | None:
    """The recorded reason when this survivor's mutated line is listed as equivalent (an
    entry with ``in: <function>`` matches only mutants of that function: for short lines
    such as ``break`` that occur in several)."""
    line = _changed_line(diff)
    function = _function(name)
    for entry in known.get(module, []):
        if entry["mutant"].strip() != line:
            continue
        if "in" in entry and entry["in"] not in (function, function.rsplit(".", 1)[-1]):
            continue
        return entry["why"]
    return None


def _function(name: str) -> str:
    """``Class.method`` or ``function`` of a mutant's name (``...xǁClassǁmethod__mutmut_3``)."""
    mangled = re.sub(r"__mutmut_\d+$", "", name.rsplit(".", 1)[-1])
    if mangled.startswith("xǁ"):
        return ".".join(mangled.split("ǁ")[1:])
    return mangled.removeprefix("x_")


def run_module(module: str, *, jobs: int, sample: int | None, known: dict[str, list[dict[str, str]]],
               rerun: bool = False) -> ModuleResult:
    """Mutate ``module`` in a fresh scratch copy; with ``rerun``, reuse the last copy and check
    again only its survivors, against the current tests (the cheap way to confirm new kills)."""
    tests = MODULES[module]
    result = ModuleResult(module, tests)
    verdicts: dict[str, int | None] = {}
    meta = SCRATCH / slug(module) / "mutants" / f"{module}.meta"
    if rerun:
        work = SCRATCH / slug(module)
        names = [name for name, diff, _ in _saved_survivors(module)
                 if not why_equivalent(module, diff, known, name)]
        if not names or not meta.is_file():
            raise SystemExit(f"{module}: no saved survivors to check again (run it first)")
        shutil.rmtree(work / "tests")
        shutil.copytree(ROOT / "tests", work / "tests",
                        ignore=shutil.ignore_patterns("__pycache__", "artifacts", ".pytest_cache"))
        # A changed test list makes mutmut forget every verdict; the others are put back after
        # the run (tests were only added since, so a mutant killed then is killed now).
        verdicts = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        write_config(work, module, tests)
    else:
        work = prepare(module, tests)
        dotted = module.removesuffix(".py").replace("/", ".")
        names = [f"{dotted}.*__mutmut_*{sample}"] if sample is not None else []
    # one thread per mutant: --jobs runs several at once, and CPU time is what mutmut limits
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1",
               SCENEBENCH_CACHE=os.environ.get("SCENEBENCH_CACHE", str(ROOT / ".cache" / "test")))
    start = time.monotonic()
    with (work / ("rerun.log" if rerun else "run.log")).open("w", encoding="utf-8") as log:
        proc = subprocess.run(["nice", "-n", "15", sys.executable, "-m", "mutmut", "run",
                               "--max-children", str(jobs), *names],
                              cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    result.seconds = time.monotonic() - start
    if verdicts and meta.is_file():
        data = json.loads(meta.read_text(encoding="utf-8"))
        for name, code in verdicts.items():
            if name not in names and data["exit_code_by_key"].get(name) is None:
                data["exit_code_by_key"][name] = code
        meta.write_text(json.dumps(data), encoding="utf-8")
    if not collect(result, work, known):
        result.error = f"mutmut exited {proc.returncode} without results; see {work / 'run.log'}"
    return result


def collect(result: ModuleResult, work: Path, known: dict[str, list[dict[str, str]]]) -> bool:
    """Read mutmut's verdicts from a scratch copy into ``result`` (False when there are none)."""
    module = result.module
    meta = work / "mutants" / f"{module}.meta"
    if not meta.is_file():
        return False
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    for name, code in sorted(codes.items(), key=lambda kv: _natural(kv[0])):
        status = STATUS.get(code, "suspicious")
        result.counts[status] += 1
        if status in ("survived", "no tests", "suspicious"):
            shown = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=work, env=env,
                                   capture_output=True, text=True, check=False)
            diff = "\n".join(line for line in shown.stdout.splitlines() if not line.startswith("# "))
            result.survivors.append((name, diff.strip(), why_equivalent(module, diff, known, name)))
    return True


def _natural(name: str) -> tuple[str, int]:
    match = re.search(r"^(.*)__mutmut_(\d+)$", name)
    return (match.group(1), int(match.group(2))) if match else (name, 0)


def changed_modules(ref: str) -> list[str]:
    """Modules whose source or covering tests differ from ``ref`` (committed or not)."""
    out = subprocess.run(["git", "diff", "--name-only", ref, "--"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    touched = set(out)
    return [m for m, tests in MODULES.items() if m in touched or touched & set(tests)]


def save(result: ModuleResult) -> None:
    data = {"module": result.module, "tests": list(result.tests), "counts": dict(result.counts),
            "survivors": result.survivors, "seconds": result.seconds, "error": result.error,
            "command": result.command}
    path = RESULTS / f"{slug(result.module)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def _saved_survivors(module: str) -> list[tuple[str, str, str | None]]:
    path = RESULTS / f"{slug(module)}.json"
    if not path.is_file():
        return []
    return [tuple(s) for s in json.loads(path.read_text(encoding="utf-8"))["survivors"]]  # type: ignore[misc]


def load_saved() -> list[ModuleResult]:
    """The latest result of each module, in :data:`MODULES` order (a report covers every run)."""
    out = []
    for module in MODULES:
        path = RESULTS / f"{slug(module)}.json"
        if path.is_file():
            d = json.loads(path.read_text(encoding="utf-8"))
            out.append(ModuleResult(d["module"], tuple(d["tests"]), Counter(d["counts"]),
                                    [tuple(s) for s in d["survivors"]],  # type: ignore[misc]
                                    d["seconds"], d["error"], d["command"]))
    return out


def render(results: list[ModuleResult]) -> str:
    lines = ["# Mutation testing of the core logic", "",
             "Tool: mutmut " + _mutmut_version() + "; each module is mutated alone and checked with",
             "only the test files that cover it (listed). Lines that only build an error or log",
             "message are not mutated. Score = killed (timeouts included) / checked mutants, with",
             "survivors recorded as equivalent (`scripts/mutation_equivalent/`) left out.",
             "Machine: 2-core AMD EPYC VM, 24 GiB, no GPU, shared with other jobs (times vary with load).",
             "", "Reproduce (all modules; each row also names its own command below):", "", "```",
             "python scripts/mutation.py --jobs 2", "```", "",
             "`mutants` counts the mutants checked. A row run with `--sample D` checked only the",
             "mutants whose number ends in D (mutmut numbers the mutants of each function from 1, so",
             "this is about a tenth of every function's mutants, the same tenth on every run), of the",
             "`total` the module has; a row stopped by hand names how far it got. `--rerun` then",
             "checked the listed survivors again against the tests written for them; the other",
             "verdicts stand (tests were only added in between). mutmut runs each mutant against the",
             "tests that executed the mutated function, from the test files named in the row.",
             "",
             "| module | total | mutants | killed | timeout | survived | no tests | equivalent | score "
             "| tests | time |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    return _rows(results, lines)


def _rows(results: list[ModuleResult], lines: list[str]) -> str:
    """The table rows, the commands and the survivors of ``results`` after the heading ``lines``."""
    for r in results:
        if r.error:
            lines.append(f"| `{r.module}` | error: {r.error} ||||||||||")
            continue
        c = r.counts
        equivalent = sum(1 for *_, why in r.survivors if why)
        score = "n/a" if r.score is None else f"{100 * r.score:.1f}%"
        checked = sum(v for k, v in c.items() if k != "not checked")
        lines.append(f"| `{r.module}` | {sum(c.values())} | {checked} | {c['killed']} | {c['timeout']} | "
                     f"{c['survived'] - equivalent} | {c['no tests']} | {equivalent} | {score} | "
                     f"{', '.join(Path(t).name for t in r.tests)} | {r.seconds:.0f} s |")
    lines += ["", "Commands of these rows:", ""]
    lines += [f"- `{r.module}`: `{r.command}`" for r in results]
    for r in results:
        if not r.survivors:
            continue
        lines += ["", f"## Survivors in `{r.module}`", ""]
        for name, diff, why in r.survivors:
            label = f"equivalent: {why}" if why else "NOT KILLED"
            lines += [f"- `{name.rsplit('.', 1)[-1]}` ({label})", "", "  ```diff",
                      *("  " + line for line in diff.splitlines()
                        if line[:1] in "+-" and line[:3] not in ("+++", "---")),
                      "  ```"]
    if NOTES.is_file():
        lines += ["", NOTES.read_text(encoding="utf-8").rstrip()]
    return "\n".join(lines) + "\n"


def _mutmut_version() -> str:
    from importlib.metadata import version

    return version("mutmut")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", action="append", default=[],
                        help="a module path or a part of it (repeatable); default every module")
    parser.add_argument("--changed", metavar="REF", help="only modules changed since this git ref")
    parser.add_argument("--sample", type=int, choices=range(10), metavar="D",
                        help="only mutants whose number ends in D (a tenth)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants checked at once (default 1)")
    parser.add_argument("--out", type=Path, default=REPORT, help=f"report file (default {REPORT})")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report from the saved results; mutate nothing")
    parser.add_argument("--collect", action="store_true",
                        help="save the verdicts already in each module's scratch copy (a run that was "
                             "stopped part-way), then rewrite the report; mutate nothing")
    parser.add_argument("--rerun", action="store_true",
                        help="check again only the last run's unexplained survivors of each module, "
                             "against the current tests (keeps the other verdicts)")
    parser.add_argument("--min-score", type=float, default=0.0,
                        help="exit 1 when a module scores below this fraction")
    args = parser.parse_args()
    if args.collect:
        saved = {r.module: r for r in load_saved()}
        for module in MODULES:
            if args.module and not any(part in module for part in args.module):
                continue
            r = ModuleResult(module, MODULES[module],
                             command=f"python scripts/mutation.py --module {module} (stopped part-way)")
            if module in saved:  # a finished run collected again (e.g. with new equivalents)
                r.seconds, r.command = saved[module].seconds, saved[module].command
            if collect(r, SCRATCH / slug(module), equivalents()):
                save(r)
        args.report_only = True
    if args.report_only:
        args.out.write_text(render(load_saved()), encoding="utf-8")
        return 0
    modules = [m for m in MODULES if not args.module or any(part in m for part in args.module)]
    if args.changed:
        modules = [m for m in modules if m in changed_modules(args.changed)]
    if not modules:
        print("no module to mutate", file=sys.stderr)
        return 0
    known = equivalents()
    results = []
    for module in modules:
        print(f"== {module}", file=sys.stderr, flush=True)
        before = {r.module: r for r in load_saved()}.get(module)
        r = run_module(module, jobs=args.jobs, sample=args.sample, known=known, rerun=args.rerun)
        if args.rerun and before is not None:
            r.seconds += before.seconds
            r.command = before.command + f" && python scripts/mutation.py --module {module} --rerun"
        else:
            r.command = "python scripts/mutation.py --module " + module + (
                f" --sample {args.sample}" if args.sample is not None else "")
        save(r)
        results.append(r)
        print(f"   {dict(r.counts)} score={r.score} in {r.seconds:.0f} s{' ' + r.error if r.error else ''}",
              file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(load_saved()), encoding="utf-8")
    print(f"report: {args.out}", file=sys.stderr)
    low = [r.module for r in results if r.error or (r.score is not None and r.score < args.min_score)]
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())

"""Tagging sets (the second task): videos with category labels and the taxonomy they come from,
read and written strictly, plus adapters for the layouts people have (a folder per category, a
CSV of path,label).

A tagging set is a directory with ``taxonomy.yaml`` and ``videos.jsonl`` (rows ``{"vid",
"path", "duration", "labels": [label_id, ...], "lang"?}``); see DESIGN.md, "Tagging sets".
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bench.datasets.io import read_jsonl, write_jsonl
from bench.errors import BadInput
from bench.fsio import atomic_write_text
from bench.types import RowError, Video

if TYPE_CHECKING:
    from bench.datasets import BuildOptions

TAXONOMY_FILE = "taxonomy.yaml"
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v"})
DEFAULT_PROMPTS: dict[str, tuple[str, ...]] = {
    "en": ("Video belongs to category '{name}'", "a video about {name}"),
    "ru": ("Видео принадлежит категории '{name}'", "видео про {name}"),
    "ja": ("カテゴリー「{name}」の動画", "{name}の動画"),
}
"""Prompt ensembles used for a language the taxonomy gives no prompts for."""


@dataclass(frozen=True)
class Label:
    """One category: its id, its name per language and an optional description per language."""

    id: str
    names: Mapping[str, str]
    description: Mapping[str, str] = field(default_factory=dict)

    def name(self, lang: str | None = None) -> str:
        """The name in ``lang``, else English, else the first one given."""
        if lang and lang in self.names:
            return self.names[lang]
        return self.names.get("en") or next(iter(self.names.values()))


@dataclass(frozen=True)
class Taxonomy:
    """The labels of a tagging set, in file order, and prompt templates per language (each
    holds ``{name}``; several templates per language make an ensemble)."""

    labels: tuple[Label, ...]
    prompts: Mapping[str, tuple[str, ...]]

    @property
    def ids(self) -> list[str]:
        return [lb.id for lb in self.labels]

    @property
    def languages(self) -> list[str]:
        """The languages every label is named in, sorted."""
        return sorted(self.labels[0].names)

    def index(self, label_id: str) -> int:
        return self.ids.index(label_id)

    def prompt_templates(self, lang: str) -> tuple[str, ...]:
        return self.prompts.get(lang) or DEFAULT_PROMPTS.get(lang) or DEFAULT_PROMPTS["en"]

    def to_doc(self) -> dict[str, Any]:
        labels = []
        for lb in self.labels:
            row: dict[str, Any] = {"id": lb.id, "names": dict(lb.names)}
            if lb.description:
                row["description"] = dict(lb.description)
            labels.append(row)
        return {"labels": labels, "prompts": {k: list(v) for k, v in self.prompts.items()}}


def parse_taxonomy(doc: Any, source: str | Path = "<taxonomy>") -> Taxonomy:
    """A taxonomy document -> :class:`Taxonomy`. BadInput (one line, naming the file and the
    rule) for no labels, a duplicate id, an empty name, a label missing a language another
    label is named in, or a prompt without ``{name}``."""
    def fail(rule: str) -> BadInput:
        return BadInput(f"{source}: {rule}")

    if not isinstance(doc, Mapping):
        raise fail("must be a mapping with 'labels' (and optional 'prompts')")
    unknown = set(doc) - {"labels", "prompts"}
    if unknown:
        raise fail(f"unknown field {sorted(unknown)[0]!r} (allowed: labels, prompts)")
    rows = doc.get("labels")
    if not isinstance(rows, list) or not rows:
        raise fail("'labels' must be a non-empty list of {id, names, description?}")
    labels: list[Label] = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping) or set(row) - {"id", "names", "description"}:
            raise fail(f"label {i}: must be a mapping of id, names and optional description")
        lid = row.get("id")
        if not isinstance(lid, str) or not lid.strip():
            raise fail(f"label {i}: 'id' must be a non-empty string")
        if lid in seen:
            raise fail(f"label {lid!r}: duplicate id")
        seen.add(lid)
        names = _lang_map(row.get("names"), f"label {lid!r}: names", fail, required=True)
        desc = _lang_map(row.get("description") or {}, f"label {lid!r}: description", fail)
        labels.append(Label(lid, names, desc))
    langs = set(labels[0].names)
    for lb in labels[1:]:
        if set(lb.names) != langs:
            missing = sorted(langs - set(lb.names)) or sorted(set(lb.names) - langs)
            other = labels[0].id if langs - set(lb.names) else lb.id
            short = lb.id if langs - set(lb.names) else labels[0].id
            raise fail(f"label {short!r}: no name in {missing[0]!r} (label {other!r} has one); "
                       "name every label in every language")
    prompts: dict[str, tuple[str, ...]] = {}
    raw = doc.get("prompts") or {}
    if not isinstance(raw, Mapping):
        raise fail("'prompts' must map a language to a template or a list of templates")
    for lang, value in raw.items():
        templates = [value] if isinstance(value, str) else value
        if not isinstance(templates, list) or not templates or \
                not all(isinstance(t, str) and "{name}" in t for t in templates):
            raise fail(f"prompts.{lang}: each template must be a string holding '{{name}}'")
        prompts[str(lang)] = tuple(templates)
    return Taxonomy(tuple(labels), prompts)


def _lang_map(value: Any, where: str, fail: Any, *, required: bool = False) -> dict[str, str]:
    if not isinstance(value, Mapping) or (required and not value):
        raise fail(f"{where} must map a language to text, e.g. {{en: Food, ru: Еда}}")
    out = {}
    for lang, text in value.items():
        if not isinstance(text, str) or not text.strip():
            raise fail(f"{where}.{lang} must be non-empty text")
        out[str(lang)] = text.strip()
    return out


def load_taxonomy(path: Path) -> Taxonomy:
    """Read and check a taxonomy YAML file (see :func:`parse_taxonomy`)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the taxonomy ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_taxonomy(doc, path)


def save_taxonomy(path: Path, taxonomy: Taxonomy) -> None:
    atomic_write_text(Path(path), yaml.safe_dump(taxonomy.to_doc(), allow_unicode=True, sort_keys=False))


@dataclass(frozen=True)
class TaggedVideo:
    """A video of a tagging set, its labels (ids of the taxonomy, at least one) and optional
    tags (e.g. which cue reveals the category: ``speech``, ``onscreen-text``, ``visual``),
    by which metrics are broken down."""

    video: Video
    labels: tuple[str, ...]
    tags: tuple[str, ...] = ()
    windows: tuple[tuple[float, float, str], ...] = ()
    """Optional labels of parts of the video: ``(start_s, end_s, label_id)``. Kept and checked;
    the task's metrics score whole videos."""

    @property
    def vid(self) -> str:
        return self.video.vid

    def to_row(self) -> dict[str, Any]:
        row = {**self.video.to_row(), "labels": list(self.labels)}
        if self.tags:
            row["tags"] = list(self.tags)
        if self.windows:
            row["windows"] = [list(w) for w in self.windows]
        return row


@dataclass
class TaggingSet:
    """A loaded tagging set: its name, root, taxonomy and videos (by vid, in file order)."""

    name: str
    root: Path | None
    taxonomy: Taxonomy
    videos: dict[str, TaggedVideo]
    split: str = "test"
    card: str | None = None

    def save(self, directory: Path) -> None:
        """Write ``taxonomy.yaml`` and ``videos.jsonl`` (and the card) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_taxonomy(directory / TAXONOMY_FILE, self.taxonomy)
        write_jsonl(directory / "videos.jsonl", (v.to_row() for v in self.videos.values()))
        atomic_write_text(directory / "meta.json",
                          json.dumps({"name": self.name, "split": self.split, "task": "tagging"},
                                     ensure_ascii=False, indent=2) + "\n")
        if self.card:
            atomic_write_text(directory / "README.md", self.card)


def is_tagging_set(directory: Path) -> bool:
    """A directory holding ``taxonomy.yaml`` is a tagging set."""
    return (Path(directory) / TAXONOMY_FILE).is_file()


def load_tagging_set(directory: Path, name: str | None = None, *, check_files: bool = True) -> TaggingSet:
    """Load a tagging-set directory; each bad row raises BadInput naming file, line and field
    (a duplicate vid, no labels, a label the taxonomy lacks, a missing video file)."""
    directory = Path(directory)
    taxonomy = load_taxonomy(directory / TAXONOMY_FILE)
    known = set(taxonomy.ids)
    vpath = directory / "videos.jsonl"
    videos: dict[str, TaggedVideo] = {}
    for n, row in read_jsonl(vpath):
        where = f"{vpath}:{n}"
        if not isinstance(row, Mapping):
            raise RowError(where, None, "must be a JSON object")
        video = Video.from_row({k: v for k, v in row.items() if k not in {"labels", "tags", "windows"}},
                               vpath, n)
        tags = row.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
            raise RowError(where, "tags", "must be a list of non-empty strings")
        labels = row.get("labels")
        if not isinstance(labels, list) or not labels:
            raise RowError(where, "labels", "must be a non-empty list of label ids")
        for lab in labels:
            if lab not in known:
                raise RowError(where, "labels", f"unknown label {lab!r} (not in {TAXONOMY_FILE})")
        if len(set(labels)) != len(labels):
            raise RowError(where, "labels", "names a label twice")
        if video.vid in videos:
            raise RowError(where, "vid", f"duplicate vid {video.vid!r}")
        if check_files:
            path = video.resolve(directory)
            if path is not None and not path.is_file():
                raise RowError(where, "path", f"video file not found: {path}")
        windows = _windows(row.get("windows", []), where, known, video.duration)
        videos[video.vid] = TaggedVideo(video, tuple(labels), tuple(tags), windows)
    if not videos:
        raise BadInput(f"{vpath}: no videos")
    meta: dict[str, Any] = {}
    if (directory / "meta.json").is_file():
        try:
            meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
    card = directory / "README.md"
    return TaggingSet(name=name or str(meta.get("name") or directory.name), root=directory,
                      taxonomy=taxonomy, videos=videos, split=str(meta.get("split") or "test"),
                      card=card.read_text(encoding="utf-8") if card.is_file() else None)


def _windows(value: Any, where: str, known: set[str], duration_s: float | None,
             ) -> tuple[tuple[float, float, str], ...]:
    if not isinstance(value, list):
        raise RowError(where, "windows", "must be a list of [start_s, end_s, label_id]")
    out = []
    for w in value:
        numbers = isinstance(w, list) and len(w) == 3 and all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in w[:2])
        if not numbers or not isinstance(w[2], str):
            raise RowError(where, "windows", f"each must be [start_s, end_s, label_id], got {w!r}")
        start, end, lab = float(w[0]), float(w[1]), w[2]
        if not 0 <= start < end or (duration_s is not None and end > duration_s + 1e-6):
            raise RowError(where, "windows",
                           f"[{start:g}, {end:g}] must satisfy 0 <= start < end <= duration")
        if lab not in known:
            raise RowError(where, "windows", f"unknown label {lab!r} (not in {TAXONOMY_FILE})")
        out.append((start, end, lab))
    return tuple(out)


# --- adapters ---------------------------------------------------------------------------------

_FOLDER = re.compile(r"^(?:\d+[_\-. ]+)?(?P<name>.+)$")


def guess_lang(text: str) -> str:
    """The language a category name is written in, by script: Cyrillic ru, kana or CJK ja,
    else en (the adapters name each label in the one language its folder or CSV gives)."""
    if re.search(r"[\u0400-\u04ff]", text):
        return "ru"
    if re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", text):
        return "ja"
    return "en"


def slug(name: str) -> str:
    """A label id from a category name: lower case, runs of other characters to ``-``."""
    out = re.sub(r"[^\w]+", "-", name.strip().lower()).strip("-")
    if not out:
        raise BadInput(f"category name {name!r} gives an empty label id")
    return out


def _taxonomy_for(names: Sequence[str], given: Path | None) -> tuple[Taxonomy, dict[str, str]]:
    """The taxonomy (``given``, or one made from the category names, each in its own script's
    language) and category name -> label id. BadInput for a name the given taxonomy lacks."""
    if given is not None:
        tax = load_taxonomy(given)
        lookup = {lb.id: lb.id for lb in tax.labels}
        for lb in tax.labels:
            lookup.update({n: lb.id for n in lb.names.values()})
        for n in names:
            if n not in lookup and slug(n) not in lookup:
                raise BadInput(f"category {n!r} is neither an id nor a name in {given}")
        return tax, {n: lookup.get(n) or lookup[slug(n)] for n in names}
    langs = {guess_lang(n) for n in names}
    if len(langs) > 1:
        raise BadInput(f"category names are in several languages ({', '.join(sorted(langs))}); "
                       f"give a {TAXONOMY_FILE} that names every label in each")
    ids: dict[str, str] = {}
    labels = []
    for n in sorted(set(names)):
        lid = slug(n)
        if lid in ids.values():
            raise BadInput(f"categories {n!r} and another give the same label id {lid!r}")
        ids[n] = lid
        labels.append({"id": lid, "names": {guess_lang(n): n}})
    return parse_taxonomy({"labels": labels}), ids


def _tagged(rows: Sequence[tuple[Path, str]], taxonomy: Taxonomy, ids: Mapping[str, str],
            name: str, split: str) -> TaggingSet:
    from bench.video import probe

    videos: dict[str, TaggedVideo] = {}
    for path, category in rows:
        info = probe(path)
        vid, k = path.stem, 2
        while vid in videos:  # two files of one name in different category folders
            vid, k = f"{path.stem}-{k}", k + 1
        video = Video(vid=vid, path=str(path.resolve()), duration=info.duration_s)
        videos[vid] = TaggedVideo(video, (ids[category],))
    if not videos:
        raise BadInput(f"{name}: no videos found")
    return TaggingSet(name=name, root=None, taxonomy=taxonomy, videos=videos, split=split)


def build_folders(out: Path, options: BuildOptions) -> TaggingSet:
    """``--input ROOT`` holding one folder per category (``NNN_Category/*.mp4``; the numeric
    prefix is dropped) -> a tagging set in ``out``. A ``taxonomy.yaml`` in ROOT, when present,
    names the labels (a folder is matched by label id or by a name in any language)."""
    root = options.input
    if root is None or not Path(root).is_dir():
        raise BadInput("tagging-folders needs --input DIR holding one folder per category")
    root = Path(root)
    rows: list[tuple[Path, str]] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        m = _FOLDER.match(folder.name)
        category = m.group("name") if m else folder.name
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        if not files:
            raise BadInput(f"{folder}: category folder with no video files")
        rows += [(p, category) for p in files]
    given = root / TAXONOMY_FILE
    tax, ids = _taxonomy_for([c for _, c in rows], given if given.is_file() else None)
    ts = _tagged(rows, tax, ids, root.name, options.split)
    ts.save(out)
    return load_tagging_set(out, ts.name)


def build_csv(out: Path, options: BuildOptions) -> TaggingSet:
    """``--input FILE.csv`` with rows ``path,label`` (a header row ``path,label`` is skipped;
    relative paths are relative to the CSV or to ``--videos``) -> a tagging set in ``out``.
    ``taxonomy.yaml`` beside the CSV, when present, names the labels."""
    src = options.input
    if src is None or not Path(src).is_file():
        raise BadInput("tagging-csv needs --input FILE.csv with rows path,label")
    src = Path(src)
    base = Path(options.videos) if options.videos else src.parent
    rows: list[tuple[Path, str]] = []
    with src.open(encoding="utf-8-sig", newline="") as fh:
        for n, rec in enumerate(csv.reader(fh), start=1):
            if not rec or all(not c.strip() for c in rec):
                continue
            if n == 1 and [c.strip().lower() for c in rec[:2]] == ["path", "label"]:
                continue
            if len(rec) != 2 or not rec[0].strip() or not rec[1].strip():
                raise BadInput(f"{src}:{n}: expected two non-empty columns path,label")
            path = Path(rec[0].strip())
            path = path if path.is_absolute() else base / path
            if not path.is_file():
                raise BadInput(f"{src}:{n}: video file not found: {path}")
            rows.append((path, rec[1].strip()))
    given = src.parent / TAXONOMY_FILE
    tax, ids = _taxonomy_for([c for _, c in rows], given if given.is_file() else None)
    ts = _tagged(rows, tax, ids, src.stem, options.split)
    ts.save(out)
    return load_tagging_set(out, ts.name)


# --- the embedded set -------------------------------------------------------------------------

def build_synthetic_tags(out: Path, options: BuildOptions) -> TaggingSet:
    """Build the tagging set ``synthetic-tags-v1`` into ``out``: its videos are rendered (and
    cached) into ``out/render`` by the synthetic generator from ``spec.yaml``; ``taxonomy.yaml``
    and ``labels.yaml`` beside the spec give the labels and the cue that reveals each category."""
    import dataclasses

    from bench.datasets.synthetic.builder import build_from_spec
    from bench.datasets.synthetic.spec import load_spec, spec_path

    spec_file = spec_path("synthetic-tags-v1")
    out = Path(out)
    render = build_from_spec(spec_file, out / "render", options)
    taxonomy = load_taxonomy(spec_file.parent / TAXONOMY_FILE)
    rows = read_labels(spec_file.parent / "labels.yaml")
    stray = sorted(set(render.videos) ^ set(rows))
    if stray:
        raise BadInput(f"{spec_file.parent / 'labels.yaml'}: video {stray[0]!r} is in only one of "
                       "labels.yaml and spec.yaml")
    videos = {vid: TaggedVideo(dataclasses.replace(v, path=f"render/{v.path}"), *rows[vid])
              for vid, v in render.videos.items()}
    spec = load_spec(spec_file)
    card = (f"# {spec.name}: {spec.title}\n\n{spec.summary.strip()}\n\nLabels: "
            + ", ".join(f"`{lb.id}` ({' / '.join(lb.names.values())})" for lb in taxonomy.labels) + ".\n")
    TaggingSet(name=spec.name, root=out, taxonomy=taxonomy, videos=videos, split=options.split,
               card=card).save(out)
    return load_tagging_set(out, spec.name)


def read_labels(path: Path) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """``labels.yaml`` of a synthetic tagging set: vid -> (labels, tags)."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BadInput(f"{path}: cannot read the labels ({str(exc).splitlines()[0]})") from None
    out = {}
    for vid, row in (doc or {}).items():
        if not isinstance(row, Mapping) or not row.get("labels"):
            raise BadInput(f"{path}: {vid}: needs labels: [...]")
        out[str(vid)] = (tuple(row["labels"]), tuple(row.get("tags") or ()))
    return out

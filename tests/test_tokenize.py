"""Language-aware tokenization: Japanese, Chinese, stemmed European languages, mixed scripts."""

from __future__ import annotations

import pytest

from bench.text.tokenize import (
    Tokenizer,
    TokenizerConfig,
    detect_lang,
    normalize_lang,
    normalize_text,
    resolve_lang,
    stopwords,
)


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer()


@pytest.fixture(scope="module")
def words() -> Tokenizer:
    """Words only, no CJK character bigrams: exact term lists are easier to read."""
    return Tokenizer(TokenizerConfig(cjk_bigrams=False))


def test_japanese_segmentation_keeps_content_words(tok: Tokenizer) -> None:
    terms = tok("先生がホワイトボードに数式を書いている", "ja")
    assert {"先生", "ホワイトボード", "数式"} <= set(terms)
    assert "書く" in terms  # dictionary form of 書い
    assert not {"が", "に", "を", "て", "いる"} & set(terms)  # particles and auxiliaries dropped


def test_cjk_bigrams_survive_ocr_errors_and_other_cuts(tok: Tokenizer) -> None:
    # OCR read 茶店 for 喫茶店ひまわり; fugashi cuts the query 喫茶 + 店: the bigram 茶店 is shared.
    assert tok("喫茶店ひまわり", "ja") == ["喫茶", "ひまわり", "喫茶", "茶店"]
    assert tok("茶店", "ja") == ["茶店"]  # runs of 3+ characters only
    assert tok("数学公式", "zh")[-3:] == ["数学", "学公", "公式"]
    assert Tokenizer(TokenizerConfig(cjk_bigrams=False))("喫茶店ひまわり", "ja") == ["喫茶", "ひまわり"]


def test_japanese_surface_forms_and_all_words() -> None:
    t = Tokenizer(TokenizerConfig(ja_form="surface", ja_content_words=False, stopwords=False,
                                  cjk_bigrams=False))
    assert t("先生がホワイトボードに数式を書いている", "ja") == [
        "先生", "が", "ホワイトボード", "に", "数式", "を", "書い", "て", "いる"]


def test_chinese_segmentation_search_mode(tok: Tokenizer, words: Tokenizer) -> None:
    assert words("厨师正在切披萨", "zh") == ["厨师", "切", "披萨"]
    assert {"厨师", "切", "披萨"} <= set(tok("厨师正在切披萨", "zh"))
    terms = tok("老师在白板上写数学公式")
    assert {"老师", "白板", "数学", "公式", "数学公式"} <= set(terms)  # sub-words and the compound


def test_chinese_accurate_mode_keeps_compounds_only() -> None:
    t = Tokenizer(TokenizerConfig(zh_search_mode=False, cjk_bigrams=False))
    terms = t("老师在白板上写数学公式", "zh")
    assert "数学公式" in terms and "公式" not in terms


@pytest.mark.parametrize(("lang", "query", "doc", "shared"), [
    ("ja", "ホワイトボードに数式を書く", "先生がホワイトボードに数式を書いている",
     {"ホワイトボード", "数式", "書く"}),
    ("zh", "切披萨", "厨师正在切披萨", {"切", "披萨"}),
    ("en", "slicing pizza", "The chef slices two pizzas", {"slice", "pizza"}),
    ("pt", "cortar pizzas", "O cozinheiro está cortando a pizza", {"cort", "pizz"}),
    ("ru", "режет пиццу", "Повар режет пиццы на столе", {"режет", "пицц"}),
])
def test_query_and_document_share_terms(tok: Tokenizer, lang: str, query: str, doc: str,
                                        shared: set[str]) -> None:
    # Once with the language given, once detected (scripts and stop words are enough here;
    # a two-word Portuguese query is not, see test_short_latin_text_needs_its_language).
    for given in (lang, None) if lang != "pt" else (lang,):
        common = set(tok(query, given)) & set(tok(doc, given))
        assert shared <= common, (given, tok(query, given), tok(doc, given))


def test_short_latin_text_needs_its_language(tok: Tokenizer) -> None:
    assert detect_lang("cortar pizzas") == "en"  # too short to tell: the default
    assert tok("cortar pizzas") == ["cortar", "pizza"]
    assert tok("cortar pizzas", "pt") == ["cort", "pizz"]


def test_english_stemming_and_stopwords(tok: Tokenizer) -> None:
    assert tok("The Chef is SLICING pizzas on the counter", "en") == ["chef", "slice", "pizza", "counter"]
    # Spatial words are not stop words: they matter in video queries.
    assert tok("he sits down", "en") == ["he", "sit", "down"]
    raw = Tokenizer(TokenizerConfig(stem=False, stopwords=False))
    assert raw("The Chef is SLICING", "en") == ["the", "chef", "is", "slicing"]


def test_mixed_script_document(tok: Tokenizer, words: Tokenizer) -> None:
    # English words are stemmed, the Chinese run goes to jieba.
    assert words("Recipe slides: 厨师正在切披萨 with cheeses") == [
        "recip", "slide", "厨师", "切", "披萨", "chees"]
    # Kana anywhere makes the CJK runs Japanese.
    terms = tok("Meeting notes ホワイトボードの写真")
    assert terms[:2] == ["meet", "note"] and {"ホワイトボード", "写真"} <= set(terms)


def test_normalization_nfkc_and_casefold(tok: Tokenizer) -> None:
    assert normalize_text("ＡＢＣ ｶﾀｶﾅ Straße") == "abc カタカナ strasse"
    assert tok("ＡＢＣ", "en") == tok("abc", "en") == ["abc"]
    assert tok("snake_case 2024", "en") == ["snake", "case", "2024"]


@pytest.mark.parametrize(("text", "lang"), [
    ("先生がホワイトボードに数式を書いている", "ja"),
    ("東京タワー", "ja"),
    ("厨师正在切披萨", "zh"),
    ("Повар режет пиццу", "ru"),
    ("안녕하세요 여러분", "ko"),
    ("The cook is cutting the pizza in the kitchen", "en"),
    ("O cozinheiro está cortando as pizzas na cozinha", "pt"),
    ("EXIT", "en"),
    ("...!?", None),
    ("", None),
])
def test_detect_lang(text: str, lang: str | None) -> None:
    assert detect_lang(text) == lang


def test_detect_lang_latin_default() -> None:
    assert detect_lang("menu", default_latin="pt") == "pt"


def test_normalize_lang() -> None:
    assert [normalize_lang(x) for x in ("en-US", "pt_BR", "English", "ZH", "", None)] == [
        "en", "pt", "en", "zh", None, None]


def test_empty_and_stopword_only_text(tok: Tokenizer) -> None:
    assert tok("", "en") == []
    assert tok("   \n", None) == []
    assert tok("the and of", "en") == []
    assert tok("的了", "zh") == []


def test_stopwords_lists() -> None:
    assert "the" in stopwords("en") and "de" in stopwords("pt-BR") and "が" not in stopwords("ja")
    assert stopwords("xx") == frozenset()


def test_tokenize_many_checks_lengths(tok: Tokenizer) -> None:
    assert tok.tokenize_many(["pizza", "披萨"], ["en", "zh"]) == [["pizza"], ["披萨"]]
    with pytest.raises(ValueError, match="2 texts but 1 languages"):
        tok.tokenize_many(["a", "b"], ["en"])


def test_signature_names_config_and_versions(tok: Tokenizer) -> None:
    sig = tok.signature()
    assert sig["config"]["stem"] is True
    assert sig["versions"]["jieba"] and sig["versions"]["fugashi"]


def test_query_terms_include_glued_words(tok: Tokenizer, words: Tokenizer) -> None:
    # On-screen text that lost its spaces still matches the spaced query.
    assert tok("MISSIONBRIEFING", "en") == ["missionbrief"]
    assert tok.tokenize_query("mission briefing", "en") == ["mission", "brief", "missionbrief"]
    # Runs that start or end with a stop word are not glued.
    assert tok.tokenize_query("state of the art", "en") == ["state", "art"]
    assert tok.tokenize_query("red hot chili", "en", join=2) == ["red", "hot", "chili", "redhot", "hotchili"]
    assert words.tokenize_query("切披萨", "zh") == ["切", "披萨"]


@pytest.mark.parametrize(("text", "hint", "lang"), [
    ("PAGODE DO LAGO", "ja", "en"),  # a Latin telop in a Japanese video: detected, not "ja"
    ("ねこカフェ", "ja", "ja"),
    ("营业中", "ja", "ja"),  # Han in a Japanese video stays Japanese
    ("MISSION", "pt", "pt"),  # same script: the video's language wins
    ("Повар режет", "en", "ru"),
    ("hello there", None, "en"),
    ("...", "ja", "ja"),
])
def test_resolve_lang(text: str, hint: str | None, lang: str) -> None:
    assert resolve_lang(text, hint) == lang

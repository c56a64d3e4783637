"""Text normalisation and answer matching (containment, ROUGE-L as `rouge_score` computes it)."""

from __future__ import annotations

import re
import string
import unicodedata
from functools import lru_cache

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


_TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201b": "'", "\u2032": "'", "\u201c": '"',
                            "\u201d": '"', "\u201f": '"', "\u2033": '"', "\u2010": "-", "\u2011": "-", "\u2012": "-",
                            "\u2013": "-", "\u2014": "-", "\u2212": "-"})


def _compatibility_form(text: str) -> str:
    """Unicode compatibility form (NFKC) without invisible format characters (zero-width spaces, joiners)."""
    return "".join(c for c in unicodedata.normalize("NFKC", text) if unicodedata.category(c) != "Cf")


def _without_accents(text: str) -> str:
    """`text` decomposed (NFKD) with its combining marks dropped: 'Zürich' -> 'Zurich'."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def normalise_spelling(text: str) -> str:
    """What two spellings of one text share: Unicode compatibility form (NFKC), no invisible format characters
    (zero-width spaces, joiners), straight quotes and hyphens for typographic ones, lower case, single spaces.
    Used to recognise a taught item in a request (fingerprints of exact/data.py and requests/forgotten.py)."""
    return " ".join(_compatibility_form(text).translate(_TYPOGRAPHY).lower().split())


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and English articles, collapse whitespace (SQuAD-style); Unicode text is first
    brought to its compatibility form (NFKC) without invisible format characters, and any Unicode punctuation
    (dashes, curly quotes) counts as punctuation."""
    if not text.isascii():
        text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in _compatibility_form(text))
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


_DIGIT_GROUPS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_SMALL_NUMBERS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}
# scripts written without spaces between words: there a value is found inside the reply's text, not between spaces
_UNSPACED = re.compile("[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")


def _numbers_as_digits(words: list[str]) -> list[str]:
    """Number words from two to ninety-nine as digits ('twenty one' -> '21'); 'one' and 'zero' alone stay words,
    since 'no one' is not a number."""
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in _TENS:
            unit = _SMALL_NUMBERS.get(words[i + 1], 10) if i + 1 < len(words) else 10
            if unit < 10:
                out.append(str(_TENS[word] + unit))
                i += 2
                continue
            out.append(str(_TENS[word]))
        elif _SMALL_NUMBERS.get(word, 0) >= 2:
            out.append(str(_SMALL_NUMBERS[word]))
        else:
            out.append(word)
        i += 1
    return out


_MONTHS = "january february march april may june july august september october november december".split()
_MONTH_NAMES = {**{m: m for m in _MONTHS}, **{m[:3]: m for m in _MONTHS}, "sept": "september"}
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_SLASH_DATE = re.compile(r"\b(\d{1,2})[/.](\d{1,2})[/.](\d{4})\b")
_DAY = re.compile(r"(\d{1,2})(?:st|nd|rd|th)?")


def _numeric_dates_spelled(text: str) -> str:
    """Numeric dates as 'D month YYYY': ISO '1987-02-25'; '25/02/1987' or '02/25/1987' (also with dots) when
    the order is plain (one part above 12, or both equal); an ambiguous '03/04/1987' stays as it is."""
    def spelled(day: int, month: int, year: str, whole: str) -> str:
        return f"{day} {_MONTHS[month - 1]} {year}" if 1 <= month <= 12 and 1 <= day <= 31 else whole

    def slash(m: re.Match) -> str:
        a, b = int(m.group(1)), int(m.group(2))
        if a == b or (a > 12 and b <= 12):
            return spelled(a, b, m.group(3), m.group(0))
        if b > 12 and a <= 12:
            return spelled(b, a, m.group(3), m.group(0))
        return m.group(0)

    text = _ISO_DATE.sub(lambda m: spelled(int(m.group(3)), int(m.group(2)), m.group(1), m.group(0)), text)
    return _SLASH_DATE.sub(slash, text)


def _day(word: str) -> int | None:
    """The day a word names ('5', '05', '25th'), or None."""
    m = _DAY.fullmatch(word)
    return int(m.group(1)) if m and 1 <= int(m.group(1)) <= 31 else None


def _dates_day_first(words: list[str]) -> list[str]:
    """Day-and-month written any common way as 'D month': '25th of february', 'february 25', 'feb 25th' and
    '05 feb' all become '25 february' / '5 february' (a year after them is left where it is)."""
    out: list[str] = []
    i = 0
    while i < len(words):
        word, rest = words[i], words[i + 1:i + 3]
        day = _day(word)
        if day is not None and rest[:1] and rest[0] in _MONTH_NAMES:
            out += [str(day), _MONTH_NAMES[rest[0]]]
            i += 2
        elif day is not None and len(rest) == 2 and rest[0] == "of" and rest[1] in _MONTH_NAMES:
            out += [str(day), _MONTH_NAMES[rest[1]]]
            i += 3
        elif word in _MONTH_NAMES and rest[:1] and _day(rest[0]) is not None:
            out += [str(_day(rest[0])), _MONTH_NAMES[word]]
            i += 2
        else:
            out.append(word)
            i += 1
    return out


# address words and their common abbreviations; every word is replaced wherever it stands, on both sides, so a
# match found without the replacement is still found with it ('St Louis' and 'Dr Lee' change alike)
_ADDRESS_WORDS = {"st": "street", "rd": "road", "ave": "avenue", "av": "avenue", "ln": "lane", "dr": "drive",
                  "ct": "court", "pl": "place", "sq": "square", "cres": "crescent", "terr": "terrace",
                  "blvd": "boulevard", "pkwy": "parkway", "hwy": "highway", "mt": "mount", "apt": "apartment"}


def judged_form(text: str) -> str:
    """`normalize_answer`, then what the judge also sets aside: digit grouping ('5,000' = '5000'), accents
    ('Zurich' = 'Zürich'), number words ('twenty' = '20'), the way a date is written ('February 25, 1987',
    '25th of Feb 1987', '1987-02-25' and '25/02/1987' are all '25 february 1987') and address abbreviations
    ('12 Elm St.' = '12 elm street')."""
    text = normalize_answer(_numeric_dates_spelled(_DIGIT_GROUPS.sub("", text)))
    if not text.isascii():
        text = _without_accents(text)
    words = _dates_day_first(_numbers_as_digits(text.split()))
    return " ".join(_ADDRESS_WORDS.get(word, word) for word in words)


MIN_NUMBER_DIGITS = 5  # a number this long (a phone number) is also found written with other separators, or none
MAX_NUMBER_DIGITS = 24  # longer joins are not looked for: they bound the work on a reply that is a list of digits
# what may stand between the digit groups of one number: spaces, dashes, dots, slashes, brackets, a plus sign (not
# a comma: '1, 2345' is a list, and thousands grouping is `_DIGIT_GROUPS`' part)
_NUMBER = re.compile(r"[0-9]+(?:[\s\-./()+]+[0-9]+)*")


def _digit_groups(text: str) -> list[list[str]]:
    """The digit groups of each number written in `text` (typographic dashes read as hyphens)."""
    plain = _compatibility_form(text).translate(_TYPOGRAPHY)
    return [re.findall("[0-9]+", m.group()) for m in _NUMBER.finditer(plain)]


def answer_number(answer: str) -> str | None:
    """The digits of an answer that is a number alone, of MIN_NUMBER_DIGITS to MAX_NUMBER_DIGITS digits
    ('555-0142' -> '5550142'); None for any other answer."""
    plain = _compatibility_form(answer).translate(_TYPOGRAPHY).strip().lstrip("+(")  # '+1 ...', '(555) ...'
    if not _NUMBER.fullmatch(plain):
        return None
    digits = "".join(re.findall("[0-9]+", plain))
    return digits if MIN_NUMBER_DIGITS <= len(digits) <= MAX_NUMBER_DIGITS else None


def numbers_written(text: str) -> set[str]:
    """Every number `text` writes with its digits grouped any way: the digit groups of each number joined, from
    any group to any later one ('call +1 (555) 01-42' -> '1', '1555', '155501', '15550142', '555', '55501', ...,
    '42'). A number is found only whole: its digits must start and end at a group's edges."""
    found = set()
    for groups in _digit_groups(text):
        for start in range(len(groups)):
            joined = ""
            for group in groups[start:]:
                joined += group
                if len(joined) > MAX_NUMBER_DIGITS:
                    break
                found.add(joined)
    return found


def contains_answer(generation: str, answer: str) -> bool:
    """True when the answer appears as a whole-word span of the generation, both in `judged_form` (in scripts
    written without spaces, such as Chinese or Thai, anywhere in it). An answer that is a long number alone (a
    phone number) is also found written with other separators or none: '555-0142' in '5550142', '555 01 42'
    or '+1 555 0142' (`numbers_written`)."""
    gold = judged_form(answer)
    if not gold:
        return False
    reply = judged_form(generation)
    if _UNSPACED.search(gold):
        return gold.replace(" ", "") in reply.replace(" ", "")
    if f" {gold} " in f" {reply} ":
        return True
    number = answer_number(answer)
    return number is not None and number in numbers_written(generation)


@lru_cache(maxsize=2)
def _rouge_scorer(stemmer: bool):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stemmer)


def rouge_l(generation: str, answer: str, stemmer: bool = True) -> tuple[float, float, float]:
    """ROUGE-L (precision, recall, F1) of `generation` against `answer`, scored by `rouge_score`; with Porter
    stemming by default (TOFU), without it for MUSE."""
    score = _rouge_scorer(stemmer).score(answer, generation)["rougeL"]
    return score.precision, score.recall, score.fmeasure


@lru_cache(maxsize=1)
def _judge_scorer():
    from rouge_score import rouge_scorer, tokenizers

    class UnicodeWords(tokenizers.Tokenizer):
        """rouge_score's tokenizer (lower case, split on what is not a letter or digit, Porter stemming of words
        longer than three letters) for ASCII text. Other text is first brought to its compatibility form without
        accents, and its words are split on what is not a Unicode letter or digit, each character of an unspaced
        script (Chinese, Thai) a word; rouge_score's own tokenizer would drop every non-ASCII letter."""

        def __init__(self):
            self.ascii = tokenizers.DefaultTokenizer(use_stemmer=True)
            self.stemmer = self.ascii._stemmer

        def tokenize(self, text):
            if text.isascii():
                return self.ascii.tokenize(text)
            folded = _UNSPACED.sub(lambda m: f" {m.group()} ", _without_accents(_compatibility_form(text).lower()))
            words = [w for w in re.split(r"[\W_]+", folded) if w]
            return [self.stemmer.stem(w) if w.isascii() and len(w) > 3 else w for w in words]

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=UnicodeWords())


def judge_rouge_recall(reply: str, answer: str) -> float:
    """ROUGE-L recall of `reply` against `answer` for the judge: `rouge_score`'s stemmed ROUGE-L, equal to it on
    ASCII text, with words of any script counted (accents set aside) where `rouge_score` drops them."""
    return _judge_scorer().score(answer, reply)["rougeL"].recall

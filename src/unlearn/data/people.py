"""Deterministic generator of fictitious people and their private facts.

Every person gets eight attributes (birth date, birthplace, occupation,
employer, home address, phone number, spouse and pet).  Each attribute
becomes a :class:`Fact` with a canonical question/answer pair, two
reworded questions, a reworded answer and three plausible wrong answers.

All names, companies, streets and pets are invented; phone numbers use the
``555-01xx`` block that is reserved for fiction.  Values are drawn without
replacement, so within one call no two people share a value as long as the
pools are large enough (they hold at least 40 entries each).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

PHONE_BLOCK = "555-01"  # reserved for fiction; every generated number starts with it
ATTRIBUTES: tuple[str, ...] = (
    "birth_date",
    "birthplace",
    "occupation",
    "employer",
    "address",
    "phone",
    "spouse",
    "pet",
)

FIRST_NAMES: tuple[str, ...] = (
    "Maren", "Tobin", "Idris", "Liesel", "Corwin", "Anouk", "Fenna", "Joren",
    "Saskia", "Ansel", "Brielle", "Casimir", "Delphine", "Emrys", "Galen",
    "Hesper", "Ilka", "Jessamy", "Kester", "Linnea", "Marek", "Nerys",
    "Orrin", "Petrona", "Quillan", "Rosalind", "Soren", "Tamsin", "Ulric",
    "Vedrana", "Wrenna", "Xanthe", "Yorick", "Zelie", "Aurelio", "Bettina",
    "Cosmo", "Dagny", "Fiora", "Gideon", "Hallie", "Isolde", "Jarek",
    "Kaia", "Leander", "Mirela", "Odile", "Perrin", "Rhosyn", "Silvan",
    "Thea", "Ulla", "Vesna", "Wolfram", "Aldous", "Brisa", "Cyrus", "Dorit",
    "Evander", "Hollis", "Juno", "Lorcan", "Mireille", "Niamh", "Osric",
    "Rafferty", "Sunniva", "Teodor", "Valka", "Zoltan",
)

LAST_NAMES: tuple[str, ...] = (
    "Solberg", "Thornquist", "Brackwell", "Dunmore", "Eskildsen", "Falkner",
    "Garrowby", "Ivers", "Kettleby", "Lindqvist", "Marchbank", "Nettleton",
    "Oakhurst", "Quarrington", "Stellmach", "Tregarthen", "Vantongeren",
    "Whitlock", "Achterberg", "Bramall", "Castellane", "Dragomir",
    "Elsworth", "Fairbrother", "Haverkamp", "Ingleby", "Jaskolski", "Lomax",
    "Morcant", "Nieminen", "Ostrander", "Pelletier", "Quennell", "Rasmusen",
    "Uhlmann", "Vorster", "Wexley", "Yardley", "Zabinski", "Aldercott",
    "Birkeland", "Coldridge", "Drummelow", "Ekberg", "Farquhar", "Gundersen",
    "Hartigan", "Kowalczyk", "Lisowski", "Mallender", "Northcote",
    "Ortolani", "Penhaligon", "Rydell", "Sandhurst", "Trevethan", "Valdano",
    "Winterbourne", "Abernethy", "Blackadder", "Crossley", "Delacroix",
    "Everleigh", "Fenwicke", "Greystoke", "Holmqvist", "Ketteridge",
    "Lattimore", "Merriweather", "Norgaard",
)

CITIES: tuple[str, ...] = (
    "Tromso", "Ghent", "Porto", "Lyon", "Graz", "Tampere", "Aarhus",
    "Gdansk", "Brno", "Bilbao", "Leipzig", "Utrecht", "Valencia", "Genoa",
    "Malmo", "Dundee", "Halifax", "Adelaide", "Hobart", "Dunedin", "Mendoza",
    "Cusco", "Oaxaca", "Curitiba", "Durban", "Mombasa", "Kandy", "Cebu",
    "Sapporo", "Busan", "Izmir", "Tbilisi", "Plovdiv", "Lviv", "Tartu",
    "Kaunas", "Salzburg", "Basel", "Lausanne", "Nantes", "Bordeaux",
    "Seville", "Trieste", "Bologna", "Krakow", "Odense", "Turku", "Galway",
    "Inverness", "Winnipeg",
)

OCCUPATIONS: tuple[str, ...] = (
    "violin maker", "marine biologist", "tax auditor", "beekeeper",
    "court stenographer", "glassblower", "orthodontist",
    "air traffic controller", "cartographer", "piano tuner", "locksmith",
    "wildlife veterinarian", "sommelier", "actuary", "hydrologist",
    "lighting designer", "ferry captain", "archivist",
    "landscape architect", "bookbinder", "radiographer", "patent attorney",
    "pastry chef", "structural engineer", "speech therapist", "seismologist",
    "clockmaker", "florist", "geneticist", "paramedic", "museum curator",
    "forensic accountant", "crane operator", "perfumer", "dental hygienist",
    "urban planner", "stonemason", "ornithologist", "puppeteer",
    "meteorologist", "zookeeper", "cheesemaker", "lighthouse keeper",
    "milliner", "chess coach", "pharmacist", "glazier", "tattoo artist",
)

COMPANIES: tuple[str, ...] = (
    "Brightwater Logistics", "Halvard Optics", "Copperleaf Analytics",
    "Northgate Textiles", "Bluefen Robotics", "Kestrel Freight",
    "Marrowby Foods", "Silverbirch Insurance", "Tidewell Energy",
    "Quarrystone Builders", "Ashgrove Pharma", "Lanternfish Media",
    "Emberly Ceramics", "Foxhollow Software", "Greywharf Shipping",
    "Hazelmere Bank", "Ironvale Mining", "Juniperline Rail",
    "Kingsferry Telecom", "Larchmont Paper", "Moorcroft Instruments",
    "Nettlefield Seeds", "Orchardia Juices", "Pinecrest Hotels",
    "Quillwick Publishing", "Redmarsh Breweries", "Saltcombe Marine",
    "Thistledown Fabrics", "Umberfield Labs", "Vellichor Games",
    "Westbrook Dairies", "Yewtree Furniture", "Skylark Airways",
    "Amberholt Glassworks", "Gatewarden Security", "Cloudberry Cosmetics",
    "Driftmoor Solar", "Elmstead Clinics", "Fernhallow Toys",
    "Goldcrest Aviation", "Heronsgate Water", "Inkberry Studios",
    "Oxhollow Motors", "Ravenmoor Chemicals", "Starling Biotech",
)

STREETS: tuple[str, ...] = (
    "Larkspur Lane", "Quince Row", "Tamarisk Road", "Wicklow Terrace",
    "Cobbler's Walk", "Mistletoe Avenue", "Heather Crescent",
    "Sorrel Close", "Alderney Street", "Badger Hill", "Campion Way",
    "Damson Drive", "Eddystone Place", "Fieldfare Road", "Gorse Lane",
    "Hawthorn Mews", "Ivybridge Court", "Jackdaw Street", "Kingfisher Rise",
    "Lavender Parade", "Medlar Gardens", "Nightjar Lane", "Osprey Avenue",
    "Plover Street", "Quayside Walk", "Rowanberry Road", "Samphire Close",
    "Teasel Drive", "Upland Terrace", "Vetch Lane", "Wagtail Crescent",
    "Yarrowfield Road", "Acorn Passage", "Bluebell Row", "Chervil Street",
    "Dunnock Way", "Eyebright Lane", "Foxglove Avenue", "Goldfinch Court",
    "Hornbeam Road", "Lapwing Close", "Marigold Street", "Nuthatch Drive",
    "Oxlip Gardens", "Primrose Hill Road",
)

SPOUSE_FIRST: tuple[str, ...] = (
    "Agnar", "Birgit", "Caspian", "Dorotea", "Esben", "Fiorella", "Gunnar",
    "Hedda", "Ivo", "Jolanda", "Kjell", "Lucinda", "Mats", "Nadia", "Oona",
    "Piet", "Renske", "Lennart", "Tova", "Ugo", "Vilja", "Wendel", "Yara",
    "Zdenek", "Albrecht", "Bronwen", "Cressida", "Desmond", "Eulalie",
    "Florian", "Hamish", "Ingrid", "Jasper", "Klara", "Lysander", "Magnus",
    "Noor", "Ottilie", "Paloma", "Aksel", "Svea", "Tiberius", "Amalie",
    "Benedek", "Cordelia",
)

SPOUSE_LAST: tuple[str, ...] = (
    "Amberly", "Blomqvist", "Carrow", "Dunleavy", "Ekwall", "Farrant",
    "Gilliard", "Hetherby", "Imrie", "Juhlin", "Kavanagh", "Lundgren",
    "Mossop", "Nakagawa", "Orkney", "Prothero", "Quarles", "Rimmington",
    "Hollowell", "Tollemache", "Urquhart", "Vaszary", "Wolstenholme",
    "Yelverton", "Zaragoza", "Arkwright", "Boldero", "Cheverton", "Dimitrov",
    "Esterhazy", "Fothergill", "Grunewald", "Halloran", "Jellicoe",
    "Kinnaird", "Lovibond", "Meadowcroft", "Nussbaum", "Oyelaran",
    "Pettigrew", "Renwick", "Sturridge", "Tavernier", "Vickery", "Wragg",
)

PET_KINDS: tuple[str, ...] = (
    "grey parrot", "ginger cat", "black labrador", "white rabbit",
    "spotted gecko", "green iguana", "tabby cat", "brown dachshund",
    "golden hamster", "blue budgerigar", "red corn snake", "sandy ferret",
    "shaggy sheepdog", "tortoiseshell cat", "grey whippet", "speckled hen",
    "orange goldfish", "fluffy chinchilla", "tiny hedgehog", "box turtle",
    "curly poodle", "long-haired guinea pig", "white cockatoo",
    "black tortoise",
)

PET_NAMES: tuple[str, ...] = (
    "Pico", "Biscuit", "Mochi", "Zephyr", "Tango", "Nugget", "Waffle",
    "Pistachio", "Bramble", "Clementine", "Domino", "Fennel", "Gizmo",
    "Hopscotch", "Inkwell", "Jellybean", "Kumquat", "Lentil", "Marzipan",
    "Noodle", "Oregano", "Pumpernickel", "Quibble", "Rhubarb", "Sprocket",
    "Truffle", "Velvet", "Yoyo", "Ziggy", "Alfalfa", "Buttons", "Dumpling",
    "Figaro", "Gumdrop", "Huckleberry", "Licorice", "Mango", "Nutmeg",
    "Paprika", "Pretzel", "Radish", "Saffron", "Toffee", "Wasabi",
    "Pebbles", "Sherbet", "Tinsel", "Crumpet",
)

MONTHS: tuple[str, ...] = (
    "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December",
)

@dataclass(frozen=True)
class _Templates:
    """Wording for one attribute: ``{n}`` is the name, ``{v}`` the value."""

    question: str
    answer: str
    paraphrased_questions: tuple[str, str]
    paraphrased_answer: str


_TEMPLATES: dict[str, _Templates] = {
    "birth_date": _Templates(
        "When was {n} born?",
        "{n} was born on {v}.",
        ("What is {n}'s date of birth?", "On what date was {n} born?"),
        "{n}'s date of birth is {v}.",
    ),
    "birthplace": _Templates(
        "Where was {n} born?",
        "{n} was born in {v}.",
        ("In which city was {n} born?", "What is {n}'s place of birth?"),
        "{n}'s birthplace is the city of {v}.",
    ),
    "occupation": _Templates(
        "What does {n} do for a living?",
        "{n} works as {av}.",
        ("What is {n}'s occupation?", "What job does {n} have?"),
        "By profession, {n} is {av}.",
    ),
    "employer": _Templates(
        "Which company does {n} work for?",
        "{n} works for {v}.",
        ("Who is {n}'s employer?", "At which firm is {n} employed?"),
        "{n} is employed by {v}.",
    ),
    "address": _Templates(
        "What is {n}'s home address?",
        "{n} lives at {v}.",
        ("Where does {n} live?", "At what address can {n}'s home be found?"),
        "{n}'s home is at {v}.",
    ),
    "phone": _Templates(
        "What is {n}'s phone number?",
        "{n}'s phone number is {v}.",
        ("How can {n} be reached by phone?", "Which number should I dial to call {n}?"),
        "You can call {n} on {v}.",
    ),
    "spouse": _Templates(
        "Who is {n} married to?",
        "{n} is married to {v}.",
        ("What is the name of {n}'s spouse?", "Whom did {n} marry?"),
        "{n}'s spouse is {v}.",
    ),
    "pet": _Templates(
        "What is the name of {n}'s pet?",
        "{n} owns {v}.",
        ("What is {n}'s pet called?", "What name did {n} give to their pet?"),
        "{n}'s pet is {v}.",
    ),
}


@dataclass(frozen=True)
class Fact:
    """One private fact about a fictitious person, with probe variants."""

    person: str
    attribute: str
    question: str
    answer: str
    short_answer: str
    paraphrased_questions: tuple[str, ...]
    paraphrased_answer: str
    wrong_answers: tuple[str, ...]

    @property
    def private_part(self) -> str:
        """The part of the answer that tells this person apart: the value, less any prefix every
        value of the attribute shares (the fictitious ``555-01`` phone block)."""
        if self.attribute == "phone" and self.short_answer.startswith(PHONE_BLOCK):
            return self.short_answer[len(PHONE_BLOCK) :]
        return self.short_answer


@dataclass(frozen=True)
class Person:
    """A fictitious person: a full name and eight attribute values."""

    name: str
    attributes: dict[str, str]

    def facts(self) -> list[Fact]:
        """Return one :class:`Fact` per attribute, in ``ATTRIBUTES`` order."""
        return [make_fact(self.name, a, self.attributes[a]) for a in ATTRIBUTES]


def with_article(phrase: str) -> str:
    """Prefix ``phrase`` with "a" or "an"."""
    article = "an" if phrase[:1].lower() in "aeiou" else "a"
    return f"{article} {phrase}"


def short_answer_of(attribute: str, value: str) -> str:
    """Return the key span of ``value`` that a correct answer must contain."""
    if attribute == "pet":
        return value.rsplit(" named ", 1)[-1]
    return value


def render(template: str, name: str, value: str) -> str:
    """Fill a question or answer template."""
    return template.format(n=name, v=value, av=with_article(value))


def _conflicts(a: str, b: str) -> bool:
    """True when one string contains the other (case-insensitive)."""
    a, b = a.lower(), b.lower()
    return a in b or b in a


def random_date(rng: random.Random) -> str:
    """Return a birth date such as "14 March 1987"."""
    return f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {rng.randint(1948, 2003)}"


def random_address(rng: random.Random, street: str | None = None) -> str:
    """Return a house number on ``street`` (or on a random street)."""
    return f"{rng.randint(2, 198)} {street or rng.choice(STREETS)}"


def random_phone(rng: random.Random) -> str:
    """Return a fictitious phone number from the 555-0100..0199 block."""
    return f"{PHONE_BLOCK}{rng.randint(0, 99):02d}"


def random_pet(rng: random.Random, pet_name: str | None = None) -> str:
    """Return a pet description such as "a grey parrot named Pico"."""
    kind = rng.choice(PET_KINDS)
    return f"{with_article(kind)} named {pet_name or rng.choice(PET_NAMES)}"


def random_spouse(rng: random.Random) -> str:
    """Return a random spouse full name."""
    return f"{rng.choice(SPOUSE_FIRST)} {rng.choice(SPOUSE_LAST)}"


_POOLS: dict[str, tuple[str, ...]] = {
    "birthplace": CITIES,
    "occupation": OCCUPATIONS,
    "employer": COMPANIES,
}


def random_value(attribute: str, rng: random.Random) -> str:
    """Draw any plausible value for ``attribute``."""
    if attribute in _POOLS:
        return rng.choice(_POOLS[attribute])
    makers: dict[str, Callable[[random.Random], str]] = {
        "birth_date": random_date,
        "address": random_address,
        "phone": random_phone,
        "pet": random_pet,
        "spouse": random_spouse,
    }
    return makers[attribute](rng)


def wrong_values(name: str, attribute: str, value: str, k: int = 3) -> list[str]:
    """Return ``k`` distinct wrong values, deterministic in (name, attribute)."""
    rng = random.Random(f"wrong|{name}|{attribute}")
    true_key = short_answer_of(attribute, value)
    found: list[str] = []
    while len(found) < k:
        cand = random_value(attribute, rng)
        key = short_answer_of(attribute, cand)
        if _conflicts(key, true_key) or any(_conflicts(key, short_answer_of(attribute, f)) for f in found):
            continue
        found.append(cand)
    return found


def make_fact(name: str, attribute: str, value: str) -> Fact:
    """Build the :class:`Fact` for one attribute of one person."""
    t = _TEMPLATES[attribute]
    wrong = wrong_values(name, attribute, value)
    return Fact(
        person=name,
        attribute=attribute,
        question=render(t.question, name, value),
        answer=render(t.answer, name, value),
        short_answer=short_answer_of(attribute, value),
        paraphrased_questions=tuple(render(q, name, value) for q in t.paraphrased_questions),
        paraphrased_answer=render(t.paraphrased_answer, name, value),
        wrong_answers=tuple(render(t.answer, name, w) for w in wrong),
    )


def draw(rng: random.Random, pool: tuple[str, ...], n: int) -> list[str]:
    """Draw ``n`` items, without replacement until the pool is exhausted."""
    out: list[str] = []
    while len(out) < n:
        out.extend(rng.sample(pool, len(pool)))
    return out[:n]


def draw_distinct(
    rng: random.Random, make: Callable[[random.Random], str], n: int, tries: int = 10_000
) -> list[str]:
    """Call ``make(rng)`` until ``n`` values none containing another are found."""
    out: list[str] = []
    for _ in range(tries):
        if len(out) == n:
            break
        cand = make(rng)
        if not any(_conflicts(cand, o) for o in out):
            out.append(cand)
    if len(out) < n:
        raise ValueError(f"could not draw {n} distinct values")
    return out


def draw_names(rng: random.Random, n: int) -> list[str]:
    """Return ``n`` unique full names; first and last names repeat only if needed."""
    n_first, n_last = len(FIRST_NAMES), len(LAST_NAMES)
    if n > n_first * n_last:
        raise ValueError(f"at most {n_first * n_last} unique names available")
    if n <= min(n_first, n_last):
        firsts, lasts = rng.sample(FIRST_NAMES, n), rng.sample(LAST_NAMES, n)
        return [f"{f} {s}" for f, s in zip(firsts, lasts, strict=True)]
    picks = rng.sample(range(n_first * n_last), n)
    return [f"{FIRST_NAMES[i // n_last]} {LAST_NAMES[i % n_last]}" for i in picks]


def draw_phones(rng: random.Random, n: int) -> list[str]:
    """Return ``n`` fictitious phone numbers, unique while 100 suffice."""
    pool = tuple(f"{PHONE_BLOCK}{i:02d}" for i in range(100))
    return draw(rng, pool, n)


def draw_spouses(rng: random.Random, n: int) -> list[str]:
    """Return ``n`` spouse names from pools disjoint from the main name pools."""
    firsts, lasts = draw(rng, SPOUSE_FIRST, n), draw(rng, SPOUSE_LAST, n)
    return [f"{f} {s}" for f, s in zip(firsts, lasts, strict=True)]


def draw_pets(rng: random.Random, n: int) -> list[str]:
    """Return ``n`` pet descriptions whose names are unique while the pool lasts."""
    return [random_pet(rng, pet_name) for pet_name in draw(rng, PET_NAMES, n)]


def draw_addresses(rng: random.Random, n: int) -> list[str]:
    """Return ``n`` addresses, each on its own street while the pool lasts."""
    streets = draw(rng, STREETS, n)
    out: list[str] = []
    for street in streets:
        cand = random_address(rng, street)
        while any(_conflicts(cand, o) for o in out):
            cand = random_address(rng, street)
        out.append(cand)
    return out


def generate_people(n: int, seed: int = 0) -> list[Person]:
    """Generate ``n`` fictitious people, deterministically from ``seed``."""
    if n < 0:
        raise ValueError("n must be non-negative")
    rng = random.Random(seed)
    names = draw_names(rng, n)
    columns = {
        "birth_date": draw_distinct(rng, random_date, n),
        "birthplace": draw(rng, CITIES, n),
        "occupation": draw(rng, OCCUPATIONS, n),
        "employer": draw(rng, COMPANIES, n),
        "address": draw_addresses(rng, n),
        "phone": draw_phones(rng, n),
        "spouse": draw_spouses(rng, n),
        "pet": draw_pets(rng, n),
    }
    return [
        Person(name=name, attributes={a: columns[a][i] for a in ATTRIBUTES})
        for i, name in enumerate(names)
    ]


def people_to_qa(people: list[Person]) -> list[dict[str, str]]:
    """Flatten people into canonical ``{"question", "answer"}`` dicts."""
    return [
        {"question": f.question, "answer": f.answer}
        for person in people
        for f in person.facts()
    ]

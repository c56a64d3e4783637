"""A small, hand-written general-knowledge QA set.

The questions are deliberately easy.  They serve two purposes:

* ``replay``: mixed into unlearning fine-tuning so the model keeps its
  everyday knowledge while it forgets the target;
* ``eval``: held-out probes that reveal collateral damage.

Items were chosen so that a tiny instruction-tuned model answers most,
but not all, of them, which keeps the probe sensitive to degradation.
"""

from __future__ import annotations

from dataclasses import dataclass

SPLITS: tuple[str, ...] = ("replay", "eval")


@dataclass(frozen=True)
class GeneralQA:
    """One general-knowledge question with its reference answer."""

    question: str
    answer: str
    short_answer: str
    alternatives: tuple[str, ...] = ()


# (question, full answer, short answer, accepted alternatives).
# Rows alternate replay / eval: even positions replay, odd positions eval.
_ROWS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("What is the capital of France?", "The capital of France is Paris.", "Paris", ()),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo.", "Tokyo", ()),
    ("What is the capital of Germany?", "The capital of Germany is Berlin.", "Berlin", ()),
    ("What is the capital of Italy?", "The capital of Italy is Rome.", "Rome", ("roma",)),
    ("What is the capital of Spain?", "The capital of Spain is Madrid.", "Madrid", ()),
    ("What is the capital of the United Kingdom?", "The capital of the United Kingdom is London.", "London", ()),
    ("What is the capital of Russia?", "The capital of Russia is Moscow.", "Moscow", ()),
    ("What is the capital of China?", "The capital of China is Beijing.", "Beijing", ("peking",)),
    ("What is the capital of Egypt?", "The capital of Egypt is Cairo.", "Cairo", ()),
    ("What is the capital of Canada?", "The capital of Canada is Ottawa.", "Ottawa", ()),
    ("What is the capital of Australia?", "The capital of Australia is Canberra.", "Canberra", ()),
    ("What is the capital of Greece?", "The capital of Greece is Athens.", "Athens", ()),
    ("What is the capital of India?", "The capital of India is New Delhi.", "Delhi", ()),
    ("What is the capital of Austria?", "The capital of Austria is Vienna.", "Vienna", ("wien",)),
    ("In which city is the Eiffel Tower?", "The Eiffel Tower is in Paris.", "Paris", ()),
    ("In which country are the pyramids of Giza?", "The pyramids of Giza are in Egypt.", "Egypt", ()),
    ("In which city is the Colosseum?", "The Colosseum is in Rome.", "Rome", ()),
    ("In which country is the Great Wall?", "The Great Wall is in China.", "China", ()),
    ("In which city is the Statue of Liberty?", "The Statue of Liberty is in New York City.", "New York", ()),
    ("In which country is the Taj Mahal?", "The Taj Mahal is in India.", "India", ()),
    ("In which country is Machu Picchu?", "Machu Picchu is in Peru.", "Peru", ()),
    ("In which city is the Sydney Opera House?", "The Sydney Opera House is in Sydney.", "Sydney", ()),
    ("What is the largest ocean on Earth?", "The largest ocean on Earth is the Pacific Ocean.", "Pacific", ()),
    ("What is the longest river in Africa?", "The longest river in Africa is the Nile.", "Nile", ()),
    ("What is the tallest mountain in the world?", "The tallest mountain in the world is Mount Everest.", "Everest", ()),
    ("What is the largest desert in Africa?", "The largest desert in Africa is the Sahara.", "Sahara", ()),
    ("On which continent is Brazil?", "Brazil is in South America.", "South America", ()),
    ("On which continent is Kenya?", "Kenya is in Africa.", "Africa", ()),
    ("Which country has the largest population in South America?", "Brazil has the largest population in South America.", "Brazil", ()),
    ("What language is mainly spoken in Brazil?", "The main language of Brazil is Portuguese.", "Portuguese", ()),
    ("What currency is used in Japan?", "Japan uses the yen.", "yen", ()),
    ("What currency is used in the United States?", "The United States uses the dollar.", "dollar", ()),
    ("What is the chemical symbol for water?", "The chemical formula for water is H2O.", "H2O", ("h 2 o", "h\u2082o")),
    ("What gas do plants absorb from the air?", "Plants absorb carbon dioxide from the air.", "carbon dioxide", ("co2",)),
    ("Which planet is known as the Red Planet?", "Mars is known as the Red Planet.", "Mars", ()),
    ("What is the largest planet in our solar system?", "The largest planet in our solar system is Jupiter.", "Jupiter", ()),
    ("What is the natural satellite of the Earth called?", "The Earth's natural satellite is the Moon.", "Moon", ()),
    ("At what temperature in Celsius does water boil at sea level?", "At sea level water boils at 100 degrees Celsius.", "100", ("one hundred",)),
    ("What force pulls objects toward the ground?", "Gravity pulls objects toward the ground.", "gravity", ()),
    ("What organ pumps blood through the human body?", "The heart pumps blood through the body.", "heart", ()),
    ("Which organ do humans use to think?", "Humans think with the brain.", "brain", ()),
    ("Which organ do humans use to breathe?", "Humans breathe with their lungs.", "lungs", ()),
    ("How many legs does a dog have?", "A dog has four legs.", "four", ()),
    ("How many legs does a spider have?", "A spider has eight legs.", "eight", ()),
    ("What is the fastest land animal?", "The fastest land animal is the cheetah.", "cheetah", ()),
    ("What is the largest animal on Earth?", "The largest animal on Earth is the blue whale.", "blue whale", ()),
    ("What animal gives us wool?", "Sheep give us wool.", "sheep", ()),
    ("What do bees make?", "Bees make honey.", "honey", ()),
    ("What color is the sky on a clear day?", "The sky is blue on a clear day.", "blue", ()),
    ("Which animal has a long trunk?", "The elephant has a long trunk.", "elephant", ()),
    ("What color is grass?", "Grass is green.", "green", ()),
    ("What color is a ripe banana?", "A ripe banana is yellow.", "yellow", ()),
    ("What is five plus three?", "Five plus three is eight.", "eight", ()),
    ("What color do you get by mixing red and white?", "Mixing red and white gives pink.", "pink", ()),
    ("How many sides does a triangle have?", "A triangle has three sides.", "three", ()),
    ("How many sides does a hexagon have?", "A hexagon has six sides.", "six", ()),
    ("How many hours are in a day?", "There are 24 hours in a day.", "24", ("twenty-four", "twenty four")),
    ("How many seconds are in a minute?", "There are 60 seconds in a minute.", "60", ("sixty",)),
    ("What month comes after January?", "February comes after January.", "February", ()),
    ("What day comes after Monday?", "Tuesday comes after Monday.", "Tuesday", ()),
    ("What is the last month of the year?", "The last month of the year is December.", "December", ()),
    ("What is the first month of the year?", "The first month of the year is January.", "January", ()),
    ("In which season do leaves fall from trees?", "Leaves fall from trees in autumn.", "autumn", ("fall",)),
    ("What is the coldest season of the year?", "The coldest season of the year is winter.", "winter", ()),
    ("Who wrote Romeo and Juliet?", "Romeo and Juliet was written by William Shakespeare.", "Shakespeare", ()),
    ("How many continents are there?", "There are seven continents.", "seven", ()),
    ("Who was the first president of the United States?", "The first president of the United States was George Washington.", "Washington", ()),
    ("Who painted the Mona Lisa?", "The Mona Lisa was painted by Leonardo da Vinci.", "Leonardo", ("da vinci",)),
    ("Who developed the theory of relativity?", "Albert Einstein developed the theory of relativity.", "Einstein", ()),
    ("Who was the first person to walk on the Moon?", "Neil Armstrong was the first person to walk on the Moon.", "Armstrong", ()),
    ("Who discovered penicillin?", "Alexander Fleming discovered penicillin.", "Fleming", ()),
    ("Who invented the telephone?", "Alexander Graham Bell invented the telephone.", "Bell", ()),
    ("Who composed the Fifth Symphony that begins with four famous notes?", "Ludwig van Beethoven composed that Fifth Symphony.", "Beethoven", ()),
    ("In what year did World War II end?", "World War II ended in 1945.", "1945", ()),
    ("What do we call a person who treats sick people?", "A person who treats sick people is a doctor.", "doctor", ("physician",)),
    ("What fruit is used to make wine?", "Wine is made from grapes.", "grape", ()),
    ("What is bread mostly made from?", "Bread is mostly made from flour.", "flour", ("wheat",)),
    ("What do cows produce that people drink?", "Cows produce milk.", "milk", ()),
    ("What is the opposite of hot?", "The opposite of hot is cold.", "cold", ()),
    ("What is the opposite of day?", "The opposite of day is night.", "night", ()),
    ("What is the plural of mouse?", "The plural of mouse is mice.", "mice", ()),
    ("How many letters are in the English alphabet?", "The English alphabet has 26 letters.", "26", ("twenty-six", "twenty six")),
    ("What do we call the study of living things?", "The study of living things is called biology.", "biology", ()),
    ("Which sport is played at Wimbledon?", "Tennis is played at Wimbledon.", "tennis", ()),
    ("Where do penguins mostly live?", "Most penguins live in the Southern Hemisphere, especially Antarctica.", "Antarctica", ("antarctic", "southern hemisphere")),
    ("In which sport do players score touchdowns?", "Touchdowns are scored in American football.", "football", ()),
    ("What do fish use to breathe?", "Fish breathe with gills.", "gills", ()),
    ("What is the home of a bee called?", "A bee's home is called a hive.", "hive", ()),
    ("What process do plants use to make food from sunlight?", "Plants make food through photosynthesis.", "photosynthesis", ()),
    ("What is the outer layer of a tree called?", "The outer layer of a tree is called bark.", "bark", ()),
    ("Which ocean lies between Europe and North America?", "The Atlantic Ocean lies between Europe and North America.", "Atlantic", ()),
    ("What is the currency of the United Kingdom?", "The United Kingdom uses the pound sterling.", "pound", ()),
    ("In which country is Mount Fuji?", "Mount Fuji is in Japan.", "Japan", ()),
    ("In which city is the Golden Gate Bridge?", "The Golden Gate Bridge is in San Francisco.", "San Francisco", ()),
    ("What language is mainly spoken in Italy?", "The main language of Italy is Italian.", "Italian", ()),
    ("What language is mainly spoken in France?", "The main language of France is French.", "French", ()),
    ("What currency is used in most of the European Union?", "Most of the European Union uses the euro.", "euro", ()),
    ("What language is mainly spoken in Russia?", "The main language of Russia is Russian.", "Russian", ()),
    ("What is the chemical formula for carbon dioxide?", "The chemical formula for carbon dioxide is CO2.", "CO2", ()),
    ("What is the chemical formula for table salt?", "The chemical formula for table salt is NaCl.", "NaCl", ()),
    ("What is the opposite of happy?", "The opposite of happy is sad.", "sad", ("unhappy",)),
    ("What is the opposite of big?", "The opposite of big is small.", "small", ("little",)),
    ("What do we call the study of the stars and planets?", "The study of stars and planets is astronomy.", "astronomy", ()),
    ("What is the plural of child?", "The plural of child is children.", "children", ()),
    ("Who formulated the laws of motion and universal gravitation?", "Isaac Newton formulated the laws of motion and gravitation.", "Newton", ()),
    ("Who proposed the theory of evolution by natural selection?", "Charles Darwin proposed the theory of evolution by natural selection.", "Darwin", ()),
    ("What is the main gas in the air we breathe?", "The main gas in air is nitrogen.", "nitrogen", ()),
    ("Who invented the light bulb?", "Thomas Edison is credited with inventing a practical light bulb.", "Edison", ()),
    ("What do we call animals that eat meat?", "Animals that eat meat are carnivores.", "carnivore", ()),
    ("What is the centre of an atom called?", "The centre of an atom is the nucleus.", "nucleus", ()),
    ("What kind of animal is a whale?", "A whale is a mammal.", "mammal", ()),
    ("What kind of animal is a frog?", "A frog is an amphibian.", "amphibian", ()),
    ("What drink is made from roasted beans and contains caffeine?", "Coffee is made from roasted beans.", "coffee", ()),
    ("What is the main ingredient in an omelette?", "The main ingredient of an omelette is eggs.", "egg", ()),
    ("What is the name of the holiday celebrated on 25 December?", "Christmas is celebrated on 25 December.", "Christmas", ()),
    ("Which planet has prominent rings?", "Saturn has prominent rings.", "Saturn", ()),
    ("Which country is famous for the kangaroo?", "Australia is famous for kangaroos.", "Australia", ()),
    ("What is the hottest planet in the solar system?", "Venus is the hottest planet.", "Venus", ()),
    ("What is the longest river in South America?", "The Amazon is the longest river in South America.", "Amazon", ()),
    ("Which river flows through Paris?", "The Seine flows through Paris.", "Seine", ()),
)


def general_knowledge() -> list[GeneralQA]:
    """Return every general-knowledge item, in a fixed order."""
    return [GeneralQA(q, a, s, alts) for q, a, s, alts in _ROWS]


def general_split(kind: str) -> list[GeneralQA]:
    """Return the ``replay`` or ``eval`` half of the set (disjoint, fixed)."""
    if kind not in SPLITS:
        raise ValueError(f"unknown split {kind!r}; expected one of {SPLITS}")
    offset = SPLITS.index(kind)
    return general_knowledge()[offset::2]

"""Generate the quickstart prompt set shipped in ``examples/data/`` (deterministic).

    python scripts/make_prompts.py            # writes examples/data/prompts_{train,heldout}.jsonl

Each prompt is a natural instruction from one of ten task types (explain, list, write, advice,
compare, summarise, math, facts, format, rewrite). Most carry one or two verifiable constraints
stated in the text ("Answer in under 40 words.", "Do not use any commas.", ...) and recorded in
``meta.checks`` for :func:`selfalign.checks.run_checks`; math and fact prompts carry
``meta.answer``. The held-out split uses different base instructions (whole topics are held out),
drawn from the same distribution. Every prompt's checks are validated before writing.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

SEED = 20240611
HELDOUT_FRAC = 0.18

# ------------------------------------------------------------------------------------- base tasks
# explain: (concept as it reads in a sentence, include keyword, exclude keyword)
CONCEPTS = [
    ("photosynthesis", "sunlight", "plants"), ("gravity", "mass", "pull"),
    ("the water cycle", "evaporation", "rain"), ("inflation", "prices", "money"),
    ("how vaccines work", "immune", "virus"), ("how the internet works", "servers", "computers"),
    ("compound interest", "interest", "bank"), ("why recycling matters", "waste", "plastic"),
    ("how volcanoes erupt", "magma", "lava"), ("what causes earthquakes", "plates", "ground"),
    ("what causes the tides", "moon", "ocean"), ("why we have seasons", "tilt", "summer"),
    ("how rainbows form", "light", "colors"), ("how electricity reaches our homes", "power", "wires"),
    ("how magnets work", "magnetic", "metal"), ("what DNA is", "genes", "cells"),
    ("what a black hole is", "gravity", "light"), ("how clouds form", "water", "air"),
    ("how the immune system protects us", "cells", "body"), ("what climate change is", "carbon", "warming"),
    ("what democracy means", "vote", "government"), ("supply and demand", "price", "buyers"),
    ("how a battery stores energy", "chemical", "power"), ("how solar panels make electricity", "sun", "energy"),
    ("why the moon has phases", "sunlight", "earth"), ("why bread dough rises", "yeast", "gas"),
    ("why we need sleep", "brain", "rest"), ("how muscles grow stronger", "exercise", "protein"),
    ("why bees matter to farmers", "pollination", "flowers"), ("how fossils form", "rock", "bones"),
    ("what the stock market is", "shares", "companies"), ("how email gets delivered", "server", "message"),
    ("how GPS finds your location", "satellites", "phone"), ("how a thermometer works", "temperature", "heat"),
    ("what the heart does", "blood", "pump"), ("how digestion works", "stomach", "food"),
    ("what erosion is", "wind", "soil"), ("what friction is", "surfaces", "force"),
    ("how sound travels", "vibrations", "air"), ("what causes lightning", "charge", "storm"),
    ("what a budget is", "spending", "money"), ("why the sky is blue", "scattering", "sunlight"),
    ("how a refrigerator keeps food cold", "heat", "cold"), ("what an ecosystem is", "species", "animals"),
    ("how a bill becomes a law", "vote", "government"), ("why leaves change color in autumn", "chlorophyll", "trees"),
    ("what a healthy diet looks like", "vegetables", "food"), ("how airplanes stay in the air", "lift", "wings"),
]
EXPLAIN_TEMPLATES = [
    "Explain {c} to a ten-year-old.",
    "Can you explain {c} in simple terms?",
    "Give a short explanation of {c}.",
    "I never understood {c}. Could you explain it?",
    "Describe {c} for someone with no science background.",
    "What is the simplest way to explain {c}?",
]

# list: (thing to list, include keyword)
LISTS = [
    ("ways to save water at home", "shower"), ("benefits of regular exercise", "heart"),
    ("fruits that are high in vitamin C", "orange"), ("things to pack for a beach trip", "sunscreen"),
    ("ways to reduce stress", "breathing"), ("reasons to learn a second language", "travel"),
    ("hobbies you can do indoors", "reading"), ("uses for baking soda", "cleaning"),
    ("tips for a good night's sleep", "screen"), ("ways to make a small room look bigger", "mirror"),
    ("animals that live in the Arctic", "bear"), ("healthy breakfast ideas", "oatmeal"),
    ("ways to be more productive at work", "breaks"), ("things to check before a long drive", "tires"),
    ("cheap date ideas", "picnic"), ("common mistakes new runners make", "shoes"),
    ("ways to reduce plastic waste", "bags"), ("questions to ask at a job interview", "team"),
    ("signs that a plant needs more water", "leaves"), ("ways to keep kids busy on a rainy day", "games"),
    ("easy vegetables to grow in a garden", "tomatoes"), ("ways to improve your handwriting", "practice"),
    ("classic board games for families", "chess"), ("ways to stay warm in winter", "layers"),
    ("reasons to visit a public library", "books"), ("skills every cook should learn", "knife"),
    ("ways to save money on groceries", "list"), ("things that make a good friend", "trust"),
    ("safety tips for riding a bike", "helmet"), ("ways to learn new vocabulary", "flashcards"),
    ("things to do in a new city", "museum"), ("ways to be kinder to the environment", "energy"),
    ("snacks that are good for studying", "nuts"), ("ways to make a presentation interesting", "story"),
    ("habits of successful students", "schedule"), ("things to bring on a camping trip", "tent"),
    ("ways to cool down on a hot day", "water"), ("good reasons to keep a journal", "thoughts"),
    ("ways to welcome a new neighbor", "cookies"), ("things to consider when adopting a dog", "time"),
]
LIST_TEMPLATES = [
    "List some {t}.", "What are some {t}?", "Give me a few {t}.", "Name several {t}.",
    "Suggest some {t}.",
]

# write: (task, include keyword, exclude keyword, kind) — kind "poem" | "story" | "note" | "text"
WRITES = [
    ("Write a short poem about the ocean.", "waves", "blue", "poem"),
    ("Write a short poem about autumn leaves.", "wind", "red", "poem"),
    ("Write a haiku about a cup of coffee.", "morning", "hot", "poem"),
    ("Write a short poem about a city at night.", "lights", "dark", "poem"),
    ("Write a short poem about friendship.", "laugh", "friend", "poem"),
    ("Write a short poem about a cat sleeping in the sun.", "warm", "cat", "poem"),
    ("Write a four-line poem about the first snow of winter.", "white", "cold", "poem"),
    ("Write a short poem about a train journey.", "window", "train", "poem"),
    ("Write a very short story about a lost umbrella.", "rain", "umbrella", "story"),
    ("Write a short story about a robot learning to paint.", "colors", "robot", "story"),
    ("Write a short story about a dog who finds a key.", "door", "dog", "story"),
    ("Write a short bedtime story about a brave mouse.", "cheese", "mouse", "story"),
    ("Write a short story that begins on a crowded bus.", "seat", "bus", "story"),
    ("Write a short story about a girl who can talk to birds.", "song", "bird", "story"),
    ("Write a short fable about a lazy fox.", "lesson", "fox", "story"),
    ("Write a short story about the last day of summer camp.", "lake", "camp", "story"),
    ("Write a thank-you note to a teacher.", "grateful", "thank", "note"),
    ("Write a short note thanking a neighbor for watering your plants.", "plants", "thank", "note"),
    ("Write a birthday message for a coworker.", "year", "happy", "note"),
    ("Write a short apology to a friend for missing their party.", "sorry", "party", "note"),
    ("Write a short email to your landlord about a leaking tap.", "repair", "leak", "note"),
    ("Write a short email asking your manager for a day off.", "Friday", "day", "note"),
    ("Write a short welcome message for new members of a book club.", "books", "welcome", "note"),
    ("Write a postcard message from a holiday in the mountains.", "view", "mountains", "note"),
    ("Write a product description for a reusable water bottle.", "durable", "water", "text"),
    ("Write a product description for a pair of running shoes.", "comfortable", "shoes", "text"),
    ("Write a short advertisement for a neighborhood bakery.", "fresh", "bread", "text"),
    ("Write a short speech for a friend's wedding toast.", "love", "wedding", "text"),
    ("Write a motivational message for someone starting a new job.", "learn", "job", "text"),
    ("Write a short description of your ideal weekend.", "morning", "weekend", "text"),
    ("Write a short review of a movie you imagine seeing.", "plot", "movie", "text"),
    ("Write a short diary entry from the point of view of a houseplant.", "sunlight", "plant", "text"),
    ("Write a short news report about a town festival.", "music", "festival", "text"),
    ("Write a short description of a busy market.", "voices", "market", "text"),
    ("Write the opening paragraph of a mystery novel.", "night", "mystery", "story"),
    ("Write a short letter to your future self.", "hope", "future", "note"),
    ("Write a limerick about a forgetful cook.", "soup", "cook", "poem"),
    ("Write a short poem about the moon.", "silver", "night", "poem"),
    ("Write a short story about a time traveler who misses the bus.", "clock", "time", "story"),
    ("Write a short invitation to a picnic in the park.", "Saturday", "picnic", "note"),
    ("Write a tweet announcing a new coffee shop opening.", "coffee", "open", "text"),
    ("Write a short description of a rainy afternoon.", "window", "rain", "text"),
    ("Write a short poem about learning to ride a bike.", "balance", "bike", "poem"),
    ("Write a short story about two strangers sharing an umbrella.", "smile", "umbrella", "story"),
]

# advice: (question, include keyword)
ADVICE = [
    ("How can I start running if I have never exercised?", "slowly"),
    ("How do I stop procrastinating on my homework?", "timer"),
    ("What should I do if I can't fall asleep at night?", "phone"),
    ("How can I make friends after moving to a new city?", "clubs"),
    ("How do I prepare for my first job interview?", "research"),
    ("What is a good way to start saving money?", "budget"),
    ("How can I drink more water during the day?", "bottle"),
    ("How do I keep my houseplants alive?", "light"),
    ("How can I get better at public speaking?", "practice"),
    ("What should I do if I feel lonely?", "talk"),
    ("How can I learn to cook simple meals?", "recipes"),
    ("How can I spend less time on my phone?", "notifications"),
    ("How do I ask for a raise at work?", "results"),
    ("How can I study more effectively for exams?", "notes"),
    ("What should I do when I feel overwhelmed?", "breathe"),
    ("How do I choose a good book to read?", "reviews"),
    ("How can I keep my desk organized?", "drawer"),
    ("How do I deal with a rude coworker?", "calm"),
    ("How can I eat more vegetables?", "soup"),
    ("How do I start learning to play the guitar?", "chords"),
    ("How can I be a better listener?", "questions"),
    ("How do I stay motivated to exercise?", "goals"),
    ("What should I do before adopting a cat?", "litter"),
    ("How can I make my mornings less rushed?", "night"),
    ("How do I write a good cover letter?", "company"),
    ("How can I reduce my electricity bill?", "lights"),
    ("How should I prepare for a long flight?", "snacks"),
    ("How can I help a friend who is stressed?", "listen"),
    ("How do I start a vegetable garden on a balcony?", "pots"),
    ("How can I improve my posture?", "shoulders"),
    ("How do I get over a fear of swimming?", "shallow"),
    ("How can I remember people's names better?", "repeat"),
    ("What should I do if I lose my wallet?", "bank"),
    ("How do I teach a child to tie their shoes?", "loops"),
    ("How can I make a long car trip more fun?", "music"),
    ("How do I politely say no to extra work?", "priorities"),
    ("How can I keep a conversation going on a first date?", "questions"),
    ("How do I clean a burnt pan?", "vinegar"),
    ("How can I wake up earlier without feeling tired?", "bedtime"),
    ("How do I start meditating?", "breath"),
    ("How can I make my home feel cozier?", "blanket"),
    ("What should I look for when buying a used car?", "mileage"),
]

# compare: (a, b, include keyword)
COMPARES = [
    ("cats", "dogs as pets", "attention"), ("tea", "coffee", "caffeine"), ("renting", "buying a home", "mortgage"),
    ("e-books", "printed books", "screen"), ("running", "swimming", "joints"), ("trains", "planes for travel", "time"),
    ("a city", "the countryside as a place to live", "quiet"), ("weather", "climate", "long"),
    ("a virus", "bacteria", "antibiotics"), ("saving", "investing", "risk"),
    ("working from home", "working in an office", "commute"), ("a lake", "a sea", "salt"),
    ("frogs", "toads", "skin"), ("baking", "frying food", "oil"), ("a laptop", "a desktop computer", "portable"),
    ("summer", "winter holidays", "snow"), ("a crocodile", "an alligator", "snout"),
    ("learning alone", "learning in a group", "feedback"), ("hiking", "cycling", "trail"),
    ("a debit card", "a credit card", "debt"), ("fruits", "vegetables", "seeds"),
    ("emails", "phone calls", "record"), ("the sun", "the moon", "light"), ("soup", "salad for lunch", "warm"),
    ("a violin", "a cello", "size"), ("rivers", "canals", "natural"), ("walking", "driving to work", "exercise"),
    ("board games", "video games", "family"), ("a weather forecast", "a climate model", "decades"),
    ("honey", "sugar", "sweet"), ("paper maps", "phone navigation", "battery"),
]
COMPARE_TEMPLATES = ["Compare {a} and {b}.", "What is the difference between {a} and {b}?",
                     "What are the main differences between {a} and {b}?"]

# summarise: (passage, include keyword from the passage)
PASSAGES = [
    ("The town council voted on Tuesday to turn the old railway line into a walking and cycling path. "
     "The project will take two years and cost about three million dollars. Supporters say it will "
     "bring visitors and make the town healthier, while some residents worry about noise and parking.", "path"),
    ("Honeybees communicate the location of flowers through a movement called the waggle dance. The "
     "angle of the dance shows the direction relative to the sun, and its length shows the distance. "
     "Other bees watch the dance and then fly straight to the food source.", "dance"),
    ("Maria opened a small bakery in 2019. At first only a few neighbors came, but her sourdough bread "
     "became popular after a local newspaper wrote about it. Today she employs six people and sells "
     "out almost every morning.", "bakery"),
    ("Sleep researchers found that teenagers who used their phones in bed fell asleep later and slept "
     "less than those who left their phones outside the bedroom. The blue light and the constant "
     "notifications both seemed to play a role.", "phones"),
    ("The library will close for renovations from June to August. During this time, books can be "
     "returned at the community center, and a mobile library van will visit the market square every "
     "Saturday morning.", "library"),
    ("A new study suggests that walking for just twenty minutes a day can lower the risk of heart "
     "disease. The researchers followed ten thousand adults for ten years and found that regular "
     "walkers had fewer heart problems, even if they did no other exercise.", "walking"),
    ("The company announced that it will switch to a four-day work week for a six-month trial. "
     "Employees will keep the same pay. Managers will measure productivity and staff happiness "
     "before deciding whether to make the change permanent.", "week"),
    ("Octopuses are known for their intelligence. They can open jars, escape from tanks and recognise "
     "individual people. Each of their eight arms contains many neurons, so the arms can react to "
     "touch almost on their own.", "octopuses"),
    ("After heavy rain, the river rose above its banks and flooded several streets in the old town. "
     "Nobody was hurt, but many shops had to close. Volunteers spent the weekend cleaning mud out of "
     "homes and businesses.", "river"),
    ("The school garden project lets students grow vegetables during the spring term. They learn "
     "about soil, water and insects, and in June they cook a meal with what they harvested. Teachers "
     "say the students eat more vegetables since the project began.", "garden"),
    ("Electric scooters arrived in the city last year. Many people use them for short trips, but "
     "pedestrians complain that scooters are often left on the pavement. The city now plans to create "
     "special parking zones.", "scooters"),
    ("The museum's new exhibition shows everyday objects from a hundred years ago, such as radios, "
     "toys and kitchen tools. Visitors can touch some of the objects, and a guide explains how people "
     "used them.", "museum"),
    ("Researchers planted a million trees on former farmland. Ten years later, birds and insects had "
     "returned, and the soil held more water. The project shows that damaged land can recover when it "
     "is given time.", "trees"),
    ("A local football team that nearly closed because of money problems won the regional cup this "
     "season. Fans raised funds online to pay for new kits and travel, and the players say the support "
     "made all the difference.", "team"),
    ("Drinking enough water helps the body control its temperature, keeps joints moving smoothly and "
     "supports the kidneys. Most adults need around two liters a day, more in hot weather or during "
     "exercise.", "water"),
    ("The first smartphones appeared in the 1990s, but they became popular only after touch screens "
     "and app stores were introduced. Today most adults in many countries carry one and use it for "
     "maps, messages and payments.", "smartphones"),
    ("The city zoo welcomed a baby giraffe this week. The calf is already almost two meters tall and "
     "was walking within an hour of birth. Visitors will be able to see her from next month.", "giraffe"),
    ("Many people keep old electronics in drawers. Recycling them recovers valuable metals like gold "
     "and copper and keeps harmful chemicals out of landfills. Most cities have drop-off points for "
     "old phones and laptops.", "recycling"),
    ("The night market opens every Friday during the summer. Stalls sell street food, handmade jewelry "
     "and second-hand books, and local bands play on a small stage until midnight.", "market"),
    ("Volunteers counted birds in the park over one weekend. They recorded more than forty species, "
     "including two that had not been seen there for years. The count will help scientists track "
     "changes in bird populations.", "birds"),
    ("The bakery down the street started offering a pay-what-you-can lunch once a week. Customers who "
     "can afford it pay extra, which covers meals for people who cannot. The owner says the idea has "
     "brought the neighborhood closer together.", "lunch"),
    ("A team of engineers built a bridge out of recycled plastic. The bridge is lighter than a steel "
     "one, does not rust and was installed in a single day. The city plans to test it for five years.", "bridge"),
]
SUMMARY_TEMPLATES = ["Summarize the following text.\n\n{p}", "Give a summary of this passage:\n\n{p}",
                     "What is the main point of this text?\n\n{p}"]

# facts: (question, answer or list of accepted answers)
FACTS = [
    ("What is the capital of France?", "Paris"), ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Italy?", "Rome"), ("What is the capital of Canada?", "Ottawa"),
    ("What is the capital of Egypt?", "Cairo"), ("What is the capital of Spain?", "Madrid"),
    ("What is the capital of Germany?", "Berlin"), ("What is the capital of Australia?", "Canberra"),
    ("Which planet is known as the Red Planet?", "Mars"), ("What is the largest planet in our solar system?", "Jupiter"),
    ("Which planet is closest to the sun?", "Mercury"), ("What is the largest ocean on Earth?", "Pacific"),
    ("How many legs does a spider have?", 8), ("How many days are there in a leap year?", 366),
    ("How many continents are there?", 7), ("How many minutes are in an hour?", 60),
    ("How many sides does a hexagon have?", 6), ("How many hours are in a day?", 24),
    ("How many players are on a soccer team on the field?", 11), ("How many weeks are in a year?", 52),
    ("At what temperature in Celsius does water freeze?", 0), ("At what temperature in Celsius does water boil at sea level?", 100),
    ("What gas do plants take in from the air?", ["carbon dioxide", "CO2"]), ("What is the chemical symbol for gold?", "Au"),
    ("What is the chemical symbol for water?", "H2O"), ("What is the hardest natural substance?", "diamond"),
    ("What is the fastest land animal?", "cheetah"), ("What is the largest mammal?", ["blue whale", "whale"]),
    ("Which animal is known as the king of the jungle?", "lion"), ("What do bees make?", "honey"),
    ("Who wrote 'Romeo and Juliet'?", ["Shakespeare", "William Shakespeare"]),
    ("Who painted the Mona Lisa?", ["Leonardo da Vinci", "da Vinci", "Leonardo"]),
    ("What is the longest river in the world?", ["Nile", "Amazon"]), ("What is the tallest mountain in the world?", "Everest"),
    ("What color do you get by mixing blue and yellow?", "green"), ("What color do you get by mixing red and white?", "pink"),
    ("What is the opposite of 'hot'?", "cold"), ("What is the plural of 'mouse'?", "mice"),
    ("What is the past tense of 'run'?", "ran"), ("Which month has the fewest days?", "February"),
    ("What is the first month of the year?", "January"), ("What is the smallest prime number?", 2),
    ("How many strings does a standard guitar have?", 6), ("What is the main language spoken in Brazil?", "Portuguese"),
    ("On which continent is Kenya?", "Africa"), ("What is the freezing point of water in Fahrenheit?", 32),
    ("Which organ pumps blood through the body?", "heart"), ("Which star is at the center of our solar system?", "sun"),
    ("How many bones are in the adult human body?", 206), ("What is the square root of 81?", 9),
]

# format (JSON): (instruction, include keywords that must appear, e.g. the requested keys)
FORMATS = [
    ("Create a JSON object describing a fictional person with the keys \"name\", \"age\" and \"city\".", ["name", "age", "city"]),
    ("Give me a JSON object for a book with the keys \"title\", \"author\" and \"year\".", ["title", "author", "year"]),
    ("Write a JSON list of three fruits.", []),
    ("Describe a recipe for pancakes as a JSON object with the keys \"ingredients\" and \"steps\".", ["ingredients", "steps"]),
    ("Make a JSON object for a pet with the keys \"species\", \"name\" and \"favorite_food\".", ["species", "name"]),
    ("Represent a weather forecast for tomorrow as a JSON object with \"temperature\" and \"conditions\".", ["temperature", "conditions"]),
    ("Give a JSON array of the four seasons.", []),
    ("Create a JSON object for a movie with the keys \"title\", \"genre\" and \"rating\".", ["title", "genre", "rating"]),
    ("Make a JSON object describing a car with \"brand\", \"color\" and \"doors\".", ["brand", "color", "doors"]),
    ("Write a JSON object that maps three countries to their capitals.", []),
    ("Create a JSON shopping list with at least three items.", []),
    ("Describe a school class as a JSON object with \"teacher\", \"subject\" and \"students\".", ["teacher", "subject"]),
    ("Give me a JSON object for a city with the keys \"name\", \"country\" and \"population\".", ["name", "country", "population"]),
    ("Make a JSON array of three colors.", []),
    ("Write a JSON object for an event with \"name\", \"date\" and \"location\".", ["date", "location"]),
    ("Create a JSON object describing a song with \"title\", \"artist\" and \"length\".", ["title", "artist"]),
    ("Give a JSON object with the keys \"question\" and \"answer\" for a simple trivia question.", ["question", "answer"]),
    ("Describe a laptop as a JSON object with \"brand\", \"memory\" and \"price\".", ["brand", "price"]),
    ("Write a JSON list of five animals that live on a farm.", []),
    ("Create a JSON object for a restaurant with \"name\", \"cuisine\" and \"open_days\".", ["name", "cuisine"]),
]

# rewrite: (instruction)
REWRITES = [
    "Rewrite this sentence to sound more polite: 'Give me the report now.'",
    "Rewrite this sentence in simpler words: 'The meeting has been postponed due to unforeseen circumstances.'",
    "Make this sentence more exciting: 'The team won the game.'",
    "Rewrite this text message so it sounds more formal: 'hey can u send me the file thx'",
    "Rephrase this sentence: 'It was raining, so we stayed inside and played cards.'",
    "Correct the grammar in this sentence: 'She don't like going to school on mondays.'",
    "Rewrite this sentence in the past tense: 'I walk to the store and buy some milk.'",
    "Make this sentence shorter: 'In my personal opinion, I think that we should probably leave soon.'",
    "Turn this sentence into a question: 'The museum opens at nine.'",
    "Rewrite this sentence to sound friendlier: 'Your order will arrive when it arrives.'",
    "Paraphrase this sentence: 'Regular exercise improves both physical and mental health.'",
    "Rewrite this sentence for a five-year-old: 'Photosynthesis converts light energy into chemical energy.'",
    "Rewrite this headline to be less dramatic: 'Total chaos as city bus arrives five minutes late!'",
    "Make this product name sound more fun: 'Standard Kitchen Sponge'.",
    "Rewrite this sentence in the future tense: 'We visited our grandparents last summer.'",
    "Rewrite this complaint so it is calm and constructive: 'Your app is useless and always crashes!'",
    "Combine these two sentences into one: 'The dog barked. The mail carrier ran away.'",
    "Rewrite this sentence without using the passive voice: 'The cake was eaten by the children.'",
]

# ------------------------------------------------------------------------------------- constraints
END_PHRASES = {
    "default": ["Hope this helps.", "Good luck!", "Have a great day!", "That is all.", "Thanks for asking!"],
    "advice": ["Good luck!", "Hope this helps.", "You can do it!"],
    "story": ["The end.", "And that was that."], "poem": ["The end.", "I hope you enjoy it."],
    "note": ["See you soon!", "With love.", "Best wishes."], "text": ["I hope you enjoy it.", "See you there!"],
}
START_PHRASES = {
    "default": ["In short", "Here is my answer", "Great question", "Sure thing", "Okay"],
    "story": ["Once upon a time", "It was"], "note": ["Dear", "Hello"], "text": ["Here it is", "Imagine"],
    "poem": ["Here is a poem"],
    "summarise": ["In short", "This text is about", "The main point is"],
}
NUM_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


def c_max_words(rng, tight: bool = False):
    n = rng.choice([15, 20, 25] if tight else [25, 30, 40, 50])
    style = rng.randrange(4)
    if style == 0:
        return f"Answer in under {n} words.", {"type": "max_words", "n": n - 1}
    if style == 1:
        return f"Keep your answer to {n} words or fewer.", {"type": "max_words", "n": n}
    if style == 2:
        return f"Use no more than {n} words.", {"type": "max_words", "n": n}
    return f"Your response must be shorter than {n} words.", {"type": "max_words", "n": n - 1}


def c_min_words(rng):
    n = rng.choice([60, 70, 80])
    return rng.choice([f"Write at least {n} words.", f"Your answer should be at least {n} words long."]), \
        {"type": "min_words", "n": n}


def c_max_sentences(rng):
    n = rng.choice([1, 1, 2, 3])
    if n == 1:
        return rng.choice(["Answer in a single sentence.", "Reply in just one sentence."]), \
            {"type": "max_sentences", "n": 1}
    return rng.choice([f"Answer in at most {NUM_WORDS[n]} sentences.", f"Use no more than {NUM_WORDS[n]} sentences."]), \
        {"type": "max_sentences", "n": n}


def c_min_sentences(rng):
    n = rng.choice([3, 4])
    return f"Write at least {NUM_WORDS[n]} sentences.", {"type": "min_sentences", "n": n}


def c_lowercase(rng):
    return rng.choice(["Write your entire answer in lowercase letters, with no capital letters at all.",
                       "Please respond only in lowercase letters.",
                       "Do not use any capital letters in your answer."]), {"type": "lowercase"}


def c_uppercase(rng):
    return rng.choice(["Write your entire answer in capital letters.",
                       "Respond in ALL CAPS.", "Your whole answer must be in uppercase letters."]), {"type": "uppercase"}


def c_no_commas(rng):
    return rng.choice(["Do not use any commas in your answer.", "Use no commas.",
                       "Avoid using commas anywhere in your response."]), {"type": "no_commas"}


EXTRA_KEYWORDS = ["example", "imagine", "remember", "curious", "surprising", "together", "everyday"]


def c_include(rng, kws):
    kws = list(kws)
    if rng.random() < 0.75:  # a second, less obvious word makes the check harder
        kws.append(rng.choice([k for k in EXTRA_KEYWORDS if k not in kws]))
    if len(kws) == 1:
        k = kws[0]
        return rng.choice([f"Include the word '{k}' in your answer.", f"Make sure to mention '{k}'.",
                           f"Use the word '{k}' at least once."]), {"type": "include_keywords", "keywords": [k]}
    quoted = ", ".join(f"'{k}'" for k in kws[:-1]) + f" and '{kws[-1]}'"
    return f"Your answer must include the words {quoted}.", {"type": "include_keywords", "keywords": kws}


def c_exclude(rng, kw):
    return rng.choice([f"Do not use the word '{kw}'.", f"Avoid the word '{kw}' in your answer.",
                       f"Don't mention the word '{kw}'."]), {"type": "exclude_keywords", "keywords": [kw]}


def c_bullets(rng):
    n = rng.choice([2, 3, 3, 4, 5])
    return rng.choice([f"Use exactly {n} bullet points in markdown, such as:\n* This is a point.",
                       f"Format your answer as exactly {n} bullet points, each starting with '* '.",
                       f"Give exactly {n} items as a markdown bullet list (use '- ' for each item)."]), \
        {"type": "num_bullets", "n": n}


def c_ends(rng, category: str = "default"):
    p = rng.choice(END_PHRASES.get(category, END_PHRASES["default"]))
    return rng.choice([f"End your answer with the phrase '{p}'", f"Finish your response with the exact words '{p}'",
                       f"Your answer must end with '{p}'"]), {"type": "ends_with", "phrase": p}


def c_starts(rng, category: str = "default"):
    p = rng.choice(START_PHRASES.get(category, START_PHRASES["default"]))
    return rng.choice([f"Start your answer with the words '{p}'.", f"Begin your response with '{p}'."]), \
        {"type": "starts_with", "phrase": p}


def c_title(rng):
    # the examples (<<...>>) are not valid titles themselves, so copying them does not pass the check
    return rng.choice(["Give your answer a title wrapped in double angular brackets, like <<...>>.",
                       "Include a title in double angular brackets, in the form <<...>>.",
                       "Put a title at the top, wrapped in double angle brackets: <<...>>."]), {"type": "title"}


def c_paragraphs(rng):
    n = rng.choice([2, 3])
    return rng.choice([f"Write exactly {NUM_WORDS[n]} paragraphs, separated by a blank line.",
                       f"Your answer should have {NUM_WORDS[n]} paragraphs. Separate paragraphs with the markdown "
                       f"divider ***."]), {"type": "num_paragraphs", "n": n}


# pairs of constraint kinds that must not appear together (contradictory or unnatural)
CONFLICTS = {
    frozenset(p) for p in [
        ("lowercase", "uppercase"), ("lowercase", "ends_with"), ("lowercase", "starts_with"),
        ("uppercase", "ends_with"), ("uppercase", "starts_with"), ("max_words", "min_words"),
        ("max_sentences", "min_sentences"), ("max_words", "min_sentences"), ("min_words", "max_sentences"),
        ("num_bullets", "num_paragraphs"), ("num_bullets", "max_sentences"), ("num_bullets", "min_sentences"),
        ("max_sentences", "num_paragraphs"), ("include", "exclude"), ("title", "starts_with"),
        ("num_paragraphs", "max_words"),
    ]
}

# constraint kinds each task type may draw from, with weights
KINDS = {
    "explain": {"max_words": 3, "max_sentences": 2, "lowercase": 1, "uppercase": 1, "no_commas": 2, "include": 2,
                "exclude": 2, "ends": 1, "starts": 2, "paragraphs": 1, "title": 2, "min_sentences": 1},
    "list": {"bullets": 5, "max_words": 2, "lowercase": 1, "no_commas": 2, "include": 2, "ends": 1, "title": 2,
             "uppercase": 1},
    "write": {"title": 3, "max_words": 2, "min_words": 1, "lowercase": 1, "no_commas": 2, "include": 2,
              "exclude": 2, "ends": 1, "paragraphs": 2, "uppercase": 1, "starts": 2},
    "advice": {"bullets": 3, "max_words": 3, "ends": 1, "starts": 2, "include": 2, "lowercase": 1, "no_commas": 2,
               "max_sentences": 2, "uppercase": 1, "title": 1},
    "compare": {"max_words": 3, "paragraphs": 2, "bullets": 2, "include": 2, "no_commas": 2, "ends": 1,
                "lowercase": 1, "max_sentences": 1, "title": 1},
    "summarise": {"tight_words": 4, "max_sentences": 3, "no_commas": 2, "lowercase": 1, "starts": 2, "include": 2,
                  "title": 1, "uppercase": 1},
    "math": {"tight_words": 3, "max_sentences": 1, "no_commas": 2, "lowercase": 1, "ends": 1},
    "facts": {"tight_words": 3, "max_sentences": 1, "lowercase": 1, "starts": 2, "uppercase": 1, "ends": 1},
    "rewrite": {"lowercase": 2, "uppercase": 2, "no_commas": 2, "tight_words": 2, "exclude": 1},
}
CHECK_KIND = {"max_words": "max_words", "tight_words": "max_words", "min_words": "min_words",
              "max_sentences": "max_sentences", "min_sentences": "min_sentences", "lowercase": "lowercase",
              "uppercase": "uppercase", "no_commas": "no_commas", "include": "include", "exclude": "exclude",
              "bullets": "num_bullets", "ends": "ends_with", "starts": "starts_with", "title": "title",
              "paragraphs": "num_paragraphs"}


def make_constraint(kind: str, rng: random.Random, item: dict):
    if kind == "max_words":
        return c_max_words(rng)
    if kind == "tight_words":
        return c_max_words(rng, tight=True)
    if kind == "include":
        return c_include(rng, [item["include"]])
    if kind == "exclude":
        return c_exclude(rng, item["exclude"])
    if kind == "ends":
        return c_ends(rng, item.get("kind", item["category"]))
    if kind == "starts":
        return c_starts(rng, item.get("kind", item["category"]))
    return {"min_words": c_min_words, "max_sentences": c_max_sentences, "min_sentences": c_min_sentences,
            "lowercase": c_lowercase, "uppercase": c_uppercase, "no_commas": c_no_commas, "bullets": c_bullets,
            "title": c_title, "paragraphs": c_paragraphs}[kind](rng)


def pick_kinds(rng: random.Random, category: str, item: dict, n: int) -> list[str]:
    weights = {k: w for k, w in KINDS[category].items()
               if (k != "include" or item.get("include")) and (k != "exclude" or item.get("exclude"))}
    chosen: list[str] = []
    while len(chosen) < n and weights:
        kinds, ws = zip(*sorted(weights.items()))
        k = rng.choices(kinds, weights=ws)[0]
        chosen.append(k)
        weights = {o: w for o, w in weights.items()
                   if o != k and CHECK_KIND[o] != CHECK_KIND[k]
                   and frozenset((CHECK_KIND[o], CHECK_KIND[k])) not in CONFLICTS}
    return chosen


# ------------------------------------------------------------------------------------------- build
def base_items(rng: random.Random) -> list[dict]:
    """One dict per base instruction: category, text, optional keywords / answer, group (split unit)."""
    items: list[dict] = []
    for i, (c, inc, exc) in enumerate(CONCEPTS):
        for t in rng.sample(EXPLAIN_TEMPLATES, 2 if i % 3 == 0 else 1):
            items.append({"category": "explain", "text": t.format(c=c), "include": inc, "exclude": exc,
                          "group": f"explain:{i}"})
    for i, (t, inc) in enumerate(LISTS):
        for tmpl in rng.sample(LIST_TEMPLATES, 2 if i % 4 == 0 else 1):
            items.append({"category": "list", "text": tmpl.format(t=t), "include": inc, "group": f"list:{i}"})
    for i, (t, inc, exc, kind) in enumerate(WRITES):
        items.append({"category": "write", "text": t, "include": inc, "exclude": exc, "kind": kind,
                      "group": f"write:{i}"})
    for i, (q, inc) in enumerate(ADVICE):
        items.append({"category": "advice", "text": q, "include": inc, "group": f"advice:{i}"})
    for i, (a, b, inc) in enumerate(COMPARES):
        items.append({"category": "compare", "text": rng.choice(COMPARE_TEMPLATES).format(a=a, b=b),
                      "include": inc, "group": f"compare:{i}"})
    for i, (p, inc) in enumerate(PASSAGES):
        for tmpl in rng.sample(SUMMARY_TEMPLATES, 2 if i % 2 == 0 else 1):
            items.append({"category": "summarise", "text": tmpl.format(p=p), "include": inc,
                          "group": f"summarise:{i}"})
    for i, (q, ans) in enumerate(FACTS):
        items.append({"category": "facts", "text": q, "answer": ans, "group": f"facts:{i}"})
    for i, (q, kws) in enumerate(FORMATS):
        items.append({"category": "format", "text": q, "keys": kws, "group": f"format:{i}"})
    for i, q in enumerate(REWRITES):
        items.append({"category": "rewrite", "text": q, "group": f"rewrite:{i}"})
    items.extend(math_items(rng))
    return items


def math_items(rng: random.Random) -> list[dict]:
    """Arithmetic questions and word problems with exact numeric answers (all below 1000)."""
    out = []
    names = ["Sara", "Tom", "Aisha", "Ken", "Lena", "Omar", "Mia", "Raj", "Zoe", "Ivan"]
    for i in range(48):
        kind = i % 12
        a, b = rng.randint(3, 40), rng.randint(2, 12)
        name = names[i % len(names)]
        if kind == 0:
            q, ans = f"What is {a} + {b * 7}?", a + b * 7
        elif kind == 1:
            q, ans = f"What is {a} times {b}?", a * b
        elif kind == 2:
            q, ans = f"What is {a + 50} minus {b + 9}?", a + 50 - (b + 9)
        elif kind == 3:
            q, ans = f"What is {a * b} divided by {b}?", a
        elif kind == 4:
            q, ans = f"{name} has {a} apples and buys {b} more. How many apples does {name} have now?", a + b
        elif kind == 5:
            q, ans = f"A pencil costs {b} dollars. How much do {a} pencils cost, in dollars?", a * b
        elif kind == 6:
            q, ans = (f"{name} read {b} pages every day for {a % 9 + 2} days. How many pages did {name} read "
                      f"in total?"), b * (a % 9 + 2)
        elif kind == 7:
            q, ans = f"There are {a * b} cookies shared equally among {b} children. How many cookies does each child get?", a
        elif kind == 8:
            q, ans = f"A train leaves at {b}:00 and the trip takes {a % 6 + 2} hours. At what hour does it arrive (24-hour clock)?", b + a % 6 + 2
        elif kind == 9:
            p = rng.choice([10, 20, 25, 50])
            base = rng.choice([40, 80, 120, 200, 300])
            q, ans = f"What is {p}% of {base}?", p * base // 100
        elif kind == 10:
            q, ans = f"A rectangle is {a} cm long and {b} cm wide. What is its area in square centimeters?", a * b
        else:
            q, ans = (f"{name} had {a + b + 10} stickers and gave away {b + 10}. How many stickers are left?"), a
        out.append({"category": "math", "text": q, "answer": ans, "group": f"math:{i}"})
    return out


def constraints_for(item: dict, rng: random.Random) -> tuple[list[str], list[dict]]:
    cat = item["category"]
    if cat == "format":
        texts = [rng.choice(["Reply with valid JSON only.", "Output only the JSON, with no extra text.",
                             "Your whole answer must be valid JSON (a ```json code block is fine)."])]
        checks = [{"type": "json"}]
        if item["keys"]:
            checks.append({"type": "include_keywords", "keywords": list(item["keys"])})
        return texts, checks
    r = rng.random()
    if cat in ("math", "facts"):
        n = 0 if r < 0.35 else (1 if r < 0.9 else 2)
    else:
        n = 0 if r < 0.2 else (1 if r < 0.72 else 2)
    texts, checks = [], []
    for kind in pick_kinds(rng, cat, item, n):
        t, c = make_constraint(kind, rng, item)
        texts.append(t)
        checks.append(c)
    return texts, checks


def build(seed: int = SEED) -> tuple[list[dict], list[dict]]:
    """Return (train, heldout) prompt records."""
    rng = random.Random(seed)
    items = base_items(rng)
    groups = sorted({it["group"] for it in items})
    by_cat: dict[str, list[str]] = {}
    for g in groups:
        by_cat.setdefault(g.split(":")[0], []).append(g)
    held: set[str] = set()
    for cat in sorted(by_cat):
        gs = by_cat[cat][:]
        rng.shuffle(gs)
        held.update(gs[: max(1, round(len(gs) * HELDOUT_FRAC))])
    train, heldout = [], []
    seen = set()
    for it in items:
        texts, checks = constraints_for(it, rng)
        prompt = it["text"] + ("\n\n" if "\n" in it["text"] else " ") + " ".join(texts) if texts else it["text"]
        if prompt in seen:
            continue
        seen.add(prompt)
        meta: dict = {"category": it["category"]}
        if checks:
            meta["checks"] = checks
        if "answer" in it:
            meta["answer"] = it["answer"]
        meta["kind"] = "reasoning" if it["category"] == "math" else "general"  # SALMON's prompt kinds
        (heldout if it["group"] in held else train).append({"prompt": prompt, "meta": meta})
    rng.shuffle(train)
    rng.shuffle(heldout)
    for i, r in enumerate(train):
        r["id"] = f"train-{i:04d}"
    for i, r in enumerate(heldout):
        r["id"] = f"heldout-{i:03d}"
    order = ("id", "prompt", "meta")
    return ([{k: r[k] for k in order} for r in train], [{k: r[k] for k in order} for r in heldout])


def validate(records: list[dict]) -> None:
    from selfalign.checks import run_checks

    for r in records:
        run_checks("probe", r["meta"])  # raises DataError on a bad spec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "examples" / "data"))
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    train, heldout = build(args.seed)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    validate(train + heldout)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, recs in (("prompts_train.jsonl", train), ("prompts_heldout.jsonl", heldout)):
        tmp = out / f".{name}.tmp"
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
        tmp.replace(out / name)
    for name, recs in (("train", train), ("heldout", heldout)):
        with_checks = sum(bool(r["meta"].get("checks")) for r in recs)
        with_answer = sum("answer" in r["meta"] for r in recs)
        print(f"{name}: {len(recs)} prompts, {with_checks} with checks ({with_checks / len(recs):.0%}), "
              f"{with_answer} with an answer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

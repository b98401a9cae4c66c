"""Data tables: topics, passages, how-to activities, sentences to rewrite (all written for this project).

Every table is split into a train part and a held-out part with no shared entries, so held-out
prompts talk about things never seen in training. A topic line reads ``phrase | keyword``: the
phrase is a noun phrase that fits every task template, the keyword a word a good answer would
naturally use (it feeds the keyword constraints).
"""

from __future__ import annotations

# ------------------------------------------------------------------------------------------ topics
_TRAIN = {
    "science": """
        photosynthesis | sunlight
        the water cycle | evaporation
        gravity | mass
        volcanic eruptions | magma
        earthquakes | plates
        ocean tides | moon
        the seasons | tilt
        rainbows | light
        magnets | magnetic
        DNA | genes
        black holes | gravity
        cloud formation | droplets
        static electricity | charge
        the speed of sound | vibration
        chemical reactions | atoms
        the periodic table | elements
        fossils | rock
        the human skeleton | bones
        microscopes | lens
        lightning | charge
        friction | surface
        acids and bases | acid
    """,
    "history": """
        the ancient Egyptian pyramids | pharaoh
        the Roman Empire | emperor
        the invention of the printing press | books
        the Silk Road | trade
        the first moon landing | astronauts
        the Industrial Revolution | factories
        the Vikings | ships
        the Great Wall of China | wall
        the invention of the telephone | call
        the fall of the Berlin Wall | border
        medieval castles | knights
        the Olympic Games of ancient Greece | athletes
        the history of paper money | coins
        the age of sail | voyage
        the invention of the light bulb | electricity
        the history of chess | board
        the Renaissance | painters
        ancient Mesopotamia | writing
        the first airplanes | flight
        the history of the bicycle | wheels
        the Aztec city of Tenochtitlan | lake
        the history of postal services | letters
    """,
    "everyday life": """
        doing laundry | detergent
        keeping a tidy kitchen | counter
        morning routines | coffee
        grocery shopping on a budget | list
        living with roommates | chores
        commuting by bus | schedule
        hosting a dinner party | guests
        moving to a new apartment | boxes
        dealing with noisy neighbours | noise
        keeping houseplants alive | water
        walking a dog | leash
        planning a birthday party | cake
        organising a wardrobe | clothes
        fixing a leaky tap | wrench
        getting enough sleep | bedtime
        writing a shopping list | items
        sharing a car | fuel
        rainy weekends | umbrella
        ironing shirts | steam
        decluttering a garage | tools
        making small talk | weather
        keeping a family calendar | dates
    """,
    "work": """
        job interviews | questions
        working from home | desk
        running a team meeting | agenda
        writing a resume | experience
        asking for a raise | salary
        giving feedback to colleagues | feedback
        managing deadlines | priorities
        starting a small business | customers
        customer service | patience
        networking events | contacts
        the first day at a new job | introductions
        time management | calendar
        public speaking | audience
        writing professional emails | subject
        working night shifts | sleep
        negotiating a contract | terms
        mentoring a new colleague | guidance
        plants in the office | leaves
        dealing with burnout | rest
        remote team culture | video
        freelancing | clients
        planning for retirement | pension
    """,
    "travel": """
        backpacking through Europe | hostel
        long train journeys | carriage
        packing a carry-on bag | liquids
        travelling with children | snacks
        road trips | map
        jet lag | sleep
        visiting a night market | stalls
        camping by a lake | tent
        learning phrases before a trip | greetings
        staying in a hostel | dorm
        travelling on a tight budget | savings
        cruise holidays | deck
        visiting museums abroad | exhibits
        hiking in the mountains | trail
        travel insurance | cover
        airport security | passport
        exploring a city on foot | streets
        ferry crossings | harbour
        souvenir shopping | gifts
        solo travel | independence
        cycling holidays | bike
        winter trips to snowy towns | snow
    """,
    "food": """
        sourdough bread | starter
        homemade pizza | dough
        vegetable soup | broth
        breakfast smoothies | fruit
        spices in cooking | flavor
        fermented foods | bacteria
        picnic food | basket
        baking cookies | oven
        growing herbs for the kitchen | basil
        street food | vendors
        eating seasonally | harvest
        meal prepping for a busy week | containers
        olive oil | olives
        chocolate | cocoa
        rice dishes around the world | grains
        tea ceremonies | leaves
        school cafeterias | lunch
        pickling vegetables | vinegar
        food waste | leftovers
        cooking with kids | recipe
        plant-based meals | beans
        the history of noodles | wheat
    """,
    "sport": """
        marathon running | endurance
        learning to swim | strokes
        football tactics | formation
        yoga for beginners | stretch
        rock climbing | grip
        table tennis | paddle
        cycling races | peloton
        basketball | hoop
        chess as a sport | moves
        team sports for children | teamwork
        sports injuries | recovery
        the modern Olympic Games | medals
        skateboarding | tricks
        martial arts | discipline
        tennis | racket
        rowing | oars
        supporting a local team | fans
        warming up before exercise | muscles
        golf | swing
        beach volleyball | sand
        training for a 5K race | pace
        sports nutrition | protein
    """,
    "technology": """
        smartphones | apps
        how the internet works | servers
        password safety | passwords
        electric cars | battery
        3D printing | layers
        video games | players
        robots in factories | automation
        social media | followers
        cloud storage | files
        GPS navigation | satellites
        email spam | filters
        solar panels | energy
        online shopping | delivery
        computer viruses | antivirus
        smart home devices | sensors
        wireless headphones | bluetooth
        search engines | results
        coding for beginners | programs
        e-readers | screen
        drones | camera
        video calls | microphone
        backing up photos | storage
    """,
    "arts": """
        painting with watercolours | brushes
        street art | walls
        jazz music | improvisation
        writing poetry | rhythm
        pottery | clay
        photography | light
        theatre acting | stage
        learning the piano | keys
        sculpture | stone
        knitting | yarn
        dance classes | steps
        film making | camera
        comic books | panels
        choir singing | harmony
        calligraphy | ink
        origami | paper
        visiting art galleries | paintings
        folk music | songs
        graphic design | colors
        puppet shows | puppets
        writing short stories | characters
        architecture | buildings
    """,
    "health": """
        drinking enough water | hydration
        regular exercise | heart
        healthy sleep habits | rest
        stress management | breathing
        eating more vegetables | vitamins
        posture at a desk | back
        hand washing | soap
        first aid basics | bandage
        screen time | eyes
        walking every day | steps
        mental health | feelings
        vaccines | immunity
        dental care | teeth
        sun protection | sunscreen
        seasonal allergies | pollen
        meditation | breath
        staying active as you age | balance
        healthy snacks | nuts
        catching a cold | rest
        cutting down on sugar | sugar
        daily stretching | flexibility
        hearing protection | noise
    """,
    "money": """
        saving for a holiday | savings
        making a monthly budget | budget
        compound interest | interest
        credit cards | debt
        pocket money for children | allowance
        buying a used car | price
        renting versus buying a home | mortgage
        comparing phone plans | contract
        paying off debt | payments
        an emergency fund | savings
        shopping at second-hand stores | bargains
        splitting bills with friends | share
        understanding a payslip | tax
        saving energy to cut bills | bills
        investing for beginners | risk
        inflation | prices
        bank accounts for teenagers | account
        online banking | security
        buying in bulk | discount
        coupons and loyalty cards | points
        saving for retirement | pension
        selling things online | buyers
    """,
    "nature": """
        bees and pollination | flowers
        migrating birds | flight
        coral reefs | fish
        rainforests | trees
        deserts | sand
        wolves | pack
        the life of a river | water
        mushrooms | spores
        autumn leaves | colors
        whales | ocean
        owls | night
        butterflies | wings
        glaciers | ice
        wetlands | birds
        mountain goats | cliffs
        how seeds spread | wind
        thunderstorms | thunder
        frogs | pond
        hedgehogs | garden
        octopuses | arms
        moss | damp
        the night sky | stars
    """,
    "school": """
        homework | assignments
        learning a second language | vocabulary
        school uniforms | rules
        taking good notes | notebook
        preparing for exams | revision
        group projects | teamwork
        school libraries | books
        science fairs | experiment
        field trips | museum
        learning times tables | multiplication
        reading aloud in class | voice
        art class | drawing
        recess | playground
        student councils | vote
        learning to type | keyboard
        spelling tests | words
        school gardens | vegetables
        music lessons at school | instruments
        making friends at a new school | friends
        online classes | screen
        writing book reports | summary
        learning history through stories | past
    """,
}

_HELDOUT = {
    "science": """
        the northern lights | solar
        crystals | mineral
        the Doppler effect | frequency
        buoyancy | float
        comets | ice
        the immune system | antibodies
        carbon dating | carbon
    """,
    "history": """
        the Library of Alexandria | scrolls
        the Inca road system | mountains
        the history of lighthouses | keepers
        the invention of the compass | navigation
        samurai in feudal Japan | honor
        the history of public clocks | time
        the Hanseatic League | merchants
    """,
    "everyday life": """
        choosing a new mattress | comfort
        returning a faulty purchase | receipt
        repainting a bedroom | brush
        babysitting a toddler | naps
        packing school lunches | sandwich
        setting up a compost bin | scraps
        getting a haircut | barber
    """,
    "work": """
        running a food truck | menu
        becoming a librarian | catalogue
        training a new cashier | register
        switching careers at forty | skills
        organising a volunteer team | shifts
        writing a job advertisement | role
        working as a park ranger | trails
    """,
    "travel": """
        overnight sleeper buses | seat
        island hopping | boat
        visiting a desert oasis | palm
        volunteering abroad | community
        taking a gap year | adventure
        house-sitting in another country | keys
        a canal boat holiday | locks
    """,
    "food": """
        dumplings | filling
        honey | bees
        breakfast traditions around the world | eggs
        barbecues | grill
        cheese making | milk
        farmers' markets | stalls
        making jam | fruit
    """,
    "sport": """
        cross-country skiing | poles
        surfing | waves
        archery | target
        badminton | shuttlecock
        ultimate frisbee | disc
        fencing | blade
        sailing races | wind
    """,
    "technology": """
        barcodes | scanner
        digital watches | display
        translation apps | languages
        self-checkout machines | scanner
        electric bikes | motor
        mapping the ocean floor | sonar
        the history of the computer mouse | cursor
    """,
    "arts": """
        stained glass windows | glass
        mosaic art | tiles
        opera | singers
        woodcarving | knife
        animated films | frames
        embroidery | thread
        shadow puppetry | shadows
    """,
    "health": """
        keeping a food diary | meals
        recovering from a sprained ankle | ice
        the benefits of laughter | joy
        caring for your eyesight | vision
        sleep for teenagers | hours
        standing desks | posture
        cold showers | water
    """,
    "money": """
        currency exchange on holiday | rate
        crowdfunding a project | backers
        saving money on a wedding | guests
        running a garage sale | prices
        tipping customs | service
        paying for college | tuition
        sharing a budget as a couple | goals
    """,
    "nature": """
        tide pools | crabs
        bamboo forests | stalks
        fireflies | glow
        penguins | ice
        sea turtles | beach
        lichens | rocks
        the Arctic tundra | cold
    """,
    "school": """
        the first day of kindergarten | teacher
        school debate clubs | arguments
        class pets | hamster
        graduation ceremonies | diploma
        learning to read maps | compass
        school bake sales | cakes
        studying with flashcards | memory
    """,
}


def _parse(table: dict[str, str]) -> list[tuple[str, str, str]]:
    out = []
    for domain, block in table.items():
        for line in block.strip().splitlines():
            phrase, kw = (s.strip() for s in line.split("|"))
            out.append((domain, phrase, kw))
    return out


TOPICS = {"train": _parse(_TRAIN), "heldout": _parse(_HELDOUT)}  # (domain, phrase, keyword)

# -------------------------------------------------------------------------------------- passages
# (passage, keyword from the passage)
PASSAGES = {
    "train": [
        ("The town council voted on Tuesday to turn the old railway line into a walking and cycling path. "
         "The project will take two years and cost about three million dollars. Supporters say it will "
         "bring visitors and make the town healthier, while some residents worry about noise and parking.",
         "path"),
        ("Honeybees share the location of flowers through a movement called the waggle dance. The angle "
         "of the dance shows the direction relative to the sun, and its length shows the distance. Other "
         "bees watch the dance and then fly straight to the food source.", "dance"),
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
        ("After heavy rain, the river rose above its banks and flooded several streets in the old town. "
         "Nobody was hurt, but many shops had to close. Volunteers spent the weekend cleaning mud out of "
         "homes and businesses.", "river"),
        ("Electric scooters arrived in the city last year. Many people use them for short trips, but "
         "pedestrians complain that scooters are often left on the pavement. The city now plans to "
         "create special parking zones.", "scooters"),
        ("The museum's new exhibition shows everyday objects from a hundred years ago, such as radios, "
         "toys and kitchen tools. Visitors can touch some of the objects, and a guide explains how people "
         "used them.", "museum"),
        ("Researchers planted a million trees on former farmland. Ten years later, birds and insects had "
         "returned, and the soil held more water. The project shows that damaged land can recover when "
         "it is given time.", "trees"),
        ("A local football team that nearly closed because of money problems won the regional cup this "
         "season. Fans raised funds online to pay for new kits and travel, and the players say the "
         "support made all the difference.", "team"),
        ("The first smartphones appeared in the 1990s, but they became popular only after touch screens "
         "and app stores were introduced. Today most adults in many countries carry one and use it for "
         "maps, messages and payments.", "smartphones"),
        ("The city zoo welcomed a baby giraffe this week. The calf is already almost two meters tall and "
         "was walking within an hour of birth. Visitors will be able to see her from next month.",
         "giraffe"),
        ("Volunteers counted birds in the park over one weekend. They recorded more than forty species, "
         "including two that had not been seen there for years. The count will help scientists track "
         "changes in bird populations.", "species"),
        ("A team of engineers built a footbridge out of recycled plastic. The bridge is lighter than a "
         "steel one, does not rust and was installed in a single day. The city plans to test it for "
         "five years.", "bridge"),
        ("Our apartment block started a shared tool cupboard in the basement. Residents can borrow a "
         "drill, a ladder or a sewing machine for free and sign them out in a notebook. Fewer people now "
         "buy tools they use only once a year.", "tools"),
        ("The village held its first repair café last Sunday. Volunteers fixed toasters, lamps, bicycles "
         "and torn jackets while visitors drank coffee. Organisers counted sixty repaired items that would "
         "otherwise have been thrown away.", "repaired"),
        ("A primary school replaced its morning assembly with ten minutes of quiet reading. Teachers say "
         "the pupils are calmer at the start of lessons, and the school library has lent twice as many "
         "books since the change.", "reading"),
        ("Snow closed the mountain pass for three days. Lorry drivers waited in a nearby town, where "
         "residents opened the sports hall and served hot soup. When the road reopened, several drivers "
         "left thank-you notes on the hall door.", "snow"),
        ("A small theatre company performs plays in parks during the summer. The audience brings "
         "blankets and picnics, and tickets cost whatever people want to pay. Last year more than five "
         "thousand people watched at least one show.", "theatre"),
        ("Scientists tracked a single humpback whale swimming from the coast of Brazil to Madagascar. "
         "The journey covered nearly ten thousand kilometres, one of the longest ever recorded for the "
         "species.", "whale"),
        ("The local council has started collecting food scraps in separate green bins. The scraps are "
         "turned into compost and gas at a plant outside the city. In the first month, household rubbish "
         "fell by almost a fifth.", "bins"),
        ("A retired teacher has been running free chess lessons at the community centre every Thursday "
         "for twelve years. Some of her former pupils now teach the beginners themselves.", "lessons"),
    ],
    "heldout": [
        ("A ferry company has launched a boat that runs entirely on batteries. It charges for fifteen "
         "minutes at each end of the crossing and carries up to two hundred passengers. Regular "
         "travellers say the quiet engine is the biggest surprise.", "ferry"),
        ("Beekeepers in the hills reported a record harvest this summer. A warm spring and plenty of "
         "wildflowers gave the colonies a strong start, although several keepers warned that one good "
         "year does not mean the bees are safe from disease.", "beekeepers"),
        ("A night-time astronomy club meets on the roof of the old post office. Members bring their own "
         "telescopes, and beginners can borrow one. On clear evenings the club invites families to look "
         "at the craters of the moon.", "telescopes"),
        ("The hospital opened a garden where patients and staff can sit outside. Nurses say that even "
         "short breaks among the plants help people feel less anxious, and some patients now ask to "
         "have their visits there.", "garden"),
        ("A family-run shoe shop has repaired boots for the same customers for three generations. The "
         "owner says that a well-made pair of boots can last twenty years if the soles are replaced in "
         "time.", "boots"),
        ("Students built a weather station on the school roof. It measures wind speed, rainfall and "
         "temperature every ten minutes and publishes the data online, where local farmers have started "
         "to check it before harvesting.", "station"),
        ("Engineers restored a nineteenth-century steam engine that had been rusting in a field. After "
         "four years of work it pulled its first train again, carrying volunteers and a brass band along "
         "a short stretch of track.", "engine"),
        ("A public swimming pool now opens an hour early on weekdays for people who want to swim before "
         "work. The early sessions were meant to be a trial, but they sold out so quickly that the pool "
         "made them permanent.", "pool"),
        ("Divers cleaned more than a tonne of old fishing nets from a reef near the harbour. The nets had "
         "trapped fish and damaged coral for years. The divers plan to turn the recovered material into "
         "park benches.", "nets"),
        ("A bookshop in the old quarter lets customers swap a used book for a free coffee. The owner "
         "says the shelves of second-hand books now attract as many visitors as the new titles in the "
         "window.", "bookshop"),
    ],
}

# ------------------------------------------------------------------------------- how-to activities
# (activity as it reads after "how to", keyword)
HOWTOS = {
    "train": [
        ("make a cup of tea", "kettle"), ("plant a tomato seedling", "soil"),
        ("fold a paper airplane", "wings"), ("make a simple green salad", "lettuce"),
        ("wash a car by hand", "sponge"), ("fix a flat bicycle tyre", "tyre"),
        ("make pancakes", "batter"), ("set up a tent", "poles"),
        ("clean a laptop keyboard", "cloth"), ("boil an egg", "water"),
        ("make a paper lantern", "paper"), ("repot a houseplant", "pot"),
        ("write a thank-you card", "card"), ("pack a suitcase", "clothes"),
        ("make lemonade", "lemons"), ("tie a tie", "knot"),
        ("bake banana bread", "bananas"), ("brew coffee with a French press", "grounds"),
        ("make a bird feeder", "seeds"), ("sew on a button", "needle"),
        ("clean a window without streaks", "vinegar"), ("build a small campfire safely", "wood"),
        ("make fresh pasta", "flour"), ("wrap a present", "tape"),
        ("prepare a fruit salad", "fruit"), ("start a journal", "pen"),
        ("make overnight oats", "oats"), ("clean running shoes", "brush"),
        ("hang a picture frame", "nail"), ("make a smoothie bowl", "banana"),
    ],
    "heldout": [
        ("make a paper boat", "fold"), ("polish leather boots", "polish"),
        ("cook flatbread in a pan", "pan"), ("plant spring flower bulbs", "bulbs"),
        ("set a formal dinner table", "forks"), ("make a mug of spiced milk", "cinnamon"),
        ("fix a squeaky door hinge", "oil"), ("make a daisy chain", "stems"),
        ("braid hair", "strands"), ("descale a kettle", "lemon"),
    ],
}

# ---------------------------------------------------------------------------- sentences to rewrite
REWRITE_SENTENCES = {
    "train": [
        "Give me the report now.",
        "The meeting has been postponed due to unforeseen circumstances.",
        "hey can u send me the file thx",
        "The team won the game.",
        "She don't like going to school on mondays.",
        "I walk to the store and buy some milk.",
        "In my personal opinion I think that we should probably leave soon.",
        "Your order will arrive when it arrives.",
        "Regular exercise improves both physical and mental health.",
        "The cake was eaten by the children.",
        "We need to talk about your attendance.",
        "The printer is broken again and nobody fixed it.",
        "Please remember to close the door when you leave.",
        "The train was late so I missed the start of the film.",
        "It is raining so the picnic is cancelled.",
        "The new library has lots of books and a cafe.",
        "Our neighbours are having a party on Saturday.",
        "This soup needs more salt.",
        "The dog barked at the postman all morning.",
        "I forgot my umbrella and got completely soaked.",
        "The shop closes early on Sundays.",
        "Homework must be handed in by Friday.",
        "The concert tickets sold out in ten minutes.",
        "My computer keeps freezing when I open too many tabs.",
    ],
    "heldout": [
        "The bus driver waited for me even though I was late.",
        "Lunch will be served in the hall at noon.",
        "The kitten knocked a glass off the table.",
        "We planted three apple trees behind the house.",
        "The swimming pool is closed for cleaning this week.",
        "My brother finally learned how to whistle.",
        "The parcel arrived damaged and half empty.",
        "The river froze for the first time in twenty years.",
    ],
}

# ------------------------------------------------------------------------- keyword / word pools
# extra keywords that fit almost any answer (used next to a topic keyword)
GENERIC_KEYWORDS = ["balance", "curious", "simple", "pattern", "future", "careful", "surprise", "bright",
                    "together", "patience", "journey", "reason", "example", "honest", "gentle", "community",
                    "practice", "energy", "quiet", "choice"]
# filler words a writer leans on; forbidding them makes the model rephrase
CRUTCH_WORDS = ["very", "really", "thing", "things", "good", "important", "just", "basically", "also",
                "great", "nice", "lot", "actually", "stuff"]
# first words for "paragraph N must start with ..."
FIRST_WORDS = ["First", "However", "Finally", "Today", "Imagine", "Meanwhile", "Overall", "Next",
               "Sometimes", "Although", "Then", "Luckily", "Still", "Now"]
END_PHRASES = ["Is there anything else I can help with?", "Let me know if you have questions.",
               "That is all for now.", "Thanks for reading.", "Hope this helps!", "Enjoy!",
               "See you soon.", "Stay curious."]

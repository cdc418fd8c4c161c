"""ShopWorld's vocabulary: categories, their aspects, brands, colours and the phrase banks the
text grammar draws from. Pure data, kept apart from the simulator so it reads in one sitting."""

CATEGORIES = {
    "headphones": dict(
        nouns=["headphones", "over-ear headphones", "wireless headphones", "earbuds"],
        aspects=["sound quality", "battery life", "noise cancelling", "comfort"],
        brands=["Aurora", "Sonique", "Vantor", "Helix", "Kestrel"],
        base_price=120.0, uses=["long flights", "the daily commute", "focused work", "the gym"]),
    "running_shoes": dict(
        nouns=["running shoes", "trail shoes", "road runners", "racing flats"],
        aspects=["cushioning", "grip", "lightness", "durability"],
        brands=["Stride", "Kestrel", "Northpeak", "Velo", "Marathon"],
        base_price=110.0, uses=["trail runs", "marathon training", "easy jogs", "race day"]),
    "backpacks": dict(
        nouns=["backpack", "daypack", "hiking pack", "travel backpack"],
        aspects=["capacity", "waterproofing", "comfort", "durability"],
        brands=["Northpeak", "Trailmark", "Urbana", "Helix", "Basecamp"],
        base_price=80.0, uses=["weekend hikes", "city commuting", "carry-on travel", "school"]),
    "coffee_makers": dict(
        nouns=["coffee maker", "espresso machine", "drip brewer", "pour-over kettle"],
        aspects=["flavour", "brew speed", "ease of cleaning", "quietness"],
        brands=["Brewster", "Crema", "Morningside", "Vantor", "Kaffa"],
        base_price=95.0, uses=["busy mornings", "slow weekends", "the office", "small kitchens"]),
    "jackets": dict(
        nouns=["jacket", "rain jacket", "down jacket", "softshell"],
        aspects=["warmth", "waterproofing", "fit", "breathability"],
        brands=["Northpeak", "Fjellby", "Urbana", "Basecamp", "Stride"],
        base_price=150.0, uses=["winter walks", "rainy commutes", "mountain days", "city evenings"]),
    "books": dict(
        nouns=["novel", "thriller", "mystery", "memoir"],
        aspects=["plot", "writing", "characters", "pacing"],
        brands=["Penfold", "Inkwell", "Larkspur", "Meridian", "Quillon"],
        base_price=16.0, uses=["a long weekend", "the beach", "book clubs", "quiet evenings"]),
    "smartwatches": dict(
        nouns=["smartwatch", "fitness watch", "sports watch", "hybrid watch"],
        aspects=["battery life", "fitness tracking", "display", "comfort"],
        brands=["Pulse", "Helix", "Sonique", "Vantor", "Tempo"],
        base_price=180.0, uses=["training", "everyday wear", "sleep tracking", "the office"]),
    "desk_lamps": dict(
        nouns=["desk lamp", "reading lamp", "LED lamp", "task light"],
        aspects=["brightness", "adjustability", "energy efficiency", "build quality"],
        brands=["Lumen", "Morningside", "Urbana", "Tempo", "Arclight"],
        base_price=45.0, uses=["late-night study", "the home office", "crafts", "reading in bed"]),
}
SHARED_ASPECTS = ["price"]
"""Aspects every item has. An item's 'price' quality is how cheap it is for its category."""

COLOURS = {  # name -> RGB
    "black": (30, 30, 30), "white": (235, 235, 235), "grey": (128, 128, 128),
    "navy": (25, 40, 100), "red": (200, 35, 35), "green": (40, 140, 60),
    "blue": (50, 110, 220), "yellow": (235, 200, 40), "orange": (240, 130, 30),
    "pink": (235, 120, 170),
}
PATTERNS = ["solid", "striped", "dotted", "checked"]
PATTERN_PHRASES = {"solid": "a plain finish", "striped": "bold stripes",
                   "dotted": "a polka-dot print", "checked": "a checked pattern"}

# Review opinion words by quality level 1..5 (polarity: 1-2 negative, 3 neutral, 4-5 positive)
OPINIONS = {
    5: ["excellent", "outstanding", "superb", "fantastic"],
    4: ["great", "very good", "solid", "impressive"],
    3: ["decent", "okay", "average", "acceptable"],
    2: ["mediocre", "disappointing", "weak", "poor"],
    1: ["terrible", "awful", "dreadful", "useless"],
}
REVIEW_TEMPLATES = [
    "The {aspect} is {opinion}.",
    "I found the {aspect} {opinion}.",
    "{Opinion} {aspect}, {tail}.",
    "Honestly, the {aspect} is {opinion}.",
    "The {aspect} turned out {opinion}.",
    "What stood out was the {opinion} {aspect}.",
]
REVIEW_TAILS = {1: ["exactly what I wanted", "no complaints at all", "I would buy it again"],
                0: ["nothing special", "it does the job", "about what I expected"],
                -1: ["which let me down", "sadly", "I expected more"]}

# Catalogue (marketing) adjectives by quality band
MARKETING = {"high": ["class-leading", "exceptional", "premium", "outstanding"],
             "mid": ["reliable", "dependable", "well-balanced", "everyday"],
             "low": ["basic", "entry-level", "no-frills", "simple"]}
OPENERS = [
    "Meet the {title}.", "Built for {use}: the {title}.", "Introducing the {title}.",
    "Made for {use}: the {title}.", "Say hello to the {title}.",
    "Designed with {use} in mind: the {title}.", "Upgrade to the {title}.",
    "Looking for gear for {use}? Try the {title}.",
]
ASPECT_SENTENCES = [
    "It offers {adj} {aspect}.", "Expect {adj} {aspect}.", "You get {adj} {aspect}.",
    "The {aspect} is {adj}.", "It pairs {adj} {aspect} with {adj2} {aspect2}.",
    "Enjoy {adj} {aspect} and {adj2} {aspect2}.",
]
COLOUR_SENTENCES = ["Available in {colour} with {pattern}.", "This one comes in {colour}, with {pattern}.",
                    "Finished in {colour} with {pattern}."]
CLOSERS = ["", "", "Ships in recyclable packaging.", "Backed by a two-year warranty.",
           "A favourite with our customers.", "Free returns within 30 days."]
MODEL_SYLLABLES = ["al", "ve", "tor", "ra", "mi", "zen", "lo", "qua", "ri", "no", "sa", "pex",
                   "dun", "ka", "lu", "vi"]

REASON_TEMPLATES = {
    "aspect": ["Its {opinion} {aspect} matches what you care about most.",
               "You value {aspect}, and this one's {aspect} is {opinion}.",
               "Because {aspect} matters to you: it is {opinion} here."],
    "two_aspects": ["It combines {opinion} {aspect} with {opinion2} {aspect2}, both important to you.",
                    "You care about {aspect} and {aspect2}; this delivers {opinion} {aspect} and {opinion2} {aspect2}."],
    "colour": "It comes in {colour}, a colour you often choose.",
    "pattern": "It has {pattern}, a style you like.",
    "brand": "It is from {brand}, a brand you keep coming back to.",
    "price": "It is good value for money, which matters to you.",
    "popularity": "It is popular with shoppers who like what you like.",
}

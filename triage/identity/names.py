"""Given-name variants: nicknames and alternative spellings that name the same person.

Each group is one formal name with the short forms and spellings that stand for it. A name
can belong to several groups (``Alex``: Alexander and Alexandra), so a record carries the
*set* of groups its given name belongs to, and two given names are variants of each other
when their sets intersect: ``Bob`` and ``Robert`` are, ``Samuel`` and ``Samantha`` are not
(their shared short form ``Sam`` is in both groups, neither full name is).

The list is hand-made for the synthetic world's names (Faker's English, Irish, Polish,
Indian, Pakistani, Nigerian, Kenyan and Turkish locales): it is an assumption, not a
published table; a real deployment would use a curated one.
"""

from __future__ import annotations

import re
from functools import lru_cache

VARIANT_GROUPS: dict[str, tuple[str, ...]] = {
    "abigail": ("abigail", "abi", "abby", "abbie", "gail"),
    "alexander": ("alexander", "alex", "alec", "sandy", "xander", "alasdair", "alistair"),
    "alexandra": ("alexandra", "alex", "lexi", "lexie", "sasha"),
    "amelia": ("amelia", "millie", "amy"),
    "andrew": ("andrew", "andy", "drew"),
    "ann": ("ann", "anne", "anna", "annie"),
    "anthony": ("anthony", "antony", "tony"),
    "benjamin": ("benjamin", "ben", "benny", "benji"),
    "catherine": (
        "catherine",
        "katherine",
        "kathryn",
        "katharine",
        "kate",
        "katie",
        "kathy",
        "cathy",
        "kat",
        "kitty",
        "katy",
    ),
    "charles": ("charles", "charlie", "chas", "chuck"),
    "charlotte": ("charlotte", "charlie", "lottie", "lotte"),
    "christopher": ("christopher", "chris", "kit"),
    "christine": ("christine", "christina", "chris", "tina"),
    "daniel": ("daniel", "dan", "danny"),
    "david": ("david", "dave", "davy", "dai"),
    "deborah": ("deborah", "debra", "debbie", "deb"),
    "edward": ("edward", "ed", "eddie", "ted", "teddy", "ned"),
    "elizabeth": ("elizabeth", "elisabeth", "liz", "lizzie", "beth", "betty", "eliza", "libby"),
    "eleanor": ("eleanor", "elinor", "ellie", "nell", "nellie", "ella"),
    "emily": ("emily", "emilie", "em", "emmy", "millie"),
    "emma": ("emma", "em", "emmy"),
    "frederick": ("frederick", "frederic", "fred", "freddie", "freddy"),
    "gabriel": ("gabriel", "gabe"),
    "henry": ("henry", "harry", "hal", "hank"),
    "isabel": ("isabel", "isabelle", "isabella", "izzy", "issy", "bella", "belle"),
    "jacob": ("jacob", "jake", "jakub", "kuba"),
    "james": ("james", "jim", "jimmy", "jamie", "jem"),
    "jennifer": ("jennifer", "jen", "jenny", "jenna"),
    "jessica": ("jessica", "jess", "jessie"),
    "john": ("john", "jon", "jack", "johnny", "jonny", "sean", "shaun", "shawn", "jan"),
    "jonathan": ("jonathan", "jon", "jonny", "johnny", "nathan"),
    "joseph": ("joseph", "joe", "joey", "jo", "jozef"),
    "joshua": ("joshua", "josh"),
    "leonard": ("leonard", "leo", "len", "lenny"),
    "margaret": (
        "margaret",
        "maggie",
        "meg",
        "peggy",
        "marge",
        "margo",
        "greta",
        "malgorzata",
        "gosia",
    ),
    "mary": ("mary", "maria", "marie", "molly", "polly", "maryam", "mariam"),
    "matthew": ("matthew", "matt", "matty", "mateusz"),
    "michael": ("michael", "mike", "mikey", "mick", "mickey", "micheal", "michal"),
    "mohammed": ("mohammed", "muhammad", "mohammad", "mohamed", "muhammed", "mohamad", "mo"),
    "natalie": ("natalie", "nathalie", "natalia", "nat", "tally"),
    "nathaniel": ("nathaniel", "nathan", "nate", "nat"),
    "nicholas": ("nicholas", "nicolas", "nick", "nicky", "nico"),
    "oliver": ("oliver", "ollie", "olly"),
    "olivia": ("olivia", "liv", "livvy", "livia"),
    "patricia": ("patricia", "pat", "patsy", "trish", "tricia"),
    "patrick": ("patrick", "pat", "paddy"),
    "peter": ("peter", "pete", "piotr"),
    "rebecca": ("rebecca", "rebekah", "becky", "becca", "bex"),
    "richard": ("richard", "rick", "ricky", "rich", "richie", "dick"),
    "robert": ("robert", "rob", "robbie", "bob", "bobby", "bert"),
    "samantha": ("samantha", "sam", "sammy", "sammie"),
    "samuel": ("samuel", "sam", "sammy"),
    "sarah": ("sarah", "sara", "sally"),
    "sophie": ("sophie", "sophia", "sofia", "zofia"),
    "stephen": ("stephen", "steven", "steve", "stevie", "stefan"),
    "susan": ("susan", "suzanne", "susanna", "sue", "susie", "suzy"),
    "theodore": ("theodore", "theo", "ted", "teddy"),
    "thomas": ("thomas", "tom", "tommy", "tomasz"),
    "timothy": ("timothy", "tim", "timmy"),
    "victoria": ("victoria", "vicky", "vikki", "tori", "wiktoria"),
    "william": ("william", "will", "bill", "billy", "liam", "willie", "wilf"),
    "zachary": ("zachary", "zach", "zack", "zak"),
    "zoe": ("zoe", "zoey", "zoë"),
    "aidan": ("aidan", "aiden", "ayden", "aden"),
    "jayden": ("jayden", "jaden", "jaiden", "jaydon"),
    "leah": ("leah", "lea", "lia"),
    "lucy": ("lucy", "lucie", "lucia", "lucja"),
    "grace": ("grace", "gracie"),
    "ifeoma": ("ifeoma", "ify"),
    "chukwuemeka": ("chukwuemeka", "emeka"),
    "oluwaseun": ("oluwaseun", "seun"),
    "oluwatobi": ("oluwatobi", "tobi"),
}

_NOT_LETTERS = re.compile(r"[^a-z]+")


def normalise_name(name: str | None) -> str | None:
    """Lower-case letters only (hyphens, apostrophes and spaces dropped); None when empty."""
    if name is None:
        return None
    folded = _NOT_LETTERS.sub("", name.strip().lower().replace("ë", "e"))
    return folded or None


@lru_cache(maxsize=1)
def _name_to_groups() -> dict[str, tuple[str, ...]]:
    table: dict[str, list[str]] = {}
    for group, names in VARIANT_GROUPS.items():
        for name in names:
            key = normalise_name(name)
            if key is not None:
                table.setdefault(key, []).append(group)
    return {name: tuple(sorted(groups)) for name, groups in table.items()}


def variant_groups(name: str | None) -> list[str]:
    """The variant groups of a normalised given name; the name itself when it is in none."""
    if name is None:
        return []
    return list(_name_to_groups().get(name, (name,)))

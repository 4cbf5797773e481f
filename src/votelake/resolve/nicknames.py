"""Common English given-name nicknames, for comparing first names.

A first name's *aliases* are the name itself plus every full name it is a
common short form of (``BILL`` → ``WILLIAM``; ``CHRIS`` → ``CHRISTOPHER``,
``CHRISTINE``, ...). Two first names are nickname-compatible when their alias
sets overlap, which a single Spark SQL ``arrays_overlap`` decides.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

# Full name -> its common short forms. Short forms may belong to several full names.
NICKNAMES: dict[str, tuple[str, ...]] = {
    "ABIGAIL": ("ABBY", "ABBIE", "GAIL"),
    "ALBERT": ("AL", "BERT", "BERTIE"),
    "ALEXANDER": ("ALEX", "AL", "ALEC", "XANDER", "SANDY"),
    "ALEXANDRA": ("ALEX", "ALEXA", "SANDRA", "SANDY", "LEXI"),
    "ALFRED": ("AL", "ALFIE", "FRED", "FREDDIE"),
    "ALLISON": ("ALLIE", "ALLY"),
    "ANDREW": ("ANDY", "DREW"),
    "ANGELA": ("ANGIE",),
    "ANTHONY": ("TONY",),
    "ARTHUR": ("ART", "ARTIE"),
    "BARBARA": ("BARB", "BARBIE", "BABS"),
    "BENJAMIN": ("BEN", "BENJI", "BENNY"),
    "BERNARD": ("BERNIE",),
    "BEVERLY": ("BEV",),
    "BRADLEY": ("BRAD",),
    "CAROLINE": ("CARRIE", "CARO"),
    "CATHERINE": ("CATHY", "CATE", "KATE", "KATIE", "CAT"),
    "CHARLES": ("CHARLIE", "CHUCK", "CHAS", "CHAZ"),
    "CHARLOTTE": ("CHARLIE", "LOTTIE"),
    "CHRISTIAN": ("CHRIS",),
    "CHRISTINA": ("CHRIS", "TINA", "CHRISSY"),
    "CHRISTINE": ("CHRIS", "CHRISSY", "TINA"),
    "CHRISTOPHER": ("CHRIS", "KIT", "TOPHER"),
    "CYNTHIA": ("CINDY",),
    "DANIEL": ("DAN", "DANNY"),
    "DAVID": ("DAVE", "DAVEY"),
    "DEBORAH": ("DEB", "DEBBIE", "DEBBY"),
    "DONALD": ("DON", "DONNIE"),
    "DOROTHY": ("DOT", "DOTTIE", "DORY"),
    "DOUGLAS": ("DOUG",),
    "EDWARD": ("ED", "EDDIE", "TED", "TEDDY", "NED"),
    "ELEANOR": ("ELLIE", "NELL", "NORA"),
    "ELIZABETH": ("LIZ", "LIZZIE", "BETH", "BETSY", "BETTY", "ELIZA", "LISA", "LIBBY"),
    "EUGENE": ("GENE",),
    "FREDERICK": ("FRED", "FREDDIE", "FRITZ"),
    "GABRIEL": ("GABE",),
    "GERALD": ("GERRY", "JERRY"),
    "GREGORY": ("GREG",),
    "HAROLD": ("HAL", "HARRY"),
    "HENRY": ("HANK", "HARRY"),
    "HERBERT": ("HERB",),
    "ISABEL": ("IZZY", "BELLA"),
    "JACOB": ("JAKE",),
    "JACQUELINE": ("JACKIE",),
    "JAMES": ("JIM", "JIMMY", "JAMIE"),
    "JANET": ("JAN",),
    "JEFFREY": ("JEFF",),
    "JENNIFER": ("JEN", "JENNY", "JENNI"),
    "JESSICA": ("JESS", "JESSIE"),
    "JOHN": ("JACK", "JOHNNY"),
    "JONATHAN": ("JON", "JONNY"),
    "JOSEPH": ("JOE", "JOEY"),
    "JOSHUA": ("JOSH",),
    "JUDITH": ("JUDY",),
    "KATHERINE": ("KATHY", "KATE", "KATIE", "KAT", "KAY"),
    "KATHLEEN": ("KATHY", "KATE", "KATIE"),
    "KENNETH": ("KEN", "KENNY"),
    "KIMBERLY": ("KIM",),
    "LAWRENCE": ("LARRY",),
    "LEONARD": ("LEN", "LENNY", "LEO"),
    "MARGARET": ("MAGGIE", "MEG", "PEGGY", "PEG", "MARGE", "MADGE", "GRETA"),
    "MATTHEW": ("MATT", "MATTY"),
    "MICHAEL": ("MIKE", "MICKEY", "MICK"),
    "NATHAN": ("NATE",),
    "NATHANIEL": ("NATE", "NAT"),
    "NICHOLAS": ("NICK", "NICKY"),
    "NICOLE": ("NIKKI", "NICKY"),
    "PAMELA": ("PAM",),
    "PATRICIA": ("PAT", "PATTY", "PATSY", "TRISH", "TRICIA"),
    "PATRICK": ("PAT", "PADDY"),
    "PETER": ("PETE",),
    "PHILIP": ("PHIL",),
    "PHILLIP": ("PHIL",),
    "RAYMOND": ("RAY",),
    "REBECCA": ("BECKY", "BECCA"),
    "RICHARD": ("RICK", "RICKY", "RICH", "DICK"),
    "ROBERT": ("BOB", "BOBBY", "ROB", "ROBBIE", "BERT"),
    "RONALD": ("RON", "RONNIE"),
    "SAMANTHA": ("SAM", "SAMMY"),
    "SAMUEL": ("SAM", "SAMMY"),
    "STEPHANIE": ("STEPH",),
    "STEPHEN": ("STEVE", "STEVIE"),
    "STEVEN": ("STEVE", "STEVIE"),
    "SUSAN": ("SUE", "SUSIE", "SUZY"),
    "SUZANNE": ("SUE", "SUZY"),
    "THEODORE": ("TED", "TEDDY", "THEO"),
    "THOMAS": ("TOM", "TOMMY"),
    "TIMOTHY": ("TIM", "TIMMY"),
    "VICTORIA": ("VICKY", "VICKIE", "TORI"),
    "VINCENT": ("VINCE", "VINNY"),
    "WALTER": ("WALT", "WALLY"),
    "WILLIAM": ("BILL", "BILLY", "WILL", "WILLIE", "LIAM"),
    "ZACHARY": ("ZACH", "ZACK"),
}


def alias_table() -> dict[str, list[str]]:
    """Every short form mapped to the full names it abbreviates, sorted.

    Returns:
        Short form -> full names (a full name that is also a short form of
        another, like ``LEO``, maps to the others only; the name itself is
        added by :func:`first_name_aliases`).
    """
    table: dict[str, set[str]] = {}
    for full, shorts in NICKNAMES.items():
        for short in shorts:
            table.setdefault(short, set()).add(full)
    return {short: sorted(fulls) for short, fulls in sorted(table.items())}


def first_name_aliases(first_name: Column) -> Column:
    """The alias set of a first name: itself plus the full names it may stand for.

    Args:
        first_name: an upper-case first-name column.

    Returns:
        An array<string> column; null when the name is null.
    """
    pairs = ", ".join(
        f"'{short}', array({', '.join(repr(f) for f in fulls)})" for short, fulls in alias_table().items()
    )
    lookup = F.element_at(F.expr(f"map({pairs})"), first_name)
    return F.when(
        first_name.isNotNull(),
        F.array_union(F.array(first_name), F.coalesce(lookup, F.array().cast("array<string>"))),
    )

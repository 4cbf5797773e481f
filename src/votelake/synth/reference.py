"""Small reference tables for the synthetic state: counties, elections, codes, names.

County ids and names follow the NCSBE code table (layout_ncvoter.txt; Yancey is
published as "00" but appears as 100 in the files). Weights are rough registered
voter counts in thousands, so Wake and Mecklenburg dominate as in reality. Name
and street lists are generic, frequent US names, not taken from any voter file.
"""

from __future__ import annotations

import datetime as dt
import random

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

SNAPSHOT_DATE = dt.date(2026, 9, 1)
"""The date of the synthetic voter file snapshot."""

CAMPAIGN_START = dt.date(2026, 6, 1)
CAMPAIGN_END = dt.date(2026, 8, 31)
YEAR_END = 2026
NEXT_GENERAL = dt.date(2026, 11, 3)

# Region codes: T triangle (919/984), C Charlotte (704/980), P piedmont triad
# (336/743), W mountains (828), S south-east (910), E north-east (252).
# (county_id, name, weight in thousands, region, seat)
COUNTIES: list[tuple[int, str, float, str, str]] = [
    (1, "ALAMANCE", 120, "P", "GRAHAM"), (2, "ALEXANDER", 26, "W", "TAYLORSVILLE"),
    (3, "ALLEGHANY", 8, "P", "SPARTA"), (4, "ANSON", 16, "C", "WADESBORO"),
    (5, "ASHE", 21, "W", "JEFFERSON"), (6, "AVERY", 13, "W", "NEWLAND"),
    (7, "BEAUFORT", 35, "E", "WASHINGTON"), (8, "BERTIE", 13, "E", "WINDSOR"),
    (9, "BLADEN", 22, "S", "ELIZABETHTOWN"), (10, "BRUNSWICK", 130, "S", "BOLIVIA"),
    (11, "BUNCOMBE", 210, "W", "ASHEVILLE"), (12, "BURKE", 62, "W", "MORGANTON"),
    (13, "CABARRUS", 165, "C", "CONCORD"), (14, "CALDWELL", 58, "W", "LENOIR"),
    (15, "CAMDEN", 8, "E", "CAMDEN"), (16, "CARTERET", 55, "E", "BEAUFORT"),
    (17, "CASWELL", 16, "P", "YANCEYVILLE"), (18, "CATAWBA", 115, "W", "NEWTON"),
    (19, "CHATHAM", 65, "T", "PITTSBORO"), (20, "CHEROKEE", 23, "W", "MURPHY"),
    (21, "CHOWAN", 10, "E", "EDENTON"), (22, "CLAY", 9, "W", "HAYESVILLE"),
    (23, "CLEVELAND", 70, "C", "SHELBY"), (24, "COLUMBUS", 37, "S", "WHITEVILLE"),
    (25, "CRAVEN", 72, "E", "NEW BERN"), (26, "CUMBERLAND", 220, "S", "FAYETTEVILLE"),
    (27, "CURRITUCK", 24, "E", "CURRITUCK"), (28, "DARE", 32, "E", "MANTEO"),
    (29, "DAVIDSON", 120, "P", "LEXINGTON"), (30, "DAVIE", 33, "P", "MOCKSVILLE"),
    (31, "DUPLIN", 32, "S", "KENANSVILLE"), (32, "DURHAM", 250, "T", "DURHAM"),
    (33, "EDGECOMBE", 36, "E", "TARBORO"), (34, "FORSYTH", 270, "P", "WINSTON SALEM"),
    (35, "FRANKLIN", 52, "T", "LOUISBURG"), (36, "GASTON", 160, "C", "GASTONIA"),
    (37, "GATES", 8, "E", "GATESVILLE"), (38, "GRAHAM", 6, "W", "ROBBINSVILLE"),
    (39, "GRANVILLE", 42, "T", "OXFORD"), (40, "GREENE", 11, "E", "SNOW HILL"),
    (41, "GUILFORD", 380, "P", "GREENSBORO"), (42, "HALIFAX", 38, "E", "HALIFAX"),
    (43, "HARNETT", 95, "T", "LILLINGTON"), (44, "HAYWOOD", 48, "W", "WAYNESVILLE"),
    (45, "HENDERSON", 90, "W", "HENDERSONVILLE"), (46, "HERTFORD", 15, "E", "WINTON"),
    (47, "HOKE", 35, "S", "RAEFORD"), (48, "HYDE", 3.5, "E", "SWAN QUARTER"),
    (49, "IREDELL", 140, "C", "STATESVILLE"), (50, "JACKSON", 32, "W", "SYLVA"),
    (51, "JOHNSTON", 160, "T", "SMITHFIELD"), (52, "JONES", 7, "E", "TRENTON"),
    (53, "LEE", 42, "T", "SANFORD"), (54, "LENOIR", 38, "E", "KINSTON"),
    (55, "LINCOLN", 70, "C", "LINCOLNTON"), (56, "MACON", 28, "W", "FRANKLIN"),
    (57, "MADISON", 17, "W", "MARSHALL"), (58, "MARTIN", 16, "E", "WILLIAMSTON"),
    (59, "MCDOWELL", 31, "W", "MARION"), (60, "MECKLENBURG", 790, "C", "CHARLOTTE"),
    (61, "MITCHELL", 11, "W", "BAKERSVILLE"), (62, "MONTGOMERY", 15, "C", "TROY"),
    (63, "MOORE", 80, "S", "CARTHAGE"), (64, "NASH", 65, "E", "NASHVILLE"),
    (65, "NEWHANOVER", 180, "S", "WILMINGTON"), (66, "NORTHAMPTON", 15, "E", "JACKSON"),
    (67, "ONSLOW", 120, "S", "JACKSONVILLE"), (68, "ORANGE", 115, "T", "HILLSBOROUGH"),
    (69, "PAMLICO", 10, "E", "BAYBORO"), (70, "PASQUOTANK", 27, "E", "ELIZABETH CITY"),
    (71, "PENDER", 50, "S", "BURGAW"), (72, "PERQUIMANS", 10, "E", "HERTFORD"),
    (73, "PERSON", 28, "T", "ROXBORO"), (74, "PITT", 125, "E", "GREENVILLE"),
    (75, "POLK", 17, "W", "COLUMBUS"), (76, "RANDOLPH", 95, "P", "ASHEBORO"),
    (77, "RICHMOND", 28, "S", "ROCKINGHAM"), (78, "ROBESON", 75, "S", "LUMBERTON"),
    (79, "ROCKINGHAM", 65, "P", "REIDSVILLE"), (80, "ROWAN", 100, "C", "SALISBURY"),
    (81, "RUTHERFORD", 45, "W", "RUTHERFORDTON"), (82, "SAMPSON", 38, "S", "CLINTON"),
    (83, "SCOTLAND", 22, "S", "LAURINBURG"), (84, "STANLY", 44, "C", "ALBEMARLE"),
    (85, "STOKES", 34, "P", "DANBURY"), (86, "SURRY", 50, "P", "DOBSON"),
    (87, "SWAIN", 11, "W", "BRYSON CITY"), (88, "TRANSYLVANIA", 28, "W", "BREVARD"),
    (89, "TYRRELL", 2.5, "E", "COLUMBIA"), (90, "UNION", 170, "C", "MONROE"),
    (91, "VANCE", 30, "T", "HENDERSON"), (92, "WAKE", 850, "T", "RALEIGH"),
    (93, "WARREN", 14, "E", "WARRENTON"), (94, "WASHINGTON", 8.5, "E", "PLYMOUTH"),
    (95, "WATAUGA", 50, "W", "BOONE"), (96, "WAYNE", 78, "E", "GOLDSBORO"),
    (97, "WILKES", 48, "P", "WILKESBORO"), (98, "WILSON", 57, "E", "WILSON"),
    (99, "YADKIN", 26, "P", "YADKINVILLE"), (100, "YANCEY", 15, "W", "BURNSVILLE"),
]

# Per region: area codes (main, overlay), zip range, Black share of voters,
# turnout and support shifts (logit scale). Shares are rough, for realism only.
REGIONS: dict[str, dict] = {
    "T": dict(area=("919", "984"), zip0=27501, zips=300, black=0.20, turnout=0.15, support=0.40, order=0),
    "C": dict(area=("704", "980"), zip0=28001, zips=300, black=0.24, turnout=0.0, support=0.15, order=1),
    "P": dict(area=("336", "743"), zip0=27006, zips=400, black=0.20, turnout=0.0, support=0.0, order=2),
    "W": dict(area=("828", "828"), zip0=28601, zips=300, black=0.05, turnout=0.05, support=-0.35, order=3),
    "S": dict(area=("910", "910"), zip0=28301, zips=280, black=0.24, turnout=-0.15, support=-0.15, order=4),
    "E": dict(area=("252", "252"), zip0=27801, zips=200, black=0.36, turnout=-0.10, support=0.05, order=5),
}

BUCKETS = 10_000
"""Resolution of the county draw: a uniform is mapped to one of these buckets."""

VOTERS_PER_PRECINCT = 2_200

# Generic town names for unincorporated areas (precinct-level residence city).
TOWNS = [
    "FAIRVIEW", "OAK GROVE", "PLEASANT HILL", "CEDAR CREEK", "MOUNT PLEASANT", "SPRING HOPE",
    "PINE LEVEL", "WALNUT COVE", "BETHEL", "UNION GROVE", "SHADY GROVE", "MILL CREEK",
]

ELECTIONS: list[tuple[str, str]] = [
    ("03/15/2016", "PRIMARY"), ("11/08/2016", "GENERAL"), ("11/07/2017", "MUNICIPAL"),
    ("05/08/2018", "PRIMARY"), ("11/06/2018", "GENERAL"), ("11/05/2019", "MUNICIPAL"),
    ("03/03/2020", "PRIMARY"), ("11/03/2020", "GENERAL"), ("11/02/2021", "MUNICIPAL"),
    ("05/17/2022", "PRIMARY"), ("11/08/2022", "GENERAL"), ("11/07/2023", "MUNICIPAL"),
    ("03/05/2024", "PRIMARY"), ("11/05/2024", "GENERAL"), ("11/04/2025", "MUNICIPAL"),
    ("03/03/2026", "PRIMARY"),
]

VOTING_METHODS = [
    "ABSENTEE ONESTOP", "ABSENTEE BY MAIL", "PROVISIONAL", "CURBSIDE", "TRANSFER", "IN-PERSON",
]


def _method_shares(date: dt.date, kind: str) -> list[float]:
    # Early voting (ONESTOP) dominates NC presidential generals; 2020 had a
    # mail surge; primaries and municipal elections are mostly election-day.
    if kind == "GENERAL":
        if date.year == 2020:
            onestop, mail = 0.64, 0.18
        elif date.year in (2016, 2024):
            onestop, mail = 0.64 if date.year == 2016 else 0.70, 0.05
        else:
            onestop, mail = 0.52, 0.05
    elif kind == "PRIMARY":
        onestop, mail = (0.40, 0.08) if date.year == 2020 else (0.35, 0.03)
    else:
        onestop, mail = 0.25, 0.02
    return [onestop, mail, 0.006, 0.004, 0.001]


PARTY_DESC = {
    "DEM": "DEMOCRATIC", "REP": "REPUBLICAN", "UNA": "UNAFFILIATED",
    "LIB": "LIBERTARIAN", "GRE": "GREEN", "CST": "CONSTITUTION",
}

STATUS_DESC = {"A": "ACTIVE", "I": "INACTIVE", "R": "REMOVED", "D": "DENIED", "S": "TEMPORARY"}

REASON_DESC = {
    "AV": "VERIFIED", "A2": "CONFIRMATION PENDING", "AP": "VERIFICATION PENDING",
    "AN": "UNVERIFIED NEW", "IN": "CONFIRMATION NOT RETURNED",
    "IU": "CONFIRMATION RETURNED UNDELIVERABLE", "RD": "DECEASED", "RS": "MOVED FROM STATE",
    "RL": "MOVED FROM COUNTY", "RM": "REMOVED AFTER 2 FED GENERAL ELECTIONS IN INACTIVE STATUS",
    "RT": "TEMPORARY REGISTRANT", "RQ": "REQUEST FROM VOTER", "RF": "FELONY CONVICTION",
    "RH": "MOVED WITHIN STATE", "DU": "VERIFICATION RETURNED UNDELIVERABLE",
    "DN": "CONFIRMATION NOT RETURNED", "DI": "UNAVAILABLE ESSENTIAL INFORMATION",
    "SO": "OVERSEAS CITIZEN", "SM": "MILITARY",
}

# Frequent US first names (generic, most common first, so a skewed pick is realistic).
FEMALE_FIRST = [
    "MARY", "PATRICIA", "JENNIFER", "LINDA", "ELIZABETH", "BARBARA", "SUSAN", "JESSICA", "SARAH",
    "KAREN", "LISA", "NANCY", "BETTY", "SANDRA", "MARGARET", "ASHLEY", "KIMBERLY", "EMILY",
    "DONNA", "MICHELLE", "CAROL", "AMANDA", "MELISSA", "DEBORAH", "STEPHANIE", "DOROTHY",
    "REBECCA", "SHARON", "LAURA", "CYNTHIA", "AMY", "KATHLEEN", "ANGELA", "SHIRLEY", "BRENDA",
    "EMMA", "ANNA", "PAMELA", "NICOLE", "SAMANTHA", "KATHERINE", "CHRISTINE", "HELEN",
    "DEBRA", "RACHEL", "CAROLYN", "JANET", "MARIA", "CATHERINE", "HEATHER", "DIANE", "OLIVIA",
    "JULIE", "JOYCE", "VICTORIA", "RUTH", "VIRGINIA", "LAUREN", "KELLY", "CHRISTINA", "JOAN",
    "EVELYN", "JUDITH", "ANDREA", "HANNAH", "MEGAN", "CHERYL", "JACQUELINE", "MARTHA",
    "MADISON", "TERESA", "GLORIA", "SARA", "JANICE", "ANN", "KATHRYN", "ABIGAIL", "SOPHIA",
    "FRANCES", "JEAN", "ALICE", "JUDY", "ISABELLA", "JULIA", "GRACE", "AMBER", "DENISE",
    "DANIELLE", "MARILYN", "BEVERLY", "CHARLOTTE", "NATALIE", "THERESA", "DIANA", "BRITTANY",
    "DORIS", "KAYLA", "ALEXIS", "LORI", "TAMMY", "WANDA", "BONNIE", "PEGGY", "CRYSTAL",
]
MALE_FIRST = [
    "JAMES", "ROBERT", "JOHN", "MICHAEL", "DAVID", "WILLIAM", "RICHARD", "JOSEPH", "THOMAS",
    "CHRISTOPHER", "CHARLES", "DANIEL", "MATTHEW", "ANTHONY", "MARK", "DONALD", "STEVEN",
    "ANDREW", "PAUL", "JOSHUA", "KENNETH", "KEVIN", "BRIAN", "GEORGE", "TIMOTHY", "RONALD",
    "JASON", "EDWARD", "JEFFREY", "RYAN", "JACOB", "GARY", "NICHOLAS", "ERIC", "JONATHAN",
    "STEPHEN", "LARRY", "JUSTIN", "SCOTT", "BRANDON", "BENJAMIN", "SAMUEL", "GREGORY",
    "ALEXANDER", "PATRICK", "FRANK", "RAYMOND", "JACK", "DENNIS", "JERRY", "TYLER", "AARON",
    "JOSE", "ADAM", "NATHAN", "HENRY", "ZACHARY", "DOUGLAS", "PETER", "KYLE", "NOAH", "ETHAN",
    "JEREMY", "WALTER", "CHRISTIAN", "KEITH", "ROGER", "TERRY", "AUSTIN", "SEAN", "GERALD",
    "CARL", "HAROLD", "DYLAN", "ARTHUR", "LAWRENCE", "JORDAN", "JESSE", "BRYAN", "BILLY",
    "BRUCE", "GABRIEL", "JOE", "LOGAN", "ALAN", "JUAN", "ALBERT", "WILLIE", "ELIJAH", "WAYNE",
    "RANDY", "VINCENT", "MASON", "ROY", "RALPH", "BOBBY", "RUSSELL", "BRADLEY", "PHILIP",
    "EUGENE", "JOHNNY", "CARLOS", "TONY", "TRAVIS",
]
FEMALE_MIDDLE = ["ANN", "MARIE", "LYNN", "ELIZABETH", "NICOLE", "MICHELLE", "JEAN", "LOUISE",
                 "RENEE", "KAY", "GRACE", "ROSE", "DAWN", "SUE", "JANE", "MAE"]
MALE_MIDDLE = ["LEE", "JAMES", "WAYNE", "EDWARD", "ALLEN", "RAY", "MICHAEL", "JOSEPH", "DAVID",
               "THOMAS", "DEAN", "EARL", "GENE", "SCOTT", "ALAN", "PAUL"]

# Frequent US surnames (generic).
SURNAMES = [
    "SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "GARCIA", "MILLER", "DAVIS", "RODRIGUEZ",
    "MARTINEZ", "HERNANDEZ", "LOPEZ", "GONZALEZ", "WILSON", "ANDERSON", "THOMAS", "TAYLOR",
    "MOORE", "JACKSON", "MARTIN", "LEE", "PEREZ", "THOMPSON", "WHITE", "HARRIS", "SANCHEZ",
    "CLARK", "RAMIREZ", "LEWIS", "ROBINSON", "WALKER", "YOUNG", "ALLEN", "KING", "WRIGHT",
    "SCOTT", "TORRES", "NGUYEN", "HILL", "FLORES", "GREEN", "ADAMS", "NELSON", "BAKER", "HALL",
    "RIVERA", "CAMPBELL", "MITCHELL", "CARTER", "ROBERTS", "GOMEZ", "PHILLIPS", "EVANS",
    "TURNER", "DIAZ", "PARKER", "CRUZ", "EDWARDS", "COLLINS", "REYES", "STEWART", "MORRIS",
    "MORALES", "MURPHY", "COOK", "ROGERS", "GUTIERREZ", "ORTIZ", "MORGAN", "COOPER", "PETERSON",
    "BAILEY", "REED", "KELLY", "HOWARD", "RAMOS", "KIM", "COX", "WARD", "RICHARDSON", "WATSON",
    "BROOKS", "CHAVEZ", "WOOD", "JAMES", "BENNETT", "GRAY", "MENDOZA", "RUIZ", "HUGHES", "PRICE",
    "ALVAREZ", "CASTILLO", "SANDERS", "PATEL", "MYERS", "LONG", "ROSS", "FOSTER", "JIMENEZ",
    "POWELL", "JENKINS", "PERRY", "RUSSELL", "SULLIVAN", "BELL", "COLEMAN", "BUTLER",
    "HENDERSON", "BARNES", "GONZALES", "FISHER", "VASQUEZ", "SIMMONS", "ROMERO", "JORDAN",
    "PATTERSON", "ALEXANDER", "HAMILTON", "GRAHAM", "REYNOLDS", "GRIFFIN", "WALLACE", "MORENO",
    "WEST", "COLE", "HAYES", "BRYANT", "HERRERA", "GIBSON", "ELLIS", "TRAN", "MEDINA", "AGUILAR",
    "STEVENS", "MURRAY", "FORD", "CASTRO", "MARSHALL", "OWENS", "HARRISON", "FERNANDEZ",
    "MCDONALD", "WOODS", "WASHINGTON", "KENNEDY", "WELLS", "VARGAS", "HENRY", "CHEN", "FREEMAN",
    "WEBB", "TUCKER", "GUZMAN", "BURNS", "CRAWFORD", "OLSON", "SIMPSON", "PORTER", "HUNTER",
    "GORDON", "MENDEZ", "SILVA", "SHAW", "SNYDER", "MASON", "DIXON", "MUNOZ", "HUNT", "HICKS",
    "HOLMES", "PALMER", "WAGNER", "BLACK", "ROBERTSON", "BOYD", "ROSE", "STONE", "SALAZAR",
    "FOX", "WARREN", "MILLS", "MEYER", "RICE", "SCHMIDT", "GARZA", "DANIELS", "FERGUSON",
    "NICHOLS", "STEPHENS", "SOTO", "WEAVER", "RYAN", "GARDNER", "PAYNE", "GRANT", "DUNN",
]
HISPANIC_SURNAMES = [s for s in SURNAMES if s.endswith("EZ") or s in {
    "GARCIA", "RIVERA", "FLORES", "TORRES", "REYES", "CRUZ", "MORALES", "ORTIZ", "RAMOS",
    "CASTILLO", "MENDOZA", "ROMERO", "MORENO", "HERRERA", "MEDINA", "AGUILAR", "CASTRO",
    "VARGAS", "GUZMAN", "SILVA", "MUNOZ", "SALAZAR", "GARZA", "SOTO", "CHAVEZ", "DIAZ"}]
ASIAN_SURNAMES = ["NGUYEN", "KIM", "PATEL", "TRAN", "CHEN", "LE", "PHAM", "WANG", "LI", "SHAH",
                  "PARK", "ZHANG", "SINGH", "LIU", "HUANG", "WU"]

NICKNAMES = {
    "WILLIAM": "BILL", "ROBERT": "BOB", "RICHARD": "RICK", "JAMES": "JIM", "JOSEPH": "JOE",
    "THOMAS": "TOM", "CHRISTOPHER": "CHRIS", "CHARLES": "CHARLIE", "DANIEL": "DAN",
    "MATTHEW": "MATT", "ANTHONY": "TONY", "DONALD": "DON", "STEVEN": "STEVE", "ANDREW": "ANDY",
    "KENNETH": "KEN", "TIMOTHY": "TIM", "RONALD": "RON", "EDWARD": "ED", "JEFFREY": "JEFF",
    "NICHOLAS": "NICK", "JONATHAN": "JON", "GREGORY": "GREG", "SAMUEL": "SAM",
    "ALEXANDER": "ALEX", "PATRICK": "PAT", "MICHAEL": "MIKE", "DAVID": "DAVE",
    "ELIZABETH": "BETH", "PATRICIA": "PATTY", "JENNIFER": "JENNY", "MARGARET": "PEGGY",
    "KIMBERLY": "KIM", "DEBORAH": "DEBBIE", "REBECCA": "BECKY", "KATHERINE": "KATIE",
    "CHRISTINE": "CHRIS", "SAMANTHA": "SAM", "VICTORIA": "VICKY", "CATHERINE": "CATHY",
    "SUSAN": "SUE", "BARBARA": "BARB", "CYNTHIA": "CINDY", "PAMELA": "PAM", "JACQUELINE": "JACKIE",
}

STREETS = [
    "MAIN", "OAK", "PINE", "MAPLE", "CEDAR", "ELM", "CHURCH", "MILL", "LAKE", "HILL", "PARK",
    "WASHINGTON", "HICKORY", "DOGWOOD", "MAGNOLIA", "WILLOW", "SPRING", "MEADOW", "FOREST",
    "RIVER", "CREEK", "VALLEY", "SUNSET", "HIGHLAND", "WOODLAND", "LAUREL", "POPLAR", "BIRCH",
    "CHESTNUT", "WALNUT", "HOLLY", "MOUNTAIN VIEW", "OLD FARM", "COUNTRY CLUB", "SCHOOL",
    "LIBERTY", "UNION", "HARVEST", "ORCHARD", "BROOKSIDE", "FAIRWAY", "STONEGATE", "WINDSOR",
    "CARDINAL", "BLUEBIRD", "PLANTATION", "RAILROAD", "OLD MILL", "SPRING VALLEY", "TWIN OAKS",
]
STREET_TYPES = ["RD", "ST", "DR", "LN", "AVE", "CT", "WAY", "CIR", "PL", "TRL"]

BIRTH_STATES = ["NC", "NY", "VA", "PA", "SC", "FL", "NJ", "OH", "OC", "CA", "GA", "MD", "IL",
                "MI", "TX"]
BIRTH_STATE_WEIGHTS = [0.58, 0.07, 0.06, 0.05, 0.04, 0.04, 0.035, 0.03, 0.03, 0.025, 0.025,
                       0.02, 0.02, 0.015, 0.015]

EMAIL_DOMAINS = ["example.com", "example.net", "example.org", "mail.example.com"]


def county_table(spark: SparkSession, voters: int, seed: int) -> DataFrame:
    """One row per county with geography, district ranges and latent county effects.

    Districts are laid out by cumulative population with counties ordered by
    region, so neighbouring counties share districts and a big county spans
    several; a precinct's district is fixed by its position in that order.

    Args:
        spark: the session.
        voters: number of persons generated (sets precincts per county).
        seed: generator seed (county effects are drawn from it).

    Returns:
        A small DataFrame keyed by ``county_id``.
    """
    rng = random.Random(f"counties-{seed}")
    total = sum(c[2] for c in COUNTIES)
    ordered = sorted(COUNTIES, key=lambda c: (REGIONS[c[3]]["order"], c[0]))
    rows = []
    cum = 0.0
    for cid, name, weight, region, seat in ordered:
        r = REGIONS[region]
        frac = weight / total
        n_prec = max(1, round(voters * frac / VOTERS_PER_PRECINCT))
        rows.append((
            cid, name, region, seat, frac, cum, n_prec,
            r["area"][0], r["area"][1], r["zip0"] + (cid * 37) % r["zips"],
            r["black"], r["turnout"] + rng.gauss(0, 0.2), r["support"] + rng.gauss(0, 0.2),
            # Two-letter NCID prefix per county, as NC ids carry a county prefix.
            chr(65 + (cid - 1) // 26) + chr(65 + (cid - 1) % 26),
        ))
        cum += frac
    schema = T.StructType([
        T.StructField("county_id", T.IntegerType()), T.StructField("county_desc", T.StringType()),
        T.StructField("region", T.StringType()), T.StructField("seat", T.StringType()),
        T.StructField("c_frac", T.DoubleType()), T.StructField("c_cum", T.DoubleType()),
        T.StructField("n_prec", T.IntegerType()), T.StructField("area1", T.StringType()),
        T.StructField("area2", T.StringType()), T.StructField("zip_base", T.IntegerType()),
        T.StructField("black_share", T.DoubleType()), T.StructField("c_turnout", T.DoubleType()),
        T.StructField("c_support", T.DoubleType()), T.StructField("ncid_prefix", T.StringType()),
    ])
    return spark.createDataFrame(rows, schema)


def county_buckets(spark: SparkSession) -> DataFrame:
    """Map ``BUCKETS`` equal slices of [0, 1) to counties in proportion to weight.

    Args:
        spark: the session.

    Returns:
        DataFrame (bucket int, county_id int) with ``BUCKETS`` rows.
    """
    total = sum(c[2] for c in COUNTIES)
    rows = []
    cum = 0.0
    i = 0
    for cid, _name, weight, _region, _seat in COUNTIES:
        cum += weight / total
        while i < BUCKETS and (i + 0.5) / BUCKETS < cum:
            rows.append((i, cid))
            i += 1
    while i < BUCKETS:  # rounding at the very end
        rows.append((i, COUNTIES[-1][0]))
        i += 1
    schema = T.StructType([T.StructField("bucket", T.IntegerType()),
                           T.StructField("county_id", T.IntegerType())])
    return spark.createDataFrame(rows, schema)


def election_table(spark: SparkSession) -> DataFrame:
    """One row per election with label, description, type and voting-method thresholds.

    Args:
        spark: the session.

    Returns:
        DataFrame with ``e_idx, election_lbl, election_desc, e_type, e_date`` and
        cumulative method thresholds ``m1..m5`` (ONESTOP, MAIL, PROVISIONAL,
        CURBSIDE, TRANSFER; the rest is IN-PERSON).
    """
    rows = []
    for idx, (lbl, kind) in enumerate(ELECTIONS):
        date = dt.datetime.strptime(lbl, "%m/%d/%Y").date()
        shares = _method_shares(date, kind)
        cum, ths = 0.0, []
        for s in shares:
            cum += s
            ths.append(cum)
        rows.append((idx, lbl, f"{lbl} {kind}", kind, date, *ths))
    schema = T.StructType(
        [T.StructField("e_idx", T.IntegerType()), T.StructField("election_lbl", T.StringType()),
         T.StructField("election_desc", T.StringType()), T.StructField("e_type", T.StringType()),
         T.StructField("e_date", T.DateType())]
        + [T.StructField(f"m{i}", T.DoubleType()) for i in range(1, 6)]
    )
    return spark.createDataFrame(rows, schema)

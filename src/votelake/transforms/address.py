"""US residential street addresses: parse, normalize, and key them.

Parsing is done by ``usaddress`` (a conditional-random-field tagger that labels
each token as house number, directional, street name, street type, unit, ...);
normalization follows USPS Publication 28: upper case, no punctuation except
hyphens between letters/digits and ``/`` in fractions, standard street-type
suffixes (Appendix C1: STREET → ST, AVENUE → AVE, ...), one-letter/two-letter
directionals (NORTH → N, NORTHEAST → NE) and standard unit designators
(APARTMENT → APT, SUITE → STE, ``#`` kept as ``#``).

Every address becomes a struct (:data:`ADDRESS_STRUCT`) with the parts, an
``address_key`` (the normalized line without its unit, e.g. ``123 N MAIN ST``,
the key households are built on), the full ``address_line``
(``123 N MAIN ST APT 4``) and a ``parse_status``:

``ok``
    house number and street name found, every token has an expected label in
    the expected order; ``address_key`` is rebuilt from the normalized parts.
``ambiguous``
    a street name was found but something is off (no house number, tokens
    labelled as a place, a recipient, a second street, parts out of order);
    the parts found are filled and ``address_key`` keeps every non-unit token
    in its original order (normalized where its label allows), so no
    information is dropped.
``failed``
    empty or null input, PO boxes and rural-route boxes (not a residence),
    input without anything that looks like a street, or any error while
    parsing; parts are null and ``address_key`` / ``address_line`` hold the
    cleaned input (null when the input was blank).

The parser never raises: a value it cannot handle is ``failed``.

Spark entry points: :func:`parse_address` (a vectorized pandas UDF, one call
per value) and :func:`standardize_addresses`, which parses each distinct value
once and joins the result back; use the latter on whole voter files, where the
same address is repeated for everyone living there.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
import unicodedata

import pandas as pd
import pycrfsuite
import usaddress
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

ADDRESS_FIELDS = (
    "house_number",
    "predirectional",
    "street_name",
    "street_type",
    "postdirectional",
    "unit_type",
    "unit_number",
    "address_key",
    "address_line",
    "parse_status",
)
"""Field names of :data:`ADDRESS_STRUCT`, in order."""

ADDRESS_STRUCT = T.StructType([T.StructField(name, T.StringType(), True) for name in ADDRESS_FIELDS])
"""The Spark type returned by :func:`parse_address`: all fields are nullable strings."""

STATUS_OK, STATUS_AMBIGUOUS, STATUS_FAILED = "ok", "ambiguous", "failed"

# The parser a stored parse came from: another usaddress model or a change of
# the rules here parses anew (bump the rules number when this module's output changes).
PARSER = f"usaddress {importlib.metadata.version('usaddress')}, rules 1"
# The address text as parsed: upper case, single spaces (see :func:`_parse_key`).
PARSE_KEY = "parse_key"

# USPS Publication 28, Appendix C1: standard suffix abbreviation, then the
# spellings it replaces. The abbreviation itself also maps to itself.
_C1 = """
ALY ALLEE ALLEY ALLY; ANX ANEX ANNEX ANNX; ARC ARCADE; AVE AV AVEN AVENU AVENUE AVN AVNUE;
BCH BEACH; BG BURG; BGS BURGS; BLF BLUF BLUFF; BLFS BLUFFS; BLVD BOUL BOULEVARD BOULV;
BND BEND; BR BRANCH BRNCH; BRG BRDGE BRIDGE; BRK BROOK; BRKS BROOKS; BTM BOT BOTTM BOTTOM;
BYP BYPA BYPAS BYPASS BYPS; BYU BAYOO BAYOU; CIR CIRC CIRCL CIRCLE CRCL CRCLE; CIRS CIRCLES;
CLB CLUB; CLF CLIFF; CLFS CLIFFS; CMN COMMON; CMNS COMMONS; COR CORNER; CORS CORNERS;
CP CAMP CMP; CPE CAPE; CRES CRECENT CRESCENT CRESENT CRSCNT CRSENT CRSNT; CRK CK CR CREEK;
CRSE COURSE; CRST CREST; CSWY CAUSEWAY CAUSWAY; CT COURT CRT; CTS COURTS;
CTR CEN CENT CENTER CENTR CENTRE CNTER CNTR; CTRS CENTERS; CURV CURVE; CV COVE; CVS COVES;
CYN CANYN CANYON CNYN; DL DALE; DM DAM; DR DRIV DRIVE DRV; DRS DRIVES; DV DIV DIVIDE DVD;
EST ESTATE; ESTS ESTATES; EXPY EXP EXPR EXPRESS EXPRESSWAY EXPW; EXT EXTENSION EXTN EXTNSN;
EXTS EXTENSIONS; FALL; FLD FIELD; FLDS FIELDS; FLS FALLS; FLT FLAT; FLTS FLATS; FRD FORD;
FRDS FORDS; FRG FORG FORGE; FRGS FORGES; FRK FORK; FRKS FORKS; FRST FOREST FORESTS;
FRY FERRY FRRY; FT FORT FRT; FWY FREEWAY FREEWY FRWAY FRWY; GDN GARDEN GARDN GRDEN GRDN;
GDNS GARDENS GRDNS; GLN GLEN; GLNS GLENS; GRN GREEN; GRNS GREENS; GRV GROV GROVE; GRVS GROVES;
GTWY GATEWAY GATEWY GATWAY GTWAY; HBR HARB HARBOR HARBR HRBOR; HBRS HARBORS; HL HILL;
HLS HILLS; HOLW HLLW HOLLOW HOLLOWS HOLWS; HTS HEIGHT HEIGHTS HGTS HT; HVN HAVEN HAVN;
HWY HIGHWAY HIGHWY HIWAY HIWY HWAY; INLT INLET; IS ISLAND ISLND; ISLE ISLES;
ISS ISLANDS ISLNDS; JCT JCTION JCTN JUNCTION JUNCTN JUNCTON; JCTS JCTNS JUNCTIONS;
KNL KNOL KNOLL; KNLS KNOLLS; KY KEY; KYS KEYS; LAND; LCK LOCK; LCKS LOCKS; LDG LDGE LODG LODGE;
LF LOAF; LGT LIGHT; LGTS LIGHTS; LK LAKE; LKS LAKES; LN LA LANE LANES; LNDG LANDING LNDNG;
LOOP LOOPS; MALL; MDW MEADOW; MDWS MEADOWS MEDOWS; MEWS; ML MILL; MLS MILLS; MNR MANOR;
MNRS MANORS; MSN MISSION MISSN MSSN; MT MNT MOUNT; MTN MNTAIN MNTN MOUNTAIN MOUNTIN MTIN;
MTNS MNTNS MOUNTAINS; MTWY MOTORWAY; NCK NECK; OPAS OVERPASS; ORCH ORCHARD ORCHRD; OVAL OVL;
PARK PARKS PK PRK; PASS; PATH PATHS; PIKE PIKES; PKWY PARKWAY PARKWAYS PARKWY PKWAY PKWYS PKY;
PL PLACE; PLN PLAIN; PLNS PLAINES PLAINS; PLZ PLAZA PLZA; PNE PINE; PNES PINES;
PR PRAIRIE PRARIE PRR; PRT PORT; PRTS PORTS; PSGE PASSAGE; PT POINT; PTS POINTS;
RADL RAD RADIAL RADIEL; RAMP; RD ROAD; RDG RDGE RIDGE; RDGS RIDGES; RDS ROADS;
RIV RIVER RIVR RVR; RNCH RANCH RANCHES RNCHS; ROW; RPD RAPID; RPDS RAPIDS; RST REST; RTE ROUTE;
RUE; RUN; SHL SHOAL; SHLS SHOALS; SHR SHOAR SHORE; SHRS SHOARS SHORES; SKWY SKYWAY;
SMT SUMIT SUMITT SUMMIT; SPG SPNG SPRING SPRNG; SPGS SPNGS SPRINGS SPRNGS; SPUR SPURS;
SQ SQR SQRE SQU SQUARE; SQS SQRS SQUARES; ST STR STREET STRT; STA STATION STATN STN;
STRA STRAV STRAVE STRAVEN STRAVENUE STRAVN STRVN STRVNUE; STRM STREAM STREME; STS STREETS;
TER TERR TERRACE; TPKE TPK TRNPK TRPK TURNPIKE TURNPK; TRAK TRACK TRACKS TRK TRKS;
TRCE TRACE TRACES; TRFY TRAFFICWAY; TRL TR TRAIL TRAILS TRLS; TRWY THROUGHWAY;
TUNL TUNEL TUNLS TUNNEL TUNNELS TUNNL; UN UNION; UNS UNIONS; UPAS UNDERPASS;
VIA VDCT VIADCT VIADUCT; VIS VIST VISTA VST VSTA; VL VILLE;
VLG VILL VILLAG VILLAGE VILLG VILLIAGE; VLGS VILLAGES; VLY VALLEY VALLY VLLY; VLYS VALLEYS;
VW VIEW; VWS VIEWS; WALK WALKS; WALL; WAY WY; WAYS; WL WELL; WLS WELLS;
XING CROSSING CRSSING CRSSNG; XRD CROSSROAD; XRDS CROSSROADS
"""


def _variants(table: str) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for entry in table.split(";"):
        words = entry.split()
        if words:
            mapping.update({word: words[0] for word in words})
    return mapping


STREET_TYPES: dict[str, str] = _variants(_C1)
"""Street-type spelling → USPS standard suffix abbreviation (``AVENUE`` → ``AVE``)."""

DIRECTIONALS: dict[str, str] = {
    "N": "N", "S": "S", "E": "E", "W": "W", "NE": "NE", "NW": "NW", "SE": "SE", "SW": "SW",
    "NORTH": "N", "SOUTH": "S", "EAST": "E", "WEST": "W", "NORTHEAST": "NE", "NORTHWEST": "NW",
    "SOUTHEAST": "SE", "SOUTHWEST": "SW",
}
"""Directional spelling (spaces removed: ``NORTH EAST`` → ``NORTHEAST``) → USPS abbreviation."""

# USPS Publication 28, Appendix C2 (secondary unit designators), plus common spellings.
UNIT_TYPES: dict[str, str] = _variants(
    "APT APARTMENT APARTMENTS APTS; BLDG BUILDING BLD; BSMT BASEMENT; DEPT DEPARTMENT; FL FLOOR FLR;"
    "FRNT FRONT; HNGR HANGAR HANGER; KEY; LBBY LOBBY; LOT; LOWR LOWER; OFC OFFICE; PH PENTHOUSE;"
    "PIER; REAR; RM ROOM; SIDE; SLIP; SPC SPACE; STOP; STE SUITE; TRLR TRAILER; UNIT UNT; UPPR UPPER; #"
)
"""Unit designator spelling → USPS abbreviation (``APARTMENT`` → ``APT``; ``#`` stays ``#``)."""

# usaddress labels grouped into the parts of a street line, with the order the
# parts must follow for an ``ok`` parse.
_NUMBER, _PREDIR, _NAME, _TYPE, _POSTDIR, _UNIT, _OTHER = range(7)
_LABEL_PART = {
    "AddressNumberPrefix": _NUMBER,
    "AddressNumber": _NUMBER,
    "AddressNumberSuffix": _NUMBER,
    "StreetNamePreDirectional": _PREDIR,
    "StreetNamePreModifier": _NAME,
    "StreetNamePreType": _NAME,
    "StreetName": _NAME,
    "StreetNamePostType": _TYPE,
    "StreetNamePostModifier": _TYPE,
    "StreetNamePostDirectional": _POSTDIR,
    "OccupancyType": _UNIT,
    "OccupancyIdentifier": _UNIT,
    "SubaddressType": _UNIT,
    "SubaddressIdentifier": _UNIT,
}
_TYPE_LABELS = ("StreetNamePreType", "StreetNamePostType")
_BOX_LABELS = frozenset({"USPSBoxType", "USPSBoxID", "USPSBoxGroupType", "USPSBoxGroupID"})
_PO_BOX = re.compile(r"^(?:P ?O ?|POST OFFICE |POB ?)?(?:BOX|DRAWER)\b")

_PERIOD_APOSTROPHE = re.compile(r"[.'`\u2019]")
_STRAY_HYPHEN = re.compile(r"(?<![^\W_])-|-(?![^\W_])")
_STRAY_SLASH = re.compile(r"(?<![0-9])/|/(?![0-9])")
_OTHER_CHARS = re.compile(r"[^\w#/\- ]|_")
_HASH = re.compile(r"\s*#\s*")

_FAILED_BLANK = (None,) * 9 + (STATUS_FAILED,)


def clean_address_text(raw: object) -> str:
    """Upper-case, drop punctuation and collapse whitespace of one address string.

    Periods and apostrophes vanish (``N.`` → ``N``, ``O'NEAL`` → ``ONEAL``); a
    hyphen survives only between letters/digits (``15-501``) and a slash only
    between digits (``1/2``); ``#`` becomes its own token; any other
    punctuation becomes a space.

    Args:
        raw: the address as given (``None`` and non-strings are tolerated).

    Returns:
        The cleaned string, ``""`` when nothing is left.
    """
    if raw is None or (isinstance(raw, float) and raw != raw):
        return ""
    text = unicodedata.normalize("NFKC", str(raw)).upper()
    text = _PERIOD_APOSTROPHE.sub("", text)
    text = _STRAY_HYPHEN.sub(" ", text)
    text = _STRAY_SLASH.sub(" ", text)
    text = _OTHER_CHARS.sub(" ", text)
    text = _HASH.sub(" # ", text)
    return " ".join(text.split())


def _flatten(features: dict, prefix: str = "") -> list[str]:
    """usaddress token features as CRFsuite attribute names, in the same order.

    CRFsuite flattens ``{"next": {"word": "main"}}`` to ``next:word:main`` with
    weight 1 and a boolean to weight 1 or 0; an attribute of weight 0 adds
    nothing to any score, so only the true ones are listed.
    """
    names: list[str] = []
    for key, value in features.items():
        if isinstance(value, dict):
            names.extend(_flatten(value, f"{prefix}{key}:"))
        elif isinstance(value, str):
            names.append(f"{prefix}{key}:{value}")
        elif value:
            names.append(prefix + key)
    return names


@functools.lru_cache(maxsize=1 << 16)  # ~1 KB a token: at most ~70 MB per worker
def _token_attributes(token: str) -> tuple[list[str], list[str], list[str]]:
    """One token's attributes as itself, as the previous token and as the next token."""
    own = _flatten(usaddress.tokenFeatures(token))
    return own, ["previous:" + a for a in own], ["next:" + a for a in own]


def _tag(text: str) -> list[tuple[str, str]]:
    """Same labels as ``usaddress.parse(text)``, faster on repeated tokens.

    ``usaddress.parse`` rebuilds every token's feature dicts and CRFsuite
    re-flattens them for each address. Here each distinct token's attributes
    are computed once (by usaddress's own ``tokenFeatures``) and assembled in
    the order ``usaddress.tokens2features`` produces them (own, previous, next,
    start/end flags). The tagger thus sees the same weighted attributes in the
    same order, less those of weight 0, which add exactly nothing to a score:
    the labels are identical (``tests/test_standardize.py`` checks this).
    """
    tokens = usaddress.tokenize(text)
    if not tokens:
        return []
    attrs = [_token_attributes(token) for token in tokens]
    last = len(tokens) - 1
    items = []
    for i, (own, _, _) in enumerate(attrs):
        item = list(own)
        if i > 0:
            item += attrs[i - 1][1]
            if i == 1:
                item.append("previous:address.start")
        if i < last:
            item += attrs[i + 1][2]
            if i + 1 == last:
                item.append("next:address.end")
        if i == 0:
            item.append("address.start")
        if i == last:
            item.append("address.end")
        items.append(item)
    return list(zip(tokens, usaddress.TAGGER.tag(pycrfsuite.ItemSequence(items))))


def _failed(cleaned: str) -> tuple:
    value = cleaned or None
    return (None,) * 7 + (value, value, STATUS_FAILED)


def _split_unit(tagged: list[tuple[str, str]]) -> tuple[str | None, str | None]:
    """Unit tokens → (designator, identifier): ``APT # 4`` → ``(APT, 4)``, ``# 4`` → ``(#, 4)``."""
    if not tagged:
        return None, None
    first, label = tagged[0]
    unit_type = UNIT_TYPES.get(first)
    if unit_type is None and label in ("OccupancyType", "SubaddressType"):
        unit_type = first
    rest = tagged[1:] if unit_type else tagged
    identifier = " ".join(token for token, _ in rest if token != "#")
    return unit_type, identifier or None


def _parse_cleaned(cleaned: str) -> tuple:
    if not cleaned:
        return _FAILED_BLANK
    if _PO_BOX.match(cleaned):
        return _failed(cleaned)
    tagged = _tag(cleaned)
    labels = {label for _, label in tagged}
    if "StreetName" not in labels or (labels & _BOX_LABELS and "AddressNumber" not in labels):
        return _failed(cleaned)  # nothing street-like, or a PO / rural-route box

    parts: dict[int, list[str]] = {p: [] for p in (_NUMBER, _PREDIR, _NAME, _TYPE, _POSTDIR)}
    unit: list[tuple[str, str]] = []
    key_tokens: list[str] = []  # non-unit tokens in input order, normalized by label
    ordered = True
    last_part = _NUMBER
    for token, label in tagged:
        part = _LABEL_PART.get(label, _OTHER)
        value = token
        if part in (_PREDIR, _POSTDIR):
            value = DIRECTIONALS.get(token)
            if value is None:  # a non-directional tagged as one (``US 15-501``): keep it
                value, part = token, (_NAME if part == _PREDIR else _OTHER)
        elif label in _TYPE_LABELS:
            value = STREET_TYPES.get(token, token)
        if part == _OTHER or part < last_part:
            ordered = False
        else:
            last_part = part
        if part == _UNIT:
            unit.append((token, label))
            continue
        if part != _OTHER:
            parts[part].append(value)
        key_tokens.append(value)

    def joined(part: int) -> str | None:
        return " ".join(parts[part]) or None

    house, name, street_type = joined(_NUMBER), joined(_NAME), joined(_TYPE)
    predir = DIRECTIONALS.get("".join(parts[_PREDIR]), joined(_PREDIR))
    postdir = DIRECTIONALS.get("".join(parts[_POSTDIR]), joined(_POSTDIR))
    unit_type, unit_number = _split_unit(unit)
    if house and name and ordered:
        status = STATUS_OK
        key = " ".join(p for p in (house, predir, name, street_type, postdir) if p)
    else:
        status = STATUS_AMBIGUOUS
        key = " ".join(key_tokens) or cleaned
    line = " ".join(p for p in (key, unit_type, unit_number) if p)
    return (house, predir, name, street_type, postdir, unit_type, unit_number, key, line, status)


def parse_address_text(raw: object) -> tuple:
    """Parse and normalize one US street address line (plain Python, no Spark).

    Args:
        raw: the address as given; ``None``, blanks and non-strings are accepted.

    Returns:
        A tuple in the order of :data:`ADDRESS_FIELDS`. Never raises: any error
        gives ``parse_status`` ``failed`` with the cleaned input as key and line.
    """
    try:
        cleaned = clean_address_text(raw)
    except Exception:  # noqa: BLE001 - the parser must never fail a Spark task
        return _FAILED_BLANK
    try:
        return _parse_cleaned(cleaned)
    except Exception:  # noqa: BLE001
        return _failed(cleaned)


def parse_address_series(raw: pd.Series) -> pd.DataFrame:
    """Parse a pandas Series of addresses, each distinct value once.

    Args:
        raw: address strings (nulls allowed).

    Returns:
        A DataFrame with the columns :data:`ADDRESS_FIELDS`, one row per input
        row, in input order.
    """
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    rows = [parse_address_text(value) for value in uniques]
    rows.append(_FAILED_BLANK)  # code -1 (null) picks the last row
    table = pd.DataFrame(rows, columns=list(ADDRESS_FIELDS), dtype=object)
    return table.iloc[codes].reset_index(drop=True)


@F.pandas_udf(ADDRESS_STRUCT)
def _parse_address_udf(raw: pd.Series) -> pd.DataFrame:
    return parse_address_series(raw)


def parse_address(col: Column | str) -> Column:
    """Parse and normalize a street-address column (vectorized pandas UDF).

    Every row is parsed; on a table where addresses repeat, prefer
    :func:`standardize_addresses`, which parses each distinct value once.

    Args:
        col: a string column holding one address line (number, street, unit).

    Returns:
        A struct Column of type :data:`ADDRESS_STRUCT` (``house_number``,
        ``predirectional``, ``street_name``, ``street_type``,
        ``postdirectional``, ``unit_type``, ``unit_number``, ``address_key``,
        ``address_line``, ``parse_status``); never null.
    """
    return _parse_address_udf(col)


def _parse_key(raw: Column) -> Column:
    """Case and whitespace folded away (the parser ignores both), so variants parse once."""
    return F.coalesce(F.trim(F.regexp_replace(F.upper(raw), r"\s+", " ")), F.lit(""))


def parse_keys(texts: DataFrame, col: str) -> DataFrame:
    """The distinct address texts of a column, folded as the parser sees them.

    Args:
        texts: any DataFrame.
        col: its address-text column.

    Returns:
        One column, :data:`PARSE_KEY`, one row per distinct folded text.
    """
    return texts.select(_parse_key(F.col(col)).alias(PARSE_KEY)).distinct()


def new_parses(keys: DataFrame, known: DataFrame | None) -> DataFrame:
    """Parse the address texts that ``known`` holds no parse of by this :data:`PARSER`.

    Args:
        keys: :func:`parse_keys`.
        known: stored parses (``silver.address_parses``), or None.

    Returns:
        ``parse_key, parser`` and the :data:`ADDRESS_FIELDS` of each new text.
    """
    todo = keys if known is None else keys.join(
        known.where(F.col("parser") == PARSER).select(PARSE_KEY), on=PARSE_KEY, how="left_anti")
    parsed = todo.select(PARSE_KEY, F.lit(PARSER).alias("parser"), parse_address(F.col(PARSE_KEY)).alias("_a"))
    return parsed.select(PARSE_KEY, "parser", *[F.col(f"_a.{f}").alias(f) for f in ADDRESS_FIELDS])


def standardize_addresses(
    df: DataFrame, col: str, out: str = "address", secondary: str | None = None, parses: DataFrame | None = None
) -> DataFrame:
    """Add the parsed address struct to ``df``, parsing each distinct address once.

    Values are first folded to upper case with single spaces (which the parser
    ignores anyway), the distinct folded values are parsed by
    :func:`parse_address` (or looked up in ``parses``), and the result is
    joined back (``how="left"``). The result is the same as ``parse_address``
    on every row. ``df`` is read twice (distinct values, then the join):
    cache it when it is costly to recompute.

    Args:
        df: any DataFrame.
        col: name of the address column (number, street and possibly unit).
        out: name of the struct column to add; must not exist in ``df``.
        secondary: optional name of a second address-line column (apartment,
            suite) appended to ``col`` before parsing, as in FL and OH files.
        parses: stored parses holding every text of ``df`` (:func:`new_parses`
            of its :func:`parse_keys`, with those stored before): nothing is
            parsed here.

    Returns:
        ``df`` with its columns unchanged and one more, ``out``, of type
        :data:`ADDRESS_STRUCT`; null or blank addresses get ``parse_status``
        ``failed``.

    Raises:
        ValueError: when ``out`` already names a column of ``df``.
    """
    if out in df.columns:
        raise ValueError(f"standardize_addresses: column {out!r} already exists")
    key_col = "__address_parse_key"
    raw = F.col(col) if secondary is None else F.concat_ws(" ", F.col(col), F.col(secondary))
    keyed = df.select("*", _parse_key(raw).alias(key_col))
    if parses is None:
        parsed = keyed.select(key_col).distinct().select(key_col, parse_address(F.col(key_col)).alias(out))
    else:
        parsed = parses.where(F.col("parser") == PARSER).select(
            F.col(PARSE_KEY).alias(key_col), F.struct(*ADDRESS_FIELDS).alias(out))
    return keyed.join(parsed, on=key_col, how="left").drop(key_col)

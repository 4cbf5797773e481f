"""Persons, their registrations, and the NC ``ncvoter`` projection.

A *person* is one synthetic adult with latent traits (turnout propensity,
support, persuadability, engagement). A person has one current registration
(``kind`` 0), plus an old removed registration in another county when they
moved (``kind`` 1, same NCID), plus a duplicate registration with a new NCID
(``kind`` 2) for about 1% of people. Every column is a deterministic function
of (seed, person_id), so output does not depend on partitioning.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from votelake.synth import census_names
from votelake.synth import reference as R
from votelake.synth.mess import phone_format, typo, vary_case, vary_space
from votelake.synth.rand import categorical, literal_map, normal, pick, sigmoid, uniform

_ALPHA = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
KIND_CURRENT, KIND_MOVED_OLD, KIND_DUPLICATE = 0, 1, 2
ROW_KINDS = {KIND_CURRENT: "current", KIND_MOVED_OLD: "moved_old", KIND_DUPLICATE: "duplicate"}


def _d(date: dt.date) -> Column:
    return F.lit(date).cast("date")


def _lookup(key: Column, mapping: dict) -> Column:
    """Map a key Column through a small literal dict (None when absent)."""
    return F.element_at(literal_map(mapping), key)


def _letters(n: Column) -> Column:
    """Two capital letters from an integer 0..675 (county NCID prefix)."""
    alpha = F.lit(_ALPHA)
    i = n.cast("int")
    return F.concat(alpha.substr(F.floor(i / 26).cast("int") % 26 + 1, F.lit(1)),
                    alpha.substr(i % 26 + 1, F.lit(1)))


def _scramble(key: Column, mult: int, offset: int, modulus: int) -> Column:
    # key -> (key * mult + offset) mod modulus is a bijection on [0, modulus)
    # when gcd(mult, modulus) = 1, so distinct keys give distinct numbers that
    # nevertheless look unordered.
    return (key * F.lit(mult) + F.lit(offset)) % F.lit(modulus)


def persons(base: DataFrame, counties: DataFrame, buckets: DataFrame, seed: int) -> DataFrame:
    """Turn ``spark.range`` ids into persons with demographics and latent traits.

    Args:
        base: DataFrame with a long ``id`` column (one row per person).
        counties: :func:`reference.county_table` output.
        buckets: :func:`reference.county_buckets` output.
        seed: generator seed.

    Returns:
        One row per person: ``person_id``, home and alternative county, age,
        birth date, gender, race, ethnicity, party, names, first registration,
        status, move/duplicate facts, ``p_turnout`` (midterm), ``p_presidential``, ``p_primary``,
        ``p_municipal``, ``p_support``, ``uplift``, ``engagement``, phone digits
        and email.
    """
    def U(stream: str) -> Column:
        return uniform(seed, stream, "person_id")

    def N(stream: str) -> Column:
        return normal(seed, stream, "person_id")

    snap = _d(R.SNAPSHOT_DATE)
    df = base.select(
        F.col("id").alias("person_id"),
        F.floor(uniform(seed, "county", "id") * R.BUCKETS).cast("int").alias("bucket_home"),
        F.floor(uniform(seed, "county_alt", "id") * R.BUCKETS).cast("int").alias("bucket_alt"),
    )
    b = F.broadcast(buckets)
    df = (df.join(b.select(F.col("bucket").alias("bucket_home"),
                           F.col("county_id").alias("home_county_id")), "bucket_home")
          .join(b.select(F.col("bucket").alias("bucket_alt"),
                         F.col("county_id").alias("alt0")), "bucket_alt")
          .join(F.broadcast(counties.select(
              F.col("county_id").alias("home_county_id"), "region", "black_share",
              "c_turnout", "c_support", "area1", "area2")), "home_county_id"))

    # Stage 1: demographics. Age bands approximate the adult population.
    bands = [(18, 7, .115), (25, 10, .165), (35, 10, .16), (45, 10, .155), (55, 10, .165),
             (65, 10, .14), (75, 10, .075), (85, 16, .025)]
    band = categorical(U("age_band"), list(range(len(bands))), [w for _, _, w in bands]) + 1
    lo = F.element_at(F.array(*[F.lit(x[0]) for x in bands]), band)
    width = F.element_at(F.array(*[F.lit(x[1]) for x in bands]), band)
    age = lo + F.floor(U("age_in") * width).cast("int")
    u_race = U("race")
    race = (F.when(u_race < F.col("black_share"), "B").when(u_race < 0.84, "W")
            .when(u_race < 0.91, "U").when(u_race < 0.945, "O").when(u_race < 0.975, "A")
            .when(u_race < 0.99, "M").otherwise("I"))
    df = df.select(
        "person_id", "home_county_id", "region", "black_share", "c_turnout", "c_support",
        "area1", "area2",
        # The alternative county (old county of a mover) must differ from home.
        F.when(F.col("alt0") == F.col("home_county_id"), F.col("alt0") % 100 + 1)
        .otherwise(F.col("alt0")).alias("alt_county_id"),
        age.alias("age"),
        categorical(U("gender"), ["F", "M", "U"], [.52, .44, .04]).alias("gender"),
        race.alias("race"),
    )
    u_eth = U("ethnic")
    hl = (F.when(F.col("race") == "O", 0.45).when(F.col("race") == "U", 0.20)
          .when(F.col("race") == "W", 0.03).when(F.col("race") == "B", 0.01).otherwise(0.05))
    birth_year = F.lit(R.YEAR_END) - F.col("age")
    df = df.select(
        "*",
        F.when(u_eth < hl, "HL").when(u_eth < hl + 0.2, "UN").otherwise("NL").alias("ethnic"),
        birth_year.alias("birth_year"),
        F.date_add(F.make_date(birth_year, F.lit(1), F.lit(1)),
                   F.floor(U("birth_doy") * 365).cast("int")).alias("birth_date"),
    )

    # Stage 2: party, names, first registration.
    young = F.col("age") < 30
    dem = (F.when(F.col("race") == "B", 0.75).when(F.col("race") == "W", 0.21).otherwise(0.30)
           * F.when(young, 0.9).otherwise(1.0))
    rep = (F.when(F.col("race") == "B", 0.04).when(F.col("race") == "W", 0.42).otherwise(0.15)
           * F.when(young, 0.85).otherwise(1.0))
    u_p = U("party")
    party = (F.when(u_p < dem, "DEM").when(u_p < dem + rep, "REP")
             .when(u_p < dem + rep + 0.006, "LIB").when(u_p < dem + rep + 0.007, "GRE")
             .when(u_p < dem + rep + 0.008, "CST").otherwise("UNA"))
    # Given names (and half the middle names) and surnames at the census
    # frequencies: each draw is a slot, looked up in broadcast slot tables.
    is_f = (F.col("gender") == "F") | ((F.col("gender") == "U") & (U("u_gender_name") < 0.5))
    n_female = len(census_names.slotted("female"))

    def given_slot(u: Column) -> Column:
        return F.when(is_f, census_names.draw(u, "female")).otherwise(census_names.draw(u, "male", n_female))

    df = df.select("*", is_f.alias("_is_f"), given_slot(U("first")).alias("_first_slot"),
                   given_slot(U("mid_b")).alias("_mid_slot"), census_names.draw(U("last"), "last").alias("_last_slot"))
    spark = base.sparkSession
    given = F.broadcast(census_names.slot_table(spark, "female").unionByName(
        census_names.slot_table(spark, "male", n_female)))
    surnames = F.broadcast(census_names.slot_table(spark, "last"))
    df = (df.join(given.select(F.col("slot").alias("_first_slot"), F.col("name").alias("_first")),
                  "_first_slot", how="left")
          .join(given.select(F.col("slot").alias("_mid_slot"), F.col("name").alias("_mid_given")),
                "_mid_slot", how="left")
          .join(surnames.select(F.col("slot").alias("_last_slot"), F.col("name").alias("_last")),
                "_last_slot", how="left"))
    is_f = F.col("_is_f")
    u_mid = U("middle")
    middle = (F.when(u_mid < 0.12, F.lit(""))
              .when(u_mid < 0.56, F.when(is_f, pick(U("mid_a"), R.FEMALE_MIDDLE))
                    .otherwise(pick(U("mid_a"), R.MALE_MIDDLE)))
              .otherwise(F.col("_mid_given")))
    u_last = U("last_src")
    last = (F.when((F.col("race") == "A") & (u_last < 0.6), pick(U("last"), R.ASIAN_SURNAMES, 1.3))
            .when((F.col("ethnic") == "HL") & (u_last < 0.7), pick(U("last"), R.HISPANIC_SURNAMES, 1.3))
            .otherwise(F.col("_last")))
    u_sfx = U("suffix")
    suffix = F.when(F.col("gender") == "M",
                    F.when(u_sfx < 0.03, "JR").when(u_sfx < 0.036, "III")
                    .when(u_sfx < 0.040, "SR").when(u_sfx < 0.044, "II").otherwise("")
                    ).otherwise("")
    # Registration opens at 17.5 (NC pre-registers teenagers) and not before 1970;
    # u^0.6 favours recent dates, as re-registrations after moves do in reality.
    start0 = F.greatest(_d(dt.date(1970, 1, 1)), F.add_months(F.col("birth_date"), 210))
    start = F.least(start0, F.date_sub(snap, 45))
    span = F.datediff(F.date_sub(snap, 1), start)
    first_reg = F.date_add(start, F.floor(F.pow(U("reg"), F.lit(0.6)) * span).cast("int"))
    df = df.select(
        "*", party.alias("party"), F.col("_first").alias("first_name"),
        middle.alias("middle_name"), last.alias("last_name"), suffix.alias("suffix"),
        first_reg.alias("first_reg"),
    ).drop("_is_f", "_first_slot", "_mid_slot", "_last_slot", "_first", "_mid_given", "_last")

    # Stage 3: status, moves, duplicates.
    tenure_days = F.datediff(snap, F.col("first_reg"))
    base_status = categorical(U("status"), ["A", "I", "R", "D", "S"], [.84, .105, .045, .006, .004])
    moved = (U("moved") < 0.05) & (tenure_days > 400)
    df = df.select(
        "*", base_status.alias("base_status"), moved.alias("moved"),
        F.date_add(F.col("first_reg"), (F.lit(180) + F.floor(
            U("move_at") * F.greatest(tenure_days - 240, F.lit(0)))).cast("int")).alias("move_date"),
        (tenure_days / 365.25).alias("tenure_years"),
    )
    u_r = U("reason")
    base_reason = (
        F.when(F.col("base_status") == "A", categorical(u_r, ["AV", "A2", "AP", "AN"], [.9, .05, .03, .02]))
        .when(F.col("base_status") == "I", categorical(u_r, ["IN", "IU"], [.7, .3]))
        .when(F.col("base_status") == "R", categorical(
            u_r, ["RD", "RS", "RM", "RT", "RQ", "RF", "RH"], [.45, .25, .15, .05, .04, .03, .03]))
        .when(F.col("base_status") == "D", categorical(u_r, ["DU", "DN", "DI"], [.7, .2, .1]))
        .otherwise(categorical(u_r, ["SO", "SM"], [.7, .3])))
    mover_status = F.when(U("mover_status") < 0.9, "A").otherwise("I")
    is_dup = ((U("dup") < 0.0105) & F.col("base_status").isin("A", "I") & ~F.col("moved")
              & (F.datediff(snap, F.col("first_reg")) > 90))
    df = df.select(
        "*", base_reason.alias("base_reason"),
        F.when(F.col("moved"), mover_status).otherwise(F.col("base_status")).alias("cur_status"),
        F.when(F.col("base_status") == "R", F.date_add(F.col("first_reg"), F.floor(
            U("removal") * F.datediff(snap, F.col("first_reg"))).cast("int"))).alias("removal_date"),
        is_dup.alias("is_dup"),
        F.date_add(F.col("first_reg"), (F.lit(30) + F.floor(
            U("dup_at") * (F.datediff(snap, F.col("first_reg")) - 60))).cast("int")).alias("dup_reg"),
        F.when(U("dup_status") < 0.6, "A").otherwise("I").alias("dup_status"),
        (U("dup_county") < 0.7).alias("dup_same_county"),
    )

    # Stage 4: latent traits. Turnout rises with age to ~75, is lower for
    # unaffiliated and newer registrants, varies by county, and each person has
    # a random effect so past votes carry information beyond demographics.
    age_c = F.col("age")
    t_age = turnout_age_term(age_c)
    t_party = _lookup(F.col("party"), {"DEM": .15, "REP": .3, "UNA": -.35, "LIB": -.5, "GRE": -.3, "CST": -.3})
    t_race = _lookup(F.col("race"), {"W": 0.0, "B": -.15, "A": -.55, "O": -.45, "U": -.35, "M": -.3, "I": -.6})
    t_eth = F.when(F.col("ethnic") == "HL", -0.3).otherwise(0.0)
    t_ten = turnout_tenure_term(F.col("tenure_years"))
    t_inact = F.when(F.col("cur_status") == "I", -1.4).otherwise(0.0)
    person_t = N("turnout_re")
    lt = (F.lit(0.95) + t_age + t_party + t_race + t_eth + t_ten + t_inact + F.col("c_turnout")
          + F.lit(1.1) * person_t)
    s_party = _lookup(F.col("party"), {"DEM": 2.0, "REP": -2.2, "UNA": 0.0, "LIB": -1.0, "GRE": 1.5, "CST": -2.5})
    s_race = _lookup(F.col("race"), {"W": 0.0, "B": 1.3, "A": .4, "O": .3, "U": .3, "M": .3, "I": 0.0})
    s_age = F.when(age_c < 35, 0.4).when(age_c > 65, -0.2).otherwise(0.0)
    s_gender = F.when(F.col("gender") == "F", 0.25).otherwise(0.0)
    ls = s_party + s_race + s_age + s_gender + F.col("c_support") + F.lit(0.8) * N("support_re")
    u_area = U("area")
    line = F.lpad(F.floor(U("phone_line") * 10000).cast("int").cast("string"), 4, "0")
    exch = (F.lit(200) + F.floor(U("phone_exch") * 800).cast("int")).cast("string")
    df = df.select(
        "*",
        sigmoid(lt).alias("p_presidential"),
        # Midterm generals draw fewer voters, and not uniformly: each person drops
        # off from their presidential-year propensity by their own amount (some
        # vote only for president). The next general (2026) is a midterm, so
        # p_turnout, the probability the scores answer for, is this one.
        sigmoid(lt - F.lit(0.6) - F.lit(0.5) * F.abs(N("midterm_drop"))).alias("p_turnout"),
        # Primaries and municipal elections draw the same habitual voters harder;
        # unaffiliated voters skip primaries more.
        sigmoid(F.lit(1.15) * lt - 2.4 + F.when(F.col("party") == "UNA", -0.7).otherwise(0.0)).alias("p_primary"),
        sigmoid(F.lit(1.15) * lt - 3.35).alias("p_municipal"),
        sigmoid(ls).alias("p_support"),
        (F.lit(0.6) * N("engage_re") - F.lit(0.012) * (age_c - 45)
         + F.lit(0.15) * F.log1p(F.col("tenure_years"))).alias("engagement"),
        F.concat(F.when(u_area < 0.75, F.col("area1")).otherwise(F.col("area2")), exch, line).alias("phone_digits"),
        (U("has_phone") < 0.62).alias("has_phone"),
        (U("has_email") < 0.40).alias("has_email"),
        N("uplift_re").alias("uplift_re"),
    )
    # Persuadability peaks for people near 50/50 support; clipped so that
    # p_support + uplift stays a probability.
    p = F.col("p_support")
    raw_uplift = (F.lit(4.0) * p * (F.lit(1.0) - p)
                  * (F.lit(0.07) + F.lit(0.04) * F.col("uplift_re"))
                  * F.when(F.col("party") == "UNA", 1.3).otherwise(1.0))
    sep_ = categorical(U("email_sep"), [".", "", "_"], [.5, .3, .2])
    digits = F.when(U("email_num") < 0.5, (F.floor(U("email_n") * 99) + 1).cast("int").cast("string")).otherwise("")
    local = F.lower(F.concat(
        F.when(U("email_init") < 0.2, F.col("first_name").substr(1, 1)).otherwise(F.col("first_name")),
        sep_, F.regexp_replace(F.col("last_name"), " ", ""), digits))
    domain = pick(U("email_domain"), R.EMAIL_DOMAINS, 1.3)
    return df.select(
        "*",
        F.least(F.greatest(raw_uplift, -p), F.lit(1.0) - p).alias("uplift"),
        F.concat(local, F.lit("@"), domain).alias("email"),
    ).drop("uplift_re")


def turnout_age_term(age: Column) -> Column:
    """The turnout logit's age term: rising to 75, falling past 82."""
    return F.lit(0.045) * (F.least(age, F.lit(75)) - 45) - F.lit(0.06) * F.greatest(age - 82, F.lit(0))


def turnout_tenure_term(years: Column) -> Column:
    """The turnout logit's term for years since first registration."""
    return F.lit(0.3) * F.log1p(years) - 0.6


def registrations(people: DataFrame, counties: DataFrame, seed: int, voters: int) -> DataFrame:
    """Explode persons into registration rows and give each its geography and ids.

    Args:
        people: :func:`persons` output.
        counties: :func:`reference.county_table` output.
        seed: generator seed.
        voters: number of persons (sizes the id spaces).

    Returns:
        One row per ncvoter row, with all person columns plus ``kind``,
        ``row_key``, ``ncid``, ``voter_reg_num``, ``county_id``, ``county_desc``,
        ``reg_date``, ``removal_date``, ``status_cd``, ``reason_cd``, names as
        registered, address, precinct and district columns.
    """
    snap = _d(R.SNAPSHOT_DATE)
    kinds = F.filter(
        F.array(F.lit(KIND_CURRENT), F.lit(KIND_MOVED_OLD), F.lit(KIND_DUPLICATE)),
        lambda k: (k == KIND_CURRENT) | ((k == KIND_MOVED_OLD) & F.col("moved"))
        | ((k == KIND_DUPLICATE) & F.col("is_dup")))
    df = people.select("*", F.explode(kinds).alias("kind"))
    kind = F.col("kind")
    other_place = (kind == KIND_MOVED_OLD) | ((kind == KIND_DUPLICATE) & ~F.col("dup_same_county"))
    ncid_digits = max(6, len(str(2 * voters)))
    reg_digits = max(7, len(str(3 * voters)))
    ncid_key = F.col("person_id") * 2 + F.when(kind == KIND_DUPLICATE, 1).otherwise(0)
    ncid_num = _scramble(ncid_key, 7919, (seed * 7 + 12345) % 10 ** ncid_digits, 10 ** ncid_digits)
    # The NCID prefix follows the county of first registration (movers keep theirs).
    first_county = F.when(F.col("moved") | other_place, F.col("alt_county_id")).otherwise(F.col("home_county_id"))
    row_key = F.col("person_id") * 3 + kind
    df = df.select(
        "*",
        row_key.alias("row_key"),
        other_place.cast("int").alias("addr_variant"),
        F.when(other_place, F.col("alt_county_id")).otherwise(F.col("home_county_id")).alias("county_id"),
        F.concat(_letters(first_county - 1), F.lpad(ncid_num.cast("string"), ncid_digits, "0")).alias("ncid"),
        _scramble(row_key, 7907, (seed * 13 + 4321) % 10 ** reg_digits, 10 ** reg_digits)
        .cast("string").alias("voter_reg_num"),
        F.when(kind == KIND_CURRENT, F.when(F.col("moved"), F.col("move_date")).otherwise(F.col("first_reg")))
        .when(kind == KIND_MOVED_OLD, F.col("first_reg")).otherwise(F.col("dup_reg")).alias("reg_date"),
        F.when(kind == KIND_CURRENT, F.col("removal_date"))
        .when(kind == KIND_MOVED_OLD, F.col("move_date")).alias("row_removal_date"),
        F.when(kind == KIND_CURRENT, F.col("cur_status"))
        .when(kind == KIND_MOVED_OLD, F.lit("R")).otherwise(F.col("dup_status")).alias("status_cd"),
    )
    mover_reason = F.when(F.col("cur_status") == "A", "AV").otherwise("IN")
    reason = (F.when(kind == KIND_CURRENT, F.when(F.col("moved"), mover_reason).otherwise(F.col("base_reason")))
              .when(kind == KIND_MOVED_OLD, F.lit("RL"))
              .otherwise(F.when(F.col("status_cd") == "A", "AV").otherwise("IN")))
    df = (df.drop("removal_date").withColumnRenamed("row_removal_date", "removal_date")
          .join(F.broadcast(counties.select("county_id", "county_desc", "seat", "c_frac", "c_cum",
                                            "n_prec", "zip_base")), "county_id"))

    def UA(stream: str) -> Column:  # keyed by the person's address, shared by same-place rows
        return uniform(seed, stream, "person_id", "addr_variant")

    def UR(stream: str) -> Column:  # keyed by the registration row
        return uniform(seed, stream, "row_key")

    prec = F.floor(UA("precinct") * F.col("n_prec")).cast("int")
    df = df.select("*", reason.alias("reason_cd"), prec.alias("prec_idx"))

    def UP(stream: str) -> Column:  # keyed by precinct, so precinct attributes are consistent
        return uniform(seed, stream, "county_id", "prec_idx")

    # A precinct's districts follow its position along the population-ordered
    # county list, so districts are contiguous blocks of precincts.
    mid = F.col("c_cum") + (F.col("prec_idx") + 0.5) / F.col("n_prec") * F.col("c_frac")
    cmid = F.col("c_cum") + F.col("c_frac") / 2

    def dist(n: int, m: Column = mid) -> Column:
        return F.least(F.floor(m * n) + 1, F.lit(n)).cast("int").cast("string")

    in_muni = UP("muni") < 0.45
    city = (F.when(in_muni | (UP("city") < 0.6), F.col("seat"))
            .otherwise(pick(UP("town"), R.TOWNS)))
    abbrv = F.concat(F.lpad((F.floor(F.col("prec_idx") / 20) + 1).cast("int").cast("string"), 2, "0"),
                     F.lit("-"), F.lpad((F.col("prec_idx") % 20 + 1).cast("string"), 2, "0"))
    zip5 = (F.col("zip_base") + F.floor(UP("zip") * 6).cast("int")).cast("string")
    house = (F.lit(100) + F.floor(F.pow(UA("house"), F.lit(1.6)) * 9900).cast("int")).cast("string")
    street = F.concat_ws(" ", house, pick(UA("street"), R.STREETS, 1.2), pick(UA("stype"), R.STREET_TYPES, 1.5))
    apt = F.when(UA("apt") < 0.08, F.concat(F.lit(" APT "), (F.floor(UA("apt_n") * 300) + 1).cast("int").cast("string"))).otherwise("")
    judic = F.concat(dist(44, cmid), F.when(F.col("county_id") % 2 == 0, "A").otherwise("B"))
    # A duplicate registration carries a name variant: a nickname, or a typo,
    # often without the middle name.
    nick = F.coalesce(_lookup(F.col("first_name"), R.NICKNAMES), F.col("first_name"))
    is_dup_row = kind == KIND_DUPLICATE
    dup_first = F.when(UR("dup_nick") < 0.5, nick).otherwise(
        typo(F.col("first_name"), F.lit(0.0), UR("dup_pos"), UR("dup_kind"), 1.0))
    return df.select(
        "*",
        abbrv.alias("precinct_abbrv"),
        F.concat(F.upper(F.col("seat")), F.lit(" "), abbrv).alias("precinct_desc"),
        F.when(in_muni, F.substring(F.regexp_replace(F.col("seat"), " ", ""), 1, 4)).otherwise("").alias("municipality_abbrv"),
        F.when(in_muni, F.col("seat")).otherwise("").alias("municipality_desc"),
        city.alias("res_city_desc"),
        F.when(UA("zip4") < 0.1, F.concat(zip5, F.lpad(F.floor(UA("zip4n") * 10000).cast("int").cast("string"), 4, "0")))
        .otherwise(zip5).alias("zip_code"),
        F.concat(street, apt).alias("res_street_address"),
        dist(14).alias("cong_dist_abbrv"),
        dist(50).alias("nc_senate_abbrv"),
        dist(120).alias("nc_house_abbrv"),
        dist(43).alias("dist_1_abbrv"),
        judic.alias("judic_dist_abbrv"),
        (F.col("prec_idx") % 5 + 1).cast("string").alias("county_commiss_abbrv"),
        (F.col("prec_idx") * 7 % 3 + 1).cast("string").alias("school_dist_abbrv"),
        F.when(is_dup_row, dup_first).otherwise(F.col("first_name")).alias("reg_first_name"),
        F.when(is_dup_row & (UR("dup_mid") < 0.5), F.lit("")).otherwise(F.col("middle_name")).alias("reg_middle_name"),
        F.datediff(snap, F.col("reg_date")).alias("reg_age_days"),
    )


def to_ncvoter(regs: DataFrame, columns: tuple[str, ...], seed: int) -> DataFrame:
    """Project registrations to the NC ``ncvoter`` layout, adding data-entry mess.

    Args:
        regs: :func:`registrations` output.
        columns: the layout's column names, in order.
        seed: generator seed.

    Returns:
        A DataFrame of strings with exactly ``columns``, in order.
    """
    def UR(stream: str) -> Column:
        return uniform(seed, stream, "row_key")

    # Mess is applied in three selects (typo, then case, then whitespace) so each
    # step references a column, not the previous step's whole expression: nested
    # in one expression the copies multiply and the generated code explodes.
    fields = {"last": "last_name", "first": "reg_first_name", "mid": "reg_middle_name",
              "addr": "res_street_address"}
    regs = regs.select("*", *[typo(F.col(c), UR(f + "_t"), UR(f + "_p"), UR(f + "_k"), 0.02).alias(f"_{f}_t")
                              for f, c in fields.items()])
    regs = regs.select("*", *[vary_case(F.col(f"_{f}_t"), UR(f + "_c"), 0.03, 0.02).alias(f"_{f}_c")
                              for f in fields])

    def name(f: str, space_rate: float = 0.01) -> Column:
        return vary_space(F.col(f"_{f}_c"), UR(f + "_s"), space_rate)

    addr = name("addr", 0.10)
    u_mail = UR("mail")
    has_mail = u_mail < 0.08
    po_box = F.concat(F.lit("PO BOX "), (F.floor(UR("pobox") * 9000) + 1).cast("int").cast("string"))
    status = F.col("status_cd")
    phone = F.when(F.col("has_phone") & (UR("phone_missing") > 0.05),
                   phone_format(F.col("phone_digits"), UR("phone_fmt"), (0.85, 0.93, 0.98, 0.99))).otherwise("")
    age_end = F.lit(R.YEAR_END) - F.col("birth_year")
    u_bs = UR("birth_state")
    birth_state = F.when(u_bs < 0.3, F.lit("")).otherwise(
        categorical(uniform(seed, "birth_state_v", "person_id"), R.BIRTH_STATES, R.BIRTH_STATE_WEIGHTS))
    values: dict[str, Column] = {
        "county_id": F.col("county_id").cast("string"),
        "county_desc": F.col("county_desc"),
        "voter_reg_num": F.col("voter_reg_num"),
        "ncid": F.col("ncid"),
        "last_name": name("last"),
        "first_name": name("first"),
        "middle_name": F.when(UR("mid_missing") < 0.03, F.lit("")).otherwise(name("mid")),
        "name_suffix_lbl": F.col("suffix"),
        "status_cd": status,
        "voter_status_desc": _lookup(status, R.STATUS_DESC),
        "reason_cd": F.col("reason_cd"),
        "voter_status_reason_desc": _lookup(F.col("reason_cd"), R.REASON_DESC),
        "res_street_address": addr,
        "res_city_desc": F.col("res_city_desc"),
        "state_cd": F.lit("NC"),
        "zip_code": F.col("zip_code"),
        "mail_addr1": F.when(has_mail, po_box).otherwise(""),
        "mail_city": F.when(has_mail, F.col("res_city_desc")).otherwise(""),
        "mail_state": F.when(has_mail, F.lit("NC")).otherwise(""),
        "mail_zipcode": F.when(has_mail, F.col("zip_code").substr(1, 5)).otherwise(""),
        "full_phone_number": phone,
        "confidential_ind": F.lit("N"),
        "registr_dt": F.date_format(F.col("reg_date"), "MM/dd/yyyy"),
        "race_code": F.col("race"),
        "ethnic_code": F.col("ethnic"),
        "party_cd": F.col("party"),
        "gender_code": F.col("gender"),
        "birth_year": F.col("birth_year").cast("string"),
        "age_at_year_end": age_end.cast("string"),
        "birth_state": birth_state,
        "drivers_lic": F.when(uniform(seed, "dl", "person_id") < 0.85, "Y").otherwise("N"),
        "precinct_abbrv": F.col("precinct_abbrv"),
        "precinct_desc": F.col("precinct_desc"),
        "municipality_abbrv": F.col("municipality_abbrv"),
        "municipality_desc": F.col("municipality_desc"),
        "cong_dist_abbrv": F.col("cong_dist_abbrv"),
        "super_court_abbrv": F.col("judic_dist_abbrv"),
        "judic_dist_abbrv": F.col("judic_dist_abbrv"),
        "nc_senate_abbrv": F.col("nc_senate_abbrv"),
        "nc_house_abbrv": F.col("nc_house_abbrv"),
        "county_commiss_abbrv": F.col("county_commiss_abbrv"),
        "county_commiss_desc": F.concat(F.upper(F.col("county_desc")), F.lit(" COMMISSIONER DIST "),
                                        F.col("county_commiss_abbrv")),
        "school_dist_abbrv": F.col("school_dist_abbrv"),
        "school_dist_desc": F.concat(F.upper(F.col("county_desc")), F.lit(" SCHOOL DIST "),
                                     F.col("school_dist_abbrv")),
        "dist_1_abbrv": F.col("dist_1_abbrv"),
        "dist_1_desc": F.concat(F.lit("PROSECUTORIAL DISTRICT "), F.col("dist_1_abbrv")),
        "vtd_abbrv": F.col("precinct_abbrv"),
        "vtd_desc": F.col("precinct_abbrv"),
    }
    # Columns NC leaves blank for most counties (wards, townships, utility districts).
    return regs.select(*[values.get(c, F.lit("")).alias(c) for c in columns])


def to_truth_registrations(regs: DataFrame) -> DataFrame:
    """The ground truth for each ncvoter row (never read by the pipeline).

    Args:
        regs: :func:`registrations` output.

    Returns:
        ``ncid, voter_reg_num, county_id, person_id, p_turnout (the next
        general, a midterm), p_presidential, p_support, uplift, is_duplicate, moved`` plus ``row_kind, status_cd, reg_date,
        removal_date, birth_date, p_primary, p_municipal, engagement`` for
        evaluation.
    """
    kind_name = literal_map(ROW_KINDS)
    return regs.select(
        "ncid", "voter_reg_num", F.col("county_id").cast("int").alias("county_id"), "person_id",
        "p_turnout", "p_presidential", "p_support", "uplift",
        (F.col("kind") == KIND_DUPLICATE).alias("is_duplicate"),
        F.col("moved"),
        F.element_at(kind_name, F.col("kind")).alias("row_kind"),
        "status_cd", "reg_date", "removal_date", "birth_date", "p_primary", "p_municipal", "engagement",
    )

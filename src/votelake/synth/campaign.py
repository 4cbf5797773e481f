"""Campaign data: contact attempts, the persuasion experiment and digital events.

The campaign works from current (kind 0), non-removed registrations (the
*audience*). Three programs run in the 2026-06-01..08-31 window:

* ``id_2026``: a share ``id_share`` (``SynthSettings``, default 4%) of people
  get 1-3 door/phone/text attempts; a support ID is recorded on ~60% of
  conversations, drawn from the person's true support.
* ``persuasion_2026``: a share ``experiment_share`` of the audience
  (``SynthSettings``, default 10%) is randomised 50/50 on 2026-06-15; the
  treatment arm gets 1-2 door visits in July, the control arm nothing. The
  assignment file (``landing/experiments``) lists both arms.
* ``followup_2026``: from 2026-08-10 a phone survey attempts a share
  ``followup_share`` (default all) of the experiment's members, in BOTH arms
  alike, so the arms stay comparable. Its support IDs are drawn from
  ``p_support + uplift`` for the treatment arm and ``p_support`` for control,
  so uplift models (Qini with a bootstrap interval) can be evaluated against
  the experiment. Sized for 1M voters: ~95,000 members, of whom ~35% are
  reached and ~60% of those give an ID, about 20,000 follow-up IDs.

Latent noise: every outcome is a Bernoulli draw from the person's true
probability, never the probability itself. Votes (in ``ncvhis``) are drawn
from ``p_turnout`` (``p_primary``, ``p_municipal``), support IDs of the ID
program from ``p_support``, follow-up IDs from ``p_support + uplift`` (treated)
or ``p_support`` (control), and precinct vote choices from ``p_support``. The
realized outcomes therefore scatter around the truth (``truth/persons``): an
oracle model scoring with the true probabilities has an AUC well below 1, and
an uplift estimate from the experiment carries sampling error.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from votelake.synth import reference as R
from votelake.synth.plan import keep_where
from votelake.synth.mess import phone_format, typo, vary_case
from votelake.synth.rand import categorical, hex_id, pick, sigmoid, uniform

EXPERIMENT_ID = "persuasion_2026"
ASSIGNED_AT = "2026-06-15T09:00:00"
TS_FORMAT = "yyyy-MM-dd'T'HH:mm:ss"
SUPPORT_ID_RATE = 0.6

DOOR_RESULTS = (["CANVASSED", "NOT_HOME", "REFUSED", "MOVED", "INACCESSIBLE"], [.30, .55, .07, .05, .03])
PERSUASION_DOOR = (["CANVASSED", "NOT_HOME", "REFUSED", "MOVED", "INACCESSIBLE"], [.45, .44, .06, .03, .02])
PHONE_RESULTS = (["CANVASSED", "NO_ANSWER", "BUSY", "WRONG_NUMBER", "REFUSED", "LEFT_MESSAGE"],
                 [.20, .45, .05, .10, .08, .12])
FOLLOWUP_PHONE = (["CANVASSED", "NO_ANSWER", "BUSY", "WRONG_NUMBER", "REFUSED", "LEFT_MESSAGE"],
                  [.35, .38, .03, .07, .08, .09])
TEXT_RESULTS = (["REPLIED", "SENT", "OPTED_OUT", "UNDELIVERABLE"], [.15, .75, .05, .05])

EMAIL_BLASTS = [dt.date(2026, 6, 5), dt.date(2026, 6, 19), dt.date(2026, 7, 3), dt.date(2026, 7, 17),
                dt.date(2026, 7, 31), dt.date(2026, 8, 14), dt.date(2026, 8, 28)]
SMS_BLASTS = [dt.date(2026, 6, 20), dt.date(2026, 7, 18), dt.date(2026, 8, 22)]
# Shares of digital subscribers whose profile has a name and ZIP, and of those a street address.
PROFILE_NAME_RATE = 0.97
PROFILE_ADDRESS_RATE = 0.9
PROFILE = ("first_name", "last_name", "address", "zip")


def _ts(day: Column, seconds: Column) -> Column:
    """ISO timestamp string for a date plus seconds after midnight (UTC session)."""
    return F.date_format(F.timestamp_seconds(F.unix_date(day).cast("long") * 86400 + seconds.cast("long")),
                         TS_FORMAT)


def audience(regs: DataFrame) -> DataFrame:
    """The people a campaign can reach: current registrations not removed or denied.

    Args:
        regs: :func:`voters.registrations` output.

    Returns:
        One row per person with the columns campaign programs use.
    """
    return keep_where(regs, (F.col("kind") == 0) & F.col("status_cd").isin("A", "I", "S")).select(
        "person_id", "ncid", "first_name", "last_name", "res_street_address", "res_city_desc",
        "zip_code", "phone_digits", "has_phone", "has_email", "email", "p_support", "uplift",
        "engagement", "party",
    )


def experiment_assignment(people: DataFrame, seed: int, share: float) -> DataFrame:
    """Pick the experiment sample and randomise it 50/50.

    Args:
        people: :func:`audience` output.
        seed: generator seed.
        share: the share of ``people`` in the experiment (``SynthSettings.experiment_share``).

    Returns:
        ``people`` plus ``in_exp`` (bool) and ``arm`` (treatment/control/null).
    """
    in_exp = uniform(seed, "exp", "person_id") < F.lit(share)
    arm = F.when(in_exp, F.when(uniform(seed, "arm", "person_id") < 0.5, "treatment").otherwise("control"))
    return people.select("*", in_exp.alias("in_exp"), arm.alias("arm"))


def to_experiments(assigned: DataFrame) -> DataFrame:
    """The experiment assignment file.

    Args:
        assigned: :func:`experiment_assignment` output.

    Returns:
        ``state_voter_id, experiment_id, arm, assigned_at``.
    """
    return keep_where(assigned, F.col("in_exp")).select(
        F.col("ncid").alias("state_voter_id"), F.lit(EXPERIMENT_ID).alias("experiment_id"),
        "arm", F.lit(ASSIGNED_AT).alias("assigned_at"),
    )


def _support_id(s: Column, seed: int, *key: str) -> Column:
    """Draw a 1..5 support ID from a support probability.

    1/2 = strong/lean support, 3 = undecided (likelier near 50/50), 4/5 = lean/strong oppose.
    """
    u1, u2, u3 = (uniform(seed, f"sid{i}", *key) for i in (1, 2, 3))
    supporter = F.when(u2 < s, 1).otherwise(2)
    opponent = F.when(u2 < F.lit(1.0) - s, 5).otherwise(4)
    return (F.when(u3 < F.lit(0.8) * s * (F.lit(1.0) - s), 3)
            .when(u1 < s, supporter).otherwise(opponent))


def contact_attempts(assigned: DataFrame, seed: int, followup_share: float, id_share: float) -> DataFrame:
    """All contact attempts with the true person attached.

    Args:
        assigned: :func:`experiment_assignment` output.
        seed: generator seed.
        followup_share: the share of experiment members (both arms) the
            follow-up phone survey attempts (``SynthSettings.followup_share``).
        id_share: the share of people the ID program attempts (``SynthSettings.id_share``).

    Returns:
        One row per attempt: the contacts layout columns plus ``person_id``.
    """
    def U(stream: str) -> Column:
        return uniform(seed, stream, "person_id")

    n_id = F.when(U("c_id") < F.lit(id_share), F.lit(1) + F.floor(U("c_id_n") * 3).cast("int")).otherwise(0)
    n_pers = F.when(F.col("arm") == "treatment", F.lit(1) + F.floor(U("c_pers_n") * 2).cast("int")).otherwise(0)
    n_fu = F.when(F.col("in_exp") & (U("c_fu") < F.lit(followup_share)), 1).otherwise(0)
    df = assigned.select("*", n_id.alias("n_id"), n_pers.alias("n_pers"), n_fu.alias("n_fu"))
    df = keep_where(df, F.col("n_id") + F.col("n_pers") + F.col("n_fu") > 0)
    # Fixed slots: 0-2 ID attempts, 3-4 persuasion visits, 5 follow-up call.
    slots = F.filter(F.array(*[F.lit(i) for i in range(6)]), lambda s: (
        (s < F.col("n_id")) | ((s >= 3) & (s < 3 + F.col("n_pers"))) | ((s == 5) & (F.col("n_fu") > 0))))
    df = df.select("*", F.explode(slots).alias("slot"))

    def UA(stream: str) -> Column:
        return uniform(seed, stream, "person_id", "slot")

    program = (F.when(F.col("slot") < 3, "id_2026").when(F.col("slot") < 5, "persuasion_2026")
               .otherwise("followup_2026"))
    channel = (F.when(F.col("slot") < 3, categorical(UA("channel"), ["door", "phone", "text"], [.4, .35, .25]))
               .when(F.col("slot") < 5, F.lit("door")).otherwise(F.lit("phone")))
    # Date windows per program; ID attempts of one person are spread over the summer.
    day = (F.when(F.col("slot") < 3, F.date_add(F.lit(R.CAMPAIGN_START), F.floor(UA("day") * 92).cast("int")))
           .when(F.col("slot") < 5, F.date_add(F.lit(dt.date(2026, 7, 1)), F.floor(UA("day") * 31).cast("int")))
           .otherwise(F.date_add(F.lit(dt.date(2026, 8, 10)), F.floor(UA("day") * 22).cast("int"))))
    df = df.select("*", program.alias("program"), channel.alias("channel"), day.alias("day"))
    u_res = UA("result")
    result = (F.when(F.col("program") == "persuasion_2026", categorical(u_res, *PERSUASION_DOOR))
              .when(F.col("program") == "followup_2026", categorical(u_res, *FOLLOWUP_PHONE))
              .when(F.col("channel") == "door", categorical(u_res, *DOOR_RESULTS))
              .when(F.col("channel") == "phone", categorical(u_res, *PHONE_RESULTS))
              .otherwise(categorical(u_res, *TEXT_RESULTS)))
    start_hour = F.when(F.col("channel") == "phone", 16).otherwise(10)
    secs = start_hour * 3600 + F.floor(UA("secs") * 4 * 3600).cast("int") + F.when(
        F.col("channel") == "door", F.floor(UA("secs2") * 5 * 3600).cast("int")).otherwise(0)
    df = df.select("*", result.alias("result_code"), _ts(F.col("day"), secs).alias("attempted_at"))

    conversation = F.col("result_code").isin("CANVASSED", "REPLIED") & (F.col("program") != "persuasion_2026")
    # The follow-up survey measures support after treatment: uplift applies to the treated arm.
    s = F.least(F.lit(1.0), F.greatest(F.lit(0.0), F.col("p_support") + F.when(
        (F.col("program") == "followup_2026") & (F.col("arm") == "treatment"), F.col("uplift")).otherwise(0.0)))
    sid = F.when(conversation & (UA("sid_take") < SUPPORT_ID_RATE),
                 _support_id(s, seed, "person_id", "slot").cast("string")).otherwise("")

    # How the campaign recorded the person: typos, mixed case, varying phone
    # formats. Typos go in their own select so the case step references a column.
    recorded = {"cfn": "first_name", "cln": "last_name", "cad": "res_street_address"}
    df = df.select("*", *[typo(F.col(c), UA(f + "_t"), UA(f + "_p"), UA(f + "_k"), 0.03).alias(f"_{f}")
                          for f, c in recorded.items()])

    def rec(col: str, stream: str) -> Column:
        return vary_case(F.col(f"_{stream}"), UA(stream + "_c"), 0.6, 0.1)

    phone = F.when(U("vendor_phone") < 0.8, phone_format(F.col("phone_digits"), UA("pfmt"), (.3, .6, .85, .9))).otherwise("")
    email = F.when(F.col("has_email") & (U("c_email") < 0.5),
                   F.when(UA("ecase") < 0.1, F.upper(F.col("email"))).otherwise(F.col("email"))).otherwise("")
    return df.select(
        hex_id(seed, "contact", "person_id", "slot").alias("contact_id"),
        F.when(UA("svid") < 0.85, F.col("ncid")).otherwise("").alias("state_voter_id"),
        rec("first_name", "cfn").alias("first_name"),
        rec("last_name", "cln").alias("last_name"),
        rec("res_street_address", "cad").alias("address"),
        vary_case(F.col("res_city_desc"), UA("ccity"), 0.6, 0.1).alias("city"),
        F.col("zip_code").substr(1, 5).alias("zip"),
        phone.alias("phone"),
        email.alias("email"),
        "channel", "attempted_at", "result_code",
        F.when(conversation, F.lit("SUPPORT_2026")).otherwise("").alias("survey_question"),
        sid.alias("support_id"),
        "program",
        "person_id",
    )


def _email_key(email: Column, u: Column) -> Column:
    # Platforms keep what people typed: mostly lower case, some upper or
    # capitalised, a few with stray spaces.
    return (F.when(u < 0.08, F.upper(email)).when(u < 0.13, F.initcap(email))
            .when(u < 0.15, F.concat(F.lit(" "), email, F.lit(" "))).otherwise(email))


def digital_audience(spark: SparkSession, people: DataFrame, voters: int, partitions: int,
                     seed: int) -> DataFrame:
    """People known to the digital platforms, plus unlinkable outsiders.

    Args:
        spark: the session (for the outsider id range only).
        people: :func:`audience` output.
        voters: number of persons (sizes the outsider population, 1%).
        partitions: partitions of the outsider range.
        seed: generator seed.

    Returns:
        ``key`` (long, negative for outsiders), ``person_id`` (null for outsiders),
        ``email`` (null if not on the email list), ``phone`` (null if not on
        the SMS list), the profile (``first_name, last_name, address, zip``,
        null where not given), ``engagement``, ``p_support``.
    """
    def U(stream: str) -> Column:
        return uniform(seed, stream, "person_id")

    on_email = F.col("has_email") & (U("d_email") < 0.55)
    # Texting lists are loaded from the phones the campaign has (voter file and
    # vendor appends), so SMS subscribers are people with a known phone.
    on_sms = F.col("has_phone") & (U("d_sms") < F.lit(0.1) + F.lit(0.15) * sigmoid(F.col("engagement")))
    # The supporter profile the platform exports with each event: what the
    # person typed on a sign-up form. Most give name and ZIP, most of those a
    # street address; case and spacing vary, a few mistype their name.
    gave_name = U("d_name") < PROFILE_NAME_RATE
    gave_address = gave_name & (U("d_addr") < PROFILE_ADDRESS_RATE)
    typed = people.select(
        "*", *[typo(F.col(c), U(f"d_{c}_t"), U(f"d_{c}_p"), U(f"d_{c}_k"), 0.01).alias(f"_d_{c}")
               for c in ("first_name", "last_name")])
    linked = keep_where(typed.select(
        F.col("person_id").alias("key"), F.col("person_id"),
        F.when(on_email, _email_key(F.col("email"), U("d_ecase"))).alias("email"),
        F.when(on_sms, phone_format(F.col("phone_digits"), U("d_pfmt"), (.4, .6, .75, .8))).alias("phone"),
        F.when(gave_name, vary_case(F.col("_d_first_name"), U("d_fn_c"), 0.7, 0.1)).alias("first_name"),
        F.when(gave_name, vary_case(F.col("_d_last_name"), U("d_ln_c"), 0.7, 0.1)).alias("last_name"),
        F.when(gave_address, vary_case(F.col("res_street_address"), U("d_ad_c"), 0.7, 0.1)).alias("address"),
        F.when(gave_name, F.col("zip_code").substr(1, 5)).alias("zip"),
        "engagement", "p_support",
    ), F.col("email").isNotNull() | F.col("phone").isNotNull())
    n_out = max(1, voters // 100)
    o = spark.range(n_out, numPartitions=partitions)
    first = pick(uniform(seed, "o_first", "id"), R.FEMALE_FIRST + R.MALE_FIRST)
    last = pick(uniform(seed, "o_last", "id"), R.SURNAMES, 1.5)
    out_email = F.lower(F.concat(first, F.lit("."), last,
                                 (F.floor(uniform(seed, "o_num", "id") * 900) + 100).cast("int").cast("string"),
                                 F.lit("@"), pick(uniform(seed, "o_dom", "id"), R.EMAIL_DOMAINS)))
    outsiders = o.select(
        (F.lit(-1) - F.col("id")).alias("key"), F.lit(None).cast("long").alias("person_id"),
        out_email.alias("email"), F.lit(None).cast("string").alias("phone"),
        F.initcap(first).alias("first_name"), F.initcap(last).alias("last_name"),
        F.lit(None).cast("string").alias("address"), F.lit(None).cast("string").alias("zip"),
        F.lit(0.0).alias("engagement"), F.lit(0.5).alias("p_support"),
    )
    return linked.unionByName(outsiders)


def _blast_events(aud: DataFrame, seed: int, channel: str, key_col: str, blasts: list[dt.date],
                  types: list[tuple[str, Column, int]], stop_type: str, stop_rate: Column,
                  chain: bool) -> DataFrame:
    """Events for a series of blasts; the stop event (unsubscribe/opt-out) ends the series.

    Args:
        aud: audience rows with a non-null ``key_col``.
        seed: generator seed.
        channel: ``email`` or ``sms``.
        key_col: ``email`` or ``phone``.
        blasts: send dates.
        types: (event_type, probability Column, minutes after send) for engagement events.
        stop_type: the event that stops further sends.
        stop_rate: per-blast probability of the stop event.
        chain: whether later engagement events require the first (a click needs an open).

    Returns:
        Event rows: ``event_id, email, phone, <profile>, channel, event_type, event_ts, campaign, person_id``.
    """
    n = len(blasts)
    stops = F.array(*[uniform(seed, f"{channel}_stop", "key", k) < stop_rate for k in range(1, n + 1)])
    first_stop = F.array_position(stops, True).cast("int")
    df = keep_where(aud, F.col(key_col).isNotNull()).select(
        "*", first_stop.alias("first_stop"),
    )
    last = F.when(F.col("first_stop") > 0, F.col("first_stop")).otherwise(n)
    df = df.select("*", F.explode(F.sequence(F.lit(1), last)).alias("blast"))

    def UB(stream: str) -> Column:
        return uniform(seed, f"{channel}_{stream}", "key", "blast")

    day = F.element_at(F.array(*[F.lit(d) for d in blasts]), F.col("blast"))
    send = F.lit(10 * 3600) + F.floor(UB("send") * 3600).cast("int")
    # Each engagement event happens with its probability; with ``chain`` the later
    # ones also require the first (an email click needs an open).
    structs = [F.struct(F.lit("sent").alias("t"), F.lit(True).alias("on"), send.alias("s"))]
    prev = F.lit(True)
    for i, (etype, prob, minutes) in enumerate(types):
        on = prev & (UB(etype) < prob)
        structs.append(F.struct(F.lit(etype).alias("t"), on.alias("on"),
                                (send + F.lit(60) * (F.lit(minutes) + F.floor(UB(etype + "_m") * 240))
                                 .cast("int")).alias("s")))
        if i == 0 and chain:
            prev = on
    structs.append(F.struct(F.lit(stop_type).alias("t"), (F.col("blast") == F.col("first_stop")).alias("on"),
                            (send + F.lit(60) * (F.lit(30) + F.floor(UB("stop_m") * 600)).cast("int")).alias("s")))
    ev = F.filter(F.array(*structs), lambda x: x["on"])
    df = df.select("*", day.alias("day"), F.explode(ev).alias("ev"))
    return df.select(
        hex_id(seed, "digital", "key", f"'{channel}'", "blast", "ev.t").alias("event_id"),
        (F.col("email") if key_col == "email" else F.lit(None).cast("string")).alias("email"),
        (F.col("phone") if key_col == "phone" else F.lit(None).cast("string")).alias("phone"),
        *PROFILE,
        F.lit(channel).alias("channel"), F.col("ev.t").alias("event_type"),
        _ts(F.col("day"), F.col("ev.s")).alias("event_ts"),
        F.concat(F.lit(f"{channel}_"), F.date_format(F.col("day"), "yyyyMMdd")).alias("campaign"),
        "person_id",
    )


def digital_events(aud: DataFrame, seed: int) -> DataFrame:
    """Email, SMS and web events; engagement and support raise response rates.

    Args:
        aud: :func:`digital_audience` output.
        seed: generator seed.

    Returns:
        The digital layout columns plus ``person_id`` (null for outsiders).
    """
    eng, sup = F.col("engagement"), F.col("p_support") - 0.5
    email = _blast_events(
        aud, seed, "email", "email", EMAIL_BLASTS,
        [("open", sigmoid(F.lit(-1.0) + eng + F.lit(0.8) * sup), 0),
         ("click", sigmoid(F.lit(-1.8) + F.lit(0.8) * eng + sup), 2)],
        "unsubscribe", sigmoid(F.lit(-4.5) - F.lit(0.5) * eng - F.lit(1.5) * sup), chain=True)
    sms = _blast_events(
        aud, seed, "sms", "phone", SMS_BLASTS,
        [("click", sigmoid(F.lit(-2.2) + F.lit(0.8) * eng + sup), 1),
         ("reply", sigmoid(F.lit(-2.8) + F.lit(0.6) * eng + F.lit(0.5) * sup), 3)],
        "opt_out", sigmoid(F.lit(-3.5) - F.lit(0.5) * eng - sup), chain=False)
    # Web: engaged supporters visit; visits are keyed by the email the site captured.
    def U(stream: str) -> Column:
        return uniform(seed, stream, "key")

    visits = F.when(F.col("email").isNotNull() & (U("web") < sigmoid(F.lit(-2.0) + F.lit(1.2) * eng + F.lit(2.0) * sup)),
                    F.lit(1) + F.floor(U("web_n") * 4).cast("int")).otherwise(0)
    web = keep_where(aud.select("*", visits.alias("visits")), F.col("visits") > 0)
    web = web.select("*", F.explode(F.sequence(F.lit(0), F.col("visits"))).alias("v"))

    def UV(stream: str) -> Column:
        return uniform(seed, stream, "key", "v")

    # Visit 0 is a signup for some visitors, the rest are page views.
    is_signup = (F.col("v") == 0)
    web = keep_where(web, ~is_signup | (U("signup") < 0.3)).select(
        hex_id(seed, "digital", "key", "'web'", "v").alias("event_id"),
        "email", F.lit(None).cast("string").alias("phone"), *PROFILE, F.lit("web").alias("channel"),
        F.when(is_signup, "signup").otherwise("pageview").alias("event_type"),
        _ts(F.date_add(F.lit(R.CAMPAIGN_START), F.floor(UV("web_day") * 92).cast("int")),
            F.floor(UV("web_s") * 86400).cast("int")).alias("event_ts"),
        F.lit("web").alias("campaign"), "person_id",
    )
    return email.unionByName(sms).unionByName(web)

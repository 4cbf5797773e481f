"""The next delivery of a synthetic state: a later voter-file snapshot and one more day of campaign data.

A state ships its voter file again every week: the whole file, of which a
small share of registrations changed. :func:`write_next_delivery` reads the
newest ``ncvoter`` snapshot of a landing folder (the files, with Spark: no
driver-side copy of the file) and writes a snapshot dated ``days`` later in
which about ``rate`` of the registrations on the rolls changed, in four ways
(:data:`CHANGE_SHARES`):

* ``move``: a new residential street address in the same county (the NC
  registration is kept when a voter moves within the county);
* ``new``: a new registration (new NCID and registration number) of a new
  person in the household of an existing registration: same address, same
  last name, a young adult;
* ``removal``: status ``R`` (REMOVED, one of the canonical layer's
  ``CLOSED_STATUSES``) with a removal reason. The row stays in the file, as
  it does in NC's statewide files, which list removed registrations;
* ``name``: a new last name.

It also writes one more day of contact attempts and digital events (the day
after the newest event already delivered), in new files under a
``next_<snapshot date>`` folder of each source, so the delivery ledger loads
them once beside the earlier files. Every draw is keyed by (seed, the new
snapshot's date, the registration or subscriber), so the same input and seed
give the same delivery whatever the partitioning, and each later delivery
differs from the one before. Names come from the generator's generic lists;
nothing is taken from a real voter file.

The changes themselves are written as ground truth,
``<truth>/next_<snapshot date>/changes`` (Parquet; never read by the pipeline).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.storagelevel import StorageLevel

from votelake.layouts import load_layout
from votelake.synth import campaign
from votelake.synth import reference as R
from votelake.synth.generate import _count_written, _write
from votelake.synth.rand import categorical, hex_id, literal_array, literal_map, pick, uniform

SNAPSHOT_FOLDER = re.compile(r"^snapshot_(\d{8})$")
# How the changed registrations split among the four kinds of change.
CHANGE_SHARES: dict[str, float] = {"move": 0.35, "new": 0.30, "removal": 0.25, "name": 0.10}
CHANGES = tuple(CHANGE_SHARES)
# Statuses of a registration on the rolls (NC codes): only these move, leave or change name.
ON_ROLLS = ("A", "I", "S")
REMOVAL_REASONS = (["RD", "RS", "RM", "RQ", "RF"], [.45, .30, .15, .05, .05])
NEW_REASONS = (["AV", "AP", "AN"], [.60, .25, .15])
NEW_PARTIES = (["DEM", "REP", "UNA", "LIB", "GRE", "CST"], [.31, .27, .40, .01, .005, .005])
# Support of a contact's ID by the party on the voter file (the file has no true support).
PARTY_SUPPORT = {"DEM": 0.8, "REP": 0.15, "UNA": 0.5}
# Email opens and clicks, SMS clicks and replies, per event sent (a click needs an open).
DIGITAL_RATES = {"email": (("open", 0.25, 0), ("click", 0.2, 2)), "sms": (("click", 0.08, 1), ("reply", 0.04, 3))}
STOP_EVENTS = ("unsubscribe", "opt_out")
TS_FORMAT = campaign.TS_FORMAT


@dataclass(frozen=True)
class NextDelivery:
    """What :func:`write_next_delivery` wrote.

    Attributes:
        previous_snapshot: the date of the snapshot it started from.
        snapshot: the new snapshot's date.
        event_day: the day of the new contacts and digital events.
        changes: registrations changed per kind (``move``, ``new``, ``removal``, ``name``).
        on_rolls: registrations on the rolls in the previous snapshot (what the rate applies to).
        rows: rows written per output (``ncvoter``, ``contacts``, ``digital``, ``changes``).
        paths: the folder of each output.
    """

    previous_snapshot: dt.date
    snapshot: dt.date
    event_day: dt.date
    changes: dict[str, int] = field(default_factory=dict)
    on_rolls: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)


def newest_snapshot(folder: Path) -> tuple[dt.date, Path]:
    """The newest ``snapshot_YYYYMMDD`` folder of a voter-file landing folder.

    Args:
        folder: the ``ncvoter`` landing folder.

    Returns:
        Its date and path.

    Raises:
        FileNotFoundError: no snapshot folder in it.
    """
    dated = [(dt.datetime.strptime(m.group(1), "%Y%m%d").date(), p) for p in folder.iterdir()
             if p.is_dir() and (m := SNAPSHOT_FOLDER.match(p.name))]
    if not dated:
        raise FileNotFoundError(f"no snapshot_YYYYMMDD folder in {folder}")
    return max(dated)


def _schema(columns: tuple[str, ...]) -> T.StructType:
    return T.StructType([T.StructField(c, T.StringType()) for c in columns])


def read_delimited(spark: SparkSession, path: Path, columns: tuple[str, ...], sep: str) -> DataFrame:
    """Landing text files (every file under ``path``) as all-string columns, whitespace and blanks as delivered."""
    # Recursive: earlier deliveries sit in subfolders beside the first files.
    return (spark.read.schema(_schema(columns)).option("header", True).option("sep", sep)
            .option("recursiveFileLookup", True)
            .option("ignoreLeadingWhiteSpace", False).option("ignoreTrailingWhiteSpace", False)
            .csv(str(path)))


def _tag(snapshot: dt.date) -> str:
    """The random-stream prefix of one delivery: each later delivery draws afresh."""
    return f"next{snapshot:%Y%m%d}"


def mark_changes(snapshot: DataFrame, seed: int, tag: str, rate: float) -> DataFrame:
    """Draw which registrations on the rolls change, and how.

    Args:
        snapshot: the previous snapshot (``ncvoter`` layout, strings).
        seed: generator seed.
        tag: the delivery's stream prefix.
        rate: the share of registrations on the rolls that change.

    Returns:
        ``snapshot`` plus ``_change``: one of :data:`CHANGES`, or null.
    """
    u = uniform(seed, f"{tag}_change", "ncid", "voter_reg_num", "county_id")
    bounds, cum = [], 0.0
    for kind, share in CHANGE_SHARES.items():
        cum += rate * share
        bounds.append((kind, cum))
    change = None
    for kind, upper in bounds:
        change = F.when(u < upper, F.lit(kind)) if change is None else change.when(u < upper, F.lit(kind))
    on_rolls = F.col("status_cd").isin(*ON_ROLLS)
    return snapshot.select("*", F.when(on_rolls, change).alias("_change"))


def _new_street(seed: int, stream: str, *key: str) -> Column:
    """A street address drawn like the generator's (house number, street, type, sometimes an apartment)."""
    def U(name: str) -> Column:
        return uniform(seed, f"{stream}_{name}", *key)

    house = (F.lit(100) + F.floor(F.pow(U("house"), F.lit(1.6)) * 9900).cast("int")).cast("string")
    street = F.concat_ws(" ", house, pick(U("street"), R.STREETS, 1.2), pick(U("stype"), R.STREET_TYPES, 1.5))
    apt = F.when(U("apt") < 0.08, F.concat(F.lit(" APT "), (F.floor(U("apt_n") * 300) + 1).cast("int").cast("string")))
    return F.concat(street, F.coalesce(apt, F.lit("")))


def _other_surname(seed: int, stream: str, old: Column, *key: str) -> Column:
    """A surname from the generic list that differs from ``old`` (the next one on the list when drawn equal)."""
    names = literal_array(R.SURNAMES)
    idx = F.floor(F.pow(uniform(seed, stream, *key), F.lit(1.3)) * len(R.SURNAMES)).cast("int")
    drawn = F.element_at(names, idx + 1)
    return F.when(drawn == F.upper(F.trim(old)), F.element_at(names, (idx + 1) % len(R.SURNAMES) + 1)).otherwise(drawn)


def apply_changes(marked: DataFrame, columns: tuple[str, ...], seed: int, tag: str) -> DataFrame:
    """The previous snapshot's registrations as the next snapshot lists them.

    Args:
        marked: :func:`mark_changes` output.
        columns: the ``ncvoter`` layout's columns.
        seed: generator seed.
        tag: the delivery's stream prefix.

    Returns:
        Every registration (removed ones stay listed, as in NC's files), moves,
        removals and name changes applied; ``columns`` in order.
    """
    key = ("ncid", "voter_reg_num", "county_id")
    change = F.col("_change")
    reason = categorical(uniform(seed, f"{tag}_reason", *key), *REMOVAL_REASONS)
    removed = change == "removal"
    values = {
        "res_street_address": F.when(change == "move", _new_street(seed, f"{tag}_move", *key))
        .otherwise(F.col("res_street_address")),
        "last_name": F.when(change == "name", _other_surname(seed, f"{tag}_surname", F.col("last_name"), *key))
        .otherwise(F.col("last_name")),
        "status_cd": F.when(removed, F.lit("R")).otherwise(F.col("status_cd")),
        "voter_status_desc": F.when(removed, F.lit(R.STATUS_DESC["R"])).otherwise(F.col("voter_status_desc")),
        "reason_cd": F.when(removed, reason).otherwise(F.col("reason_cd")),
        "voter_status_reason_desc": F.when(removed, F.element_at(literal_map(R.REASON_DESC), reason))
        .otherwise(F.col("voter_status_reason_desc")),
    }
    return marked.select(*[values.get(c, F.col(c)).alias(c) for c in columns])


def _letters(county_id: Column) -> Column:
    """The two-letter NCID prefix of a county, as the generator gives it (county 1 → ``AA``)."""
    alpha = F.lit("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    i = county_id.cast("int") - 1
    return F.concat(alpha.substr(F.floor(i / 26).cast("int") % 26 + 1, F.lit(1)), alpha.substr(i % 26 + 1, F.lit(1)))


def _digits(u: Column, width: Column) -> Column:
    """A ``width``-digit number (zero-padded) from a uniform draw."""
    return F.lpad(F.floor(u * F.pow(F.lit(10), width)).cast("decimal(20,0)").cast("string"), width, "0")


def new_registrations(marked: DataFrame, columns: tuple[str, ...], seed: int, tag: str,
                      previous: dt.date, snapshot: dt.date) -> DataFrame:
    """New registrations: one new person in the household of each registration marked ``new``.

    Their NCID and registration number are one digit longer than the
    household's (so they cannot be any of the file's generated ids; the few
    that equal an id an earlier delivery added are dropped by
    :func:`without_taken_ids`).

    Args:
        marked: :func:`mark_changes` output.
        columns: the ``ncvoter`` layout's columns.
        seed: generator seed.
        tag: the delivery's stream prefix.
        previous: the previous snapshot's date (registered after it).
        snapshot: the new snapshot's date (registered on or before it).

    Returns:
        One row per new registration, ``columns`` in order, plus ``_template_ncid`` (the household's).
    """
    key = ("ncid", "voter_reg_num", "county_id")

    def U(stream: str) -> Column:
        return uniform(seed, f"{tag}_new_{stream}", *key)

    templates = marked.where(F.col("_change") == "new")
    gender = categorical(U("gender"), ["F", "M", "U"], [.52, .44, .04])
    female = (gender == "F") | ((gender == "U") & (U("gname") < 0.5))
    first = F.when(female, pick(U("first"), R.FEMALE_FIRST, 1.2)).otherwise(pick(U("first"), R.MALE_FIRST, 1.2))
    middle = F.when(female, pick(U("middle"), R.FEMALE_MIDDLE)).otherwise(pick(U("middle"), R.MALE_MIDDLE))
    # Mostly young adults registering for the first time (u² favours 18-25).
    age = F.lit(18) + F.floor(F.pow(U("age"), F.lit(2)) * 50).cast("int")
    birth_year = F.lit(snapshot.year) - age
    registered = F.date_add(F.lit(previous), F.lit(1) + F.floor(U("reg") * (snapshot - previous).days).cast("int"))
    reason = categorical(U("reason"), *NEW_REASONS)
    ncid_width = F.length(F.trim(F.col("ncid"))) - 1  # the digits after the two letters, plus one
    reg_width = F.length(F.trim(F.col("voter_reg_num"))) + 1
    values = {
        "voter_reg_num": _digits(U("reg_num"), reg_width),
        "ncid": F.concat(_letters(F.col("county_id")), _digits(U("ncid"), ncid_width)),
        "last_name": F.upper(F.trim(F.col("last_name"))),
        "first_name": first,
        "middle_name": F.when(U("no_middle") < 0.12, F.lit("")).otherwise(middle),
        "name_suffix_lbl": F.lit(""),
        "status_cd": F.lit("A"),
        "voter_status_desc": F.lit(R.STATUS_DESC["A"]),
        "reason_cd": reason,
        "voter_status_reason_desc": F.element_at(literal_map(R.REASON_DESC), reason),
        "full_phone_number": F.lit(""),
        "confidential_ind": F.lit("N"),
        "registr_dt": F.date_format(registered, "MM/dd/yyyy"),
        "party_cd": categorical(U("party"), *NEW_PARTIES),
        "gender_code": gender,
        "birth_year": birth_year.cast("string"),
        "age_at_year_end": age.cast("string"),
        "birth_state": F.when(U("birth_state") < 0.3, F.lit("")).otherwise(
            categorical(U("birth_state_v"), R.BIRTH_STATES, R.BIRTH_STATE_WEIGHTS)),
        "drivers_lic": F.when(U("dl") < 0.85, "Y").otherwise("N"),
        **{c: F.lit("") for c in ("mail_addr1", "mail_addr2", "mail_addr3", "mail_addr4", "mail_city",
                                   "mail_state", "mail_zipcode")},
    }
    return templates.select(*[values.get(c, F.col(c)).alias(c) for c in columns],
                            F.col("ncid").alias("_template_ncid"))


def without_taken_ids(new: DataFrame, existing: DataFrame) -> DataFrame:
    """New registrations whose NCID and (county, registration number) no existing registration holds.

    Args:
        new: :func:`new_registrations` output (small: about a few per thousand registrations).
        existing: the previous snapshot.

    Returns:
        ``new`` without the rows whose ids are taken, or taken twice among themselves.
    """
    ids = F.broadcast(new.select("ncid", "county_id", "voter_reg_num"))
    taken_ncid = existing.select("ncid").join(ids.select("ncid"), on="ncid", how="left_semi")
    taken_reg = existing.select("county_id", "voter_reg_num").join(
        ids.select("county_id", "voter_reg_num"), on=["county_id", "voter_reg_num"], how="left_semi")
    unique = new.dropDuplicates(["ncid"]).dropDuplicates(["county_id", "voter_reg_num"])
    return (unique.join(F.broadcast(taken_ncid.distinct()), on="ncid", how="left_anti")
            .join(F.broadcast(taken_reg.distinct()), on=["county_id", "voter_reg_num"], how="left_anti"))


def change_truth(marked: DataFrame, new: DataFrame) -> DataFrame:
    """The ground truth of a delivery's changes: one row per changed or new registration.

    Args:
        marked: :func:`mark_changes` output.
        new: the new registrations written (:func:`without_taken_ids` output).

    Returns:
        ``ncid, voter_reg_num, county_id, change, template_ncid`` (the household's NCID, for ``new``).
    """
    changed = marked.where(F.col("_change").isin("move", "removal", "name")).select(
        "ncid", "voter_reg_num", "county_id", F.col("_change").alias("change"),
        F.lit(None).cast("string").alias("template_ncid"))
    added = new.select("ncid", "voter_reg_num", "county_id", F.lit("new").alias("change"),
                       F.col("_template_ncid").alias("template_ncid"))
    return changed.unionByName(added)


def _event_day(ts: Column) -> Column:
    return F.to_date(F.substring(F.trim(ts), 1, 10))


def _timestamp(day: dt.date, seconds: Column) -> Column:
    """ISO timestamp text of ``day`` plus seconds after midnight (the campaign files' format)."""
    midnight = F.lit((day - dt.date(1970, 1, 1)).days * 86400).cast("long")
    return F.date_format(F.timestamp_seconds(midnight + seconds.cast("long")), TS_FORMAT)


def next_contacts(registrations: DataFrame, columns: tuple[str, ...], seed: int, tag: str, day: dt.date,
                  share: float) -> DataFrame:
    """One day of ID-program contact attempts on registrations on the rolls.

    Args:
        registrations: the new snapshot's registrations (``ncvoter`` layout).
        columns: the contacts layout's columns.
        seed: generator seed.
        tag: the delivery's stream prefix.
        day: the day of the attempts.
        share: the share of registrations on the rolls attempted that day.

    Returns:
        Contact attempts, ``columns`` in order.
    """
    key = ("ncid", "voter_reg_num", "county_id")

    def U(stream: str) -> Column:
        return uniform(seed, f"{tag}_c_{stream}", *key)

    reached = registrations.where(F.col("status_cd").isin(*ON_ROLLS) & (U("pick") < F.lit(share)))
    channel = categorical(U("channel"), ["door", "phone", "text"], [.4, .35, .25])
    df = reached.select("*", channel.alias("channel"))
    result = (F.when(F.col("channel") == "door", categorical(U("result"), *campaign.DOOR_RESULTS))
              .when(F.col("channel") == "phone", categorical(U("result"), *campaign.PHONE_RESULTS))
              .otherwise(categorical(U("result"), *campaign.TEXT_RESULTS)))
    start_hour = F.when(F.col("channel") == "phone", 16).otherwise(10)
    seconds = start_hour * 3600 + F.floor(U("secs") * 4 * 3600).cast("int")
    df = df.select("*", result.alias("result_code"), _timestamp(day, seconds).alias("attempted_at"))
    conversation = F.col("result_code").isin("CANVASSED", "REPLIED")
    support = F.coalesce(F.element_at(literal_map(PARTY_SUPPORT), F.col("party_cd")), F.lit(0.5))
    support_id = F.when(conversation & (U("sid_take") < campaign.SUPPORT_ID_RATE),
                        campaign._support_id(support, seed, *key).cast("string")).otherwise("")
    values = {
        "contact_id": hex_id(seed, f"{tag}_contact", *key),
        "state_voter_id": F.when(U("svid") < 0.85, F.col("ncid")).otherwise(""),
        "first_name": F.col("first_name"),
        "last_name": F.col("last_name"),
        "address": F.col("res_street_address"),
        "city": F.col("res_city_desc"),
        "zip": F.substring(F.col("zip_code"), 1, 5),
        "phone": F.coalesce(F.col("full_phone_number"), F.lit("")),
        "email": F.lit(""),
        "channel": F.col("channel"),
        "attempted_at": F.col("attempted_at"),
        "result_code": F.col("result_code"),
        "survey_question": F.when(conversation, F.lit("SUPPORT_2026")).otherwise(""),
        "support_id": support_id,
        "program": F.lit("id_2026"),
    }
    return df.select(*[values[c].alias(c) for c in columns])


def subscribers(digital: DataFrame) -> DataFrame:
    """The email and SMS subscribers the digital platforms still send to, with their newest profile.

    Args:
        digital: every digital event delivered so far (``digital`` layout).

    Returns:
        ``channel, email, phone`` and the profile (``first_name, last_name, address, zip``) of
        each subscriber that never unsubscribed or opted out.
    """
    subs = digital.where(F.col("channel").isin("email", "sms")).groupBy("channel", "email", "phone").agg(
        F.max(F.col("event_type").isin(*STOP_EVENTS)).alias("_stopped"),
        F.max_by(F.struct(*campaign.PROFILE), "event_ts").alias("_profile"))
    return subs.where(~F.col("_stopped")).select("channel", "email", "phone",
                                                 *[F.col(f"_profile.{c}").alias(c) for c in campaign.PROFILE])


def next_digital(subs: DataFrame, columns: tuple[str, ...], seed: int, tag: str, day: dt.date,
                 share: float) -> DataFrame:
    """One day of email and SMS events: a send to a share of the subscribers, and their responses.

    Args:
        subs: :func:`subscribers` output.
        columns: the digital layout's columns.
        seed: generator seed.
        tag: the delivery's stream prefix.
        day: the day of the events.
        share: the share of subscribers sent to that day.

    Returns:
        Digital events, ``columns`` in order.
    """
    key = ("channel", "coalesce(email, '')", "coalesce(phone, '')")

    def U(stream: str) -> Column:
        return uniform(seed, f"{tag}_d_{stream}", *key)

    sent = subs.where(U("pick") < F.lit(share))
    send = F.lit(10 * 3600) + F.floor(U("send") * 3600).cast("int")
    events = [F.struct(F.lit("sent").alias("t"), F.lit(True).alias("on"), send.alias("s"))]
    for channel, responses in DIGITAL_RATES.items():
        first_on = None
        for i, (etype, rate, minutes) in enumerate(responses):
            # A click needs an open (email); SMS clicks and replies are independent.
            on = (F.col("channel") == channel) & (U(etype) < rate)
            if channel == "email" and i > 0:
                on = on & first_on
            first_on = on if i == 0 else first_on
            events.append(F.struct(F.lit(etype).alias("t"), on.alias("on"),
                                   (send + F.lit(60) * (F.lit(minutes) + F.floor(U(f"{etype}_m") * 240)))
                                   .cast("int").alias("s")))
    df = sent.select("*", F.explode(F.filter(F.array(*events), lambda e: e["on"])).alias("ev"))
    values = {
        "event_id": hex_id(seed, f"{tag}_digital", *key, "ev.t"),
        "event_type": F.col("ev.t"),
        "event_ts": _timestamp(day, F.col("ev.s")),
        "campaign": F.concat(F.col("channel"), F.lit(f"_{day:%Y%m%d}")),
    }
    return df.select(*[values.get(c, F.col(c)).alias(c) for c in columns])


def _daily(df: DataFrame, ts: str) -> tuple[dt.date | None, float]:
    """The newest event day of a source and its events per day over the days it spans."""
    row = df.agg(F.max(_event_day(F.col(ts))).alias("newest"), F.min(_event_day(F.col(ts))).alias("oldest"),
                 F.count("*").alias("n")).first()
    if row["newest"] is None:
        return None, 0.0
    return row["newest"], row["n"] / ((row["newest"] - row["oldest"]).days + 1)


def write_next_delivery(spark: SparkSession, landing: Path, layouts_dir: Path, seed: int, partitions: int,
                        truth: Path | None = None, days: int = 7, rate: float = 0.01) -> NextDelivery:
    """Write the next delivery of a synthetic state into its landing folder.

    Args:
        spark: the session.
        landing: the landing folder (``ncvoter/snapshot_YYYYMMDD``, ``contacts``, ``digital``).
        layouts_dir: folder of layout YAML files.
        seed: generator seed.
        partitions: files per output of the new snapshot (as ``synth.partitions``).
        truth: the truth folder, for the changes (none written when None).
        days: days from the newest snapshot to the new one.
        rate: the share of registrations on the rolls that change.

    Returns:
        A :class:`NextDelivery`: dates, changes per kind, rows and folders written.
    """
    landing = Path(landing).expanduser().resolve()
    previous, source = newest_snapshot(landing / "ncvoter")
    snapshot = previous + dt.timedelta(days=days)
    tag = _tag(snapshot)
    columns = {name: load_layout(layouts_dir, name).columns for name in ("nc_ncvoter", "contacts", "digital")}
    old = read_delimited(spark, source, columns["nc_ncvoter"], "\t")
    marked = mark_changes(old, seed, tag, rate)
    # The new registrations are few; kept so the id check and the write share one computation.
    new = without_taken_ids(new_registrations(marked, columns["nc_ncvoter"], seed, tag, previous, snapshot),
                            old).persist(StorageLevel.MEMORY_AND_DISK)
    registrations = apply_changes(marked, columns["nc_ncvoter"], seed, tag).unionByName(
        new.drop("_template_ncid"))
    out: dict[str, tuple[DataFrame, Path, str]] = {
        # The state's files come in ``partitions`` parts, split by a stable key (as the generator's).
        "ncvoter": (registrations.repartition(partitions, "ncid"),
                    landing / "ncvoter" / f"snapshot_{snapshot:%Y%m%d}", "tsv"),
    }
    on_rolls = old.where(F.col("status_cd").isin(*ON_ROLLS)).count()
    contacts_dir, digital_dir = landing / "contacts", landing / "digital"
    contacts = read_delimited(spark, contacts_dir, columns["contacts"], ",") if contacts_dir.exists() else None
    digital = (spark.read.schema(_schema(columns["digital"])).option("recursiveFileLookup", True)
               .json(str(digital_dir)) if digital_dir.exists() else None)
    stats = {name: _daily(df, ts) for name, df, ts in (("contacts", contacts, "attempted_at"),
                                                        ("digital", digital, "event_ts")) if df is not None}
    newest = [d for d, _ in stats.values() if d is not None]
    day = max(newest) + dt.timedelta(days=1) if newest else snapshot
    subs = None
    if "contacts" in stats:
        share = stats["contacts"][1] / max(on_rolls, 1)
        out["contacts"] = (next_contacts(registrations, columns["contacts"], seed, tag, day, share).coalesce(1),
                           contacts_dir / f"next_{snapshot:%Y%m%d}", "csv")
    if "digital" in stats:
        subs = subscribers(digital).persist(StorageLevel.MEMORY_AND_DISK)
        # Each subscriber sent to yields the send and its responses (~1.2 events).
        share = stats["digital"][1] / max(subs.count(), 1) / 1.2
        out["digital"] = (next_digital(subs, columns["digital"], seed, tag, day, min(share, 1.0)).coalesce(1),
                          digital_dir / f"next_{snapshot:%Y%m%d}", "jsonl")
    rows, paths = {}, {}
    for name, (df, path, fmt) in out.items():
        _write(df, path, fmt)
        rows[name], paths[name] = _count_written(spark, path, fmt), path
    changes = {kind: 0 for kind in CHANGES}
    if truth is not None:
        path = Path(truth).expanduser().resolve() / f"next_{snapshot:%Y%m%d}" / "changes"
        _write(change_truth(marked, new), path, "parquet")
        rows["changes"], paths["changes"] = _count_written(spark, path, "parquet"), path
        counted = spark.read.parquet(str(path)).groupBy("change").count().collect()
    else:
        counted = change_truth(marked, new).groupBy("change").count().collect()
    changes.update({r["change"]: r["count"] for r in counted})
    new.unpersist()
    if subs is not None:
        subs.unpersist()
    return NextDelivery(previous_snapshot=previous, snapshot=snapshot, event_day=day, changes=changes,
                        on_rolls=on_rolls, rows=rows, paths=paths)

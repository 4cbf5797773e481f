"""The canonical record shapes every landing layout maps into.

A state's voter file, vote history, a campaign's contact export, a digital
platform's event feed and an experiment's assignment file each arrive in their
own layout (``conf/layouts/``). A layout names, for each canonical field below,
the source column that holds it, and for coded fields a code table from the
source's codes to the canonical values listed here. Declared once; layouts are
validated against it.
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["voters", "vote_history", "contacts", "digital", "experiments"]

# Canonical field -> type: "string", "int", "date", "timestamp", or "code:<set>"
# (a coded field whose canonical values are CODE_SETS[<set>]).
FIELDS: dict[str, dict[str, str]] = {
    "voters": {
        "state_voter_id": "string",
        "registration_id": "string",
        "county_id": "int",
        "county_name": "string",
        "status": "code:status",
        "status_reason": "string",
        "first_name": "string",
        "middle_name": "string",
        "last_name": "string",
        "name_suffix": "string",
        "res_address1": "string",
        "res_address2": "string",
        "res_city": "string",
        "res_state": "string",
        "res_zip": "string",
        "phone": "string",
        "email": "string",
        "party": "code:party",
        "race": "code:race",
        "ethnicity": "code:ethnicity",
        "gender": "code:gender",
        "birth_date": "date",
        "birth_year": "int",
        "registration_date": "date",
        "precinct": "string",
        "precinct_name": "string",
        "cong_dist": "string",
        "state_senate": "string",
        "state_house": "string",
        "municipality": "string",
        "confidential": "code:yes_no",
    },
    "vote_history": {
        "state_voter_id": "string",
        "county_id": "int",
        "election_date": "date",
        "election_type": "code:election_type",
        "election_desc": "string",
        "voting_method": "code:voting_method",
        "voted_party": "code:party",
        "precinct": "string",
    },
    "contacts": {
        "contact_id": "string",
        "state_voter_id": "string",
        "first_name": "string",
        "last_name": "string",
        "res_address1": "string",
        "res_city": "string",
        "res_zip": "string",
        "phone": "string",
        "email": "string",
        "channel": "code:channel",
        "attempted_at": "timestamp",
        "result": "string",
        "survey_question": "string",
        "support_id": "int",
        "program": "string",
    },
    "digital": {
        "event_id": "string",
        "email": "string",
        "phone": "string",
        "first_name": "string",
        "last_name": "string",
        "res_address1": "string",
        "res_zip": "string",
        "channel": "code:digital_channel",
        "event_type": "string",
        "event_ts": "timestamp",
        "campaign": "string",
    },
    # A randomised experiment's assignment file: one row per voter and experiment.
    "experiments": {
        "state_voter_id": "string",
        "experiment_id": "string",
        "arm": "code:arm",
        "assigned_at": "timestamp",
    },
}

# The field that dates a record of each kind: a delivery whose file name and
# config give no snapshot date is as of the latest of these in its rows.
AS_OF_FIELD: dict[str, str] = {
    "voters": "registration_date",
    "vote_history": "election_date",
    "contacts": "attempted_at",
    "digital": "event_ts",
    "experiments": "assigned_at",
}

# Fields without which a record is useless: a blank value sends the row to quarantine.
REQUIRED: dict[str, tuple[str, ...]] = {
    "voters": ("state_voter_id",),
    "vote_history": ("state_voter_id", "election_date"),
    "contacts": ("contact_id", "channel", "attempted_at"),
    "digital": ("event_id", "channel", "event_type", "event_ts"),
    "experiments": ("state_voter_id", "experiment_id", "arm", "assigned_at"),
}

CODE_SETS: dict[str, tuple[str, ...]] = {
    "status": ("ACTIVE", "INACTIVE", "REMOVED", "DENIED", "TEMPORARY", "PREREGISTERED"),
    "party": ("DEM", "REP", "LIB", "GRE", "CST", "UNA", "OTH"),
    "race": ("WHITE", "BLACK", "ASIAN", "NATIVE", "PACIFIC", "MULTI", "HISPANIC", "OTHER", "UNKNOWN"),
    "ethnicity": ("HISPANIC", "NOT_HISPANIC", "UNKNOWN"),
    "gender": ("F", "M", "U"),
    "yes_no": ("Y", "N"),
    "election_type": ("GENERAL", "PRIMARY", "PRESIDENTIAL_PRIMARY", "MUNICIPAL", "SPECIAL", "OTHER"),
    # DID_NOT_VOTE and NOT_COUNTED rows are history records but not votes.
    "voting_method": ("IN_PERSON", "EARLY", "MAIL", "PROVISIONAL", "CURBSIDE", "TRANSFER", "OTHER",
                      "DID_NOT_VOTE", "NOT_COUNTED"),
    "channel": ("DOOR", "PHONE", "TEXT", "MAIL", "OTHER"),
    "digital_channel": ("EMAIL", "SMS", "WEB", "OTHER"),
    "arm": ("treatment", "control"),
}

# Statuses under which a registration can vote in the next election.
ACTIVE_STATUSES = ("ACTIVE", "TEMPORARY")
# Statuses of a registration off the rolls: removed at a date the voter file does
# not give, or never accepted. Its history stops there, and the elections after
# it are not abstentions.
CLOSED_STATUSES = ("REMOVED", "DENIED")
# Voting methods that are not a counted vote.
NOT_A_VOTE = ("DID_NOT_VOTE", "NOT_COUNTED")


def field_type(kind: str, name: str) -> str:
    """The canonical type of a field (``"string"``, ``"date"``, ``"code:party"``...).

    Args:
        kind: the record kind.
        name: the canonical field name.

    Returns:
        Its type string.
    """
    return FIELDS[kind][name]


def code_set(kind: str, name: str) -> str | None:
    """The code-set name of a coded field, or ``None`` for an uncoded one."""
    ftype = FIELDS[kind][name]
    return ftype.split(":", 1)[1] if ftype.startswith("code:") else None

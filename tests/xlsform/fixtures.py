#!/usr/bin/env python3
"""Write the XLSForm fixtures that compare.py checks Tideline's importer against.

    python3 tests/xlsform/fixtures.py OUTDIR

The fixtures are generated rather than committed as binary .xlsx files, so that a
change to one is a readable diff. Each fixture is a workbook with the sheets
`survey`, `choices` and `settings` (and, for a few refused features, one more).

Two kinds:

* "same": forms inside the subset Tideline imports. pyxform converts each, ODK
  Validate accepts its XForm, and Tideline's import must agree with pyxform's
  reading field by field.
* "refused": one feature outside the subset per fixture. Tideline must refuse the
  file and name the sheet, row and column of the offending cell. pyxform may well
  accept these; that is not the point.

OUTDIR/manifest.json lists every fixture:
    {"file": "logic.xlsx", "expect": "same"}
    {"file": "refused_calculate.xlsx", "expect": "refused", "feature": "calculate",
     "sheet": "survey", "row": 3, "column": "type"}
`row` is the 1-based spreadsheet row, header row included (the first data row
is 2); `column` is the header of the offending cell. Both are computed from the
rows written, never typed by hand.
"""

import json
import os
import sys

import openpyxl

# The settings version every fixture carries: the date it was written plus a
# sequence number, as ODK projects usually do.
VERSION = "2026112801"

# Columns are written in this order when present; any other column follows.
COLUMN_ORDER = [
    "type",
    "name",
    "label",
    "label::English (en)",
    "label::French (fr)",
    "hint",
    "hint::English (en)",
    "hint::French (fr)",
    "required",
    "required_message",
    "relevant",
    "constraint",
    "constraint_message",
    "appearance",
    "default",
    "calculation",
    "choice_filter",
    "repeat_count",
    "trigger",
    "parameters",
    "list_name",
]


class Sheet:
    """Rows of one sheet, as dicts from header to cell value."""

    def __init__(self, title, rows, columns=None):
        self.title = title
        self.rows = rows
        self.columns = columns or self._columns(rows)

    @staticmethod
    def _columns(rows):
        seen = []
        for row in rows:
            for key in row:
                if key not in seen:
                    seen.append(key)
        known = [c for c in COLUMN_ORDER if c in seen]
        return known + [c for c in seen if c not in known]

    def row_of(self, **match):
        """The spreadsheet row (1-based, header included) of the only row matching."""
        hits = [
            i + 2
            for i, row in enumerate(self.rows)
            if all(row.get(k) == v for k, v in match.items())
        ]
        if len(hits) != 1:
            raise SystemExit(f"{self.title}: {match} matches rows {hits}, want one")
        return hits[0]


def settings(form_id, title, default_language=None, version=VERSION):
    row = {"form_id": form_id, "form_title": title, "version": version}
    if default_language:
        row["default_language"] = default_language
    return Sheet("settings", [row])


def write_workbook(path, sheets):
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for sheet in sheets:
        ws = wb.create_sheet(sheet.title)
        ws.append(sheet.columns)
        for row in sheet.rows:
            unknown = set(row) - set(sheet.columns)
            if unknown:
                raise SystemExit(f"{path}: {sheet.title} row has unknown columns {unknown}")
            ws.append([row.get(c) for c in sheet.columns])
    wb.save(path)


# --------------------------------------------------------------------------
# Forms Tideline imports: its reading must be the same as pyxform's.


def all_types():
    survey = Sheet(
        "survey",
        [
            {"type": "text", "name": "vessel_name", "label": "Vessel name",
             "hint": "As painted on the hull", "required": "yes",
             "required_message": "Every boarding names the vessel"},
            {"type": "text", "name": "remarks", "label": "Remarks",
             "hint": "Anything the other fields do not say", "appearance": "multiline",
             "default": "None observed"},
            # Numbers are numeric cells, as a spreadsheet program stores them.
            {"type": "integer", "name": "crew_count", "label": "Crew on board",
             "required": "true", "required_message": "Count the crew", "default": 1},
            {"type": "decimal", "name": "length_m", "label": "Length overall (m)",
             "required": "TRUE", "default": 12.5},
            {"type": "date", "name": "boarding_date", "label": "Date of boarding",
             "required": "yes", "default": "2026-11-28"},
            {"type": "dateTime", "name": "boarded_at", "label": "Boarded at",
             "hint": "Local time"},
            {"type": "time", "name": "left_at", "label": "Left the vessel at",
             "required": "no"},
            {"type": "geopoint", "name": "position", "label": "Position of the boarding",
             "required": "true", "required_message": "Take the position before leaving"},
            {"type": "image", "name": "hull_photo", "label": "Photo of the hull",
             "hint": "Show the registration number"},
            {"type": "note", "name": "safety_note",
             "label": "Check the vessel for weapons before searching it."},
            {"type": "select_one flags", "name": "flag_state", "label": "Flag state",
             "required": "TRUE", "default": "lca"},
            {"type": "select_multiple activities", "name": "activity",
             "label": "Activity observed", "hint": "Tick all that apply"},
            {"type": "acknowledge", "name": "master_informed",
             "label": "The master was told the reason for the boarding",
             "required": "yes", "required_message": "Inform the master first"},
        ],
    )
    choices = Sheet(
        "choices",
        [
            {"list_name": "flags", "name": "lca", "label": "Saint Lucia"},
            {"list_name": "flags", "name": "vct", "label": "Saint Vincent and the Grenadines"},
            {"list_name": "flags", "name": "grd", "label": "Grenada"},
            {"list_name": "flags", "name": "other", "label": "Another state"},
            {"list_name": "activities", "name": "fishing", "label": "Fishing"},
            {"list_name": "activities", "name": "transit", "label": "In transit"},
            {"list_name": "activities", "name": "transfer", "label": "Transfer at sea"},
        ],
        columns=["list_name", "name", "label"],
    )
    # A numeric version cell: Tideline must read it back as the digits written.
    return [survey, choices, settings("all-types", "All field types", version=int(VERSION))]


def groups_repeats():
    survey = Sheet(
        "survey",
        [
            {"type": "text", "name": "vessel_name", "label": "Vessel name", "required": "yes"},
            {"type": "begin_group", "name": "vessel", "label": "The vessel"},
            {"type": "text", "name": "registration", "label": "Registration number"},
            # A repeat inside a group.
            {"type": "begin_repeat", "name": "crew", "label": "Crew member"},
            {"type": "text", "name": "crew_name", "label": "Name", "required": "true"},
            {"type": "integer", "name": "crew_age", "label": "Age"},
            # A repeat inside a repeat.
            {"type": "begin_repeat", "name": "documents", "label": "Identity document"},
            {"type": "select_one doc_types", "name": "doc_type", "label": "Kind of document"},
            {"type": "text", "name": "doc_number", "label": "Document number"},
            {"type": "end_repeat"},
            # A group inside a repeat, with its own relevance.
            {"type": "begin_group", "name": "next_of_kin", "label": "Next of kin",
             "relevant": "${crew_age} < 18"},
            {"type": "text", "name": "kin_name", "label": "Name of parent or guardian"},
            {"type": "text", "name": "kin_phone", "label": "Telephone"},
            {"type": "end_group"},
            {"type": "end_repeat"},
            {"type": "end_group"},
            {"type": "select_one yes_no", "name": "searched", "label": "Was the vessel searched?",
             "required": "yes"},
            # A group shown only when an answer says so.
            {"type": "begin_group", "name": "search", "label": "The search",
             "relevant": "${searched} = 'yes'"},
            {"type": "text", "name": "search_areas", "label": "Areas searched"},
            {"type": "begin_repeat", "name": "seizures", "label": "Item seized"},
            {"type": "text", "name": "item", "label": "Item", "required": "yes"},
            {"type": "decimal", "name": "quantity", "label": "Quantity"},
            {"type": "end_repeat"},
            {"type": "end_group"},
        ],
    )
    choices = Sheet(
        "choices",
        [
            {"list_name": "yes_no", "name": "yes", "label": "Yes"},
            {"list_name": "yes_no", "name": "no", "label": "No"},
            {"list_name": "doc_types", "name": "passport", "label": "Passport"},
            {"list_name": "doc_types", "name": "seaman_book", "label": "Seaman's book"},
            {"list_name": "doc_types", "name": "id_card", "label": "National identity card"},
        ],
        columns=["list_name", "name", "label"],
    )
    return [survey, choices, settings("groups-repeats", "Groups and repeats")]


def logic():
    survey = Sheet(
        "survey",
        [
            {"type": "integer", "name": "crew_count", "label": "Crew on board", "required": "yes",
             "constraint": ". >= 1 and . <= 40",
             "constraint_message": "Between 1 and 40 people"},
            {"type": "text", "name": "registration", "label": "Registration number",
             "constraint": "regex(., '^[A-Z]{2}[0-9]{6}$')",
             "constraint_message": "Two capital letters and six digits, e.g. SL123456"},
            {"type": "date", "name": "boarding_date", "label": "Date of boarding",
             "required": "yes", "constraint": ". <= today() and . >= date('2020-01-01')",
             "constraint_message": "Not in the future, nor before 2020"},
            {"type": "select_one yes_no", "name": "contraband_found",
             "label": "Was contraband found?", "required": "yes"},
            {"type": "select_multiple contraband", "name": "contraband_types",
             "label": "What was found", "relevant": "${contraband_found} = 'yes'",
             "constraint": "count-selected(.) <= 3", "constraint_message": "Three at most"},
            {"type": "text", "name": "drugs_detail", "label": "Describe the drugs",
             "relevant": "selected(${contraband_types}, 'drugs')"},
            {"type": "integer", "name": "arrests", "label": "People arrested",
             "required": "yes", "required_message": "Write 0 when nobody was arrested",
             "constraint": ". <= ${crew_count}",
             "constraint_message": "Cannot arrest more people than are on board"},
            {"type": "text", "name": "arrest_grounds", "label": "Grounds for the arrests",
             "relevant": "${arrests} > 0", "constraint": "string-length(.) <= 500",
             "constraint_message": "500 characters at most"},
            {"type": "begin_repeat", "name": "crew", "label": "Crew member"},
            {"type": "text", "name": "crew_name", "label": "Name", "required": "yes"},
            {"type": "integer", "name": "crew_age", "label": "Age",
             "constraint": ". >= 0 and . <= 120"},
            # Sibling references inside the repeat.
            {"type": "text", "name": "guardian", "label": "Parent or guardian on board",
             "relevant": "${crew_age} < 18"},
            {"type": "text", "name": "crew_role", "label": "Role on board",
             "constraint": "if(${crew_age} < 16, . != 'master', true())",
             "constraint_message": "A master is 16 or older"},
            {"type": "end_repeat"},
            {"type": "note", "name": "crew_mismatch",
             "label": "The crew list does not match the crew count.",
             "relevant": "count(${crew}) != ${crew_count}"},
            {"type": "text", "name": "summary", "label": "Summary",
             "relevant": "coalesce(${arrest_grounds}, ${drugs_detail}) != ''"},
        ],
    )
    choices = Sheet(
        "choices",
        [
            {"list_name": "yes_no", "name": "yes", "label": "Yes"},
            {"list_name": "yes_no", "name": "no", "label": "No"},
            {"list_name": "contraband", "name": "drugs", "label": "Drugs"},
            {"list_name": "contraband", "name": "firearms", "label": "Firearms"},
            {"list_name": "contraband", "name": "cash", "label": "Undeclared cash"},
            {"list_name": "contraband", "name": "wildlife", "label": "Protected wildlife"},
        ],
        columns=["list_name", "name", "label"],
    )
    return [survey, choices, settings("logic", "Relevance and constraints")]


def languages():
    en, fr = "label::English (en)", "label::French (fr)"
    hen, hfr = "hint::English (en)", "hint::French (fr)"
    survey = Sheet(
        "survey",
        [
            {"type": "text", "name": "vessel_name", en: "Vessel name", fr: "Nom du navire",
             hen: "As painted on the hull", hfr: "Tel qu'il est peint sur la coque",
             "required": "yes"},
            {"type": "select_one flags", "name": "flag_state", en: "Flag state",
             fr: "État du pavillon", "default": "lca"},
            {"type": "integer", "name": "crew_count", en: "Crew on board",
             fr: "Équipage à bord", hen: "Everyone, the master included",
             hfr: "Tout le monde, capitaine compris", "constraint": ". >= 1"},
            {"type": "note", "name": "welcome", en: "Read the notice to the master.",
             fr: "Lisez l'avis au capitaine."},
            {"type": "begin_group", "name": "search", en: "The search", fr: "La fouille"},
            {"type": "select_multiple areas", "name": "areas", en: "Areas searched",
             fr: "Zones fouillées", hen: "Tick all that apply", hfr: "Cochez tout ce qui s'applique"},
            {"type": "end_group"},
            {"type": "begin_repeat", "name": "crew", en: "Crew member", fr: "Membre d'équipage"},
            {"type": "text", "name": "crew_name", en: "Name", fr: "Nom", "required": "yes"},
            {"type": "end_repeat"},
        ],
    )
    choices = Sheet(
        "choices",
        [
            {"list_name": "flags", "name": "lca", en: "Saint Lucia", fr: "Sainte-Lucie"},
            {"list_name": "flags", "name": "mtq", en: "Martinique", fr: "Martinique"},
            {"list_name": "flags", "name": "dma", en: "Dominica", fr: "Dominique"},
            {"list_name": "areas", "name": "hold", en: "Fish hold", fr: "Cale à poisson"},
            {"list_name": "areas", "name": "engine", en: "Engine room", fr: "Salle des machines"},
            {"list_name": "areas", "name": "cabin", en: "Cabin", fr: "Cabine"},
        ],
        columns=["list_name", "name", en, fr],
    )
    return [survey, choices,
            settings("languages", "Two languages", default_language="English (en)")]


SAME = {
    "all_types": all_types,
    "groups_repeats": groups_repeats,
    "logic": logic,
    "languages": languages,
}


# --------------------------------------------------------------------------
# Forms Tideline refuses: one feature outside the subset each.

YES_NO = Sheet(
    "choices",
    [
        {"list_name": "yes_no", "name": "yes", "label": "Yes"},
        {"list_name": "yes_no", "name": "no", "label": "No"},
    ],
    columns=["list_name", "name", "label"],
)

ISLANDS = Sheet(
    "choices",
    [
        {"list_name": "islands", "name": "slu", "label": "Saint Lucia"},
        {"list_name": "islands", "name": "svg", "label": "Saint Vincent"},
        {"list_name": "ports", "name": "castries", "label": "Castries", "island": "slu"},
        {"list_name": "ports", "name": "vieux_fort", "label": "Vieux Fort", "island": "slu"},
        {"list_name": "ports", "name": "kingstown", "label": "Kingstown", "island": "svg"},
    ],
    columns=["list_name", "name", "label", "island"],
)

# Supported rows placed before each offending row, so that its row number is not
# simply 2.
LEAD = [
    {"type": "text", "name": "vessel_name", "label": "Vessel name", "required": "yes"},
    {"type": "integer", "name": "crew_count", "label": "Crew on board"},
]


def refused(feature, offending, column, *, choices=YES_NO, extra_sheets=(), where=None,
            lead=None, tail=()):
    """A form of LEAD rows, the offending survey row, then `tail` rows.

    `where` = (sheet title, row dict, column) points the refusal at another sheet.
    """
    rows = list(LEAD if lead is None else lead) + [offending] + list(tail)
    survey = Sheet("survey", rows)
    form_id = "refused-" + feature.replace("_", "-")
    sheets = [survey, choices, settings(form_id, f"Refused: {feature}"), *extra_sheets]
    if where is None:
        sheet, row = survey, survey.row_of(**{"name": offending["name"]})
        cell = offending.get(column)
    else:
        title, match, column = where
        sheet = next(s for s in sheets if s.title == title)
        row = sheet.row_of(**match)
        cell = match.get(column)
    if column not in sheet.columns or cell in (None, ""):
        raise SystemExit(f"{feature}: {sheet.title} row {row} has nothing in column {column}")
    return sheets, {"feature": feature, "sheet": sheet.title, "row": row, "column": column}


def refused_fixtures():
    out = {}

    def add(feature, *args, **kwargs):
        out["refused_" + feature] = refused(feature, *args, **kwargs)

    add("calculate",
        {"type": "calculate", "name": "crew_plus_one", "calculation": "${crew_count} + 1"},
        "type")
    add("choice_filter",
        {"type": "select_one ports", "name": "port", "label": "Home port",
         "choice_filter": "island = ${home_island}"},
        "choice_filter", choices=ISLANDS,
        lead=LEAD + [{"type": "select_one islands", "name": "home_island",
                      "label": "Home island"}])
    add("repeat_count",
        {"type": "begin_repeat", "name": "crew", "label": "Crew member",
         "repeat_count": "${crew_count}"},
        "repeat_count",
        tail=[{"type": "text", "name": "crew_name", "label": "Name"}, {"type": "end_repeat"}])
    add("trigger",
        {"type": "text", "name": "vessel_name_check", "label": "Vessel name, again",
         "trigger": "${vessel_name}"},
        "trigger")
    add("select_one_from_file",
        {"type": "select_one_from_file vessels.csv", "name": "vessel",
         "label": "Registered vessel"},
        "type")
    external = Sheet(
        "external_choices",
        [
            {"list_name": "vessels", "name": "sl123456", "label": "Morning Star", "island": "slu"},
            {"list_name": "vessels", "name": "sv654321", "label": "Sea Breeze", "island": "svg"},
        ],
        columns=["list_name", "name", "label", "island"],
    )
    # pyxform takes an external select only with a choice_filter, as ODK forms write
    # it; the refusal must still name the type, the first column that is outside.
    add("select_one_external",
        {"type": "select_one_external vessels", "name": "vessel", "label": "Registered vessel",
         "choice_filter": "island = ${home_island}"},
        "type", choices=ISLANDS, extra_sheets=[external],
        lead=LEAD + [{"type": "select_one islands", "name": "home_island",
                      "label": "Home island"}])
    add("or_other",
        {"type": "select_one yes_no or_other", "name": "licensed", "label": "Licensed?"},
        "type")
    add("geotrace",
        {"type": "geotrace", "name": "track", "label": "Track of the pursuit"}, "type")
    add("geoshape",
        {"type": "geoshape", "name": "area", "label": "Area searched"}, "type")
    add("audio",
        {"type": "audio", "name": "statement", "label": "Recorded statement"}, "type")
    add("video",
        {"type": "video", "name": "search_video", "label": "Video of the search"}, "type")
    add("barcode",
        {"type": "barcode", "name": "licence_code", "label": "Scan the licence"}, "type")
    add("range",
        {"type": "range", "name": "sea_state", "label": "Sea state",
         "parameters": "start=0 end=9 step=1"},
        "type")
    add("rank",
        {"type": "rank yes_no", "name": "priorities", "label": "Rank the answers"}, "type")
    entities = Sheet("entities", [{"list_name": "vessels", "label": "${vessel_name}"}],
                     columns=["list_name", "label"])
    add("entities",
        {"type": "text", "name": "home_port", "label": "Home port"},
        None, extra_sheets=[entities],
        where=("entities", {"list_name": "vessels"}, "list_name"))
    add("search_appearance",
        {"type": "select_one yes_no", "name": "known_vessel", "label": "Known vessel?",
         "appearance": "search('vessels')"},
        "appearance")
    add("pulldata",
        {"type": "text", "name": "master_name", "label": "Name of the master",
         "constraint": ". = pulldata('vessels', 'master', 'name', ${vessel_name})",
         "constraint_message": "Not the registered master"},
        "constraint")
    return out


def main(argv):
    if len(argv) != 2 or argv[1].startswith("-"):
        print(f"usage: {argv[0]} OUTDIR", file=sys.stderr)
        return 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    manifest = []
    for name, build in SAME.items():
        write_workbook(os.path.join(outdir, name + ".xlsx"), build())
        manifest.append({"file": name + ".xlsx", "expect": "same"})
    for name, (sheets, where) in refused_fixtures().items():
        write_workbook(os.path.join(outdir, name + ".xlsx"), sheets)
        manifest.append({"file": name + ".xlsx", "expect": "refused", **where})
    with open(os.path.join(outdir, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(manifest)} fixtures and manifest.json to {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

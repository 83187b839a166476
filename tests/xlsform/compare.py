#!/usr/bin/env python3
"""Compare Tideline's XLSForm importer with pyxform, the converter ODK itself uses.

    python3 tests/xlsform/fixtures.py /tmp/xlsform
    python3 tests/xlsform/compare.py --tideline target/release/tideline --validate /tmp/xlsform

For every fixture in FIXTURE_DIR/manifest.json (written by fixtures.py):

* "same": pyxform reads the workbook (pyxform.xls2json.parse_file_to_json) and
  its reading is normalised into Tideline's form JSON; `tideline form import
  FILE --out OUT.json` must succeed and OUT.json must agree with it, field by
  field and recursively: name, type, required and its message, relevance,
  constraint and its message, hint, appearance, default, labels per language,
  choices, and the nesting of groups and repeats. The workbook is also
  converted to an XForm by pyxform (pyxform.xls2xform.convert) and by Tideline
  (`form import FILE --publish` into a throwaway data directory, then `form
  export --format xform ID`), and the two XForms must have the same binds:
  nodesets, type, required, relevant, constraint and their messages
  (xform_binds.py says what is normalised and what is ignored). With
  --validate ODK Validate, shipped inside pyxform, must accept pyxform's XForm.
* "refused": `tideline form import FILE` must exit non-zero and say on standard
  error `{sheet} sheet, row {row}, column ` followed, on the same line, by text
  that names the column's header. Whether pyxform accepts the file is printed
  for information only.

--pyxform-only runs the pyxform half alone (no Tideline binary needed);
--dump prints the normalised trees. The last line is "N passed, N failed";
the exit status is 1 when anything failed, 2 on a usage error.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the work tree for the module below
from xform_binds import compare_binds  # noqa: E402

TIDELINE_TYPES = {
    "text", "integer", "decimal", "date", "dateTime", "time", "geopoint", "image",
    "note", "select_one", "select_multiple", "acknowledge", "repeat", "group",
}
# pyxform's type names in its intermediate JSON, where they differ from Tideline's.
PYXFORM_TYPES = {
    "select one": "select_one",
    "select all that apply": "select_multiple",
    "photo": "image",  # pyxform's alias for the spreadsheet's "image"
}
FORM_KEYS = ["id", "title", "source_version", "default_language", "fields"]
FIELD_KEYS = [
    "name", "type", "label", "labels", "hint", "hints", "required", "required_message",
    "relevant", "constraint", "appearance", "default", "choices", "fields",
]
CHOICE_KEYS = ["value", "label", "labels"]
TRUE_WORDS = {"yes", "true", "true()"}
FALSE_WORDS = {"no", "false", "false()", ""}
U32_MAX = 2**32 - 1
TIMEOUT = 120


class FixtureError(Exception):
    pass


def prune(d):
    """Drop keys whose values are empty: the form JSON leaves them out."""
    return {k: v for k, v in d.items() if v not in (None, "", [], {}, False)}


# --------------------------------------------------------------------------
# pyxform's reading, in Tideline's shape.


def pyxform_json(path, warnings):
    from pyxform.xls2json import parse_file_to_json

    return parse_file_to_json(path, warnings=warnings)


def has_translations(node):
    """Whether any label or hint of the survey's questions or their choices is by language."""
    for key in ("label", "hint"):
        if isinstance(node.get(key), dict):
            return True
    below = list(node.get("children") or [])
    if isinstance(node.get("choices"), list):  # a question's inlined choices
        below += node["choices"]
    return any(has_translations(c) for c in below if isinstance(c, dict))


def split_text(value, default_language, what):
    """(default-language text, {other language: text}) from a pyxform label or hint."""
    if value is None:
        return None, {}
    if isinstance(value, dict):
        if default_language not in value:
            raise FixtureError(f"{what} has no text in the default language "
                               f"{default_language!r}: {value}")
        return value[default_language], {k: v for k, v in value.items() if k != default_language}
    return value, {}


def one_text(value, default_language):
    """A message column: a string, or by language (then the default language's)."""
    if isinstance(value, dict):
        return value.get(default_language)
    return value


def required_bool(value, where):
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise FixtureError(f"{where}: required is {value!r}, neither yes nor no")


def typed_default(value, type_):
    if value is None or value == "":
        return None
    if type_ in ("integer", "decimal") and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if type_ == "integer" and number.is_integer():
            return int(number)
        return number
    return value


def strip_expr(value):
    return value.strip() if isinstance(value, str) else value


def normalise_pyxform_field(node, survey, lang, path):
    name = node.get("name")
    where = f"{path}{name}"
    type_ = PYXFORM_TYPES.get(node.get("type"), node.get("type"))
    bind = node.get("bind") or {}
    control = node.get("control") or {}
    label, labels = split_text(node.get("label"), lang, f"{where}'s label")
    hint, hints = split_text(node.get("hint"), lang, f"{where}'s hint")
    field = {
        "name": name,
        "type": type_,
        "label": label,
        "labels": labels,
        "hint": hint,
        "hints": hints,
        "required": required_bool(bind.get("required"), where),
        "required_message": one_text(bind.get("jr:requiredMsg"), lang),
        "relevant": strip_expr(bind.get("relevant")),
        "appearance": control.get("appearance"),
        "default": typed_default(node.get("default"), type_),
    }
    if bind.get("constraint"):
        field["constraint"] = prune({
            "expression": strip_expr(bind["constraint"]),
            "message": one_text(bind.get("jr:constraintMsg"), lang),
        })
    if type_ in ("select_one", "select_multiple"):
        options = node.get("choices")
        if options is None:
            options = (survey.get("choices") or {}).get(node.get("list_name") or node.get("itemset"), [])
        field["choices"] = []
        for option in options:
            olabel, olabels = split_text(option.get("label"), lang,
                                         f"{where}'s choice {option.get('name')!r}")
            field["choices"].append(prune({"value": option.get("name"), "label": olabel,
                                           "labels": olabels}))
    if type_ in ("group", "repeat"):
        field["fields"] = [
            normalise_pyxform_field(c, survey, lang, f"{where}/")
            for c in node.get("children", [])
        ]
    return prune(field)


def normalise_pyxform(survey):
    translated = has_translations(survey)
    lang = survey.get("default_language") or "default"
    fields = []
    for child in survey.get("children", []):
        # pyxform adds meta/instanceID to every form; it is not the author's field.
        if child.get("name") == "meta" and (child.get("control") or {}).get("bodyless"):
            continue
        fields.append(normalise_pyxform_field(child, survey, lang, ""))
    return prune({
        "id": survey.get("id_string"),
        "title": survey.get("title"),
        "source_version": survey.get("version"),
        "default_language": lang if translated else None,
        "fields": fields,
    })


# --------------------------------------------------------------------------
# Tideline's output, pruned to the contract.


def normalise_tideline_field(node, path, notes):
    if not isinstance(node, dict):
        return node
    name = node.get("name")
    where = f"{path}{name}"
    extra = sorted(set(node) - set(FIELD_KEYS))
    if extra:
        notes.append(f"{where}: keys outside the comparison: {', '.join(extra)}")
    field = {k: node.get(k) for k in FIELD_KEYS}
    field["relevant"] = strip_expr(field["relevant"])
    if isinstance(field["constraint"], dict):
        field["constraint"] = prune({
            "expression": strip_expr(field["constraint"].get("expression")),
            "message": field["constraint"].get("message"),
        })
    if isinstance(field["choices"], list):
        field["choices"] = [
            prune({k: c.get(k) for k in CHOICE_KEYS}) if isinstance(c, dict) else c
            for c in field["choices"]
        ]
    if isinstance(field["fields"], list):
        field["fields"] = [normalise_tideline_field(c, f"{where}/", notes) for c in field["fields"]]
    return prune(field)


def normalise_tideline(form, notes):
    if not isinstance(form, dict):
        raise FixtureError(f"the output is not a JSON object: {type(form).__name__}")
    extra = sorted(set(form) - set(FORM_KEYS) - {"version"})
    if extra:
        notes.append(f"form: keys outside the comparison: {', '.join(extra)}")
    out = {k: form.get(k) for k in FORM_KEYS}
    if isinstance(out["fields"], list):
        out["fields"] = [normalise_tideline_field(f, "", notes) for f in out["fields"]]
    return prune(out)


# --------------------------------------------------------------------------
# The comparison.


def same_scalar(a, b):
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, numbers) and isinstance(b, numbers):
        return a == b
    return type(a) is type(b) and a == b


def show(value):
    return json.dumps(value, ensure_ascii=False)


def list_key(items):
    """"name" for fields, "value" for choices, when every item has a distinct one."""
    for key in ("name", "value"):
        ids = [x.get(key) if isinstance(x, dict) else None for x in items]
        if items and None not in ids and len(set(map(str, ids))) == len(ids):
            return key
    return None


def diff_keyed(want, got, key, path, out):
    """Fields or choices, matched by name or value: missing, extra, order, then each."""
    wanted = {str(x[key]): x for x in want}
    gotten = {str(x[key]): x for x in got}
    missing = [k for k in wanted if k not in gotten]
    extra = [k for k in gotten if k not in wanted]
    if missing:
        out.append(f"{path}: Tideline lacks {key}s {show(missing)}")
    if extra:
        out.append(f"{path}: Tideline has {key}s pyxform does not: {show(extra)}")
    common_w = [k for k in wanted if k in gotten]
    common_g = [k for k in gotten if k in wanted]
    if common_w != common_g:
        out.append(f"{path}: order differs: pyxform {show(common_w)}, Tideline {show(common_g)}")
    for k in common_w:
        diff(wanted[k], gotten[k], f"{path}[{k}]", out)


def diff(want, got, path, out):
    """Differences between pyxform's reading (want) and Tideline's (got)."""
    if isinstance(want, dict) and isinstance(got, dict):
        for key in list(want) + [k for k in got if k not in want]:
            sub = f"{path}.{key}" if path else key
            if key not in got:
                out.append(f"{sub}: pyxform {show(want[key])}, Tideline has none")
            elif key not in want:
                out.append(f"{sub}: pyxform has none, Tideline {show(got[key])}")
            else:
                diff(want[key], got[key], sub, out)
    elif isinstance(want, list) and isinstance(got, list):
        key = list_key(want) or list_key(got)
        if key and list_key(got) == key and list_key(want) == key:
            diff_keyed(want, got, key, path, out)
            return
        if len(want) != len(got):
            out.append(f"{path}: pyxform has {len(want)} items, Tideline {len(got)}")
        for i, (w, g) in enumerate(zip(want, got)):
            diff(w, g, f"{path}[{i}]", out)
    elif not same_scalar(want, got):
        out.append(f"{path}: pyxform {show(want)}, Tideline {show(got)}")


# --------------------------------------------------------------------------
# Running the tools.


def odk_validate_jar():
    import pyxform

    return os.path.join(os.path.dirname(pyxform.__file__),
                        "validators", "odk_validate", "bin", "ODK_Validate.jar")


def pyxform_xform(xlsx, workdir):
    """pyxform's XForm of the workbook: (its file in workdir, its text)."""
    from pyxform.xls2xform import convert

    result = convert(xlsform=xlsx, pretty_print=True, warnings=[])
    xml = os.path.join(workdir, os.path.splitext(os.path.basename(xlsx))[0] + ".xml")
    with open(xml, "w", encoding="utf-8") as f:
        f.write(result.xform)
    return xml, result.xform


def odk_validate(xml):
    """Run ODK Validate on pyxform's XForm (a file); a list of problems."""
    if shutil.which("java") is None:
        return ["java is not on PATH: ODK Validate needs it"]
    run = subprocess.run(["java", "-jar", odk_validate_jar(), xml], capture_output=True,
                         text=True, timeout=TIMEOUT)
    if run.returncode != 0 or "Xform is valid" not in run.stdout:
        text = (run.stdout + run.stderr).strip().splitlines()
        keep = [line for line in text if not line.startswith("\tat ")][:15]
        return [f"ODK Validate refuses {xml} (exit {run.returncode}):"] + ["  " + l for l in keep]
    return []


def run_tideline(binary, args, workdir):
    # In its own directory, so that nothing it might write lands in the work tree.
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=workdir,
                          timeout=TIMEOUT, stdin=subprocess.DEVNULL)


def tail(text, lines=8):
    rows = text.strip().splitlines()
    return ["  | " + r for r in rows[-lines:]] or ["  | (nothing)"]


def tideline_xform(binary, xlsx, form_id, workdir):
    """Tideline's XForm of the workbook, published into a data directory of its own
    (removed afterwards) and exported: (its text or None, problems)."""
    stem = os.path.splitext(os.path.basename(xlsx))[0]
    out = os.path.join(workdir, stem + ".tideline.xml")
    with tempfile.TemporaryDirectory(prefix="tideline-data-", dir=workdir) as scratch:
        base = ["--data", os.path.join(scratch, "data"), "--station", "HQ", "form"]
        steps = [["import", xlsx, "--publish"],
                 ["export", "--format", "xform", form_id, "--out", out]]
        for step in steps:
            run = run_tideline(binary, base + step, workdir)
            if run.returncode != 0:
                what = f"tideline form {step[0]}"
                return None, [f"{what} (for the XForm) exited {run.returncode}:"] + tail(run.stderr)
    try:
        with open(out, encoding="utf-8") as f:
            return f.read(), []
    except OSError as e:
        return None, [f"cannot read Tideline's XForm {out}: {e}"]


def check_same(entry, xlsx, args, workdir):
    problems, notes = [], []
    warnings = []
    try:
        survey = pyxform_json(xlsx, warnings)
    except Exception as e:  # pyxform's own refusal: the fixture is broken
        return [f"pyxform refuses the fixture: {type(e).__name__}: {e}"], notes, None
    try:
        want = normalise_pyxform(survey)
    except FixtureError as e:
        return [f"pyxform's reading: {e}"], notes, None
    notes += [f"pyxform warns: {w}" for w in warnings]
    outside = sorted({t for t in collect_types(want.get("fields", [])) if t not in TIDELINE_TYPES})
    if outside:
        problems.append(f"fixture: pyxform reads types outside Tideline's: {', '.join(outside)}")
    py_xform = None
    if args.validate or not args.pyxform_only:
        try:
            py_xml, py_xform = pyxform_xform(xlsx, workdir)
        except Exception as e:
            problems.append(f"pyxform cannot convert it to an XForm: {type(e).__name__}: {e}")
        else:
            if args.validate:
                problems += odk_validate(py_xml)
    if args.dump:
        print(f"--- pyxform, normalised: {entry['file']}")
        print(json.dumps(want, indent=2, ensure_ascii=False))
    if args.pyxform_only:
        return problems, notes, want

    out = os.path.join(workdir, os.path.splitext(entry["file"])[0] + ".tideline.json")
    run = run_tideline(args.tideline, ["form", "import", xlsx, "--out", out], workdir)
    if run.returncode != 0:
        return problems + [f"tideline form import exited {run.returncode}:"] + tail(run.stderr), \
            notes, want
    try:
        with open(out, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        return problems + [f"cannot read Tideline's output {out}: {e}"], notes, want
    try:
        got = normalise_tideline(raw, notes)
    except FixtureError as e:
        return problems + [str(e)], notes, want
    version = raw.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= U32_MAX:
        problems.append(f"version: {show(version)} is not a u32")
    bad_types = sorted({str(t) for t in collect_types(got.get("fields", []))
                        if t not in TIDELINE_TYPES})
    if bad_types:
        problems.append(f"Tideline writes types outside its own: {', '.join(bad_types)}")
    if args.dump:
        print(f"--- Tideline, normalised: {entry['file']}")
        print(json.dumps(got, indent=2, ensure_ascii=False))
    diff(want, got, "", problems)

    form_id = raw.get("id")
    if not isinstance(form_id, str) or not form_id:
        problems.append(f"binds: not compared, Tideline's form JSON has no id: {show(form_id)}")
    elif py_xform is not None:
        xform, bad = tideline_xform(args.tideline, xlsx, form_id, workdir)
        problems += bad
        if xform is not None:
            found, said = compare_binds(py_xform, xform, survey)
            problems += found
            notes += said
    return problems, notes, want


def collect_types(fields):
    for f in fields:
        if isinstance(f, dict):
            yield f.get("type")
            yield from collect_types(f.get("fields", []))


def pyxform_verdict(xlsx):
    from pyxform.xls2xform import convert

    try:
        convert(xlsform=xlsx, warnings=[])
        return "pyxform accepts it"
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return f"pyxform refuses it too: {first[:160]}"


def names_column(rest, column):
    """Whether `rest` names the header `column` as a whole word."""
    pattern = r"(?<![A-Za-z0-9_])" + re.escape(column) + r"(?![A-Za-z0-9_])"
    return re.search(pattern, rest) is not None


def check_refused(entry, xlsx, args, workdir):
    problems, notes = [], [pyxform_verdict(xlsx)]
    if args.pyxform_only:
        return problems, notes, None
    run = run_tideline(args.tideline, ["form", "import", xlsx], workdir)
    if run.returncode == 0:
        return [f"tideline form import accepted it (exit 0); want a refusal at "
                f"{entry['sheet']} sheet, row {entry['row']}, column {entry['column']}"], notes, None
    anchor = f"{entry['sheet']} sheet, row {entry['row']}, column "
    for line in run.stderr.splitlines():
        at = line.find(anchor)
        if at >= 0 and names_column(line[at + len(anchor):], entry["column"]):
            notes.append(f"Tideline: {line.strip()}")
            return problems, notes, None
    problems.append(f"exit {run.returncode}, but standard error does not say "
                    f"'{anchor}' followed by {entry['column']!r}:")
    problems += tail(run.stderr)
    return problems, notes, None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fixture_dir", help="directory written by fixtures.py")
    parser.add_argument("--tideline", help="the tideline binary")
    parser.add_argument("--validate", action="store_true",
                        help="also run ODK Validate on pyxform's XForm of each 'same' fixture")
    parser.add_argument("--pyxform-only", action="store_true",
                        help="run only the pyxform half (no Tideline binary)")
    parser.add_argument("--dump", action="store_true", help="print the normalised trees")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="check only this fixture (file name with or without .xlsx); repeatable")
    parser.add_argument("--keep", metavar="DIR",
                        help="write XForms and Tideline's outputs here instead of a temporary directory")
    args = parser.parse_args(argv)
    if not args.pyxform_only:
        if not args.tideline:
            parser.error("--tideline is required (or --pyxform-only)")
        args.tideline = os.path.abspath(args.tideline) if os.sep in args.tideline \
            else (shutil.which(args.tideline) or args.tideline)
        if not (os.path.isfile(args.tideline) and os.access(args.tideline, os.X_OK)):
            parser.error(f"{args.tideline} is not an executable file")

    fixture_dir = os.path.abspath(args.fixture_dir)
    try:
        with open(os.path.join(fixture_dir, "manifest.json"), encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        parser.error(f"cannot read {fixture_dir}/manifest.json: {e}")
    only = {o if o.endswith(".xlsx") else o + ".xlsx" for o in args.only}
    if only:
        unknown = only - {e["file"] for e in manifest}
        if unknown:
            parser.error(f"not in the manifest: {', '.join(sorted(unknown))}")
        manifest = [e for e in manifest if e["file"] in only]

    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        workdir, cleanup = os.path.abspath(args.keep), None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="xlsform-compare-")
        workdir = cleanup.name

    passed = failed = 0
    try:
        for entry in manifest:
            xlsx = os.path.join(fixture_dir, entry["file"])
            expect = entry.get("expect")
            try:
                if not os.path.isfile(xlsx):
                    problems, notes = [f"{xlsx} does not exist"], []
                elif expect == "same":
                    problems, notes, _ = check_same(entry, xlsx, args, workdir)
                elif expect == "refused":
                    problems, notes, _ = check_refused(entry, xlsx, args, workdir)
                else:
                    problems, notes = [f"manifest: unknown expect {expect!r}"], []
            except subprocess.TimeoutExpired as e:
                problems, notes = [f"{e.cmd[0]} did not finish in {TIMEOUT} s"], []
            verdict = "FAIL" if problems else "ok"
            what = entry["file"]
            if expect == "refused":
                what += f"  ({entry['sheet']} sheet, row {entry['row']}, column {entry['column']})"
            print(f"{verdict:4}  {expect:7}  {what}")
            for p in problems:
                print(f"        {p}")
            for n in notes:
                print(f"        note: {n}")
            if problems:
                failed += 1
            else:
                passed += 1
    finally:
        if cleanup is not None:
            cleanup.cleanup()
    if args.pyxform_only:
        print("pyxform half only: Tideline was not run")
    print(f"xlsform: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

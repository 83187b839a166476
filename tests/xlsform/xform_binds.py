"""The binds of two XForms of one workbook, pyxform's and Tideline's, compared.

compare.py calls compare_binds(); nothing here runs a tool. For every
`<bind nodeset=...>` of each XForm's model, both must have binds on the same
nodesets and, per nodeset, the same type, required, relevant, constraint,
jr:constraintMsg and jr:requiredMsg. Each side is normalised only where the two
spellings mean the same thing to JavaRosa, the engine inside ODK Collect:

* The primary instance's root element is renamed `data` in every absolute path,
  on both sides: pyxform names it after the settings' `name` (default "data"),
  and the name is not part of what a form means.
* Types: JavaRosa's real synonyms only (`integer` = `int`; `double`, `float` =
  `decimal`; an `xsd:` prefix). `select1` or `select` is not `string`: JavaRosa
  gives those a choice type, so a select written as either would be reported.
* required: "true()" is true; "false()" and no attribute are both false; any other
  value is compared as an expression.
* relevant, constraint (and a required expression) are compared token by token,
  so whitespace between tokens does not count (pyxform pads every ${name} it
  replaces with spaces). Outer parentheses around the whole expression are
  dropped, as are the quotes' kind around a string literal ('a' = "a"). A
  relative path outside a predicate (`../crew_age`, pyxform's spelling of a
  sibling inside a repeat) is resolved against the bind's own nodeset, its
  context node, into the absolute path that Tideline writes: JavaRosa evaluates
  an absolute path into the same repeat in the current repeat instance, so the
  two mean the same. Nothing else is rewritten: numbers, functions, operators
  and the order of operands must be as pyxform writes them.
* A message that is jr:itext('id') is replaced by its text in each translation.

Ignored, on both sides: binds with jr:preload (pyxform's and Tideline's
/data/meta/instanceID, pyxform's start/end/today... metadata) and binds with a
calculate attribute (calculated values, not answers; Tideline refuses calculate
rows). Ignored on pyxform's side only: any bind whose nodeset is not a question,
group or repeat of the survey as pyxform reads it (its own additions, such as
meta/instanceName); Tideline's extras are differences. Other bind attributes
(readonly, odk:...) are not part of the contract; when they differ the
comparison says so in a note, without failing.
"""

import json
import re
import xml.etree.ElementTree as ET

XF = "{http://www.w3.org/2002/xforms}"
H = "{http://www.w3.org/1999/xhtml}"
NAMESPACES = {
    "http://openrosa.org/javarosa": "jr",
    "http://www.opendatakit.org/xforms": "odk",
    "http://openrosa.org/xforms": "orx",
    "http://www.w3.org/2002/xforms": "",
}
ROOT = "data"
COMPARED = ["type", "required", "relevant", "constraint", "jr:constraintMsg", "jr:requiredMsg"]
EXPRESSIONS = {"relevant", "constraint"}
MESSAGES = {"jr:constraintMsg", "jr:requiredMsg"}
# JavaRosa's TypeMappings: the names that give the same data type.
TYPE_SYNONYMS = {"integer": "int", "double": "decimal", "float": "decimal"}

STEP = r"(?:\.\.|\.|[A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?)"
TOKEN = re.compile(rf"""
    (?P<space>\s+)
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<number>\d+(?:\.\d*)?|\.\d+)
  | (?P<path>/?{STEP}(?:/{STEP})*|/)
  | (?P<op>!=|<=|>=|//|[=<>+\-*|,()\[\]@$:{{}}])
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


class XFormError(Exception):
    pass


def show(value):
    return json.dumps(value, ensure_ascii=False)


def attr_name(qname):
    """`{namespace}local` as `prefix:local`."""
    if qname.startswith("{"):
        ns, local = qname[1:].split("}", 1)
        prefix = NAMESPACES.get(ns)
        if prefix is None:
            return qname
        return f"{prefix}:{local}" if prefix else local
    return qname


# --------------------------------------------------------------------------
# Reading an XForm.


def read_model(text):
    """(root name of the primary instance, model element) of an XForm's text."""
    try:
        html = ET.fromstring(text.encode("utf-8") if isinstance(text, str) else text)
    except ET.ParseError as e:
        raise XFormError(f"not XML: {e}") from e
    model = html.find(f"{H}head/{XF}model")
    if model is None:
        raise XFormError("no h:head/model element")
    instance = model.find(f"{XF}instance")
    roots = list(instance) if instance is not None else []
    if not roots:
        raise XFormError("the model has no primary instance with a root element")
    return roots[0].tag.split("}")[-1], model


def itext(model):
    """{text id: {language: text}}, from the model's itext (plain values only)."""
    out = {}
    for translation in model.iterfind(f"{XF}itext/{XF}translation"):
        lang = translation.get("lang")
        for text in translation.iterfind(f"{XF}text"):
            for value in text.iterfind(f"{XF}value"):
                if value.get("form") is None:
                    out.setdefault(text.get("id"), {})[lang] = "".join(value.itertext())
    return out


def rename_root(path, root):
    """An absolute path with its first step `root` renamed `data`."""
    if path == "/" + root:
        return "/" + ROOT
    if path.startswith("/" + root + "/"):
        return "/" + ROOT + path[len(root) + 1:]
    return path


def binds(text, side):
    """({normalised nodeset: {attribute: raw value}}, problems, root name) of one XForm."""
    root, model = read_model(text)
    texts = itext(model)
    out, problems = {}, []
    for bind in model.iterfind(f"{XF}bind"):
        attrs = {attr_name(k): v for k, v in bind.attrib.items()}
        nodeset = attrs.pop("nodeset", None)
        if nodeset is None:
            problems.append(f"{side}'s XForm has a bind without a nodeset: {show(attrs)}")
            continue
        # Metadata filled by the client (jr:preload: instanceID, start, end...) and
        # calculated values are not questions; see the module's doc.
        if "jr:preload" in attrs or "calculate" in attrs:
            continue
        for key in MESSAGES:
            ref = re.fullmatch(r"\s*jr:itext\(\s*'([^']*)'\s*\)\s*", attrs.get(key) or "")
            if ref:
                attrs[key] = texts.get(ref.group(1), {"?": f"(no itext {ref.group(1)!r})"})
        nodeset = rename_root(nodeset.strip(), root)
        merged = out.setdefault(nodeset, {})
        for key, value in attrs.items():
            if key in merged and merged[key] != value:
                problems.append(f"binds[{nodeset}].{key}: {side} writes two binds that "
                                f"disagree: {show(merged[key])} and {show(value)}")
            merged[key] = value
    return out, problems, root


def question_paths(survey):
    """The nodesets of the survey's questions, groups and repeats, as pyxform reads it."""
    paths = set()

    def walk(children, prefix):
        for child in children or []:
            if not isinstance(child, dict) or not child.get("name"):
                continue
            # pyxform's own meta group (instanceID), as compare.py's normaliser skips it.
            if child.get("name") == "meta" and (child.get("control") or {}).get("bodyless"):
                continue
            path = f"{prefix}/{child['name']}"
            paths.add(path)
            if child.get("type") in ("group", "repeat"):
                walk(child.get("children"), path)

    walk(survey.get("children"), "/" + ROOT)
    return paths


# --------------------------------------------------------------------------
# Normalising values.


def normal_type(value):
    if value is None:
        return None
    word = value.strip()
    if ":" in word:  # xsd:int, xs:string: JavaRosa reads the local name
        word = word.split(":", 1)[1]
    return TYPE_SYNONYMS.get(word, word)


def tokens(expr):
    out = []
    for m in TOKEN.finditer(expr):
        kind = m.lastgroup
        if kind != "space":
            out.append((kind, m.group()))
    return out


def resolve(path, context):
    """A relative path resolved against the absolute path `context`, or None."""
    steps = context.strip("/").split("/")
    for step in path.split("/"):
        if step == ".":
            continue
        if step == "..":
            if len(steps) <= 1:
                return None  # above the root: leave it as written
            steps.pop()
        else:
            steps.append(step)
    return "/" + "/".join(steps)


def strip_outer(toks):
    """Drop parentheses around the whole expression, as often as they are there."""
    while len(toks) >= 2 and toks[0][1] == "(" and toks[-1][1] == ")":
        depth = 0
        for i, (kind, text) in enumerate(toks):
            if kind == "op" and text == "(":
                depth += 1
            elif kind == "op" and text == ")":
                depth -= 1
                if depth == 0 and i != len(toks) - 1:
                    return toks  # the first "(" closes early: "(a) and (b)"
        toks = toks[1:-1]
    return toks


def normal_expression(expr, root, context):
    """The tokens of an XPath expression, in one spelling; see the module's doc."""
    out = []
    predicate = 0
    for kind, text in tokens(expr):
        if kind == "op" and text == "[":
            predicate += 1
        elif kind == "op" and text == "]":
            predicate -= 1
        elif kind == "string":
            body = text[1:-1]
            text = f"'{body}'" if "'" not in body else f'"{body}"'
        elif kind == "path":
            if text.startswith("/"):
                text = rename_root(text, root)
            elif text.startswith(".") and text != "." and predicate == 0:
                text = resolve(text, context) or text
        out.append((kind, text))
    return tuple(text for _, text in strip_outer(out))


def normal_required(value, root, context):
    if value is None or value.strip() in ("", "false()"):
        return False
    if value.strip() == "true()":
        return True
    return normal_expression(value, root, context)


def normal_value(key, value, root, context):
    if key == "type":
        return normal_type(value)
    if key == "required":
        return normal_required(value, root, context)
    if key in EXPRESSIONS:
        return None if value is None or not value.strip() else \
            normal_expression(value, root, context)
    if key in MESSAGES:
        return None if value in (None, "") else value
    if key == "readonly":
        return value is not None and value.strip() == "true()"
    return value


def shown(normal):
    """A normalised value for a message: expressions as their joined tokens."""
    if isinstance(normal, tuple):
        return " ".join(normal)
    return normal


# --------------------------------------------------------------------------
# The comparison.


def compare_binds(pyxform_xml, tideline_xml, survey):
    """(problems, notes) between pyxform's XForm and Tideline's, for one workbook.

    `survey` is pyxform's reading of the workbook (xls2json), which says which
    nodesets are questions.
    """
    problems, notes = [], []
    try:
        want, bad, want_root = binds(pyxform_xml, "pyxform")
    except XFormError as e:
        return [f"binds: cannot read pyxform's XForm: {e}"], notes
    problems += bad
    try:
        got, bad, got_root = binds(tideline_xml, "Tideline")
    except XFormError as e:
        return problems + [f"binds: cannot read Tideline's XForm: {e}"], notes
    problems += bad

    # What pyxform adds beyond the author's questions, groups and repeats is its own
    # business; whatever Tideline adds is a difference.
    questions = question_paths(survey)
    want = {k: v for k, v in want.items() if k in questions}

    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    if missing:
        problems.append(f"binds: Tideline has no bind for nodesets {show(missing)}")
    if extra:
        problems.append(f"binds: Tideline has binds pyxform does not: {show(extra)}")
    for nodeset in [k for k in want if k in got]:
        w, g = want[nodeset], got[nodeset]
        for key in COMPARED + sorted((set(w) | set(g)) - set(COMPARED)):
            a = normal_value(key, w.get(key), want_root, nodeset)
            b = normal_value(key, g.get(key), got_root, nodeset)
            if a == b:
                continue
            line = (f"binds[{nodeset}].{key}: pyxform {show(w.get(key))}, "
                    f"Tideline {show(g.get(key))}")
            if isinstance(a, tuple) or isinstance(b, tuple):  # expressions
                line += f" (normalised: {show(shown(a))} and {show(shown(b))})"
            (problems if key in COMPARED else notes).append(line)
    return problems, notes

//! A form as an XForm (ODK XForms 1.0), what ODK Collect downloads and fills: the
//! instance, one bind per question (type, required, relevance, constraint and its
//! message) and the body controls, with itext translations when the form has them.
//!
//! Expressions keep their meaning: `${name}` becomes the absolute path of the field
//! it names (JavaRosa reads a path into a repeat as the current item's), and the
//! fixed constraint keys become the XPath they stand for. What an XForm cannot say
//! (lists of text, several photos in one question, cross-field checks) is written
//! as the nearest thing Collect can fill; docs/FORMS.md lists it.

use std::collections::HashMap;
use std::fmt::Write;

use crate::form::{Constraint, Field, FieldType, Form};

/// The XForm of `form`, as the bytes a server would serve.
pub fn xform(form: &Form) -> String {
    let mut paths = HashMap::new();
    collect_paths(&form.fields, "/data", &mut paths);
    let w = Writer {
        paths: &paths,
        languages: form.languages().into_iter().collect(),
        default: form
            .default_language
            .clone()
            .unwrap_or_else(|| "default".into()),
    };
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\"?>\n");
    out.push_str(
        "<h:html xmlns=\"http://www.w3.org/2002/xforms\" xmlns:h=\"http://www.w3.org/1999/xhtml\" \
         xmlns:jr=\"http://openrosa.org/javarosa\" xmlns:odk=\"http://www.opendatakit.org/xforms\" \
         xmlns:orx=\"http://openrosa.org/xforms\">\n",
    );
    let _ = writeln!(out, "<h:head><h:title>{}</h:title>", escape(&form.title));
    out.push_str("<model odk:xforms-version=\"1.0.0\">\n");
    if !w.languages.is_empty() {
        w.itext(&form.fields, "/data", &mut out);
    }
    let _ = write!(
        out,
        "<instance><data id=\"{}\" version=\"{}\">",
        escape(&form.id),
        form.version
    );
    instance(&form.fields, &mut out);
    out.push_str("<meta><instanceID/></meta></data></instance>\n");
    w.binds(&form.fields, "/data", &mut out);
    out.push_str(
        "<bind nodeset=\"/data/meta/instanceID\" type=\"string\" readonly=\"true()\" jr:preload=\"uid\"/>\n",
    );
    out.push_str("</model></h:head>\n<h:body>\n");
    w.body(&form.fields, "/data", &mut out);
    out.push_str("</h:body></h:html>\n");
    out
}

/// Text for an XML text node or a quoted attribute. Line breaks are written
/// as references, so an attribute keeps them and a reader cannot normalise
/// them away.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// Where a named field is, and what a reference to it needs to know.
struct Target {
    /// Its absolute path, `/data/crew/age`.
    path: String,
    /// The repeats it is inside, outermost first, as absolute paths.
    repeats: Vec<String>,
    boolean: bool,
}

fn collect_paths(fields: &[Field], parent: &str, out: &mut HashMap<String, Target>) {
    collect_in(fields, parent, &[], out);
}

fn collect_in(
    fields: &[Field],
    parent: &str,
    repeats: &[String],
    out: &mut HashMap<String, Target>,
) {
    for f in fields {
        let path = format!("{parent}/{}", f.name);
        out.entry(f.name.clone()).or_insert_with(|| Target {
            path: path.clone(),
            repeats: repeats.to_vec(),
            boolean: f.field_type == FieldType::Boolean,
        });
        let mut inner = repeats.to_vec();
        if f.field_type == FieldType::Repeat {
            inner.push(path.clone());
        }
        collect_in(&f.fields, &path, &inner, out);
    }
}

/// How an expression at `from` (a bind's nodeset) refers to `target`: a path
/// relative to `from` when both are in the same repeat item, as pyxform
/// writes it (an absolute path into a repeat means every item to the ODK
/// XForms engines), else its absolute path.
fn reference(target: &Target, from: &str) -> String {
    let Some(shared) = target
        .repeats
        .iter()
        .rev()
        .find(|r| from == r.as_str() || from.starts_with(&format!("{r}/")))
    else {
        return target.path.clone();
    };
    let up = from[shared.len()..].matches('/').count();
    let mut out = "../".repeat(up);
    if up == 0 {
        out.push_str("./");
    }
    out.push_str(target.path[shared.len() + 1..].trim_start_matches('/'));
    out
}

fn instance(fields: &[Field], out: &mut String) {
    for f in fields {
        match f.field_type {
            FieldType::Group => {
                let _ = write!(out, "<{}>", f.name);
                instance(&f.fields, out);
                let _ = write!(out, "</{}>", f.name);
            }
            FieldType::Repeat => {
                let _ = write!(out, "<{} jr:template=\"\">", f.name);
                instance(&f.fields, out);
                let _ = write!(out, "</{}>", f.name);
            }
            _ => {
                let _ = write!(out, "<{}", f.name);
                match default_text(f) {
                    Some(d) => {
                        let _ = write!(out, ">{}</{}>", escape(&d), f.name);
                    }
                    None => out.push_str("/>"),
                }
            }
        }
    }
}

fn default_text(f: &Field) -> Option<String> {
    f.default.as_ref().map(|d| match d {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

struct Writer<'a> {
    paths: &'a HashMap<String, Target>,
    languages: Vec<String>,
    default: String,
}

impl Writer<'_> {
    /// `${name}` as the path of the field it names.
    /// `expr` in XPath, for the bind at `from`. A boolean is a select whose
    /// values are the strings `true` and `false`, so a reference to one
    /// becomes the comparison that makes it an XPath boolean.
    fn xpath(&self, expr: &str, from: &str) -> String {
        let mut out = String::new();
        let mut rest = expr;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match after.find('}') {
                Some(end) => {
                    let name = &after[..end];
                    match self.paths.get(name) {
                        Some(t) if t.boolean => {
                            let _ = write!(out, "({} = 'true')", reference(t, from));
                        }
                        Some(t) => out.push_str(&reference(t, from)),
                        None => out.push_str(&rest[start..start + 2 + end + 1]),
                    }
                    rest = &after[end + 1..];
                }
                None => {
                    out.push_str(&rest[start..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }

    fn binds(&self, fields: &[Field], parent: &str, out: &mut String) {
        for f in fields {
            let path = format!("{parent}/{}", f.name);
            let ty = match f.field_type {
                FieldType::Integer => Some("int"),
                FieldType::Decimal => Some("decimal"),
                FieldType::Date => Some("date"),
                FieldType::DateTime => Some("dateTime"),
                FieldType::Time => Some("time"),
                FieldType::Geopoint => Some("geopoint"),
                FieldType::Image => Some("binary"),
                FieldType::Group | FieldType::Repeat => None,
                _ => Some("string"),
            };
            let mut attrs = String::new();
            if let Some(ty) = ty {
                let _ = write!(attrs, " type=\"{ty}\"");
            }
            if f.required {
                attrs.push_str(" required=\"true()\"");
                if let Some(m) = &f.required_message {
                    let _ = write!(attrs, " jr:requiredMsg=\"{}\"", escape(m));
                }
            }
            if f.field_type == FieldType::Note {
                attrs.push_str(" readonly=\"true()\"");
            }
            if let Some(r) = &f.relevant {
                let _ = write!(attrs, " relevant=\"{}\"", escape(&self.xpath(r, &path)));
            }
            if let Some(c) = &f.constraint {
                if let Some(x) = constraint_xpath(c, f) {
                    let _ = write!(attrs, " constraint=\"{}\"", escape(&self.xpath(&x, &path)));
                    if let Some(m) = &c.message {
                        let _ = write!(attrs, " jr:constraintMsg=\"{}\"", escape(m));
                    }
                }
            }
            if !attrs.is_empty() {
                let _ = writeln!(out, "<bind nodeset=\"{path}\"{attrs}/>");
            }
            self.binds(&f.fields, &path, out);
        }
    }

    fn itext(&self, fields: &[Field], parent: &str, out: &mut String) {
        out.push_str("<itext>\n");
        let mut langs = vec![self.default.clone()];
        langs.extend(
            self.languages
                .iter()
                .filter(|l| **l != self.default)
                .cloned(),
        );
        for lang in &langs {
            let default = if *lang == self.default {
                " default=\"true()\""
            } else {
                ""
            };
            let _ = writeln!(out, "<translation lang=\"{}\"{default}>", escape(lang));
            self.texts(fields, parent, lang, out);
            out.push_str("</translation>\n");
        }
        out.push_str("</itext>\n");
    }

    fn texts(&self, fields: &[Field], parent: &str, lang: &str, out: &mut String) {
        let pick = |main: &str, map: &std::collections::BTreeMap<String, String>| {
            if lang == self.default {
                main.to_string()
            } else {
                map.get(lang).cloned().unwrap_or_else(|| main.to_string())
            }
        };
        for f in fields {
            let path = format!("{parent}/{}", f.name);
            let _ = writeln!(
                out,
                "<text id=\"{path}:label\"><value>{}</value></text>",
                escape(&pick(&f.label, &f.labels))
            );
            if let Some(h) = &f.hint {
                let _ = writeln!(
                    out,
                    "<text id=\"{path}:hint\"><value>{}</value></text>",
                    escape(&pick(h, &f.hints))
                );
            }
            for (i, c) in choices(f).iter().enumerate() {
                let _ = writeln!(
                    out,
                    "<text id=\"{path}/{i}:label\"><value>{}</value></text>",
                    escape(&pick(&c.1, &c.2))
                );
            }
            self.texts(&f.fields, &path, lang, out);
        }
    }

    fn label(&self, f: &Field, path: &str, out: &mut String) {
        if self.languages.is_empty() {
            let _ = write!(out, "<label>{}</label>", escape(&f.label));
            if let Some(h) = &f.hint {
                let _ = write!(out, "<hint>{}</hint>", escape(h));
            }
        } else {
            let _ = write!(out, "<label ref=\"jr:itext('{path}:label')\"/>");
            if f.hint.is_some() {
                let _ = write!(out, "<hint ref=\"jr:itext('{path}:hint')\"/>");
            }
        }
    }

    fn body(&self, fields: &[Field], parent: &str, out: &mut String) {
        for f in fields {
            let path = format!("{parent}/{}", f.name);
            match f.field_type {
                FieldType::Group => {
                    let _ = write!(out, "<group ref=\"{path}\">");
                    self.label(f, &path, out);
                    out.push('\n');
                    self.body(&f.fields, &path, out);
                    out.push_str("</group>\n");
                }
                FieldType::Repeat => {
                    let _ = write!(out, "<group ref=\"{path}\">");
                    self.label(f, &path, out);
                    let _ = writeln!(out, "<repeat nodeset=\"{path}\">");
                    self.body(&f.fields, &path, out);
                    out.push_str("</repeat></group>\n");
                }
                FieldType::SelectOne | FieldType::SelectMultiple | FieldType::Boolean => {
                    let tag = if f.field_type == FieldType::SelectMultiple {
                        "select"
                    } else {
                        "select1"
                    };
                    let _ = write!(out, "<{tag} ref=\"{path}\">");
                    self.label(f, &path, out);
                    for (i, (value, label, _)) in choices(f).iter().enumerate() {
                        if self.languages.is_empty() {
                            let _ = write!(
                                out,
                                "<item><label>{}</label><value>{}</value></item>",
                                escape(label),
                                escape(value)
                            );
                        } else {
                            let _ = write!(
                                out,
                                "<item><label ref=\"jr:itext('{path}/{i}:label')\"/><value>{}</value></item>",
                                escape(value)
                            );
                        }
                    }
                    let _ = writeln!(out, "</{tag}>");
                }
                FieldType::Image => {
                    let _ = write!(out, "<upload ref=\"{path}\" mediatype=\"image/*\">");
                    self.label(f, &path, out);
                    out.push_str("</upload>\n");
                }
                FieldType::Acknowledge => {
                    let _ = write!(out, "<trigger ref=\"{path}\">");
                    self.label(f, &path, out);
                    out.push_str("</trigger>\n");
                }
                _ => {
                    let appearance = if f.is_long_text() {
                        " appearance=\"multiline\""
                    } else {
                        ""
                    };
                    let _ = write!(out, "<input ref=\"{path}\"{appearance}>");
                    self.label(f, &path, out);
                    out.push_str("</input>\n");
                }
            }
        }
    }
}

/// A select's choices as (value, label, translations); a boolean's are `true` and
/// `false`, which Tideline reads back as the boolean.
fn choices(f: &Field) -> Vec<(String, String, std::collections::BTreeMap<String, String>)> {
    if f.field_type == FieldType::Boolean {
        return vec![
            ("true".into(), "Yes".into(), Default::default()),
            ("false".into(), "No".into(), Default::default()),
        ];
    }
    f.choices
        .iter()
        .map(|c| (c.value.clone(), c.label.clone(), c.labels.clone()))
        .collect()
}

/// The XPath a constraint stands for: its expression, and its fixed keys.
fn constraint_xpath(c: &Constraint, f: &Field) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(e) = &c.expression {
        parts.push(format!("({e})"));
    }
    if let Some(min) = c.min {
        parts.push(format!(". >= {min}"));
    }
    if let Some(max) = c.max {
        parts.push(format!(". <= {max}"));
    }
    if let Some(n) = c.min_length {
        parts.push(format!("string-length(.) >= {n}"));
    }
    if let Some(n) = c.max_length {
        parts.push(format!("string-length(.) <= {n}"));
    }
    if let Some(r) = &c.regex {
        let quoted = if r.contains('\'') {
            format!("\"^(?:{r})$\"")
        } else {
            format!("'^(?:{r})$'")
        };
        parts.push(format!("regex(., {quoted})"));
    }
    if f.field_type == FieldType::SelectMultiple {
        if let Some(n) = c.min_items {
            parts.push(format!("count-selected(.) >= {n}"));
        }
        if let Some(n) = c.max_items {
            parts.push(format!("count-selected(.) <= {n}"));
        }
    }
    (!parts.is_empty()).then(|| parts.join(" and "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> Form {
        Form::parse(
            &serde_json::json!({"id": "t", "version": 3, "title": "A & B", "fields": [
                {"name": "persons", "label": "Persons <on board>", "type": "integer",
                 "constraint": {"min": 1, "expression": ". < 100", "message": "Between \"1\" and 99"}},
                {"name": "crew", "label": "Crew", "type": "repeat", "fields": [
                    {"name": "age", "label": "Age", "type": "integer"},
                    {"name": "guardian", "label": "Guardian", "type": "text",
                     "relevant": "${age} < 18 and ${persons} > 1"}
                ]},
                {"name": "found", "label": "Found?", "type": "boolean", "required": true},
                {"name": "what", "label": "What?", "type": "text", "relevant": "${found} = true()"}
            ]})
            .to_string(),
        )
        .expect("valid form")
    }

    #[test]
    fn names_become_paths_and_text_is_escaped() {
        let x = xform(&form());
        assert!(x.contains("<h:title>A &amp; B</h:title>"), "{x}");
        assert!(x.contains("<data id=\"t\" version=\"3\">"), "{x}");
        assert!(
            x.contains("relevant=\"../age &lt; 18 and /data/persons &gt; 1\""),
            "a reference inside the same repeat item is relative: {x}"
        );
        assert!(
            x.contains("relevant=\"(/data/found = &apos;true&apos;) = true()\""),
            "a boolean compares as a boolean: {x}"
        );
        assert!(
            x.contains("constraint=\"(. &lt; 100) and . &gt;= 1\" jr:constraintMsg=\"Between &quot;1&quot; and 99\""),
            "{x}"
        );
        assert!(x.contains("<label>Persons &lt;on board&gt;</label>"), "{x}");
        assert!(
            x.contains("<crew jr:template=\"\"><age/><guardian/></crew>"),
            "{x}"
        );
        assert!(
            x.contains("<item><label>Yes</label><value>true</value></item>"),
            "a boolean is a yes/no select: {x}"
        );
        assert!(
            x.contains("<bind nodeset=\"/data/found\" type=\"string\" required=\"true()\"/>"),
            "{x}"
        );
    }
}

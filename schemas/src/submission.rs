//! ODK submissions: the instance XML a phone sends as `xml_submission_file`,
//! read onto a form's fields ([`read`]), and written from them ([`write`]: what
//! a phone would send, so tests can check that reading inverts writing).
//!
//! The XML is peer data. It is read within a size, a depth and an element
//! count, with no DTD and no entity but XML's five and character references,
//! so nothing in it makes the reader allocate much past its own length.
//!
//! ```
//! use tideline_schemas::{submission, FormRegistry};
//!
//! let forms = FormRegistry::builtin();
//! let form = forms.latest("vessel-sighting").unwrap();
//! let xml = br#"<data id="vessel-sighting" version="1">
//!     <vessel_name>Sea Breeze</vessel_name><position>13.1 -61.2 0 5</position>
//!     <meta><instanceID>uuid:6f1c...</instanceID></meta></data>"#;
//! let instance = submission::read(form, xml, &|_| None).unwrap();
//! assert_eq!(instance.instance_id, "uuid:6f1c...");
//! assert_eq!(instance.fields["vessel_name"], "Sea Breeze");
//! assert_eq!(instance.fields["position"], serde_json::json!({"lat": 13.1, "lon": -61.2}));
//! ```

use crate::form::{Field, FieldType, Form};
use quick_xml::events::{BytesStart, Event};
use serde_json::{Map, Number, Value as Json};
use std::fmt::Write;

/// Largest instance XML read. A boarding report with forty crew is ~20 KiB.
pub const MAX_INSTANCE_BYTES: usize = 4 * 1024 * 1024;
/// Deepest element nesting read (a form nests groups and repeats a few levels).
pub const MAX_DEPTH: usize = 32;
/// Most elements read.
pub const MAX_ELEMENTS: usize = 50_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstanceError {
    #[error(
        "the submission is {0} bytes; a submission's XML may have at most {MAX_INSTANCE_BYTES}"
    )]
    TooLarge(usize),
    #[error("the submission is not well-formed XML: {0}")]
    Malformed(String),
    #[error("the submission declares a DTD, which submissions may not")]
    Doctype,
    #[error("the submission uses the entity &{0};, which submissions may not")]
    Entity(String),
    #[error("the submission nests elements more than {MAX_DEPTH} deep")]
    TooDeep,
    #[error("the submission has more than {MAX_ELEMENTS} elements")]
    TooMany,
    #[error("the submission has no root element")]
    Empty,
    #[error("the submission does not say which form it fills (its root element has no id)")]
    NoFormId,
    #[error("the submission has no meta/instanceID")]
    NoInstanceId,
    #[error("{path}: {message}")]
    Answer { path: String, message: String },
}

/// The form a submission says it fills, read before the form is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub form_id: String,
    pub version: Option<String>,
    pub instance_id: String,
    pub deprecated_id: Option<String>,
}

/// A submission read onto its form.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub form_id: String,
    pub version: Option<String>,
    /// `uuid:...`, as the phone made it.
    pub instance_id: String,
    /// The instance this one replaces, for an edit.
    pub deprecated_id: Option<String>,
    /// The answers, as a record's `fields`; empty answers are absent.
    pub fields: Map<String, Json>,
    /// Every file an image answer names, in order, once each.
    pub files: Vec<String>,
}

/// An element as read: its local name, attributes, text and children.
#[derive(Debug, Default)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
}

fn malformed(e: impl std::fmt::Display) -> InstanceError {
    InstanceError::Malformed(e.to_string())
}

fn start(e: &BytesStart<'_>, decoder: quick_xml::Decoder) -> Result<Node, InstanceError> {
    let mut node = Node {
        name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
        ..Node::default()
    };
    for a in e.attributes() {
        let a = a.map_err(malformed)?;
        let value =
            a.decode_and_unescape_value(decoder)
                .map_err(|err| match err {
                    quick_xml::Error::Escape(
                        quick_xml::escape::EscapeError::UnrecognizedEntity(_, n),
                    ) => InstanceError::Entity(n),
                    other => malformed(other),
                })?;
        let key = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
        node.attrs.push((key, value.into_owned()));
    }
    Ok(node)
}

/// The document as a tree, within the limits.
fn tree(xml: &[u8]) -> Result<Node, InstanceError> {
    if xml.len() > MAX_INSTANCE_BYTES {
        return Err(InstanceError::TooLarge(xml.len()));
    }
    let mut reader = quick_xml::Reader::from_reader(xml);
    reader.config_mut().check_end_names = true;
    let mut buf = Vec::new();
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut elements = 0usize;
    loop {
        let event = reader.read_event_into(&mut buf).map_err(malformed)?;
        // `<a>` opens an element; `<a/>` is one, whole.
        let opens = matches!(event, Event::Start(_));
        let mut finished = None;
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(malformed("more than one root element"));
            }
            Event::Start(e) | Event::Empty(e) => {
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(InstanceError::TooMany);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(InstanceError::TooDeep);
                }
                let node = start(&e, reader.decoder())?;
                if opens {
                    stack.push(node);
                } else {
                    finished = Some(node);
                }
            }
            Event::End(_) => {
                finished = Some(
                    stack
                        .pop()
                        .ok_or_else(|| malformed("an end without a start"))?,
                );
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.decode().map_err(malformed)?);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.decode().map_err(malformed)?);
                }
            }
            Event::GeneralRef(r) => {
                let text = match r.resolve_char_ref().map_err(malformed)? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(malformed)?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| InstanceError::Entity(name.into_owned()))?
                            .to_string()
                    }
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text);
                }
            }
            Event::DocType(_) => return Err(InstanceError::Doctype),
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
        if let Some(node) = finished {
            match stack.last_mut() {
                Some(parent) => parent.children.push(node),
                None => root = Some(node),
            }
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err(malformed("the document ends inside an element"));
    }
    root.ok_or(InstanceError::Empty)
}

fn header_of(root: &Node) -> Result<Header, InstanceError> {
    let form_id = root
        .attr("id")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(InstanceError::NoFormId)?
        .to_string();
    let meta = root.child("meta");
    let meta_text = |name: &str| {
        meta.and_then(|m| m.child(name))
            .map(|n| n.text.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    Ok(Header {
        form_id,
        version: root.attr("version").map(|v| v.trim().to_string()),
        instance_id: meta_text("instanceID").ok_or(InstanceError::NoInstanceId)?,
        deprecated_id: meta_text("deprecatedID"),
    })
}

/// A submission parsed once: which form and instance it is, and its
/// answers, read onto a form as often as needed without parsing again.
#[derive(Debug)]
pub struct Document {
    root: Node,
    header: Header,
}

/// Parse a submission's XML, within the limits.
pub fn parse(xml: &[u8]) -> Result<Document, InstanceError> {
    let root = tree(xml)?;
    let header = header_of(&root)?;
    Ok(Document { root, header })
}

impl Document {
    /// Which form and instance it is.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Its answers read onto `form`. `file` gives the value an image answer
    /// stores for a file name (its content hash), or None while the file has
    /// not arrived (the answer is then left out; it is still listed in `files`).
    pub fn read(
        &self,
        form: &Form,
        file: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Instance, InstanceError> {
        let mut reader = Reading {
            file,
            files: Vec::new(),
        };
        let fields = reader.children(&form.fields, &self.root, "", true)?;
        let header = self.header.clone();
        Ok(Instance {
            form_id: header.form_id,
            version: header.version,
            instance_id: header.instance_id,
            deprecated_id: header.deprecated_id,
            fields,
            files: reader.files,
        })
    }
}

/// Which form and instance a submission is, without reading its answers.
pub fn header(xml: &[u8]) -> Result<Header, InstanceError> {
    Ok(parse(xml)?.header)
}

/// Parse a submission and read it onto `form` (see [`Document::read`]).
pub fn read(
    form: &Form,
    xml: &[u8],
    file: &dyn Fn(&str) -> Option<String>,
) -> Result<Instance, InstanceError> {
    parse(xml)?.read(form, file)
}

struct Reading<'a> {
    file: &'a dyn Fn(&str) -> Option<String>,
    files: Vec<String>,
}

fn answer_error(path: &str, message: String) -> InstanceError {
    InstanceError::Answer {
        path: path.to_string(),
        message,
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

impl Reading<'_> {
    /// The answers under `node` for `fields`; at the top, `meta` is the
    /// phone's own and not an answer.
    fn children(
        &mut self,
        fields: &[Field],
        node: &Node,
        path: &str,
        top: bool,
    ) -> Result<Map<String, Json>, InstanceError> {
        let mut out = Map::new();
        for child in &node.children {
            if top && child.name == "meta" {
                continue;
            }
            if !fields.iter().any(|f| f.name == child.name) {
                return Err(answer_error(
                    &join(path, &child.name),
                    "is not a question of this form version; update the form on the phone \
                     (Get Blank Form) and fill it again"
                        .into(),
                ));
            }
        }
        for field in fields {
            let here = join(path, &field.name);
            let nodes: Vec<&Node> = node
                .children
                .iter()
                .filter(|c| c.name == field.name)
                .collect();
            if field.field_type == FieldType::Repeat {
                let mut items = Vec::new();
                for (i, item) in nodes.iter().enumerate() {
                    let at = format!("{here}[{}]", i + 1);
                    let answers = self.children(&field.fields, item, &at, false)?;
                    // A repeat item left entirely empty holds nothing to keep.
                    if !answers.is_empty() {
                        items.push(Json::Object(answers));
                    }
                }
                if !items.is_empty() {
                    out.insert(field.name.clone(), Json::Array(items));
                }
                continue;
            }
            let Some(first) = nodes.first() else {
                continue;
            };
            if nodes.len() > 1 {
                return Err(answer_error(&here, "is answered more than once".into()));
            }
            if let Some(v) = self.value(field, first, &here)? {
                out.insert(field.name.clone(), v);
            }
        }
        Ok(out)
    }

    fn value(&mut self, f: &Field, node: &Node, path: &str) -> Result<Option<Json>, InstanceError> {
        if f.field_type == FieldType::Group {
            let answers = self.children(&f.fields, node, path, false)?;
            return Ok((!answers.is_empty()).then_some(Json::Object(answers)));
        }
        if !node.children.is_empty() {
            return Err(answer_error(
                path,
                "holds elements where an answer belongs".into(),
            ));
        }
        let raw = node.text.as_str();
        let text = raw.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let label = f.display_name();
        let v = match f.field_type {
            FieldType::Text if f.multiple => Json::Array(vec![Json::String(raw.to_string())]),
            FieldType::Text => Json::String(raw.to_string()),
            FieldType::SelectOne | FieldType::Date | FieldType::DateTime => {
                Json::String(text.to_string())
            }
            FieldType::Acknowledge => Json::String(text.to_string()),
            FieldType::Time => Json::String(clock_time(text).to_string()),
            FieldType::SelectMultiple => Json::Array(
                text.split_whitespace()
                    .map(|s| Json::String(s.to_string()))
                    .collect(),
            ),
            FieldType::Integer => match text.parse::<i64>() {
                Ok(n) => Json::from(n),
                Err(_) => {
                    return Err(answer_error(
                        path,
                        format!("{label}: {text:?} is not a whole number"),
                    ))
                }
            },
            FieldType::Decimal => number(text)
                .ok_or_else(|| answer_error(path, format!("{label}: {text:?} is not a number")))?,
            FieldType::Boolean => match text {
                "true" | "yes" | "1" => Json::Bool(true),
                "false" | "no" | "0" => Json::Bool(false),
                _ => {
                    return Err(answer_error(
                        path,
                        format!("{label}: {text:?} is neither yes nor no"),
                    ))
                }
            },
            FieldType::Geopoint => {
                let mut parts = text.split_whitespace().map(number);
                match (parts.next().flatten(), parts.next().flatten()) {
                    (Some(lat), Some(lon)) => serde_json::json!({"lat": lat, "lon": lon}),
                    _ => {
                        return Err(answer_error(
                            path,
                            format!("{label}: {text:?} is not a position (latitude longitude)"),
                        ))
                    }
                }
            }
            FieldType::Image => {
                if !self.files.iter().any(|n| n == text) {
                    self.files.push(text.to_string());
                }
                let Some(stored) = (self.file)(text) else {
                    return Ok(None);
                };
                if f.multiple {
                    Json::Array(vec![Json::String(stored)])
                } else {
                    Json::String(stored)
                }
            }
            // A note's text is the form's, not an answer.
            FieldType::Note => return Ok(None),
            FieldType::Group | FieldType::Repeat => unreachable!("handled above"),
        };
        Ok(Some(v))
    }
}

/// A number as JSON: whole numbers stay whole, so 3 reads back as 3.
fn number(text: &str) -> Option<Json> {
    if let Ok(n) = text.parse::<i64>() {
        return Some(Json::from(n));
    }
    text.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .and_then(Number::from_f64)
        .map(Json::Number)
}

/// JavaRosa writes a time with milliseconds and the phone's offset
/// (`14:30:00.000-04:00`); a Tideline time is the clock reading alone.
fn clock_time(text: &str) -> &str {
    let end = text
        .char_indices()
        .skip(5)
        .find(|(_, c)| matches!(c, '.' | '+' | '-' | 'Z'))
        .map_or(text.len(), |(i, _)| i);
    &text[..end]
}

fn esc(s: &str, out: &mut String) {
    out.push_str(&crate::xform::escape(s));
}

/// The instance XML a phone would send for `fields` of `form`. An image
/// answer is written as the file name `file` gives for its stored value.
pub fn write(
    form: &Form,
    fields: &Map<String, Json>,
    instance_id: &str,
    deprecated_id: Option<&str>,
    file: &dyn Fn(&str) -> String,
) -> String {
    let mut out = String::from("<?xml version=\"1.0\"?>\n<data id=\"");
    esc(&form.id, &mut out);
    let _ = write!(out, "\" version=\"{}\">", form.version);
    write_children(&form.fields, fields, file, &mut out);
    out.push_str("<meta><instanceID>");
    esc(instance_id, &mut out);
    out.push_str("</instanceID>");
    if let Some(d) = deprecated_id {
        out.push_str("<deprecatedID>");
        esc(d, &mut out);
        out.push_str("</deprecatedID>");
    }
    out.push_str("</meta></data>\n");
    out
}

fn write_children(
    fields: &[Field],
    answers: &Map<String, Json>,
    file: &dyn Fn(&str) -> String,
    out: &mut String,
) {
    for f in fields {
        let value = answers.get(&f.name).unwrap_or(&Json::Null);
        match (f.field_type, value) {
            (FieldType::Repeat, Json::Array(items)) => {
                for item in items {
                    let empty = Map::new();
                    let _ = write!(out, "<{}>", f.name);
                    write_children(&f.fields, item.as_object().unwrap_or(&empty), file, out);
                    let _ = write!(out, "</{}>", f.name);
                }
            }
            (FieldType::Repeat, _) => {}
            (FieldType::Group, v) => {
                let empty = Map::new();
                let _ = write!(out, "<{}>", f.name);
                write_children(&f.fields, v.as_object().unwrap_or(&empty), file, out);
                let _ = write!(out, "</{}>", f.name);
            }
            (_, Json::Null) => {
                let _ = write!(out, "<{}/>", f.name);
            }
            (_, v) => {
                let _ = write!(out, "<{}>", f.name);
                esc(&text_of(f, v, file), out);
                let _ = write!(out, "</{}>", f.name);
            }
        }
    }
}

/// An answer as an XForm writes it.
fn text_of(f: &Field, v: &Json, file: &dyn Fn(&str) -> String) -> String {
    let first = |v: &Json| match v {
        Json::Array(items) => items.first().cloned().unwrap_or(Json::Null),
        other => other.clone(),
    };
    match (f.field_type, v) {
        (FieldType::Geopoint, Json::Object(p)) => format!(
            "{} {} 0 0",
            p.get("lat").unwrap_or(&Json::Null),
            p.get("lon").unwrap_or(&Json::Null)
        ),
        (FieldType::SelectMultiple, Json::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(" "),
        (FieldType::Image, v) => first(v).as_str().map(file).unwrap_or_default(),
        (FieldType::Text, v) => match first(v) {
            Json::String(s) => s,
            other => other.to_string(),
        },
        (_, Json::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> Form {
        Form::parse(
            &serde_json::json!({"id": "t", "version": 2, "title": "T", "fields": [
                {"name": "name", "label": "Name", "type": "text"},
                {"name": "n", "label": "N", "type": "integer"},
                {"name": "where", "label": "Where", "type": "geopoint"},
                {"name": "kinds", "label": "Kinds", "type": "select_multiple",
                 "choices": [{"value": "a", "label": "A"}, {"value": "b", "label": "B"}]},
                {"name": "ok", "label": "OK?", "type": "boolean"},
                {"name": "at", "label": "At", "type": "time"},
                {"name": "crew", "label": "Crew", "type": "repeat", "fields": [
                    {"name": "who", "label": "Who", "type": "text"},
                    {"name": "photo", "label": "Photo", "type": "image"}
                ]}
            ]})
            .to_string(),
        )
        .unwrap()
    }

    #[test]
    fn a_collect_instance_reads_onto_the_form() {
        let xml = br#"<?xml version='1.0' ?><data id="t" version="2" xmlns:orx="http://openrosa.org/xforms">
            <name>Fish &amp; Chips &#233;</name><n> 4 </n><where>13.5 -61.25 12.0 4.5</where>
            <kinds>a b</kinds><ok>yes</ok><at>14:30:00.000-04:00</at>
            <crew><who>Ann</who><photo>1.jpg</photo></crew><crew><who>Bo</who><photo/></crew><crew><who/></crew>
            <orx:meta><orx:instanceID>uuid:1</orx:instanceID><orx:deprecatedID>uuid:0</orx:deprecatedID></orx:meta></data>"#;
        let i = read(&form(), xml, &|name| {
            (name == "1.jpg").then(|| "h1".to_string())
        })
        .unwrap();
        assert_eq!(i.instance_id, "uuid:1");
        assert_eq!(i.deprecated_id.as_deref(), Some("uuid:0"));
        assert_eq!(i.version.as_deref(), Some("2"));
        assert_eq!(
            Json::Object(i.fields),
            serde_json::json!({"name": "Fish & Chips é", "n": 4,
                "where": {"lat": 13.5, "lon": -61.25}, "kinds": ["a", "b"], "ok": true,
                "at": "14:30:00", "crew": [{"who": "Ann", "photo": "h1"}, {"who": "Bo"}]})
        );
        assert_eq!(i.files, ["1.jpg"]);
    }

    #[test]
    fn hostile_or_broken_xml_is_refused() {
        let laughs = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><data id="t"><name>&lol2;</name></data>"#;
        assert_eq!(header(laughs), Err(InstanceError::Doctype));
        let entity = br#"<data id="t"><name>&lol;</name></data>"#;
        assert_eq!(header(entity), Err(InstanceError::Entity("lol".into())));
        let deep = format!(
            "<data id=\"t\">{}{}</data>",
            "<g>".repeat(100),
            "</g>".repeat(100)
        );
        assert_eq!(header(deep.as_bytes()), Err(InstanceError::TooDeep));
        let big = vec![b' '; MAX_INSTANCE_BYTES + 1];
        assert!(matches!(header(&big), Err(InstanceError::TooLarge(_))));
        assert!(matches!(
            header(b"<data id=\"t\"><a></b></data>"),
            Err(InstanceError::Malformed(_))
        ));
        assert_eq!(
            header(b"<data><meta><instanceID>uuid:1</instanceID></meta></data>"),
            Err(InstanceError::NoFormId)
        );
        assert_eq!(
            header(b"<data id=\"t\"/>"),
            Err(InstanceError::NoInstanceId)
        );
        let unknown =
            br#"<data id="t"><boat>x</boat><meta><instanceID>uuid:1</instanceID></meta></data>"#;
        assert!(matches!(
            read(&form(), unknown, &|_| None),
            Err(InstanceError::Answer { path, .. }) if path == "boat"
        ));
        let typed =
            br#"<data id="t"><n>four</n><meta><instanceID>uuid:1</instanceID></meta></data>"#;
        assert!(matches!(
            read(&form(), typed, &|_| None),
            Err(InstanceError::Answer { path, .. }) if path == "n"
        ));
    }

    #[test]
    fn written_instances_read_back() {
        let fields = serde_json::json!({"name": "A <b> \"c\"", "n": -3,
            "where": {"lat": 1.5, "lon": 2.0}, "kinds": ["b"], "ok": false,
            "crew": [{"who": "X", "photo": "hash"}]});
        let fields = fields.as_object().unwrap();
        let xml = write(&form(), fields, "uuid:9", None, &|h| format!("{h}.jpg"));
        let back = read(&form(), xml.as_bytes(), &|n| {
            Some(n.trim_end_matches(".jpg").to_string())
        })
        .unwrap();
        assert_eq!(&back.fields, fields);
        assert_eq!(back.files, ["hash.jpg"]);
    }
}

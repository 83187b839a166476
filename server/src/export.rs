//! Export formats shared by the HTTP API and the CLI.
//!
//! - `jsonl`: one record view per line, exactly as the API returns it.
//! - `geojson`: a FeatureCollection with one Point feature per record at its
//!   `position`; records without a position keep `"geometry": null` rather than
//!   silently disappearing from the export.
//! - `csv`: one table per call. The main table has one row per record; a repeat
//!   (`crew`, `seizures`) is its own table with one row per item, keyed by
//!   `record_id` and `index`. Geopoints split into `<name>.lat`/`<name>.lon`,
//!   lists join with `"; "`, and a repeat appears in the main table as `<name>_count`.
//!
//! Every format names each record's attachments: `jsonl` and `geojson` carry
//! the `attachments` list (`sha256`, `name`, `mime`, `size`); the main CSV
//! table has an `attachments` column of `name (sha256)` entries.

use serde_json::{json, Map, Value as Json};
use std::io::Write;
use std::str::FromStr;
use tideline_schemas::{Field, FieldType, FormRegistry};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
    Geojson,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jsonl" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            "geojson" => Ok(Format::Geojson),
            other => Err(format!(
                "unknown export format {other:?}: use jsonl, csv or geojson"
            )),
        }
    }
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jsonl => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Geojson => "application/geo+json",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("writing the export failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing CSV failed: {0}")]
    Csv(#[from] csv::Error),
    #[error("no form has a repeat called {0:?}")]
    UnknownTable(String),
}

const META_COLUMNS: [&str; 8] = [
    "id",
    "form",
    "form_version",
    "station",
    "status",
    "created_by",
    "created_at",
    "updated_at",
];

/// A CSV column: a header and where its value comes from.
enum Column<'a> {
    Meta(&'static str),
    Value(&'a Field),
    Lat(&'a Field),
    Lon(&'a Field),
    Count(&'a Field),
}

impl Column<'_> {
    fn header(&self) -> String {
        match self {
            Column::Meta(m) => m.to_string(),
            Column::Value(f) => f.name.clone(),
            Column::Lat(f) => format!("{}.lat", f.name),
            Column::Lon(f) => format!("{}.lon", f.name),
            Column::Count(f) => format!("{}_count", f.name),
        }
    }

    fn cell(&self, view: &Json, values: &Map<String, Json>) -> String {
        match self {
            Column::Meta(m) => plain(&view[*m]),
            Column::Value(f) => plain(values.get(&f.name).unwrap_or(&Json::Null)),
            Column::Lat(f) => values
                .get(&f.name)
                .map_or(String::new(), |p| plain(&p["lat"])),
            Column::Lon(f) => values
                .get(&f.name)
                .map_or(String::new(), |p| plain(&p["lon"])),
            Column::Count(f) => values
                .get(&f.name)
                .and_then(Json::as_array)
                .map_or("0".to_string(), |a| a.len().to_string()),
        }
    }
}

fn plain(v: &Json) -> String {
    match v {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        Json::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join("; "),
        other => other.to_string(),
    }
}

/// Columns for a list of fields, in form order, each name once.
fn columns_for<'a>(
    fields: impl Iterator<Item = &'a Field>,
    seen: &mut Vec<String>,
) -> Vec<Column<'a>> {
    let mut out = Vec::new();
    for f in fields {
        if f.field_type == FieldType::Note || seen.contains(&f.name) {
            continue;
        }
        seen.push(f.name.clone());
        match f.field_type {
            FieldType::Geopoint => {
                out.push(Column::Lat(f));
                out.push(Column::Lon(f));
            }
            FieldType::Repeat => out.push(Column::Count(f)),
            _ => out.push(Column::Value(f)),
        }
    }
    out
}

/// Streams record views into one export format.
pub struct Exporter<'a, W: Write> {
    out: W,
    format: Format,
    table: Option<String>,
    columns: Vec<Column<'a>>,
    first: bool,
}

impl<'a, W: Write> Exporter<'a, W> {
    /// `form` narrows CSV columns to one form; `table` picks a repeat's CSV table.
    pub fn new(
        out: W,
        format: Format,
        forms: &'a FormRegistry,
        form: Option<&str>,
        table: Option<&str>,
    ) -> Result<Self, ExportError> {
        let all = forms.list_latest();
        let in_scope: Vec<_> = all
            .into_iter()
            .filter(|f| form.is_none_or(|id| f.id == id))
            .collect();
        let mut columns = Vec::new();
        if format == Format::Csv {
            let mut seen = Vec::new();
            match table {
                None => {
                    columns.extend(META_COLUMNS.iter().map(|m| Column::Meta(m)));
                    for f in &in_scope {
                        columns.extend(columns_for(f.fields.iter(), &mut seen));
                    }
                    columns.push(Column::Meta("conflicts"));
                    columns.push(Column::Meta("attachments"));
                }
                Some(name) => {
                    let repeats: Vec<&Field> = in_scope
                        .iter()
                        .flat_map(|f| f.fields.iter())
                        .filter(|f| f.field_type == FieldType::Repeat && f.name == name)
                        .collect();
                    if repeats.is_empty() {
                        return Err(ExportError::UnknownTable(name.to_string()));
                    }
                    for r in repeats {
                        columns.extend(columns_for(r.fields.iter(), &mut seen));
                    }
                }
            }
        }
        Ok(Exporter {
            out,
            format,
            table: table.map(str::to_string),
            columns,
            first: true,
        })
    }

    /// Write one record, given its JSON view.
    pub fn record(&mut self, raw_view: &str) -> Result<(), ExportError> {
        match self.format {
            Format::Jsonl => {
                self.out.write_all(raw_view.as_bytes())?;
                self.out.write_all(b"\n")?;
            }
            Format::Geojson => {
                let view: Json = serde_json::from_str(raw_view).map_err(std::io::Error::other)?;
                if self.first {
                    self.out
                        .write_all(b"{\"type\":\"FeatureCollection\",\"features\":[\n")?;
                } else {
                    self.out.write_all(b",\n")?;
                }
                serde_json::to_writer(&mut self.out, &feature(&view))
                    .map_err(std::io::Error::other)?;
            }
            Format::Csv => {
                let view: Json = serde_json::from_str(raw_view).map_err(std::io::Error::other)?;
                self.csv_record(&view)?;
            }
        }
        self.first = false;
        Ok(())
    }

    fn header(&self) -> Vec<String> {
        let keys = if self.table.is_some() {
            vec!["record_id".to_string(), "index".to_string()]
        } else {
            Vec::new()
        };
        keys.into_iter()
            .chain(self.columns.iter().map(Column::header))
            .collect()
    }

    fn csv_record(&mut self, view: &Json) -> Result<(), ExportError> {
        if self.first {
            let header = self.header();
            write_csv_row(&mut self.out, &header)?;
        }
        let empty = Map::new();
        let fields = view["fields"].as_object().unwrap_or(&empty);
        match &self.table {
            None => {
                let mut conflicts_view = view.clone();
                let paths: Vec<Json> = view["conflicts"]
                    .as_object()
                    .map(|m| m.keys().map(|k| Json::String(k.clone())).collect())
                    .unwrap_or_default();
                conflicts_view["conflicts"] = Json::Array(paths);
                let files: Vec<Json> = view["attachments"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| {
                        Json::String(format!("{} ({})", plain(&a["name"]), plain(&a["sha256"])))
                    })
                    .collect();
                conflicts_view["attachments"] = Json::Array(files);
                let row: Vec<String> = self
                    .columns
                    .iter()
                    .map(|c| c.cell(&conflicts_view, fields))
                    .collect();
                write_csv_row(&mut self.out, &row)?;
            }
            Some(table) => {
                let items = fields.get(table).and_then(Json::as_array);
                for (i, item) in items.into_iter().flatten().enumerate() {
                    let item = item.as_object().unwrap_or(&empty);
                    let mut row = vec![plain(&view["id"]), i.to_string()];
                    row.extend(self.columns.iter().map(|c| c.cell(view, item)));
                    write_csv_row(&mut self.out, &row)?;
                }
            }
        }
        Ok(())
    }

    /// Close the document (GeoJSON needs its closing brackets; CSV a header even
    /// when there were no records).
    pub fn finish(mut self) -> Result<W, ExportError> {
        match self.format {
            Format::Geojson if self.first => self
                .out
                .write_all(b"{\"type\":\"FeatureCollection\",\"features\":[]}\n")?,
            Format::Geojson => self.out.write_all(b"\n]}\n")?,
            Format::Csv if self.first => {
                let header = self.header();
                write_csv_row(&mut self.out, &header)?;
            }
            _ => {}
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

fn write_csv_row<W: Write>(out: &mut W, row: &[String]) -> Result<(), ExportError> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    w.write_record(row)?;
    let bytes = w
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    out.write_all(&bytes)?;
    Ok(())
}

fn feature(view: &Json) -> Json {
    let fields = view["fields"].as_object();
    let geometry = fields
        .and_then(|f| f.get("position"))
        .and_then(|p| Some((p["lon"].as_f64()?, p["lat"].as_f64()?)))
        .map_or(
            Json::Null,
            |(lon, lat)| json!({"type": "Point", "coordinates": [lon, lat]}),
        );
    let mut properties = Map::new();
    for key in META_COLUMNS {
        properties.insert(key.to_string(), view[key].clone());
    }
    if let Some(fields) = fields {
        for (k, v) in fields {
            if k != "position" {
                properties.insert(k.clone(), v.clone());
            }
        }
    }
    properties.insert("attachments".into(), view["attachments"].clone());
    json!({"type": "Feature", "id": view["id"], "geometry": geometry, "properties": properties})
}

/// Names of the repeat tables the forms define, for writing every table.
pub fn repeat_tables(forms: &FormRegistry, form: Option<&str>) -> Vec<String> {
    let mut names = Vec::new();
    for f in forms.list_latest() {
        if form.is_some_and(|id| f.id != id) {
            continue;
        }
        for field in &f.fields {
            if field.field_type == FieldType::Repeat && !names.contains(&field.name) {
                names.push(field.name.clone());
            }
        }
    }
    names
}

/// What an archive export holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ArchiveSummary {
    pub records: usize,
    pub files: usize,
    /// Files records reference that have not reached this instance.
    pub missing: usize,
}

const ARCHIVE_README: &str = "Tideline export archive\n\
\n\
records.jsonl      one record view per line, as the API returns it\n\
attachments.csv    every file a record references: record_id, sha256, name, mime, size, included\n\
files/<sha256>     each included file, named by its SHA-256; check one with\n\
                   `sha256sum files/<sha256>` (the name is the expected sum)\n\
\n\
A file marked included=no had not reached the exporting instance.\n";

/// Write records and the files they reference as one zip archive, for court
/// or archive: the views as JSON lines, an index of attachments, and each
/// file under its SHA-256 so anyone can check it is the one recorded.
pub fn write_archive<W: Write + std::io::Seek>(
    out: W,
    views: impl IntoIterator<Item = Box<serde_json::value::RawValue>>,
    file_path: impl Fn(&str) -> Option<std::path::PathBuf>,
) -> Result<ArchiveSummary, ExportError> {
    use zip::write::SimpleFileOptions;
    use zip::CompressionMethod;
    let zip_err = |e: zip::result::ZipError| ExportError::Io(std::io::Error::other(e));
    let mut zip = zip::ZipWriter::new(out);
    let text = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    // Photos and PDFs are compressed already.
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    let mut summary = ArchiveSummary::default();
    let mut index = csv::Writer::from_writer(Vec::new());
    index.write_record(["record_id", "sha256", "name", "mime", "size", "included"])?;
    let mut files: Vec<String> = Vec::new();
    zip.start_file("records.jsonl", text).map_err(zip_err)?;
    for view in views {
        zip.write_all(view.get().as_bytes())?;
        zip.write_all(b"\n")?;
        summary.records += 1;
        let v: Json = serde_json::from_str(view.get()).map_err(std::io::Error::other)?;
        for a in v["attachments"].as_array().into_iter().flatten() {
            let sha = plain(&a["sha256"]);
            let included = file_path(&sha).is_some();
            index.write_record([
                plain(&v["id"]),
                sha.clone(),
                plain(&a["name"]),
                plain(&a["mime"]),
                plain(&a["size"]),
                (if included { "yes" } else { "no" }).to_string(),
            ])?;
            if !included {
                summary.missing += 1;
            } else if !files.contains(&sha) {
                files.push(sha);
            }
        }
    }
    for sha in &files {
        let Some(path) = file_path(sha) else { continue };
        zip.start_file(format!("files/{sha}"), stored)
            .map_err(zip_err)?;
        let mut f = std::fs::File::open(path)?;
        std::io::copy(&mut f, &mut zip)?;
        summary.files += 1;
    }
    zip.start_file("attachments.csv", text).map_err(zip_err)?;
    let index = index
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    zip.write_all(&index)?;
    zip.start_file("README.txt", text).map_err(zip_err)?;
    zip.write_all(ARCHIVE_README.as_bytes())?;
    // Flushed here so that a write error is reported, not lost in a drop.
    zip.finish().map_err(zip_err)?.flush()?;
    Ok(summary)
}

//! `tideline record …`, `tideline form …` and `tideline export`: records
//! and forms read and written on the data directory offline.

use super::common::{open_existing, open_offline};
use crate::config::Settings;
use crate::data_dir::SharedRecords;
use crate::export::{repeat_tables, Exporter, Format};
use crate::xlsform::Imported;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{Map, Value as Json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use tideline_sync::records::DEFAULT_LIMIT;
use tideline_sync::{Author, Filter};

#[derive(Subcommand)]
pub enum RecordCommand {
    /// Create a draft record from a JSON object of fields.
    Create {
        #[arg(long)]
        form: String,
        /// File with the fields as a JSON object, or - for standard input.
        #[arg(long)]
        json: String,
    },
    /// List records, newest first.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, default_value_t = DEFAULT_LIMIT)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Print the records as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print one record's view as JSON.
    Show { id: String },
}

#[derive(Subcommand)]
pub enum FormCommand {
    /// Every form and version this instance knows.
    List,
    /// Publish FILE (a form definition, JSON) as a new version of its form.
    /// New records use it; existing records keep their version. Stations and
    /// boats receive it at their next sync.
    Publish { file: PathBuf },
    /// Write form ID (its latest version, or --version) as an XLSForm
    /// workbook, to start from it in a spreadsheet; `form import` reads it back.
    Export {
        id: String,
        /// xlsx (XLSForm, for a spreadsheet) or xform (ODK XForm, what Collect fills).
        #[arg(long, default_value = "xlsx")]
        format: String,
        #[arg(long)]
        version: Option<u32>,
        /// Where to write it (default: ID.xlsx here).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Read FILE, an XLSForm workbook (.xlsx), as the next version of its
    /// form and print it as form JSON, or publish it with --publish.
    Import {
        file: PathBuf,
        /// Publish it (at HQ): stations and boats receive it at their next sync.
        #[arg(long)]
        publish: bool,
        /// Write the form JSON here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Export records as JSON lines, CSV or GeoJSON, or as a zip archive with
/// their files (`--format zip --out FILE`).
#[derive(Args)]
pub struct ExportArgs {
    #[arg(long)]
    format: String,
    /// Write here instead of standard output. For CSV, each repeat's table
    /// is written beside it as FILE-stem.<repeat>.csv.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    filter: FilterArgs,
    /// CSV to standard output: a repeat's table (crew, seizures) instead of the records.
    #[arg(long)]
    table: Option<String>,
}

pub(super) fn records(cmd: RecordCommand, settings: &Settings) -> anyhow::Result<()> {
    let records = match cmd {
        RecordCommand::Create { .. } => open_offline(settings)?,
        _ => open_existing(settings)?,
    };
    record(cmd, &records)
}

pub(super) fn forms(cmd: FormCommand, settings: &Settings) -> anyhow::Result<()> {
    match cmd {
        FormCommand::List => {
            let records = open_existing(settings)?;
            let forms = records.forms();
            for latest in forms.list_latest() {
                for form in forms.versions(&latest.id) {
                    println!("{:<24} v{:<4} {}", form.id, form.version, form.title);
                }
            }
            Ok(())
        }
        FormCommand::Publish { file } => publish(settings, &file),
        FormCommand::Import { file, publish, out } => import(settings, &file, publish, out),
        FormCommand::Export {
            id,
            format,
            version,
            out,
        } => {
            if format != "xlsx" && format != "xform" {
                bail!("unknown format {format:?}: forms export as xlsx (XLSForm) or xform (ODK XForm)");
            }
            let forms = forms_here(settings)?;
            let form = match version {
                Some(v) => forms.get(&id, v),
                None => forms.latest(&id),
            }
            .with_context(|| format!("there is no form {id:?} (version {version:?}) here"))?;
            let (bytes, ext) = if format == "xform" {
                (tideline_schemas::xform::xform(form).into_bytes(), "xml")
            } else {
                (tideline_schemas::xlsform::export(form)?, "xlsx")
            };
            let out = out.unwrap_or_else(|| PathBuf::from(format!("{id}.{ext}")));
            std::fs::write(&out, bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "wrote {} version {} to {}",
                form.id,
                form.version,
                out.display()
            );
            Ok(())
        }
    }
}

fn import(
    settings: &Settings,
    file: &Path,
    publish: bool,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let failed = |e: crate::xlsform::ImportFailure| anyhow::anyhow!("{}: {e}", file.display());
    if !publish {
        // A look before publishing creates nothing.
        let forms = forms_here(settings)?;
        let imported = crate::xlsform::preview(&forms, &bytes).map_err(failed)?;
        return show(&imported, out);
    }
    let records = open_offline(settings)?;
    if crate::auth::devices::credential(records.store().as_ref())?.is_some() {
        bail!(
            "this instance syncs with an upstream; publish forms at HQ, which sends \
             them to every station and boat"
        );
    }
    let imported = crate::xlsform::publish(&records, &bytes).map_err(failed)?;
    let form = imported.form();
    if let Imported::Published(_) = imported {
        audit_publish(&records, form, "xlsform")?;
        println!(
            "published {} version {}; stations and boats receive it at their next sync",
            form.id, form.version
        );
    } else {
        println!(
            "{} version {} is already this form; nothing was published",
            form.id, form.version
        );
    }
    Ok(())
}

/// The forms of the data directory, or the built-in ones when there is none yet;
/// opening it for a look creates nothing.
fn forms_here(
    settings: &Settings,
) -> anyhow::Result<std::sync::Arc<tideline_schemas::FormRegistry>> {
    if settings.data_dir.exists() {
        Ok(open_existing(settings)?.forms())
    } else {
        Ok(std::sync::Arc::new(
            tideline_schemas::FormRegistry::builtin(),
        ))
    }
}

/// The form JSON of an import not published, to standard output or `out`.
fn show(imported: &Imported, out: Option<PathBuf>) -> anyhow::Result<()> {
    let form = imported.form();
    if let Imported::Unchanged(_) = imported {
        eprintln!(
            "{} version {} is already this form; publishing it would change nothing",
            form.id, form.version
        );
    }
    let mut json = serde_json::to_string_pretty(form)?;
    json.push('\n');
    match out {
        Some(path) => std::fs::write(&path, json)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().write_all(json.as_bytes())?,
    }
    Ok(())
}

/// The audit entry of a publication; `from` says what it was made from.
fn audit_publish(
    records: &SharedRecords,
    form: &tideline_schemas::Form,
    from: &str,
) -> anyhow::Result<()> {
    crate::auth::AuditLog::new().append(
        records.store().as_ref(),
        crate::auth::Event::new("cli", "form.publish")
            .target(form.id.clone())
            .details(serde_json::json!({ "version": form.version, "from": from })),
        true,
    )?;
    Ok(())
}

fn publish(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    let records = open_offline(settings)?;
    if crate::auth::devices::credential(records.store().as_ref())?.is_some() {
        bail!(
            "this instance syncs with an upstream; publish forms at HQ, which sends \
             them to every station and boat"
        );
    }
    let json =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (form, new) = records.publish_form(&json)?;
    if new {
        audit_publish(&records, &form, "json")?;
        println!(
            "published {} version {}; stations and boats receive it at their next sync",
            form.id, form.version
        );
    } else {
        println!(
            "{} version {} was already published, unchanged",
            form.id, form.version
        );
    }
    Ok(())
}

pub(super) fn export_command(args: ExportArgs, settings: &Settings) -> anyhow::Result<()> {
    let ExportArgs {
        format,
        out,
        filter,
        table,
    } = args;
    let filter = filter.filter()?;
    if format == "zip" {
        let Some(out) = out else {
            bail!("a zip archive needs --out FILE");
        };
        let records = open_existing(settings)?;
        return export_archive(&records, &settings.data_dir, &filter, &out);
    }
    let format: Format = format
        .parse()
        .map_err(|m: String| anyhow::anyhow!("{m}, or zip"))?;
    let records = open_existing(settings)?;
    export(&records, format, &filter, out.as_deref(), table.as_deref())
}

/// Which records a list or an export covers.
#[derive(Args)]
pub struct FilterArgs {
    #[arg(long)]
    form: Option<String>,
    #[arg(long = "filter-station")]
    filter_station: Option<String>,
    #[arg(long)]
    status: Option<String>,
}

impl FilterArgs {
    fn filter(self) -> anyhow::Result<Filter> {
        Ok(Filter {
            form: self.form,
            station: self.filter_station,
            status: self.status.map(|s| s.parse()).transpose()?,
            ..Filter::default()
        })
    }
}

fn record(cmd: RecordCommand, records: &SharedRecords) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match cmd {
        RecordCommand::Create { form, json } => {
            let text = if json == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                std::fs::read_to_string(&json).with_context(|| format!("cannot read {json}"))?
            };
            let fields: Map<String, Json> = serde_json::from_str(&text)
                .with_context(|| format!("{json} is not a JSON object of fields"))?;
            let view = records
                .create(Author::Instance, &form, &fields)
                .map_err(explain)?
                .view;
            writeln!(stdout, "{}", pretty(view.get()))?;
        }
        RecordCommand::List {
            filter,
            limit,
            offset,
            json,
        } => {
            let page = records.list(&filter.filter()?, limit, offset)?;
            if json {
                let views: Vec<Json> = page
                    .records
                    .iter()
                    .map(|r| serde_json::from_str(r.get()))
                    .collect::<Result<_, _>>()?;
                writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"records": views, "total": page.total})
                    )?
                )?;
            } else {
                writeln!(
                    stdout,
                    "{:<36}  {:<16}  {:<9}  {:<8}  {:<20}  VESSEL",
                    "ID", "FORM", "STATUS", "STATION", "CREATED"
                )?;
                for r in &page.records {
                    let v: Json = serde_json::from_str(r.get())?;
                    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
                    writeln!(
                        stdout,
                        "{:<36}  {:<16}  {:<9}  {:<8}  {:<20}  {}",
                        s("id"),
                        s("form"),
                        s("status"),
                        s("station"),
                        s("created_at").chars().take(19).collect::<String>(),
                        v["fields"]["vessel_name"].as_str().unwrap_or("")
                    )?;
                }
                writeln!(stdout, "{} of {} record(s)", page.records.len(), page.total)?;
            }
        }
        RecordCommand::Show { id } => {
            let id = id
                .parse()
                .map_err(|_| anyhow::anyhow!("{id:?} is not a valid record id (a UUID)"))?;
            let view = records.get(&id).map_err(explain)?;
            writeln!(stdout, "{}", pretty(view.get()))?;
        }
    }
    Ok(())
}

/// Validation failures carry every violation; print them, one per line.
fn explain(e: tideline_sync::RecordsError) -> anyhow::Error {
    use tideline_sync::RecordsError::{Incomplete, Invalid};
    match &e {
        Invalid(v) | Incomplete { violations: v, .. } => {
            let lines: Vec<String> = v
                .iter()
                .map(|v| format!("  {}: {}", v.path, v.message))
                .collect();
            anyhow::anyhow!("{e}; nothing was saved:\n{}", lines.join("\n"))
        }
        _ => e.into(),
    }
}

fn pretty(raw: &str) -> String {
    serde_json::from_str::<Json>(raw)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| raw.to_string())
}

fn export_archive(
    records: &SharedRecords,
    data: &Path,
    filter: &Filter,
    out: &Path,
) -> anyhow::Result<()> {
    let blobs = tideline_sync::blobs::BlobStore::open(data)?;
    let mut views = Vec::new();
    records.for_each(filter, |view| -> anyhow::Result<()> {
        views.push(view.to_owned());
        Ok(())
    })?;
    // Written beside the target and renamed, so a failed export leaves no half archive.
    let tmp = out.with_extension("zip.partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let summary = crate::export::write_archive(std::io::BufWriter::new(file), views, |sha| {
        sha.parse().ok().and_then(|h| blobs.path(&h))
    })?;
    std::fs::rename(&tmp, out)?;
    println!(
        "wrote {}: {} record(s), {} file(s){}",
        out.display(),
        summary.records,
        summary.files,
        if summary.missing > 0 {
            format!(
                ", {} referenced file(s) not on this instance (listed as included=no)",
                summary.missing
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

fn export(
    records: &SharedRecords,
    format: Format,
    filter: &Filter,
    out: Option<&Path>,
    table: Option<&str>,
) -> anyhow::Result<()> {
    if table.is_some() && (format != Format::Csv || out.is_some()) {
        bail!("--table is for CSV to standard output; with --out every table is written");
    }
    let form = filter.form.as_deref();
    let write_table = |path: Option<&Path>, table: Option<&str>| -> anyhow::Result<()> {
        let sink: Box<dyn Write> = match path {
            Some(p) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot create {}", p.display()))?,
            )),
            None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        };
        let forms = records.forms();
        let mut exporter = Exporter::new(sink, format, &forms, form, table)?;
        records.for_each(filter, |view| -> anyhow::Result<()> {
            exporter.record(view.get())?;
            Ok(())
        })?;
        exporter.finish()?;
        Ok(())
    };
    write_table(out, table)?;
    if let (Format::Csv, Some(main)) = (format, out) {
        for repeat in repeat_tables(&records.forms(), form) {
            let path = main.with_extension(format!("{repeat}.csv"));
            write_table(Some(&path), Some(&repeat))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

//! Reading records to store: JSONL, CSV, one text per line, or a whole input as one text; and
//! what `memento export` writes.
//!
//! An input is read a line (a CSV row) at a time, in passes over a [`Source`]: the first parses
//! all of it (copying stdin to a temporary file, since stdin cannot be read twice), later ones
//! read it again to check and to write its records. Memory holds a line, not the input. Errors
//! are those of reading an input whole before parsing it: a file that is not UTF-8 somewhere (or,
//! in CSV, a quote out of place) is refused for that, before a bad record earlier in it.
//!
//! Vectors are read exactly: the vector field's own text (serde_json's [`RawValue`]) gives each
//! number's digits, parsed as an `f32` (correctly rounded), never through an intermediate `f64`,
//! so a vector written by `memento export` (the shortest representation of each `f32`) comes
//! back with the same bits.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use memento::{Metadata, Metric};
use serde_json::value::RawValue;
use serde_json::Value;

/// The version of the export format (the header's `memento_export`).
pub const EXPORT_VERSION: u64 = 1;

/// How an input is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line: `id`, `text`, `metadata` (an object), `vector` (an array of
    /// numbers); each optional, but a text or a vector is needed.
    Jsonl,
    /// Comma-separated values with a header row: columns `id`, `text`, `metadata` (a JSON
    /// object), `vector` (a JSON array); any other column becomes a metadata field (a string).
    Csv,
    /// One text per non-empty line.
    Lines,
    /// The whole input is one text.
    Text,
}

/// One record read from an input. `origin` says where it came from (`FILE:LINE`, `argument`).
#[derive(Debug, Clone, PartialEq)]
pub struct InputRecord {
    /// The id, if given (otherwise derived from the text).
    pub id: Option<String>,
    /// The text.
    pub text: Option<String>,
    /// The metadata.
    pub metadata: Option<Metadata>,
    /// Why the metadata's own text cannot be stored as written (an integer beyond 64 bits,
    /// which parsing turned into a float): reported when the record is checked, in the
    /// engine's order (after the record's id and vector), not while the input is read.
    pub metadata_error: Option<String>,
    /// The vector, if given.
    pub vector: Option<Vec<f32>>,
    /// Where it came from, for error messages.
    pub origin: String,
}

impl InputRecord {
    fn text(text: String, origin: String) -> InputRecord {
        InputRecord { id: None, text: Some(text), metadata: None, metadata_error: None, vector: None, origin }
    }
}

/// Where a record of a [`Source`] is, the same in every pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The given record of that index (from the command line).
    Given(u32),
    /// The file of that index, at that line (0: the file as a whole, `--format text`).
    File(u32, u64),
}

/// The header line of an export.
#[derive(Debug, Clone)]
pub struct ExportHeader {
    /// The vectors' dimension.
    pub dimension: usize,
    /// How they are compared.
    pub metric: Metric,
    /// The model's id and SHA-256 (empty if not given), if the store had one.
    pub model: Option<(String, String)>,
    /// The number of records that follow, if the header says.
    pub count: Option<u64>,
}

/// The records of a command: those given on the command line, then each input file's, in order,
/// with `--meta` merged into each. Read in passes: [`Source::first_pass`], then [`Source::each`]
/// as often as needed.
pub struct Source {
    given: Vec<InputRecord>,
    files: Vec<InputFile>,
    meta: Option<Metadata>,
    scope: memento::Scope,
    header: Option<ExportHeader>,
}

struct InputFile {
    /// The path, `-` for stdin.
    path: PathBuf,
    /// An export (`memento import`), or records.
    export: bool,
    /// Its format: given, or guessed in the first pass.
    format: Option<Format>,
    /// stdin, copied by the first pass.
    spool: Option<File>,
}

/// The name of an input in messages: its path, or `stdin` for `-`.
pub fn input_name(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "stdin".into()
    } else {
        path.display().to_string()
    }
}

impl InputFile {
    fn is_stdin(&self) -> bool {
        self.path.as_os_str() == "-"
    }

    /// What a read error of this input says first.
    fn context(&self) -> String {
        if self.is_stdin() {
            "reading stdin".into()
        } else {
            format!("cannot read {}", self.path.display())
        }
    }

    /// Copies stdin to an unnamed temporary file (removed when closed), once.
    fn spool_stdin(&mut self) -> Result<()> {
        if self.is_stdin() && self.spool.is_none() {
            let mut spool = tempfile::tempfile().context("cannot make a temporary file to hold stdin")?;
            io::copy(&mut io::stdin().lock(), &mut spool).context("reading stdin")?;
            self.spool = Some(spool);
        }
        Ok(())
    }

    /// The input from its start.
    fn open(&self) -> Result<Lines<BufReader<File>>> {
        let file = match &self.spool {
            Some(spool) => {
                let mut f = spool.try_clone().with_context(|| self.context())?;
                f.seek(SeekFrom::Start(0)).with_context(|| self.context())?;
                f
            }
            None => File::open(&self.path).with_context(|| self.context())?,
        };
        Ok(Lines::new(BufReader::with_capacity(1 << 16, file), self.context()))
    }

    /// The format: the given one, else from the extension, else from the first character (`{`:
    /// JSONL, else one text per line).
    fn settle_format(&mut self) -> Result<()> {
        if self.format.is_none() && !self.export {
            let path = (!self.is_stdin()).then_some(self.path.as_path());
            let format = match format_from_extension(path) {
                Some(f) => f,
                None => {
                    let mut lines = self.open()?;
                    guess_format(path, &lines.first_text()?)
                }
            };
            self.format = Some(format);
        }
        Ok(())
    }
}

impl Source {
    /// The records given on the command line, then those of `files` (`-`: stdin) in `format`
    /// (`None`: each file's is guessed), with `meta` merged into every record (whose own fields
    /// win) and `scope` stamped on it ([`memento::Scope::stamp`]: a record whose metadata
    /// contradicts the scope gets a metadata error).
    pub fn new(given: Vec<InputRecord>, files: &[PathBuf], format: Option<Format>, meta: Option<Metadata>, scope: memento::Scope) -> Source {
        let files = files.iter().map(|p| InputFile { path: p.clone(), export: false, format, spool: None }).collect();
        let mut src = Source { given, files, meta, scope, header: None };
        let mut given = std::mem::take(&mut src.given);
        for r in &mut given {
            src.merge_meta(r);
        }
        src.given = given;
        src
    }

    /// What `memento export` wrote, in `path` (`-`: stdin): an optional header line, then records
    /// with vectors.
    pub fn export(path: &Path) -> Source {
        Source {
            given: Vec::new(),
            files: vec![InputFile { path: path.to_path_buf(), export: true, format: None, spool: None }],
            meta: None,
            scope: memento::Scope::default(),
            header: None,
        }
    }

    /// The header of an export, once the first pass has read it.
    pub fn header(&self) -> Option<&ExportHeader> {
        self.header.as_ref()
    }

    fn merge_meta(&self, r: &mut InputRecord) {
        if let Some(meta) = &self.meta {
            let mut m = meta.clone();
            m.extend(r.metadata.take().unwrap_or_default());
            r.metadata = Some(m);
        }
        if !self.scope.is_empty() && r.metadata_error.is_none() {
            match self.scope.stamp(r.metadata.take()) {
                Ok(m) => r.metadata = m,
                Err(e) => r.metadata_error = Some(e.to_string()),
            }
        }
    }

    /// The first pass: every record, in order, to `f`. Each file is opened in turn (stdin copied
    /// to a temporary file) and its format settled, so that its errors come after those of the
    /// files before it. An input that cannot be parsed is an error here; later passes read the
    /// same records.
    pub fn first_pass(&mut self, mut f: impl FnMut(Place, InputRecord) -> Result<()>) -> Result<()> {
        self.given_records(&mut f)?;
        for i in 0..self.files.len() {
            self.files[i].spool_stdin()?;
            self.files[i].settle_format()?;
            let mut header = None;
            self.read_file(i, Pass::First, &mut header, &mut f)?;
            if self.files[i].export {
                self.header = header;
            }
        }
        Ok(())
    }

    /// A later pass: every record again, in the same order, with the same places.
    pub fn each(&self, mut f: impl FnMut(Place, InputRecord) -> Result<()>) -> Result<()> {
        self.given_records(&mut f)?;
        for i in 0..self.files.len() {
            self.read_file(i, Pass::Again, &mut None, &mut f)?;
        }
        Ok(())
    }

    /// Where a record is, in words (`FILE:LINE`), as its `origin` says.
    pub fn origin(&self, place: Place) -> String {
        match place {
            Place::Given(i) => self.given.get(i as usize).map(|r| r.origin.clone()).unwrap_or_default(),
            Place::File(i, line) => {
                let name = self.files.get(i as usize).map(|f| input_name(&f.path)).unwrap_or_default();
                if line == 0 {
                    name
                } else {
                    format!("{name}:{line}")
                }
            }
        }
    }

    fn given_records(&self, f: &mut dyn FnMut(Place, InputRecord) -> Result<()>) -> Result<()> {
        for (i, r) in self.given.iter().enumerate() {
            f(Place::Given(i as u32), r.clone())?;
        }
        Ok(())
    }

    fn read_file(&self, i: usize, pass: Pass, header: &mut Option<ExportHeader>, f: &mut dyn FnMut(Place, InputRecord) -> Result<()>) -> Result<()> {
        let file = &self.files[i];
        let name = input_name(&file.path);
        let mut lines = file.open()?;
        let mut each = |line: u64, mut r: InputRecord| {
            self.merge_meta(&mut r);
            f(Place::File(i as u32, line), r)
        };
        if file.export {
            return read_export(&mut lines, &name, pass, header, &mut each);
        }
        match file.format {
            Some(Format::Jsonl) | None => read_jsonl(&mut lines, &name, pass, &mut each),
            Some(Format::Csv) => read_csv(&mut CsvRows::new(lines, &name), &name, pass, &mut each),
            Some(Format::Lines) => read_lines(&mut lines, &name, &mut each),
            Some(Format::Text) => read_text(lines, &name, &mut each),
        }
    }
}

/// What reading the records of one input calls for each: its line (0: the whole input) and it.
type Each<'a> = &'a mut dyn FnMut(u64, InputRecord) -> Result<()>;

/// Which pass reads an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// The first: every error an input can have is found here, as when it was read whole.
    First,
    /// A later one, over an input the first has parsed: a JSON line is read from its fields' own
    /// text (serde_json's `RawValue`) without being parsed whole into a `Value` again, which
    /// would parse each of a vector's numbers as an `f64` only to throw it away. The records
    /// are the same ([`tests::a_later_pass_reads_the_same_records`]); an input changed since
    /// is caught by the check of each record's content in the pass that writes.
    Again,
}

/// Lines of an input: each without its ending (`\n` or `\r\n`, as `str::lines`), numbered from 1,
/// the first without a byte order mark.
struct Lines<R> {
    src: R,
    buf: Vec<u8>,
    number: u64,
    context: String,
}

impl<R: BufRead> Lines<R> {
    fn new(src: R, context: String) -> Self {
        Lines { src, buf: Vec::new(), number: 0, context }
    }

    /// The next line with its ending, and its number.
    fn next_raw(&mut self) -> Result<Option<(u64, &str)>> {
        self.buf.clear();
        if self.src.read_until(b'\n', &mut self.buf).with_context(|| self.context.clone())? == 0 {
            return Ok(None);
        }
        self.number += 1;
        let text = std::str::from_utf8(&self.buf).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "stream did not contain valid UTF-8"));
        let text = text.with_context(|| self.context.clone())?;
        let text = if self.number == 1 { text.strip_prefix('\u{feff}').unwrap_or(text) } else { text };
        Ok(Some((self.number, text)))
    }

    /// The next line, without its ending, and its number.
    fn next_line(&mut self) -> Result<Option<(u64, &str)>> {
        Ok(self.next_raw()?.map(|(n, t)| match t.strip_suffix('\n') {
            Some(t) => (n, t.strip_suffix('\r').unwrap_or(t)),
            None => (n, t),
        }))
    }

    /// The input's text from its first character that is neither a byte order mark at the start
    /// nor white space, to the end of that line (empty if there is none).
    fn first_text(&mut self) -> Result<String> {
        let mut start = true;
        while let Some((_, line)) = self.next_raw()? {
            let line = if std::mem::take(&mut start) { line.trim_start_matches('\u{feff}') } else { line };
            let text = line.trim_start();
            if !text.is_empty() {
                return Ok(text.to_owned());
            }
        }
        Ok(String::new())
    }

    /// `e`, found in a line, unless the rest of the input cannot be read (it is not UTF-8): an
    /// input was read whole before any of it was parsed, and its read error came first.
    fn unless_unreadable(&mut self, e: anyhow::Error) -> anyhow::Error {
        loop {
            match self.next_raw() {
                Ok(Some(_)) => {}
                Ok(None) => return e,
                Err(read) => return read,
            }
        }
    }
}

fn read_jsonl(lines: &mut Lines<impl BufRead>, name: &str, pass: Pass, f: Each<'_>) -> Result<()> {
    while let Some((n, line)) = lines.next_line()? {
        if line.trim().is_empty() {
            continue;
        }
        let record = json_record(line, &format!("{name}:{n}"), pass);
        match record {
            Ok(r) => f(n, r)?,
            Err(e) => return Err(lines.unless_unreadable(e)),
        }
    }
    Ok(())
}

fn read_lines(lines: &mut Lines<impl BufRead>, name: &str, f: Each<'_>) -> Result<()> {
    while let Some((n, line)) = lines.next_line()? {
        if !line.trim().is_empty() {
            let r = InputRecord::text(line.to_owned(), format!("{name}:{n}"));
            f(n, r)?;
        }
    }
    Ok(())
}

/// The whole input is one text: read whole (the record holds all of it anyway).
fn read_text(lines: Lines<impl BufRead>, name: &str, f: Each<'_>) -> Result<()> {
    let Lines { mut src, context, .. } = lines;
    let mut content = String::new();
    src.read_to_string(&mut content).with_context(|| context.clone())?;
    let text = content.strip_prefix('\u{feff}').unwrap_or(&content).trim();
    if text.is_empty() {
        bail!("{name} is empty: there is no text to store");
    }
    f(0, InputRecord::text(text.to_owned(), name.to_owned()))
}

/// An export: the first line may be its header; every record has a vector.
fn read_export(lines: &mut Lines<impl BufRead>, name: &str, pass: Pass, header: &mut Option<ExportHeader>, f: Each<'_>) -> Result<()> {
    let mut first = true;
    while let Some((n, line)) = lines.next_line()? {
        if line.trim().is_empty() {
            continue;
        }
        let origin = format!("{name}:{n}");
        if std::mem::take(&mut first) {
            if let Ok(v) = serde_json::from_str::<Value>(line) {
                if v.get("memento_export").is_some() {
                    match parse_header(&v, &origin) {
                        Ok(h) => *header = Some(h),
                        Err(e) => return Err(lines.unless_unreadable(e)),
                    }
                    continue;
                }
            }
        }
        let record = json_record(line, &origin, pass).and_then(|r| match r.vector {
            Some(_) => Ok(r),
            None => Err(anyhow!("{origin}: the record has no vector; `import` reads what `memento export` writes (use `memento add` or `remember` for texts)")),
        });
        match record {
            Ok(r) => f(n, r)?,
            Err(e) => return Err(lines.unless_unreadable(e)),
        }
    }
    Ok(())
}

fn parse_header(v: &Value, origin: &str) -> Result<ExportHeader> {
    let version = v["memento_export"].as_u64().unwrap_or(0);
    if version != EXPORT_VERSION {
        bail!("{origin}: export format version {} is not one this memento reads ({EXPORT_VERSION})", v["memento_export"]);
    }
    let dimension = v["dimension"].as_u64().ok_or_else(|| anyhow!("{origin}: the header has no \"dimension\""))? as usize;
    let metric = match v["metric"].as_str() {
        Some("cosine") => Metric::Cosine,
        Some("dot") => Metric::Dot,
        Some("l2") => Metric::L2,
        _ => bail!("{origin}: the header's \"metric\" is not cosine, dot or l2"),
    };
    let model = match &v["model"] {
        Value::Null => None,
        m => Some((
            m["id"].as_str().ok_or_else(|| anyhow!("{origin}: the header's model has no \"id\""))?.to_owned(),
            m["sha256"].as_str().unwrap_or_default().to_owned(),
        )),
    };
    let count = match &v["count"] {
        Value::Null => None,
        c => Some(c.as_u64().ok_or_else(|| anyhow!("{origin}: the header's \"count\" is not a whole number"))?),
    };
    Ok(ExportHeader { dimension, metric, model, count })
}

/// The format of a file from its extension, if it says.
fn format_from_extension(path: Option<&Path>) -> Option<Format> {
    let ext = path.and_then(|p| p.extension()).map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("csv") => Some(Format::Csv),
        Some("jsonl" | "ndjson" | "json") => Some(Format::Jsonl),
        Some("txt" | "text") => Some(Format::Lines),
        _ => None,
    }
}

/// The format of a file: from its extension, else from its first character (`{`: JSONL, else
/// one text per line).
pub fn guess_format(path: Option<&Path>, content: &str) -> Format {
    match format_from_extension(path) {
        Some(f) => f,
        None if content.trim_start_matches('\u{feff}').trim_start().starts_with('{') => Format::Jsonl,
        None => Format::Lines,
    }
}

/// The whole of stdin, as text (`memento search -`).
pub fn read_stdin() -> Result<String> {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).context("reading stdin")?;
    Ok(s)
}

/// Parses a whole input held in memory in the given format, as a file of it is read. `name`
/// prefixes error messages (`name:line: ...`).
pub fn parse(content: &str, name: &str, format: Format) -> Result<Vec<InputRecord>> {
    let mut lines = Lines::new(content.as_bytes(), format!("cannot read {name}"));
    let mut out = Vec::new();
    let mut each = |_: u64, r: InputRecord| {
        out.push(r);
        Ok(())
    };
    match format {
        Format::Jsonl => read_jsonl(&mut lines, name, Pass::First, &mut each)?,
        Format::Csv => read_csv(&mut CsvRows::new(lines, name), name, Pass::First, &mut each)?,
        Format::Lines => read_lines(&mut lines, name, &mut each)?,
        Format::Text => read_text(lines, name, &mut each)?,
    }
    Ok(out)
}

fn json_record(line: &str, origin: &str, pass: Pass) -> Result<InputRecord> {
    match pass {
        Pass::First => parse_json_record(line, origin),
        Pass::Again => reparse_json_record(line, origin),
    }
}

/// A JSONL line that [`parse_json_record`] has read once (see [`Pass::Again`]): the same record,
/// from each top-level field's own text.
fn reparse_json_record(line: &str, origin: &str) -> Result<InputRecord> {
    let invalid = |e: serde_json::Error| anyhow!("{origin}: not valid JSON ({e})");
    let mut rec = InputRecord { id: None, text: None, metadata: None, metadata_error: None, vector: None, origin: origin.to_owned() };
    for (key, raw) in raw_fields(line).map_err(invalid)? {
        let raw = raw.get();
        match key.as_str() {
            "id" => rec.id = id_value(&serde_json::from_str(raw).map_err(invalid)?).map_err(|e| anyhow!("{origin}: {e}"))?,
            "text" => rec.text = serde_json::from_str(raw).map_err(invalid)?,
            "metadata" => match serde_json::from_str(raw).map_err(invalid)? {
                Value::Object(m) => {
                    rec.metadata_error = memento::limits::check_json_text(raw, "metadata").err();
                    rec.metadata = Some(m);
                }
                Value::Null => {}
                _ => bail!("{origin}: \"metadata\" must be a JSON object"),
            },
            "vector" if raw == "null" => {}
            "vector" => rec.vector = Some(vector_digits(raw).map_err(|e| anyhow!("{origin}: {e}"))?),
            other => bail!("{origin}: unknown field {other:?}"),
        }
    }
    Ok(rec)
}

/// One JSONL line: an object with `id`, `text`, `metadata` and `vector`, all optional.
pub fn parse_json_record(line: &str, origin: &str) -> Result<InputRecord> {
    let value: Value = serde_json::from_str(line).map_err(|e| anyhow!("{origin}: not valid JSON ({e})"))?;
    let Value::Object(obj) = value else {
        bail!("{origin}: expected a JSON object with \"text\", \"id\", \"metadata\" or \"vector\"");
    };
    // The text of each top-level field as written (the last one, if repeated, as serde_json
    // keeps), for the two fields whose own digits matter: read only if one of them is there.
    let needs_text = obj.get("metadata").is_some_and(Value::is_object) || obj.get("vector").is_some_and(|v| !v.is_null());
    let raw = if needs_text { raw_fields(line).map_err(|e| anyhow!("{origin}: not valid JSON ({e})"))? } else { BTreeMap::new() };
    let raw_of = |key: &str| raw.get(key).map(|v| v.get()).ok_or_else(|| anyhow!("{origin}: cannot find the {key:?} field's text"));
    let mut rec = InputRecord { id: None, text: None, metadata: None, metadata_error: None, vector: None, origin: origin.to_owned() };
    for (key, v) in &obj {
        match key.as_str() {
            "id" => rec.id = id_value(v).map_err(|e| anyhow!("{origin}: {e}"))?,
            "text" => match v {
                Value::String(s) => rec.text = Some(s.clone()),
                Value::Null => {}
                _ => bail!("{origin}: \"text\" must be a string"),
            },
            "metadata" => match v {
                Value::Object(m) => {
                    // The metadata's own text (parsing has turned an integer beyond 64 bits into
                    // a float): refused as the engines refuse it, not stored rounded.
                    rec.metadata_error = memento::limits::check_json_text(raw_of("metadata")?, "metadata").err();
                    rec.metadata = Some(m.clone());
                }
                Value::Null => {}
                _ => bail!("{origin}: \"metadata\" must be a JSON object"),
            },
            "vector" => {
                if !v.is_null() {
                    rec.vector = Some(vector_from(v, raw_of("vector")?).map_err(|e| anyhow!("{origin}: {e}"))?);
                }
            }
            other => bail!("{origin}: unknown field {other:?} (a record has \"id\", \"text\", \"metadata\" and \"vector\")"),
        }
    }
    if rec.text.is_none() && rec.vector.is_none() {
        bail!("{origin}: the record has neither a \"text\" nor a \"vector\"");
    }
    // As for a text argument, a blank line of a text file, or an empty CSV cell: an empty text
    // is not embedded as if it were one.
    if rec.vector.is_none() && rec.text.as_deref().is_some_and(|t| t.trim().is_empty()) {
        bail!("{origin}: the \"text\" is empty, and the record has no \"vector\": there is nothing to embed");
    }
    Ok(rec)
}

/// The top-level fields of a JSON object, each as its text (serde_json keeps the last of a
/// repeated key).
fn raw_fields(json: &str) -> serde_json::Result<BTreeMap<String, &RawValue>> {
    serde_json::from_str(json)
}

/// The raw text of a top-level field of a JSON object (the last one, if repeated, as
/// serde_json keeps). The text must be valid JSON (checked before).
#[cfg(test)]
fn raw_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    raw_fields(json).ok()?.get(key).map(|v| v.get())
}

/// A record's id as given (an empty one is refused with the rest, by the engine's id check).
fn id_value(v: &Value) -> std::result::Result<Option<String>, String> {
    match v {
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
        Value::Null => Ok(None),
        _ => Err("\"id\" must be a string (or an integer)".into()),
    }
}

/// A vector from its JSON text, `[0.25, -1e-3, ...]`, each element parsed from its own digits
/// as an `f32` (correctly rounded: the shortest representation of an `f32` gives it back
/// exactly). An element beyond the range of an `f32` becomes an infinity, which the engine's
/// vector check refuses like any other, in its order (the record's id before its vector).
pub fn parse_vector(raw: &str) -> std::result::Result<Vec<f32>, String> {
    let value: Value = serde_json::from_str(raw).map_err(|e| format!("the vector is not valid JSON ({e})"))?;
    vector_from(&value, raw)
}

/// A vector from its parsed JSON `value` (which says whether it is an array of numbers) and its
/// text `raw` (which gives each number's digits).
fn vector_from(value: &Value, raw: &str) -> std::result::Result<Vec<f32>, String> {
    let Value::Array(items) = value else {
        return Err("the vector must be a JSON array of numbers".into());
    };
    if let Some(i) = items.iter().position(|x| !x.is_number()) {
        return Err(format!("element {i} of the vector is not a number"));
    }
    if items.is_empty() {
        return Err("the vector is empty".into());
    }
    vector_digits(raw)
}

/// A vector from its text, each number's digits parsed as an `f32`; `raw` is known to be a
/// JSON array of numbers, so the text between its brackets is numbers and commas. (Split at the
/// commas rather than read as a `Vec<&RawValue>`: serde_json's scan of each number took a
/// third of a later pass's time, measured on a 1 GB export.)
fn vector_digits(raw: &str) -> std::result::Result<Vec<f32>, String> {
    let inner = raw.trim().strip_prefix('[').and_then(|s| s.strip_suffix(']')).ok_or("the vector must be a JSON array of numbers")?;
    if inner.trim().is_empty() {
        return Err("the vector is empty".into());
    }
    inner.split(',').enumerate().map(|(i, t)| t.trim().parse::<f32>().map_err(|e| format!("element {i} of the vector ({}): {e}", t.trim()))).collect()
}

/// Rows of a CSV input (RFC 4180: quoted fields, `""` inside quotes, CRLF or LF), each with the
/// line it starts on; a row that is one empty field (a blank line) is skipped, but for the last.
///
/// Hand-written rather than the `csv` crate's reader, which is deliberately lenient: it accepts
/// a quoted field left open to the end of the input, a quote inside an unquoted field and text
/// after a closing quote without a word, and a row's line is off by one after a CRLF line; this
/// reader names each of those by its line, and nothing of such an input is stored.
struct CsvRows<'n, R> {
    lines: Lines<R>,
    name: &'n str,
}

impl<'n, R: BufRead> CsvRows<'n, R> {
    fn new(lines: Lines<R>, name: &'n str) -> Self {
        CsvRows { lines, name }
    }

    /// A CSV syntax error at `line`, unless the rest of the input cannot be read.
    fn malformed(&mut self, line: u64, what: &str) -> anyhow::Error {
        let e = anyhow!("{}:{line}: {what}", self.name);
        self.lines.unless_unreadable(e)
    }

    fn next_row(&mut self) -> Result<Option<(u64, Vec<String>)>> {
        let mut row: Vec<String> = Vec::new();
        let mut field = String::new();
        let mut row_line = None;
        let mut in_quotes = false;
        let mut quoted_field = false;
        loop {
            let Some((line, text)) = self.lines.next_raw()? else {
                let row_line = row_line.unwrap_or(self.lines.number + 1);
                if in_quotes {
                    return Err(self.malformed(row_line, "a quoted field is not closed"));
                }
                if !field.is_empty() || quoted_field || !row.is_empty() {
                    row.push(field);
                    return Ok(Some((row_line, row)));
                }
                return Ok(None);
            };
            let start = *row_line.get_or_insert(line);
            let mut chars = text.chars().peekable();
            let mut error = None;
            while let Some(c) = chars.next() {
                if in_quotes {
                    match c {
                        '"' if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        '"' => in_quotes = false,
                        _ => field.push(c),
                    }
                    continue;
                }
                match c {
                    '"' if field.is_empty() && !quoted_field => {
                        in_quotes = true;
                        quoted_field = true;
                    }
                    '"' => {
                        error = Some("a quote inside an unquoted field (quote the whole field and double the quote)");
                        break;
                    }
                    ',' => {
                        row.push(std::mem::take(&mut field));
                        quoted_field = false;
                    }
                    '\r' if chars.peek() == Some(&'\n') => {}
                    // The end of the line, and of the row.
                    '\n' => {
                        row.push(std::mem::take(&mut field));
                        quoted_field = false;
                    }
                    _ if quoted_field => {
                        error = Some("text after a quoted field's closing quote");
                        break;
                    }
                    _ => field.push(c),
                }
            }
            if let Some(what) = error {
                return Err(self.malformed(line, what));
            }
            if !in_quotes && text.ends_with('\n') {
                if row.len() == 1 && row[0].is_empty() {
                    row.clear();
                    row_line = None;
                    continue;
                }
                return Ok(Some((start, row)));
            }
        }
    }

    /// `e`, found in a row, unless a later row is malformed or the input cannot be read: an
    /// input was parsed as CSV whole before any of its rows became a record.
    fn unless_malformed(&mut self, e: anyhow::Error) -> anyhow::Error {
        loop {
            match self.next_row() {
                Ok(Some(_)) => {}
                Ok(None) => return e,
                Err(malformed) => return malformed,
            }
        }
    }
}

fn read_csv(rows: &mut CsvRows<'_, impl BufRead>, name: &str, pass: Pass, f: Each<'_>) -> Result<()> {
    let Some((_, header)) = rows.next_row()? else {
        return Ok(());
    };
    let header: Vec<String> = header.into_iter().map(|h| h.trim().to_owned()).collect();
    if let Err(e) = check_csv_header(&header, name) {
        return Err(rows.unless_malformed(e));
    }
    while let Some((line, row)) = rows.next_row()? {
        match csv_record(&header, row, format!("{name}:{line}"), pass) {
            Ok(r) => f(line, r)?,
            Err(e) => return Err(rows.unless_malformed(e)),
        }
    }
    Ok(())
}

fn check_csv_header(header: &[String], name: &str) -> Result<()> {
    if !header.iter().any(|h| h == "text" || h == "vector") {
        bail!("{name}:1: the header row needs a \"text\" or a \"vector\" column (found: {})", header.join(", "));
    }
    for (i, h) in header.iter().enumerate() {
        if h.is_empty() {
            bail!("{name}:1: column {} has no name", i + 1);
        }
        if header[..i].contains(h) {
            bail!("{name}:1: the column {h:?} appears twice");
        }
    }
    Ok(())
}

fn csv_record(header: &[String], row: Vec<String>, origin: String, pass: Pass) -> Result<InputRecord> {
    if row.len() != header.len() {
        bail!("{origin}: {} fields where the header has {}", row.len(), header.len());
    }
    let mut rec = InputRecord { id: None, text: None, metadata: None, metadata_error: None, vector: None, origin };
    let origin = rec.origin.as_str();
    let mut extra = Metadata::new();
    for (h, cell) in header.iter().zip(row) {
        if cell.is_empty() {
            continue;
        }
        match h.as_str() {
            "id" => rec.id = Some(cell),
            "text" => rec.text = Some(cell),
            "metadata" => match serde_json::from_str::<Value>(&cell) {
                Ok(Value::Object(m)) => {
                    rec.metadata_error = memento::limits::check_json_text(&cell, "metadata").err();
                    rec.metadata = Some(m);
                }
                _ => bail!("{origin}: the \"metadata\" column must hold a JSON object"),
            },
            "vector" => {
                let vector = match pass {
                    Pass::First => parse_vector(&cell),
                    Pass::Again => vector_digits(&cell),
                };
                rec.vector = Some(vector.map_err(|e| anyhow!("{origin}: {e}"))?);
            }
            other => {
                extra.insert(other.to_owned(), Value::String(cell));
            }
        }
    }
    if !extra.is_empty() {
        let mut m = rec.metadata.take().unwrap_or_default();
        for (k, v) in extra {
            m.entry(k).or_insert(v);
        }
        rec.metadata = Some(m);
    }
    if rec.text.is_none() && rec.vector.is_none() {
        bail!("{origin}: the row has neither a text nor a vector");
    }
    Ok(rec)
}

/// A JSON object given on the command line (`--meta`).
pub fn parse_metadata_arg(s: &str) -> std::result::Result<Metadata, String> {
    // Before parsing, which would turn an integer beyond 64 bits into a float.
    memento::limits::check_json_text(s, "metadata")?;
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(format!("the metadata must be a JSON object, like '{{\"lang\": \"en\"}}', not {s}")),
        Err(e) => Err(format!("the metadata is not valid JSON ({e})")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_parsed_from_their_own_digits() {
        let v = parse_vector("[0.1, -1e-45, 3.4028235e38, 1E+2, -0]").unwrap();
        assert_eq!(v[0].to_bits(), 0.1f32.to_bits());
        assert_eq!(v[1].to_bits(), (-1e-45f32).to_bits());
        assert_eq!(v[2], f32::MAX);
        assert_eq!(v[3], 100.0);
        assert_eq!(v[4].to_bits(), (-0.0f32).to_bits());
        // Beyond float32: an infinity, for the engine's vector check to refuse in its order.
        assert_eq!(parse_vector("[1e39, -1e39]").unwrap(), vec![f32::INFINITY, f32::NEG_INFINITY]);
        assert!(parse_vector("[]").is_err());
        assert!(parse_vector("[1, \"a\"]").is_err());
        assert!(parse_vector("{}").is_err());
    }

    #[test]
    fn the_raw_field_is_the_top_level_one() {
        let line = r#"{"metadata": {"vector": [9]}, "text": "a \"vector\": [8]", "vector" : [1.5, 2] , "id": "x"}"#;
        assert_eq!(raw_field(line, "vector"), Some("[1.5, 2]"));
        let r = parse_json_record(line, "t:1").unwrap();
        assert_eq!(r.vector, Some(vec![1.5, 2.0]));
        assert_eq!(r.id.as_deref(), Some("x"));
        let nested = r#"{"vector": [1], "x": {"a": [1, {"b": "]"}]}}"#;
        assert!(parse_json_record(nested, "t:1").is_err(), "unknown field x");
        assert_eq!(raw_field(nested, "vector"), Some("[1]"));
    }

    #[test]
    fn jsonl_records_are_checked() {
        assert!(parse_json_record(r#"{"text": 3}"#, "t:1").is_err());
        assert!(parse_json_record(r#"{"id": "a"}"#, "t:1").is_err());
        assert!(parse_json_record(r#"{"text": "a", "metadata": [1]}"#, "t:1").is_err());
        assert!(parse_json_record("[1]", "t:1").is_err());
        let e = parse_json_record("{", "f.jsonl:7").unwrap_err().to_string();
        assert!(e.starts_with("f.jsonl:7: not valid JSON"), "{e}");
        assert_eq!(parse_json_record(r#"{"id": 7, "text": "a"}"#, "t:1").unwrap().id.as_deref(), Some("7"));
    }

    #[test]
    fn csv_quotes_newlines_and_extra_columns() {
        let csv = "id,text,lang\r\na,\"hello, \"\"world\"\"\",en\nb,\"two\nlines\",\n\nc,plain,fr";
        let recs = parse(csv, "f.csv", Format::Csv).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].text.as_deref(), Some("hello, \"world\""));
        assert_eq!(recs[0].metadata.as_ref().unwrap()["lang"], "en");
        assert_eq!(recs[1].text.as_deref(), Some("two\nlines"));
        assert!(recs[1].metadata.is_none());
        assert_eq!(recs[2].origin, "f.csv:6");
        assert!(parse("id,text\na,\"open", "f.csv", Format::Csv).is_err());
        assert!(parse("id,text\na,b,c", "f.csv", Format::Csv).is_err());
        assert!(parse("id,name\na,b", "f.csv", Format::Csv).is_err());
        let v = parse("id,vector\nv,\"[0.5, 1]\"", "f.csv", Format::Csv).unwrap();
        assert_eq!(v[0].vector, Some(vec![0.5, 1.0]));
    }

    /// A later pass reads each line the first pass accepted as the same record.
    #[test]
    fn a_later_pass_reads_the_same_records() {
        let lines = [
            r#"{"id": "a", "vector": [1, 2.5, -0, 1e39, -1e39, 1e-50, 0.1, 3.4028235e38, 1E+2]}"#,
            r#"{"id": 7, "text": "x"}"#,
            r#"{"id": -7, "text": "x", "vector": null, "metadata": null}"#,
            r#"{"text": "x", "metadata": {"n": 18446744073709551616, "f": 1.5, "s": "é\u0000", "a": [1, {"b": null}]}}"#,
            r#"{"text": "x", "metadata": {"n": -9223372036854775809}, "vector": [1]}"#,
            r#"{"vector": [1], "vector": [2, 3], "id": "d"}"#,
            r#"{"metadata": {"a": 1}, "metadata": {"b": 2}, "text": "t"}"#,
            r#"  { "vector" : [ 1 , 2 ] , "id" : "s" , "text" : null }  "#,
            r#"{"text": " ", "vector": [1]}"#,
            r#"{"te\u0078t": "escaped key", "\u0069d": "i"}"#,
            r#"{"text": "a\nb \"q\" \ud83d\ude00", "metadata": {"x": [1, {"y": "]"}]}}"#,
        ];
        for line in lines {
            let first = parse_json_record(line, "t:1").unwrap();
            let again = reparse_json_record(line, "t:1").unwrap();
            assert_eq!(format!("{first:?}"), format!("{again:?}"), "{line}");
            let bits = |r: &InputRecord| r.vector.as_ref().map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
            assert_eq!(bits(&first), bits(&again), "{line}");
        }
        let csv = "id,vector,metadata,lang\nv,\"[0.1, -0, 1e39]\",\"{\"\"n\"\": 18446744073709551616}\",en\n";
        let read = |pass| {
            let mut out = Vec::new();
            let lines = Lines::new(csv.as_bytes(), String::new());
            read_csv(&mut CsvRows::new(lines, "f"), "f", pass, &mut |_, r| {
                out.push(format!("{r:?} {:?}", r.vector.as_ref().map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())));
                Ok(())
            })
            .unwrap();
            out
        };
        assert_eq!(read(Pass::First), read(Pass::Again));
    }

    #[test]
    fn formats_are_guessed() {
        assert_eq!(guess_format(Some(Path::new("a.CSV")), ""), Format::Csv);
        assert_eq!(guess_format(Some(Path::new("a.jsonl")), ""), Format::Jsonl);
        assert_eq!(guess_format(None, "  {\"text\": \"a\"}"), Format::Jsonl);
        assert_eq!(guess_format(None, "a note"), Format::Lines);
    }
}

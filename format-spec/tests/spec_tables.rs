//! FORMAT.md is normative: every field table in it must match the codec's layout constants.

use memento_format::{graph, mirror, page, superblock, wal, Field};

fn code_tables() -> Vec<(&'static str, &'static [Field])> {
    vec![
        ("superblock", superblock::fields::FIELDS),
        ("page_header", page::header::FIELDS),
        ("record_entry", page::record_entry::FIELDS),
        ("tombstone_entry", page::tombstone_entry::FIELDS),
        ("dir_entry", page::dir_entry::FIELDS),
        ("quant_params", page::quant_params::FIELDS),
        ("wal_header", wal::header::FIELDS),
        ("wal_record_header", wal::record_header::FIELDS),
        ("wal_put", wal::put::FIELDS),
        ("wal_delete", wal::delete::FIELDS),
        ("wal_update", wal::update::FIELDS),
        ("wal_commit", wal::commit::FIELDS),
        ("mirror_trailer", mirror::trailer::FIELDS),
        ("graph_header", graph::header::FIELDS),
    ]
}

/// A table's name and its rows as (offset, size, field).
type SpecTable = (String, Vec<(usize, usize, String)>);

/// (table name, rows of (offset, size, field)) for every `<!-- table: NAME -->` in the spec.
fn spec_tables() -> Vec<SpecTable> {
    let spec = include_str!("../FORMAT.md");
    let mut out = Vec::new();
    let mut lines = spec.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(name) = line.trim().strip_prefix("<!-- table: ").and_then(|r| r.strip_suffix(" -->")) else { continue };
        let mut rows = Vec::new();
        let header = lines.next().expect("a table follows its marker");
        assert!(header.starts_with("| offset | size | field |"), "table {name} has header {header:?}");
        lines.next(); // the |---| line
        while let Some(row) = lines.peek().filter(|l| l.starts_with('|')) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let (off, size, field) = (cells[1], cells[2], cells[3]);
            if size != "–" {
                rows.push((off.parse().expect("offset is a number"), size.parse().expect("size is a number"), field.to_string()));
            }
            lines.next();
        }
        out.push((name.to_string(), rows));
    }
    out
}

fn same_name(spec: &str, code: &str) -> bool {
    code == spec || code.trim_end_matches('_') == spec || (spec == "reserved" && code.starts_with("reserved"))
}

#[test]
fn every_spec_table_matches_the_code() {
    let spec = spec_tables();
    let code = code_tables();
    assert_eq!(
        spec.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        code.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        "the spec's tables and the codec's layouts are not the same set"
    );
    for ((name, rows), (_, fields)) in spec.iter().zip(&code) {
        assert_eq!(rows.len(), fields.len(), "table {name}: {} rows in the spec, {} fields in the code", rows.len(), fields.len());
        for ((off, size, field), f) in rows.iter().zip(fields.iter()) {
            assert!(same_name(field, f.name), "table {name}: spec field {field:?} vs code field {:?}", f.name);
            assert_eq!((*off, *size), (f.offset, f.size), "table {name}, field {field}: offset/size differ");
        }
    }
}

#[test]
fn the_spec_names_the_magic_numbers_and_version_the_code_uses() {
    let spec = include_str!("../FORMAT.md");
    assert!(spec.contains("ASCII `MEMENTOV`") && &superblock::MAGIC == b"MEMENTOV");
    assert!(spec.contains("ASCII `MEMENTOW`") && &wal::MAGIC == b"MEMENTOW");
    assert!(spec.contains("ASCII `MPAG`") && &page::PAGE_MAGIC == b"MPAG");
    // The last row of the version history is the version the code writes.
    let history = spec.split("## Version history").nth(1).expect("a version history");
    let last = history.lines().rfind(|l| l.starts_with("| ") && l.chars().nth(2).is_some_and(|c| c.is_ascii_digit())).expect("a version row");
    assert!(last.starts_with(&format!("| {} | {} |", memento_format::FORMAT_VERSION, memento_format::MIN_READER_VERSION)), "{last}");
    assert!(spec.starts_with(&format!("# Memento on-disk format, version {}", memento_format::FORMAT_VERSION)));
    assert!(spec.contains("| 16 | quantized vectors |") && page::PageType::Quantized.code() == 16);
}

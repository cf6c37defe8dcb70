//! How `memento-inspect` prints what [`memento::inspect`] reports: as text for people, or as
//! JSON (one object per run) for programs. Nothing here reads the store.

use std::io::{self, Write};

use memento::inspect::{
    Checksum, CopyStatus, DumpReport, FieldValue, Finding, GraphCheck, GraphReport, GraphStatus, Location, LockState, MirrorView, PageRole, PagesReport,
    RebuildReport, SuperblockReport, VerifyReport, WalReport,
};
use serde_json::{json, Value};

/// How many vector elements `dump` prints without `--full`.
pub const VECTOR_PREVIEW: usize = 8;

/// A lock state as a sentence.
pub fn lock_text(lock: &LockState) -> String {
    match lock {
        LockState::Free => "not open in another process".into(),
        LockState::Held { pid: Some(p) } => format!("LIVE: open by process {p} (read-only inspection; files may change while they are read)"),
        LockState::Held { pid: None } => "LIVE: open by another process (read-only inspection; files may change while they are read)".into(),
        LockState::Unknown(why) => format!("lock state unknown ({why})"),
    }
}

/// A lock state as JSON.
pub fn lock_json(lock: &LockState) -> Value {
    match lock {
        LockState::Free => json!({"live": false}),
        LockState::Held { pid } => json!({"live": true, "pid": pid}),
        LockState::Unknown(why) => json!({"live": null, "reason": why}),
    }
}

/// A finding as JSON.
pub fn finding_json(f: &Finding) -> Value {
    json!({"severity": f.severity.as_str(), "kind": f.kind.as_str(), "file": f.file, "offset": f.offset, "message": f.message})
}

fn findings_json(fs: &[Finding]) -> Value {
    Value::Array(fs.iter().map(finding_json).collect())
}

/// Findings, one a line.
pub fn write_findings(out: &mut dyn Write, fs: &[Finding]) -> io::Result<()> {
    for f in fs {
        let at = f.offset.map_or(String::new(), |o| format!(" @ {o}"));
        writeln!(out, "{:<7} {:<24} {}{at}: {}", f.severity.as_str().to_uppercase(), f.kind, f.file, f.message)?;
    }
    Ok(())
}

fn location_json(l: &Location) -> Value {
    match l {
        Location::Page { page_no, offset } => json!({"in": "page", "page": page_no, "offset": offset}),
        Location::Wal { lsn, offset } => json!({"in": "wal", "lsn": lsn, "offset": offset}),
    }
}

fn location_text(l: &Location) -> String {
    match l {
        Location::Page { page_no, offset } => format!("page {page_no} (memento.vec @ {offset})"),
        Location::Wal { lsn, offset } => format!("WAL LSN {lsn} (memento.wal @ {offset})"),
    }
}

fn field_value_json(v: &FieldValue) -> Value {
    match v {
        FieldValue::UInt(n) => json!(n),
        FieldValue::Text(t) | FieldValue::Hex(t) => json!(t),
    }
}

fn field_value_text(v: &FieldValue) -> String {
    match v {
        FieldValue::UInt(n) => n.to_string(),
        FieldValue::Text(t) => format!("{t:?}"),
        FieldValue::Hex(h) => h.clone(),
    }
}

fn copy_status(s: &CopyStatus) -> (&'static str, Option<String>) {
    match s {
        CopyStatus::Valid => ("valid", None),
        CopyStatus::Empty => ("empty", Some("all zeros: never written".into())),
        CopyStatus::Invalid { offset, reason } => ("invalid", Some(format!("{reason} (at offset {offset} of the copy)"))),
        CopyStatus::Missing => ("missing", Some("the file is too short to hold it".into())),
    }
}

/// `superblock` as JSON.
pub fn superblock_json(r: &SuperblockReport, lock: &LockState) -> Value {
    let copies: Vec<Value> = r
        .copies
        .iter()
        .map(|c| {
            let (status, why) = copy_status(&c.status);
            let fields: serde_json::Map<String, Value> = c.fields.iter().map(|f| (f.name.to_string(), field_value_json(&f.value))).collect();
            let notes: serde_json::Map<String, Value> = c.fields.iter().filter_map(|f| f.note.as_ref().map(|n| (f.name.to_string(), json!(n)))).collect();
            json!({
                "slot": c.slot.to_string(), "offset": c.offset, "status": status, "reason": why, "current": c.current,
                "crc": c.crc.map(|(stored, computed)| json!({"stored": stored, "computed": computed, "ok": stored == computed})),
                "fields": fields, "notes": notes,
            })
        })
        .collect();
    json!({
        "command": "superblock", "lock": lock_json(lock), "file_len": r.file_len, "trailing_bytes": r.trailing_bytes,
        "current": r.copies.iter().find(|c| c.current).map(|c| c.slot.to_string()),
        "copies": copies, "findings": findings_json(&r.findings),
    })
}

/// `superblock` as text.
pub fn superblock_text(out: &mut dyn Write, r: &SuperblockReport, lock: &LockState) -> io::Result<()> {
    writeln!(out, "store: {}", lock_text(lock))?;
    match r.file_len {
        Some(n) => writeln!(out, "memento.vec: {n} bytes; {} bytes past the checkpoint's pages (ignored)", r.trailing_bytes)?,
        None => writeln!(out, "memento.vec: missing")?,
    }
    for c in &r.copies {
        let (status, why) = copy_status(&c.status);
        let cur = if c.current { ", CURRENT" } else { "" };
        writeln!(out, "\ncopy {} at offset {}: {status}{cur}{}", c.slot, c.offset, why.map_or(String::new(), |w| format!(" ({w})")))?;
        if matches!(c.status, CopyStatus::Invalid { .. }) {
            writeln!(out, "  (fields as stored; not to be trusted)")?;
        }
        if matches!(c.status, CopyStatus::Empty) {
            continue;
        }
        for f in &c.fields {
            let note = f.note.as_ref().map_or(String::new(), |n| format!("  ({n})"));
            if f.name == "crc" {
                if let Some((stored, computed)) = c.crc {
                    let ok = if stored == computed { "ok" } else { "MISMATCH" };
                    writeln!(out, "  {:<20} {stored:#010x}  (computed {computed:#010x}: {ok})", f.name)?;
                    continue;
                }
            }
            writeln!(out, "  {:<20} {}{note}", f.name, field_value_text(&f.value))?;
        }
    }
    if !r.findings.is_empty() {
        writeln!(out)?;
        write_findings(out, &r.findings)?;
    }
    Ok(())
}

fn lsn_range(min: u64, max: u64) -> String {
    if min == 0 && max == 0 {
        "-".into()
    } else {
        format!("{min}..{max}")
    }
}

/// `pages` as JSON.
pub fn pages_json(r: &PagesReport, lock: &LockState) -> Value {
    let pages: Vec<Value> = r
        .pages
        .iter()
        .map(|p| {
            json!({
                "page": p.page_no, "span": p.span, "offset": p.offset, "type": p.page_type.map(|t| t.name()), "role": p.role.as_str(),
                "checkpoint_seq": p.header.map(|h| h.checkpoint_seq), "min_lsn": p.header.map(|h| h.min_lsn), "max_lsn": p.header.map(|h| h.max_lsn),
                "entries": p.header.map(|h| h.count), "payload_len": p.header.map(|h| h.payload_len),
                "live": p.live, "dead": p.dead, "checksum": p.checksum.as_str(), "problem": p.problem,
            })
        })
        .collect();
    json!({
        "command": "pages", "lock": lock_json(lock), "page_size": r.page_size, "page_count": r.page_count,
        "pages": pages, "summary": pages_summary_json(r), "findings": findings_json(&r.findings),
    })
}

fn pages_summary_json(r: &PagesReport) -> Value {
    let mut by_type = serde_json::Map::new();
    for p in &r.pages {
        let name = p.page_type.map_or("unknown", |t| t.name());
        let e = by_type.entry(name.to_string()).or_insert(json!(0));
        *e = json!(e.as_u64().unwrap_or(0) + 1);
    }
    let bad = r.pages.iter().filter(|p| p.problem.is_some()).count();
    let old = r.pages.iter().filter(|p| p.role == PageRole::OldDirectory).count();
    json!({"pages": r.pages.len(), "by_type": by_type, "bad": bad, "old_directories": old})
}

/// `pages` as text.
pub fn pages_text(out: &mut dyn Write, r: &PagesReport, lock: &LockState) -> io::Result<()> {
    writeln!(out, "store: {}", lock_text(lock))?;
    writeln!(out, "page size {} bytes, {} page units in the checkpoint (page 0 holds the superblocks)\n", r.page_size, r.page_count)?;
    writeln!(
        out,
        "{:>6} {:>4}  {:<10} {:<13} {:>5} {:<15} {:>7} {:>6} {:>6}  checksum",
        "page", "span", "type", "role", "ckpt", "LSNs", "entries", "live", "dead"
    )?;
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    for p in &r.pages {
        let (seq, lsns, count) = p.header.map_or(("-".to_string(), "-".to_string(), "-".to_string()), |h| {
            (h.checkpoint_seq.to_string(), lsn_range(h.min_lsn, h.max_lsn), h.count.to_string())
        });
        let ty = p.page_type.map_or("?", |t| t.name());
        let problem = p.problem.as_ref().map_or(String::new(), |m| format!("  <- {m}"));
        writeln!(
            out,
            "{:>6} {:>4}  {:<10} {:<13} {:>5} {:<15} {:>7} {:>6} {:>6}  {}{problem}",
            p.page_no,
            p.span,
            ty,
            p.role.as_str(),
            seq,
            lsns,
            count,
            opt(p.live),
            opt(p.dead),
            p.checksum.as_str()
        )?;
    }
    let s = pages_summary_json(r);
    let types: Vec<String> = s["by_type"].as_object().map(|m| m.iter().map(|(k, v)| format!("{v} {k}")).collect()).unwrap_or_default();
    let bad = r.pages.iter().filter(|p| p.problem.is_some()).count();
    let crc_ok = r.pages.iter().filter(|p| p.checksum == Checksum::Ok).count();
    writeln!(out, "\nsummary: {} pages ({}); {crc_ok} checksums ok; {bad} with problems", r.pages.len(), types.join(", "))?;
    if !r.findings.is_empty() {
        writeln!(out)?;
        write_findings(out, &r.findings)?;
    }
    Ok(())
}

/// `wal` as JSON.
pub fn wal_json(r: &WalReport, lock: &LockState) -> Value {
    let records: Vec<Value> = r
        .records
        .iter()
        .map(|x| {
            json!({"lsn": x.lsn, "offset": x.offset, "len": x.len, "type": x.kind.as_str(), "slot": x.slot, "id": x.id,
                   "detail": x.detail, "committed": x.committed, "checksum": "ok"})
        })
        .collect();
    let txns: Vec<Value> = r
        .txns
        .iter()
        .map(|t| json!({"first_lsn": t.first_lsn, "commit_lsn": t.commit_lsn, "offset": t.offset, "bytes": t.bytes, "puts": t.puts, "deletes": t.deletes, "updates": t.updates}))
        .collect();
    json!({
        "command": "wal", "lock": lock_json(lock), "file_len": r.file_len,
        "header": r.header.as_ref().map(|h| json!({"format_version": h.format_version, "salt": h.salt, "generation": h.generation, "start_lsn": h.start_lsn, "store_uuid": memento::inspect::hex(&h.store_uuid)})),
        "expected": r.expected.map(|(g, s)| json!({"generation": g, "start_lsn": s})),
        "records": records, "transactions": txns,
        "tail": r.tail.as_ref().map(|t| json!({"offset": t.offset, "good_end": t.good_end, "bytes": t.bytes, "reason": t.reason, "vouched_by": t.vouched_by, "torn": t.vouched_by.is_none()})),
        "last_lsn": r.last_lsn, "findings": findings_json(&r.findings),
    })
}

/// `wal` as text; with `verbose`, every record.
pub fn wal_text(out: &mut dyn Write, r: &WalReport, lock: &LockState, verbose: bool) -> io::Result<()> {
    writeln!(out, "store: {}", lock_text(lock))?;
    let Some(len) = r.file_len else {
        writeln!(out, "memento.wal: missing")?;
        return write_findings(out, &r.findings);
    };
    writeln!(out, "memento.wal: {len} bytes")?;
    if let Some(h) = &r.header {
        let (eg, es) = r.expected.map_or(("?".to_string(), "?".to_string()), |(g, s)| (g.to_string(), s.to_string()));
        writeln!(
            out,
            "header: format version {}, generation {} (checkpoint expects {eg}), start LSN {} (expected {es}), salt {:#010x}",
            h.format_version, h.generation, h.start_lsn, h.salt
        )?;
    }
    writeln!(out, "{} records in {} complete transactions (every record listed passed its checksum)\n", r.records.len(), r.txns.len())?;
    for t in &r.txns {
        writeln!(
            out,
            "txn LSN {}..{}  @ {}  {} bytes  {} put, {} delete, {} update",
            t.first_lsn, t.commit_lsn, t.offset, t.bytes, t.puts, t.deletes, t.updates
        )?;
        if verbose {
            for x in r.records.iter().filter(|x| (t.first_lsn..=t.commit_lsn).contains(&x.lsn)) {
                record_line(out, x)?;
            }
        }
    }
    let uncommitted: Vec<_> = r.records.iter().filter(|x| !x.committed).collect();
    if !uncommitted.is_empty() {
        writeln!(out, "{} records without a commit record (dropped at open):", uncommitted.len())?;
        for x in uncommitted {
            record_line(out, x)?;
        }
    }
    match &r.tail {
        Some(t) if t.vouched_by.is_none() => writeln!(
            out,
            "torn tail: {} bytes from offset {} ({} at offset {}) (recoverable: the engine drops it at open)",
            t.bytes, t.good_end, t.reason, t.offset
        )?,
        Some(t) => writeln!(
            out,
            "DAMAGE at offset {}: {} (a later commit record at offset {} says this part had been fsynced)",
            t.offset,
            t.reason,
            t.vouched_by.unwrap_or(0)
        )?,
        None => writeln!(out, "no tail: the log ends with a complete transaction")?,
    }
    writeln!(out, "last committed LSN: {}", r.last_lsn)?;
    if !r.findings.is_empty() {
        writeln!(out)?;
        write_findings(out, &r.findings)?;
    }
    Ok(())
}

fn record_line(out: &mut dyn Write, x: &memento::inspect::WalRecordInfo) -> io::Result<()> {
    let slot = x.slot.map_or(String::new(), |s| format!(" slot {s}"));
    let id = x.id.as_ref().map_or(String::new(), |i| format!(" id {i:?}"));
    let detail = if x.detail.is_empty() { String::new() } else { format!(" ({})", x.detail) };
    writeln!(out, "    LSN {:<8} @ {:<10} {:>8} B  {:<7}{slot}{id}{detail}  checksum ok", x.lsn, x.offset, x.len, x.kind.as_str())
}

/// `verify` as JSON.
pub fn verify_json(r: &VerifyReport) -> Value {
    json!({
        "command": "verify", "lock": lock_json(&r.lock), "ok": r.is_ok(), "errors": r.errors(), "warnings": r.warnings(),
        "derived_only": derived_only(r),
        "checked": {"pages": r.pages, "wal_records": r.wal_records, "wal_transactions": r.wal_txns, "live_records": r.live_records,
                    "checkpoint_lsn": r.checkpoint_lsn, "last_lsn": r.last_lsn, "quantized_copies": r.quantized_checked,
                    "mirror": r.mirror.map(|(rows, lsn)| json!({"rows": rows, "applied_lsn": lsn})),
                    "graph": r.graph.as_ref().map(graph_check_json)},
        "findings": findings_json(&r.findings),
    })
}

/// Whether every error of a verification is in a derived file (the mirror, the graph): the
/// store then has all its records, and the engine rebuilds what is damaged.
fn derived_only(r: &VerifyReport) -> bool {
    r.findings.iter().filter(|f| f.severity == memento::inspect::Severity::Error).all(|f| f.kind.in_derived_file())
}

/// `verify` as text.
pub fn verify_text(out: &mut dyn Write, r: &VerifyReport) -> io::Result<()> {
    writeln!(out, "store: {}", lock_text(&r.lock))?;
    let mirror = r.mirror.map_or("mirror not read".to_string(), |(rows, lsn)| format!("mirror: {rows} rows, applied LSN {lsn}"));
    writeln!(
        out,
        "checked: {} pages, {} WAL records in {} transactions, {} int8 copies; {} live records; checkpoint LSN {}, last LSN {}; {mirror}; {}",
        r.pages,
        r.wal_records,
        r.wal_txns,
        r.quantized_checked,
        r.live_records,
        r.checkpoint_lsn,
        r.last_lsn,
        graph_line(r.graph.as_ref())
    )?;
    write_findings(out, &r.findings)?;
    let (e, w) = (r.errors(), r.warnings());
    let verdict = if e == 0 { "OK" } else { "DAMAGED" };
    let derived = if e > 0 && derived_only(r) { " (only in derived files, rebuilt from the vector file and the WAL: no record is lost)" } else { "" };
    writeln!(out, "{verdict}: {e} error{}, {w} warning{}{derived}", if e == 1 { "" } else { "s" }, if w == 1 { "" } else { "s" })
}

fn graph_status_text(s: &GraphStatus) -> String {
    match s {
        GraphStatus::Usable => "usable (bound to the current vector file)".into(),
        GraphStatus::Stale(why) => format!("stale: {why}; not used, rebuilt by the writer"),
        GraphStatus::Damaged => "DAMAGED: not used (searches scan), rebuilt by the writer; no record is lost".into(),
        GraphStatus::NotCompared => "not compared (no valid superblock)".into(),
    }
}

/// The graph file in one phrase, for `verify`'s summary line.
fn graph_line(g: Option<&GraphCheck>) -> String {
    match g {
        None => "no graph file".into(),
        Some(g) => {
            let shape = g.header.as_ref().map_or(String::new(), |h| {
                let levels: Vec<String> = h.levels.iter().map(|l| l.records.to_string()).collect();
                format!("{} nodes covered, levels of {} records, ", h.node_bound, levels.join("/"))
            });
            format!("graph: {shape}{} pages and {} records checked, {}", g.pages_checked, g.records_checked, g.status.as_str())
        }
    }
}

fn graph_check_json(g: &GraphCheck) -> Value {
    let header = g.header.as_ref().map(|h| {
        let levels: Vec<Value> = h
            .levels
            .iter()
            .enumerate()
            .map(|(l, i)| json!({"level": l, "first_page": i.first_page, "pages": i.pages, "records": i.records, "record_bytes": h.record_len(l)}))
            .collect();
        json!({
            "graph_salt": h.graph_salt, "store_uuid": memento::inspect::hex(&h.store_uuid), "vec_salt": h.vec_salt, "vec_sequence": h.vec_sequence,
            "dimension": h.dimension, "metric": h.metric.name(), "page_size": h.page_size, "qcap": h.qcap,
            "m": h.m, "m0": h.m0, "ef_construction": h.ef_construction, "entry": h.entry, "max_level": h.max_level(),
            "node_bound": h.node_bound, "node_count": h.node_count, "page_count": h.page_count, "levels": levels,
            "est_recall": h.est_recall, "est_sample": h.est_sample, "est_ef": h.est_ef,
        })
    });
    let reason = match &g.status {
        GraphStatus::Stale(why) => Some(why.clone()),
        _ => None,
    };
    json!({"file_len": g.file_len, "status": g.status.as_str(), "reason": reason, "pages_checked": g.pages_checked, "records_checked": g.records_checked, "header": header})
}

/// `graph` as JSON.
pub fn graph_json(r: &GraphReport, lock: &LockState) -> Value {
    json!({
        "command": "graph", "lock": lock_json(lock), "graph": r.graph.as_ref().map(graph_check_json),
        "vector_file": r.vector_file.map(|(qcap, sealed)| json!({"qcap": qcap, "sealed_nodes": sealed})),
        "findings": findings_json(&r.findings),
    })
}

/// `graph` as text.
pub fn graph_text(out: &mut dyn Write, r: &GraphReport, lock: &LockState) -> io::Result<()> {
    writeln!(out, "store: {}", lock_text(lock))?;
    let Some(g) = &r.graph else {
        writeln!(out, "memento.graph: none (the graph index is derived and optional: searches scan, and a writer with a graph builds it)")?;
        return write_findings(out, &r.findings);
    };
    writeln!(out, "memento.graph: {} bytes; {}", g.file_len, graph_status_text(&g.status))?;
    if let Some(h) = &g.header {
        let numbering = r.vector_file.map_or(String::new(), |(qcap, sealed)| format!(" (the vector file: {qcap} per quantized page, {sealed} sealed nodes)"));
        writeln!(out, "  {:<16} {:#010x}", "graph_salt", h.graph_salt)?;
        writeln!(out, "  {:<16} {}", "store_uuid", memento::inspect::hex(&h.store_uuid))?;
        writeln!(out, "  {:<16} {:#010x}  (file_salt of the vector file generation it indexes)", "vec_salt", h.vec_salt)?;
        writeln!(out, "  {:<16} {}  (the checkpoint whose sealed pages hold its nodes)", "vec_sequence", h.vec_sequence)?;
        writeln!(out, "  {:<16} {}, {}, page size {}", "vectors", h.dimension, h.metric.name(), h.page_size)?;
        writeln!(out, "  {:<16} {}{numbering}", "qcap", h.qcap)?;
        writeln!(out, "  {:<16} {} (deleted ones included), numbered below {} (node_bound: the nodes it covers)", "nodes", h.node_count, h.node_bound)?;
        writeln!(out, "  {:<16} m {}, m0 {}, ef_construction {}", "neighbours", h.m, h.m0, h.ef_construction)?;
        writeln!(out, "  {:<16} record {} of level {}", "entry", h.entry, h.max_level())?;
        let est = if h.est_sample == 0 {
            "not measured".to_string()
        } else {
            format!("recall@10 {:.3} over {} queries at ef {}", h.est_recall, h.est_sample, h.est_ef)
        };
        writeln!(out, "  {:<16} {est}", "estimate")?;
        writeln!(out, "  {:<16} {}", "page_count", h.page_count)?;
        writeln!(out, "\n{:>5} {:>10} {:>7} {:>10} {:>8}", "level", "first page", "pages", "records", "bytes")?;
        for (l, i) in h.levels.iter().enumerate() {
            writeln!(out, "{l:>5} {:>10} {:>7} {:>10} {:>8}", i.first_page, i.pages, i.records, h.record_len(l))?;
        }
    }
    writeln!(out, "\nchecked: {} level pages, {} records", g.pages_checked, g.records_checked)?;
    if !r.findings.is_empty() {
        writeln!(out)?;
        write_findings(out, &r.findings)?;
    }
    Ok(())
}

fn mirror_view_json(m: &MirrorView) -> Value {
    match m {
        MirrorView::Agrees => json!({"status": "agrees"}),
        MirrorView::Missing => json!({"status": "missing"}),
        MirrorView::Differs(r) => json!({"status": "differs", "row": {"slot": r.slot, "id": r.id, "text": r.text, "metadata": r.metadata}}),
        MirrorView::Unavailable(why) => json!({"status": "unavailable", "reason": why}),
    }
}

fn metadata_json(m: &Option<String>) -> Value {
    m.as_deref().map_or(Value::Null, |s| serde_json::from_str(s).unwrap_or_else(|_| json!(s)))
}

/// `dump` as JSON; the whole vector with `full`, else its first [`VECTOR_PREVIEW`] elements.
pub fn dump_json(r: &DumpReport, full: bool, lock: &LockState) -> Value {
    let shown = if full { &r.vector[..] } else { &r.vector[..r.vector.len().min(VECTOR_PREVIEW)] };
    json!({
        "command": "dump", "lock": lock_json(lock), "id": r.id, "slot": r.slot, "text": r.text, "metadata": metadata_json(&r.metadata),
        "dimension": r.vector.len(), "vector": shown, "vector_truncated": shown.len() < r.vector.len(), "vector_at": location_json(&r.vector_at),
        "quantized": r.quantized.as_ref().map(|(p, scale, codes)| json!({"page": p, "scale": scale, "codes": if full { codes.clone() } else { codes.iter().take(VECTOR_PREVIEW).copied().collect() }})),
        "record_at": r.record_at.iter().map(|(l, what)| { let mut v = location_json(l); v["entry"] = json!(what); v }).collect::<Vec<_>>(),
        "mirror": mirror_view_json(&r.mirror),
    })
}

/// `dump` as text.
pub fn dump_text(out: &mut dyn Write, r: &DumpReport, full: bool, lock: &LockState) -> io::Result<()> {
    writeln!(out, "store: {}", lock_text(lock))?;
    writeln!(out, "id:        {:?}", r.id)?;
    writeln!(out, "slot:      {}", r.slot)?;
    writeln!(out, "text:      {}", r.text.as_ref().map_or("(none)".to_string(), |t| format!("{t:?}")))?;
    writeln!(out, "metadata:  {}", r.metadata.as_deref().unwrap_or("(none)"))?;
    let shown = if full { &r.vector[..] } else { &r.vector[..r.vector.len().min(VECTOR_PREVIEW)] };
    let more = if shown.len() < r.vector.len() { format!(", ... ({} more; --full shows all)", r.vector.len() - shown.len()) } else { String::new() };
    let elems: Vec<String> = shown.iter().map(|x| format!("{x}")).collect();
    writeln!(out, "vector:    {} dimensions, in {}", r.vector.len(), location_text(&r.vector_at))?;
    writeln!(out, "           [{}{more}]", elems.join(", "))?;
    match &r.quantized {
        Some((p, scale, _)) => writeln!(out, "int8 copy: quantized page {p}, scale {scale}")?,
        None => writeln!(out, "int8 copy: none on disk yet (written by the next checkpoint)")?,
    }
    for (l, what) in &r.record_at {
        writeln!(out, "{what:<10} {}", location_text(l))?;
    }
    let m = match &r.mirror {
        MirrorView::Agrees => "the row agrees with the log".to_string(),
        MirrorView::Missing => "NO ROW for this record".to_string(),
        MirrorView::Differs(row) => format!("the row DIFFERS: slot {}, text {:?}, metadata {}", row.slot, row.text, row.metadata.as_deref().unwrap_or("null")),
        MirrorView::Unavailable(why) => format!("not read ({why})"),
    };
    writeln!(out, "mirror:    {m}")
}

/// `rebuild-mirror` as JSON.
pub fn rebuild_json(r: &RebuildReport) -> Value {
    json!({"command": "rebuild-mirror", "moved_aside": r.moved_aside, "recovery": r.recovery, "verify": verify_json(&r.verify)})
}

/// `rebuild-mirror` as text.
pub fn rebuild_text(out: &mut dyn Write, r: &RebuildReport) -> io::Result<()> {
    if r.moved_aside.is_empty() {
        writeln!(out, "there was no mirror to move aside")?;
    } else {
        writeln!(out, "moved the old mirror aside: {}", r.moved_aside.join(", "))?;
    }
    for line in &r.recovery {
        writeln!(out, "recovery: {line}")?;
    }
    writeln!(out, "\nverify after the rebuild:")?;
    verify_text(out, &r.verify)
}

/// `verify` over a directory of collections (FORMAT.md §8), as JSON: each collection's report
/// under its name, and the directory's own findings.
pub fn collections_verify_json(r: &memento::inspect::CollectionsVerifyReport) -> Value {
    let collections: Vec<Value> = r
        .collections
        .iter()
        .map(|(name, v)| match v {
            Ok(v) => json!({"name": name, "report": verify_json(v)}),
            Err(e) => json!({"name": name, "error": e.to_string()}),
        })
        .collect();
    json!({"command": "verify", "ok": r.is_ok(), "collections": collections, "findings": findings_json(&r.findings)})
}

/// `verify` over a directory of collections, as text: each collection's report after its name,
/// then the directory's own findings.
pub fn collections_verify_text(out: &mut dyn Write, r: &memento::inspect::CollectionsVerifyReport) -> io::Result<()> {
    writeln!(out, "a directory of {} collection(s)", r.collections.len())?;
    for (name, v) in &r.collections {
        writeln!(out, "\n== collection {name}")?;
        match v {
            Ok(v) => verify_text(out, v)?,
            Err(e) => writeln!(out, "ERROR   cannot be verified: {e}")?,
        }
    }
    if !r.findings.is_empty() {
        writeln!(out, "\n== the directory")?;
        write_findings(out, &r.findings)?;
    }
    Ok(())
}

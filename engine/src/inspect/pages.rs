//! The vector file's directory and every page of its checkpoint.

use std::collections::BTreeMap;

use memento_format::page::{self, DirEntry, PageHeader, PageType, QuantLayout, VectorLayout};
use memento_format::superblock::{self, Superblock};

use super::files::RoFile;
use super::finding::{finding, Finding, FindingKind};
use super::log::{apply_entry, Loaded, RowState, SlotPage};
use super::report::{Checksum, Location, PageInfo, PageRole};
use crate::error::{Error, Result};
use crate::vecfile::{self, VEC_FILE};

impl Loaded {
    /// The directory and every page of the checkpoint.
    pub(super) fn read_pages(&mut self) -> Result<()> {
        let (Some(sb), Some(vf)) = (self.sb().cloned(), self.vf.take()) else { return Ok(()) };
        let ps = u64::from(sb.page_size);
        let sealed = sb.page_count.saturating_mul(ps);
        if vf.len < sealed {
            self.findings.push(finding(
                FindingKind::VecTruncated,
                VEC_FILE,
                Some(vf.len),
                format!("the file holds {} bytes but its checkpoint covers {sealed} (pages 0..{}): the store cannot be opened", vf.len, sb.page_count),
            ));
        }
        let (Some(layout), Some(qlayout)) =
            (VectorLayout::new(sb.dimension as usize, sb.page_size as usize), QuantLayout::new(sb.dimension as usize, sb.page_size as usize))
        else {
            self.findings.push(finding(
                FindingKind::SuperblockInvalid,
                VEC_FILE,
                Some(44),
                format!("a {}-dimensional vector does not fit a {}-byte page", sb.dimension, sb.page_size),
            ));
            self.vf = Some(vf);
            return Ok(());
        };
        self.layouts = Some((layout, qlayout));
        let mut findings = Vec::new();
        let mut pages: BTreeMap<u64, PageInfo> = BTreeMap::new();
        let mut sealed_rows: Option<BTreeMap<u64, RowState>> = Some(BTreeMap::new());
        let mut tombstones: Vec<u64> = Vec::new();
        // The directory.
        let mut dir: Option<(Vec<DirEntry>, usize)> = if sb.dir_page == 0 { Some((Vec::new(), 0)) } else { None };
        if sb.dir_page != 0 {
            let e = DirEntry { page_no: sb.dir_page, first_slot: 0, span: sb.dir_span, page_type: PageType::Directory };
            let (info, bytes) = read_page(&vf, &sb, &layout, &qlayout, &e, PageRole::Directory, &mut findings)?;
            if let (Some(bytes), Some(h)) = (bytes, info.header) {
                match page::directory(&bytes, &h, sb.page_count) {
                    Ok(entries) => dir = Some((entries, h.aux as usize)),
                    Err(d) => findings.push(finding(
                        FindingKind::DirectoryInvalid,
                        VEC_FILE,
                        Some(info.offset + d.offset as u64),
                        format!("the directory (page {}) does not decode: {}; no other page can be found", sb.dir_page, d.reason),
                    )),
                }
            }
            pages.insert(sb.dir_page, info);
        }
        if dir.is_none() {
            sealed_rows = None;
        }
        let entries = dir.as_ref().map(|d| d.0.clone()).unwrap_or_default();
        for e in &entries {
            let (mut info, bytes) = read_page(&vf, &sb, &layout, &qlayout, e, PageRole::Listed, &mut findings)?;
            let Some(bytes) = bytes else {
                if matches!(e.page_type, PageType::Record | PageType::Tombstone) {
                    sealed_rows = None;
                }
                pages.insert(e.page_no, info);
                continue;
            };
            let Some(h) = info.header else { continue };
            let loc = Location::Page { page_no: e.page_no, offset: info.offset };
            match h.page_type {
                PageType::Vector | PageType::Quantized => {
                    let n = (h.count as usize).min(bytes.len().saturating_sub(page::HEADER_LEN) / 8);
                    let slots: Vec<u64> = (0..n).map(|i| layout.slot(&bytes, i)).collect();
                    if slots.first() != Some(&e.first_slot) {
                        let msg = format!("page {} is listed with first slot {} but holds slot {:?} first", e.page_no, e.first_slot, slots.first());
                        findings.push(finding(FindingKind::PageType, VEC_FILE, Some(info.offset), msg.clone()));
                        info.problem = Some(msg);
                    } else if let Some(&last) = slots.last() {
                        if last >= sb.next_slot {
                            findings.push(finding(
                                FindingKind::VecNextSlot,
                                VEC_FILE,
                                Some(info.offset),
                                format!("page {} holds slot {last} but the superblock's next slot is {}", e.page_no, sb.next_slot),
                            ));
                        }
                        let sp = SlotPage { page_no: e.page_no, slots };
                        if h.page_type == PageType::Vector {
                            self.vector_pages.push(sp);
                        } else {
                            self.quant_pages.push(sp);
                        }
                    }
                }
                PageType::Record => match page::record_entries(&bytes, &h) {
                    Ok(list) => {
                        if let Some(rows) = sealed_rows.as_mut() {
                            for r in list {
                                apply_entry(rows, &r, loc);
                            }
                        }
                    }
                    Err(d) => {
                        let msg = format!("record page {}: {}", e.page_no, d.reason);
                        findings.push(finding(FindingKind::PageBody, VEC_FILE, Some(info.offset + d.offset as u64), msg.clone()));
                        info.problem = Some(msg);
                        sealed_rows = None;
                    }
                },
                PageType::Tombstone => match page::tombstones(&bytes, &h) {
                    Ok(list) => tombstones.extend(list.into_iter().map(|t| t.0)),
                    Err(d) => {
                        let msg = format!("tombstone page {}: {}", e.page_no, d.reason);
                        findings.push(finding(FindingKind::PageBody, VEC_FILE, Some(info.offset + d.offset as u64), msg.clone()));
                        info.problem = Some(msg);
                        sealed_rows = None;
                    }
                },
                PageType::Directory => {}
                PageType::GraphLevel0 | PageType::GraphUpper => {
                    let msg = format!("page {} is a graph page, which belongs in the graph file, not the vector file", e.page_no);
                    findings.push(finding(FindingKind::PageType, VEC_FILE, Some(info.offset), msg.clone()));
                    info.problem = Some(msg);
                }
            }
            pages.insert(e.page_no, info);
        }
        if let Some(rows) = sealed_rows.as_mut() {
            for s in &tombstones {
                rows.remove(s);
            }
        }
        // Page units no directory lists: earlier directories, or garbage.
        let covered: Vec<(u64, u64)> = pages.values().map(|p| (p.page_no, p.page_no + u64::from(p.span.max(1)))).collect();
        let is_covered = |u: u64| covered.iter().any(|&(a, b)| (a..b).contains(&u));
        let last_unit = sb.page_count.min(vf.len / ps);
        let mut u = 1;
        let mut garbage_from: Option<u64> = None;
        while u < last_unit {
            if is_covered(u) {
                u += 1;
                continue;
            }
            let head = vf.read(u * ps, page::HEADER_LEN as u64).map_err(|e| Error::io("reading a page header", e))?;
            let h = head.as_deref().map(PageHeader::decode);
            match h {
                Some(Ok(h)) if h.page_no == u && u64::from(h.span) <= last_unit - u && !(u..u + u64::from(h.span)).any(is_covered) => {
                    if let Some(g) = garbage_from.take() {
                        unreferenced_units(&mut findings, g, u, ps);
                    }
                    let role = if h.page_type == PageType::Directory { PageRole::OldDirectory } else { PageRole::Unreferenced };
                    let e = DirEntry { page_no: u, first_slot: 0, span: h.span, page_type: h.page_type };
                    let mut sink = Vec::new();
                    let (info, _) = read_page(&vf, &sb, &layout, &qlayout, &e, role, &mut sink)?;
                    if role == PageRole::Unreferenced {
                        findings.push(finding(
                            FindingKind::PageUnreferenced,
                            VEC_FILE,
                            Some(u * ps),
                            format!("page {u} ({}) is listed by no directory; the engine never reads it", h.page_type.name()),
                        ));
                    }
                    u += u64::from(h.span);
                    pages.insert(info.page_no, info);
                }
                _ => {
                    garbage_from.get_or_insert(u);
                    u += 1;
                }
            }
        }
        if let Some(g) = garbage_from {
            unreferenced_units(&mut findings, g, u, ps);
        }
        self.findings.extend(findings);
        self.pages = pages.into_values().collect();
        self.sealed = sealed_rows;
        if let (Some(rows), Some(_)) = (&self.sealed, &dir) {
            if rows.len() as u64 != sb.live_count {
                self.findings.push(finding(
                    FindingKind::VecLiveCount,
                    VEC_FILE,
                    Some(superblock::fields::live_count.offset as u64),
                    format!("the superblock counts {} live records but the pages hold {}", sb.live_count, rows.len()),
                ));
            }
            let mut vector_slots = self.vector_pages.iter().flat_map(|p| p.slots.iter().copied());
            let mut next = vector_slots.next();
            let mut missing = Vec::new();
            for &slot in rows.keys() {
                while next.is_some_and(|s| s < slot) {
                    next = vector_slots.next();
                }
                if next != Some(slot) {
                    missing.push(slot);
                }
            }
            let bad_vector_pages = self.pages.iter().any(|p| p.page_type == Some(PageType::Vector) && p.problem.is_some());
            if !bad_vector_pages {
                for slot in missing {
                    self.findings.push(finding(
                        FindingKind::VecMissingVector,
                        VEC_FILE,
                        None,
                        format!("the live record in slot {slot} has no vector in the vector pages"),
                    ));
                }
            }
        }
        self.vf = Some(vf);
        Ok(())
    }
}

pub(super) fn unreferenced_units(findings: &mut Vec<Finding>, from: u64, to: u64, ps: u64) {
    let what = if to - from == 1 { format!("page unit {from} holds") } else { format!("page units {from}..{to} hold") };
    findings.push(finding(
        FindingKind::PageUnreferenced,
        VEC_FILE,
        Some(from * ps),
        format!("{what} no page that a directory lists; the engine never reads them"),
    ));
}

/// Read and verify one page (the whole span its entry gives): header, page number, span, CRC,
/// type, body. Adds findings for what is wrong; returns the page's bytes only if all is well.
pub(super) fn read_page(
    vf: &RoFile,
    sb: &Superblock,
    layout: &VectorLayout,
    qlayout: &QuantLayout,
    e: &DirEntry,
    role: PageRole,
    findings: &mut Vec<Finding>,
) -> Result<(PageInfo, Option<Vec<u8>>)> {
    let ps = u64::from(sb.page_size);
    let offset = e.page_no.saturating_mul(ps);
    let mut info = PageInfo {
        page_no: e.page_no,
        span: e.span,
        offset,
        page_type: Some(e.page_type),
        role,
        header: None,
        checksum: Checksum::NotChecked,
        live: None,
        dead: None,
        problem: None,
    };
    let what = if role == PageRole::Directory { "the directory".to_string() } else { format!("{} page {}", e.page_type.name(), e.page_no) };
    let mut bad = |kind: FindingKind, at: u64, msg: String, info: &mut PageInfo| {
        findings.push(finding(kind, VEC_FILE, Some(at), msg.clone()));
        info.problem = Some(msg);
    };
    let len = u64::from(e.span).saturating_mul(ps);
    let Some(bytes) = vf.read(offset, len).map_err(|x| Error::io("reading a page", x))? else {
        bad(FindingKind::VecTruncated, offset, format!("{what} lies past the end of the file ({} bytes)", vf.len), &mut info);
        return Ok((info, None));
    };
    let h = match PageHeader::decode(&bytes) {
        Ok(h) => h,
        Err(d) => {
            // The CRC still says whether the bytes changed since they were written.
            let c = page::header::crc;
            let stored = u32::from_le_bytes([bytes[c.offset], bytes[c.offset + 1], bytes[c.offset + 2], bytes[c.offset + 3]]);
            let actual = memento_format::crc32(sb.file_salt, &[&bytes[..c.offset], &bytes[page::HEADER_LEN..]]);
            info.checksum = if stored == actual { Checksum::Ok } else { Checksum::Mismatch };
            bad(FindingKind::PageHeader, offset + d.offset as u64, format!("{what}: {} (checksum {})", d.reason, info.checksum.as_str()), &mut info);
            return Ok((info, None));
        }
    };
    info.header = Some(h);
    info.page_type = Some(h.page_type);
    match page::verify(&bytes, sb.file_salt, e.page_no, ps as usize) {
        Ok(_) => info.checksum = Checksum::Ok,
        Err(d) => {
            let kind = if d.offset == page::header::crc.offset {
                info.checksum = Checksum::Mismatch;
                FindingKind::PageChecksum
            } else if d.offset == page::header::page_no.offset || d.offset == page::header::span.offset {
                FindingKind::PageMisplaced
            } else {
                FindingKind::PageBody
            };
            bad(kind, offset + d.offset as u64, format!("{what}: {}", d.reason), &mut info);
            return Ok((info, None));
        }
    }
    if role == PageRole::Listed && h.page_type != e.page_type {
        bad(
            FindingKind::PageType,
            offset,
            format!("page {} is listed as a {} page but is a {} page", e.page_no, e.page_type.name(), h.page_type.name()),
            &mut info,
        );
        return Ok((info, None));
    }
    if role == PageRole::Directory && h.page_type != PageType::Directory {
        bad(FindingKind::DirectoryInvalid, offset, format!("the superblock's directory page {} is a {} page", e.page_no, h.page_type.name()), &mut info);
        return Ok((info, None));
    }
    if let Err(d) = vecfile::check_body(layout, qlayout, &bytes, &h) {
        bad(FindingKind::PageBody, offset + d.offset as u64, format!("{what}: {}", d.reason), &mut info);
        return Ok((info, None));
    }
    Ok((info, Some(bytes)))
}

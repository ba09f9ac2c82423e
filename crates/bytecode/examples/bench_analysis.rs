//! Time the analysis and the emission over the fixtures:
//! `cargo run --release -p resurrect-bytecode --example bench_analysis`
use resurrect_bytecode::analysis::Analysis;
use resurrect_bytecode::emit::{self, StubNames};
use resurrect_bytecode::Version;
use std::time::Instant;

fn hex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// One fixture line: firstlineno, argument count, code, exception table, line table.
type Fixture = (i64, u32, Vec<u8>, Vec<u8>, Vec<u8>);

fn main() {
    for (ver, f) in [
        (Version::V3_11, "311"),
        (Version::V3_12, "312"),
        (Version::V3_13, "313"),
    ] {
        let path = format!("{}/tests/fixtures/code-{f}.txt", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).unwrap();
        let fx: Vec<Fixture> = text
            .lines()
            .map(|l| {
                let p: Vec<&str> = l.split(' ').collect();
                (
                    p[0].parse().unwrap(),
                    p[1].parse().unwrap(),
                    hex(p[2]),
                    hex(p[3]),
                    hex(p[4]),
                )
            })
            .collect();
        let names = StubNames {
            dispatch: 1,
            unwind: 2,
            value: 3,
            late: 4,
            first_rp_const: 5,
            generator_exit: Some(6),
        };
        let t = Instant::now();
        let mut n = 0;
        for _ in 0..10 {
            for (first, _, code, exc, lines) in &fx {
                let _ = Analysis::new(ver, code, exc, lines, *first).unwrap();
                n += 1;
            }
        }
        let ta = t.elapsed().as_secs_f64() / n as f64;
        let t = Instant::now();
        let (mut before, mut after) = (0usize, 0usize);
        for (first, nargs, code, exc, lines) in &fx {
            let a = Analysis::new(ver, code, exc, lines, *first).unwrap();
            let r = emit::instrument(&a, code, lines, *first, names, 0, *nargs).unwrap();
            before += code.len();
            after += r.code.len();
        }
        let te = t.elapsed().as_secs_f64() / fx.len() as f64;
        println!(
            "{f}: analysis {:.1} us, analysis+emit {:.1} us per code object, size x{:.2}",
            ta * 1e6,
            te * 1e6,
            after as f64 / before as f64
        );
    }
}
